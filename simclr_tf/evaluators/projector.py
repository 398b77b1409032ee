"""Embeddings to look at in TensorBoard's Projector: ``final_avg_pool`` of
up to ``--projector_examples`` eval images, their labels and class names,
and a sprite of their thumbnails (``simclr_tf.rundir.RunDir`` writes the
files)."""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from simclr_tf import data
from simclr_tf.evaluators import base, embed, images


@dataclasses.dataclass
class Embeddings:
  """``vectors`` float32 [N, D]; ``labels`` int [N]; ``class_names`` in
  label order or None; ``sprite`` uint8 [H, W, 3] of N thumbnails of side
  ``thumb_side`` (``images.sprite`` layout)."""
  vectors: np.ndarray
  labels: np.ndarray
  class_names: Optional[tuple]
  sprite: np.ndarray
  thumb_side: int

  def metadata_lines(self) -> list:
    """The metadata TSV: a header, then ``label<TAB>class`` per row."""
    names = self.class_names
    return ['label\tclass'] + [
        f'{int(y)}\t{names[int(y)] if names else int(y)}'
        for y in self.labels]


class ProjectorEval(base.Evaluator):
  """Embeddings of the first ``cfg.evaluation.projector_examples`` eval
  examples for the Projector; runs at the end (``every_steps`` 0)."""
  name = 'projector'

  def __init__(self, cfg, strategy, source):
    self.cfg, self.strategy, self.source = cfg, strategy, source
    split = cfg.data.eval_split
    self.limit = min(cfg.evaluation.projector_examples,
                     source.num_examples(split))
    self.thumb_side = images.sprite_thumb_side(self.limit,
                                               cfg.model.image_size)
    self._dataset = None
    self._step = (None, None)

  def run(self, model, step):
    cfg = self.cfg
    batch = cfg.train.eval_batch_size
    if self._dataset is None:
      self._dataset = data.build_dataset(
          self.strategy, self.source, cfg.data.eval_split, mode='eval',
          global_batch_size=batch, image_size=cfg.model.image_size,
          augment_cfg=cfg.augment)
    if self._step[0] is not model:
      self._step = (model, embed.make_embed_step(
          model, self.strategy, thumb_side=self.thumb_side))
    steps = embed.pass_steps(
        self.source.num_examples(cfg.data.eval_split), batch, self.limit)
    out = embed.embed(self._step[1], self._dataset, steps, limit=self.limit)
    return base.Report(scalars={}, projector=Embeddings(
        out.features, out.labels, self.source.class_names,
        images.sprite(out.thumbs), self.thumb_side))

  def describe(self, report):
    e = report.projector
    return (f'{e.vectors.shape[0]} embeddings of {e.vectors.shape[1]} '
            f'dimensions for the Projector (sprite {e.sprite.shape[1]} px)')
