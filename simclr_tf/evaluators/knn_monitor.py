"""The kNN monitor: weighted kNN accuracy of ``final_avg_pool`` embeddings
during training (``knn`` holds the arithmetic), and the neighbour grid.

The bank is the train split and the queries the eval split, both with eval
preprocessing (no augmentation). The bank holds every train example unless
``--knn_bank_size`` caps it; by default it is capped only where its
features would pass ``DEFAULT_BANK_BYTES``. No labels are needed for
training, only for this evaluation.
"""
from __future__ import annotations

import tensorflow as tf

from simclr_tf import data
from simclr_tf.evaluators import base, embed, images, knn

DEFAULT_BANK_BYTES = 2 << 30  # float32 bank features held in memory
GRID_QUERIES = 8
GRID_NEIGHBOURS = 8


def default_bank_size(num_examples: int, dim: int) -> int:
  """Every example when their float32 features fit in
  ``DEFAULT_BANK_BYTES``, else as many as fit."""
  return min(num_examples, max(1, DEFAULT_BANK_BYTES // (4 * dim)))


def grid_indices(labels, n: int = GRID_QUERIES) -> list:
  """Indices of ``n`` examples for the neighbour grid: the first example of
  each class in order of appearance, then the next ones, so the rows show
  as many classes as there are."""
  firsts, seen = [], set()
  for i, y in enumerate(labels):
    if int(y) not in seen:
      seen.add(int(y))
      firsts.append(i)
  rest = [i for i in range(len(labels)) if i not in set(firsts)]
  return (firsts + rest)[:n]


class KnnEval(base.Evaluator):
  """``knn_top1`` / ``knn_top5`` on the eval split against a bank of the
  train split (module docstring), and the ``neighbours`` image: for
  ``GRID_QUERIES`` eval images, their ``GRID_NEIGHBOURS`` most similar bank
  images by cosine similarity."""
  name = 'knn'

  def __init__(self, cfg, strategy, source, every_steps: int = 0):
    self.cfg, self.strategy, self.source = cfg, strategy, source
    self.every_steps = every_steps
    self.settings = cfg.evaluation
    self._datasets = {}
    self._steps = (None, None, None)  # (model, query step, bank step)
    self._grid = None

  def _dataset(self, split):
    if split not in self._datasets:  # built once, iterated every time
      self._datasets[split] = data.build_dataset(
          self.strategy, self.source, split, mode='eval',
          global_batch_size=self.cfg.train.eval_batch_size,
          image_size=self.cfg.model.image_size, augment_cfg=self.cfg.augment)
    return self._datasets[split]

  def _num_steps(self, split, limit=None):
    return embed.pass_steps(self.source.num_examples(split),
                            self.cfg.train.eval_batch_size, limit)

  def _grid_images(self):
    """float [Q, S, S, 3] eval images for the grid and their labels."""
    if self._grid is None:
      first = next(iter(data.make_dataset(
          self.source, self.cfg.data.eval_split, mode='eval',
          batch_size=max(64, GRID_QUERIES),
          image_size=self.cfg.model.image_size,
          augment_cfg=self.cfg.augment)))
      real = first['mask'].numpy() > 0
      pick = grid_indices(first['label'].numpy()[real])
      self._grid = (first['image'].numpy()[real][pick],
                    first['label'].numpy()[real][pick])
    return self._grid

  def _step_fns(self, model):
    if self._steps[0] is not model:
      self._steps = (
          model, embed.make_embed_step(model, self.strategy),
          embed.make_embed_step(model, self.strategy, with_probes=True,
                                nearest=GRID_NEIGHBOURS))
    return self._steps[1:]

  def bank_size(self, dim):
    train_split = self.cfg.data.train_split
    n = self.source.num_examples(train_split)
    return min(n, self.settings.knn_bank_size) if \
        self.settings.knn_bank_size else default_bank_size(n, dim)

  def run(self, model, step):
    cfg = self.cfg
    query_step, bank_step = self._step_fns(model)
    grid_images, grid_labels = self._grid_images()
    probes = tf.math.l2_normalize(embed.features_of(model, grid_images), -1)
    queries = embed.embed(query_step, self._dataset(cfg.data.eval_split),
                          self._num_steps(cfg.data.eval_split))
    limit = self.bank_size(queries.features.shape[1])
    bank = embed.embed(bank_step, self._dataset(cfg.data.train_split),
                       self._num_steps(cfg.data.train_split, limit),
                       limit=limit, probes=probes.numpy(),
                       nearest=GRID_NEIGHBOURS)
    accuracy = knn.knn_accuracy(
        queries.features, queries.labels, bank.features, bank.labels,
        num_classes=self.source.num_classes, k=self.settings.knn_k,
        temperature=self.settings.knn_temperature)
    scalars = {k: float(v) for k, v in accuracy.items()}
    scalars.update(knn_num_examples=int(queries.labels.shape[0]),
                   knn_bank_examples=int(bank.labels.shape[0]))
    _, near_labels, near_thumbs = bank.nearest
    side = near_thumbs.shape[2]
    grid = images.neighbour_grid(
        embed.thumbnails(grid_images, side).numpy(), grid_labels,
        near_thumbs, near_labels)
    return base.Report(scalars=scalars, images={'neighbours': grid})

  def describe(self, report):
    r = report.scalars
    return (f'knn_top1 {r["knn_top1"]:.4f}, knn_top5 {r["knn_top5"]:.4f} '
            f'({r["knn_num_examples"]} queries of '
            f'{self.cfg.data.eval_split}, a bank of '
            f'{r["knn_bank_examples"]} of {self.cfg.data.train_split}, k '
            f'{self.settings.knn_k})')
