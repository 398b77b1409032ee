"""What every training mode shares; subclasses say what differs.

A ``Task`` is made from the run's ``Config`` and answers, for its mode:

- the model: ``head_options`` (classifier or not, its gradient and input
  normalisation, frozen encoder groups) -> ``build_model``;
- anything else the objective needs (``prepare``, e.g. a teacher);
- the input: ``input_mode`` (the pipeline's kind: two views with colour
  distortion, or one view cropped and flipped), ``views`` per example,
  ``dataset``;
- the objective of one replica's batch (``objective``) and the names of its
  metrics; ``compute_losses`` adds the weight-decay term;
- images per step and the metrics the progress line shows;
- whether the run evaluates the classifier, and what a fresh run must
  start from (``simclr_tf.tasks.MODES``).
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from simclr_tf import data, losses
from simclr_tf.config import Config
from simclr_tf.models import build_model
from simclr_tf.optim import weight_decay_loss
from simclr_tf.tasks import MODES

SUPERVISED_METRICS = ('supervised_loss', 'supervised_acc')


def effective_model_config(cfg: Config, strategy):
  """Global BN only pays off with more than one replica."""
  if cfg.model.global_bn and strategy.num_replicas_in_sync == 1:
    return dataclasses.replace(cfg.model, global_bn=False)
  return cfg.model


def supervised_metrics(labels, logits) -> dict:
  """Cross-entropy and top-1 accuracy of ``logits`` [B, K] for int ``labels``
  [B] (float32 scalars)."""
  loss = losses.supervised_loss(labels, logits)
  acc = tf.reduce_mean(losses.top_k_correct(labels, logits, 1))
  return {'supervised_loss': loss, 'supervised_acc': acc}


class Task:
  """A training mode (module docstring). Subclasses set ``name`` and
  implement ``objective`` and ``objective_metric_names``."""

  name = ''
  input_mode = 'finetune'  # data.build_dataset(mode=...)
  # (metric, label) shown on the progress line when the step reports it.
  progress = (('supervised_acc', 'acc'),)

  def __init__(self, cfg: Config):
    self.cfg = cfg

  @property
  def needs(self):
    """The flag naming what a fresh run must start from, or None."""
    return MODES[self.name].needs

  @property
  def views(self) -> int:
    """Augmented views of each example per step."""
    return MODES[self.name].views

  # The model.

  def frozen_groups(self) -> int:
    """Encoder groups (stem, block groups 1-4) kept as they are: all five
    with --freeze_encoder, else those up to --fine_tune_after_block."""
    t = self.cfg.train
    return 5 if t.freeze_encoder else t.fine_tune_after_block + 1

  def head_options(self) -> dict:
    """``build_model`` keywords: a classifier trained with the encoder."""
    return dict(probe=True, probe_stop_gradient=False, probe_input_norm=False,
                frozen_groups=self.frozen_groups())

  def build_model(self, strategy):
    """The model this mode trains or evaluates, under ``strategy.scope()``."""
    with strategy.scope():
      return build_model(effective_model_config(self.cfg, strategy),
                         **self.head_options())

  def prepare(self, strategy) -> None:
    """Builds what the objective needs besides the model (default: none).
    Runs before training, after the model is built."""

  def trainable_variables(self, model) -> list:
    """What the optimizer updates (frozen parts are not trainable)."""
    return model.trainable_variables

  def evaluates(self) -> bool:
    """Whether the run evaluates a classifier on the eval split."""
    return True

  # The input.

  def training_inputs(self) -> list:
    """``(split flag, batch flag)`` of every split training reads."""
    return [('train_split', 'train_batch_size')]

  @property
  def images_per_step(self) -> int:
    return self.cfg.train.train_batch_size * self.views

  def dataset(self, strategy, source, split: str, start_step: int):
    """The distributed training stream from ``start_step`` on."""
    t = self.cfg.train
    return data.build_dataset(
        strategy, source, split, mode=self.input_mode,
        global_batch_size=t.train_batch_size,
        image_size=self.cfg.model.image_size, augment_cfg=self.cfg.augment,
        seed=t.seed, cache=self.cfg.data.cache_dataset, start_step=start_step)

  def write_start_summaries(self, writer, strategy, source) -> None:
    """Summaries written once when a run starts at step 0 (default: none)."""

  # The objective.

  def objective_metric_names(self, model) -> tuple:
    raise NotImplementedError

  def objective(self, model, batch):
    """One replica's batch -> (float32 loss, dict of float32 scalars)."""
    raise NotImplementedError

  def metric_names(self, model) -> tuple:
    """Names of the scalars one training step reports."""
    return ('total_loss', 'weight_decay') + tuple(
        self.objective_metric_names(model))

  def compute_losses(self, model, batch, train_vars, sets):
    """The objective plus the explicit weight-decay term of ``train_vars``
    (``sets``: their roles, ``param_sets(model)``).

    Returns:
      (total_loss float32 scalar, dict of float32 scalar metrics).
    """
    loss, metrics = self.objective(model, batch)
    decay = weight_decay_loss(train_vars, self.cfg.optim, sets)
    total = loss + decay
    return total, {**metrics, 'weight_decay': decay, 'total_loss': total}
