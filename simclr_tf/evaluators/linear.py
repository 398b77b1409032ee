"""The supervised head's accuracy on the eval split: the linear probe
trained while pretraining, or a fine-tuned or distilled classifier
(``simclr_tf.evaluate`` counts every example exactly once)."""
from __future__ import annotations

from simclr_tf import data, evaluate
from simclr_tf.evaluators import base


class LinearEval(base.Evaluator):
  """Top-1 / top-5 / loss of ``logits_sup`` on ``cfg.data.eval_split``.

  Scalars: ``top_1``, ``top_5``, ``loss``, ``num_examples``.
  """
  name = 'linear'

  def __init__(self, cfg, strategy, source, every_steps: int = 0):
    self.cfg, self.strategy, self.source = cfg, strategy, source
    self.every_steps = every_steps
    self._dataset = None
    self._step_fn = (None, None)  # (model, its traced eval step)

  def _data(self):
    if self._dataset is None:  # built once, iterated at every evaluation
      cfg = self.cfg
      self._dataset = data.build_dataset(
          self.strategy, self.source, cfg.data.eval_split, mode='eval',
          global_batch_size=cfg.train.eval_batch_size,
          image_size=cfg.model.image_size, augment_cfg=cfg.augment)
    return self._dataset

  @property
  def num_steps(self) -> int:
    cfg = self.cfg
    return cfg.train.eval_steps or data.eval_steps(
        self.source.num_examples(cfg.data.eval_split),
        cfg.train.eval_batch_size)

  def run(self, model, step):
    if self._step_fn[0] is not model:
      self._step_fn = (model, evaluate.make_eval_step(model, self.strategy))
    result = evaluate.evaluate(model, self.strategy, self._data(),
                               self.num_steps, step_fn=self._step_fn[1])
    return base.Report(scalars=result)

  def describe(self, report):
    r = report.scalars
    return (f'top_1 {r["top_1"]:.4f}, top_5 {r["top_5"]:.4f}, loss '
            f'{r["loss"]:.4f} on {self.cfg.data.eval_split} '
            f'({r["num_examples"]} examples)')
