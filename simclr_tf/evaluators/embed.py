"""Embeddings of a split: ``final_avg_pool`` of every example (eval
preprocessing, no augmentation), gathered from all replicas to the host.

The eval dataset pads the split to whole global batches and marks padding
with ``mask`` = 0 (``simclr_tf.data.pipeline``); padding is dropped here, so
each example appears once whatever the number of replicas or workers.
Optionally, per example, a uint8 thumbnail (Projector sprites), and per
batch the examples most similar to a few ``probe`` embeddings (the
neighbour grid), so no pass keeps every image of a split.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from simclr_tf import data

FEATURES = 'final_avg_pool'


def thumbnails(images, side: int):
  """float ``[b, H, W, 3]`` in [0, 1] -> uint8 ``[b, side, side, 3]``
  (area averaging to shrink, nearest pixels to enlarge)."""
  method = 'area' if images.shape[1] is None or images.shape[1] > side \
      else 'nearest'
  small = tf.image.resize(tf.cast(images, tf.float32), [side, side],
                          method=method)
  return tf.cast(tf.round(tf.clip_by_value(small, 0.0, 1.0) * 255), tf.uint8)


def features_of(model, images):
  """float32 ``[b, D]`` embeddings of ``images`` (inference mode)."""
  return tf.cast(model(images, training=False)[FEATURES], tf.float32)


def pass_steps(num_examples: int, batch: int, limit=None) -> int:
  """Batches of ``batch`` for a pass over ``num_examples``, or for
  ``limit`` real examples of them (one more batch, as padding may sit
  inside the last ones when shards are uneven)."""
  steps = data.eval_steps(num_examples, batch)
  if limit is not None and limit < num_examples:
    steps = min(steps, -(-limit // batch) + 1)
  return steps


@dataclasses.dataclass
class Embedded:
  """One pass over a split: ``features`` float32 [N, D], ``labels`` int32
  [N], ``thumbs`` uint8 [N, t, t, 3] or None, and ``nearest``: for each
  probe, the most similar examples as (similarity [P, n], labels [P, n],
  thumbs [P, n, t, t, 3]), most similar first, or None."""
  features: np.ndarray
  labels: np.ndarray
  thumbs: Optional[np.ndarray] = None
  nearest: Optional[tuple] = None


def make_embed_step(model, strategy, *, thumb_side: Optional[int] = None,
                    with_probes: bool = False, nearest: int = 8):
  """A tf.function ``step(batch[, probes])``: distributed eval batch ->
  dict of tensors gathered over replicas: ``features`` [B, D], ``label``
  [B], ``mask`` [B], and ``thumb`` [B, t, t, 3] with ``thumb_side``.
  ``with_probes``: ``probes`` (float [P, D], L2-normalised) is given too,
  and the ``nearest`` most similar real examples of each replica's batch
  come back as ``near_sim`` [R, P, n], ``near_label`` [R, P, n] and
  ``near_thumb`` [R, P, n, t, t, 3] (t = ``thumb_side`` or 64)."""

  def replica(batch, probes):
    feats = features_of(model, batch['image'])
    out = {'features': feats, 'label': tf.cast(batch['label'], tf.int32),
           'mask': tf.cast(batch['mask'], tf.float32)}
    # Thumbnails travel as float16 (exact for 0-255): collectives refuse
    # uint8.
    if thumb_side:
      out['thumb'] = tf.cast(thumbnails(batch['image'], thumb_side),
                             tf.float16)
    if with_probes:
      n = tf.minimum(nearest, tf.shape(feats)[0])
      sim = tf.matmul(probes, tf.math.l2_normalize(feats, -1),
                      transpose_b=True)  # [P, b]
      sim = tf.where(out['mask'][None, :] > 0, sim, -np.inf)
      top, index = tf.math.top_k(sim, k=n)
      out['near_sim'] = top[None]
      out['near_label'] = tf.gather(out['label'], index)[None]
      near = tf.gather(batch['image'], tf.reshape(index, [-1]))
      near = thumbnails(near, thumb_side or 64)
      out['near_thumb'] = tf.cast(tf.reshape(
          near, tf.concat([[1], tf.shape(index), tf.shape(near)[1:]], 0)),
                                  tf.float16)
    return out

  @tf.function
  def step(batch, probes=None):
    per_replica = strategy.run(replica, args=(batch, probes))
    gathered = {k: strategy.gather(v, axis=0)
                for k, v in per_replica.items()}
    return {k: tf.cast(v, tf.uint8) if k.endswith('thumb') else v
            for k, v in gathered.items()}

  return step


def _merge_nearest(kept, new, n):
  """The ``n`` most similar per probe among ``kept`` and ``new`` (tuples
  (sim [P, m], labels [P, m], thumbs [P, m, ...]))."""
  if kept is not None:
    new = tuple(np.concatenate([a, b], axis=1) for a, b in zip(kept, new))
  order = np.argsort(-new[0], axis=1, kind='stable')[:, :n]
  return tuple(np.take_along_axis(
      a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
      for a in new)


def embed(step_fn, dist_dataset, num_steps: int, *,
          limit: Optional[int] = None, probes=None,
          nearest: int = 8) -> Embedded:
  """Runs ``step_fn`` (``make_embed_step``) over ``num_steps`` batches of
  ``dist_dataset`` (fewer once ``limit`` real examples are in), keeping
  the real examples; see ``Embedded``. ``probes``: float [P, D] for a
  step made ``with_probes``."""
  args = () if probes is None else (tf.constant(probes, tf.float32),)
  parts = {'features': [], 'label': [], 'thumb': []}
  near, count = None, 0
  iterator = iter(dist_dataset)
  for _ in range(num_steps):
    out = {k: v.numpy() for k, v in step_fn(next(iterator), *args).items()}
    keep = out['mask'] > 0
    for k in parts:
      if k in out:
        parts[k].append(out[k][keep])
    if 'near_sim' in out:
      p = out['near_sim'].shape[1]
      flat = [np.moveaxis(out[k], 0, 1).reshape((p, -1) + out[k].shape[3:])
              for k in ('near_sim', 'near_label', 'near_thumb')]
      near = _merge_nearest(near, tuple(flat), nearest)
    count += int(keep.sum())
    if limit is not None and count >= limit:
      break
  joined = {k: np.concatenate(v)[:limit] if v else None
            for k, v in parts.items()}
  return Embedded(joined['features'], joined['label'], joined['thumb'],
                  near)
