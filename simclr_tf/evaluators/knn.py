"""Weighted k-nearest-neighbour classification of embeddings (Wu et al.
2018, "Unsupervised Feature Learning via Non-Parametric Instance
Discrimination", Sec. 3.4; the kNN monitor of the SSL libraries).

Each query is compared with every bank example by cosine similarity (both
L2-normalised); its k most similar bank examples vote for their labels with
weight ``exp(similarity / temperature)``; the class scores are the summed
weights. Ties in similarity go to the bank example that comes first, as
``tf.math.top_k`` orders them; ``k`` larger than the bank uses the whole
bank. Queries are scored in chunks so memory stays ``chunk x bank``.

Pure ops: tensors in, tensors out, eager or inside ``tf.function``.
"""
from __future__ import annotations

import numbers

import tensorflow as tf


def _check(k, temperature, num_classes):
  for name, value in (('k', k), ('num_classes', num_classes)):
    if not isinstance(value, numbers.Integral) or value < 1:
      raise ValueError(f'knn: {name}={value!r} is invalid: must be an int '
                       '>= 1.')
  if not isinstance(temperature, numbers.Number) or not temperature > 0:
    raise ValueError(f'knn: temperature={temperature!r} is invalid: must be '
                     '> 0 (0.1 is usual).')


def normalize(features):
  """L2-normalised float32 rows of ``features`` [N, D]."""
  return tf.math.l2_normalize(tf.cast(features, tf.float32), axis=-1)


def knn_scores(queries, bank, bank_labels, *, num_classes: int, k: int = 200,
               temperature: float = 0.1, chunk: int = 1024):
  """Class scores [Q, num_classes] (float32) of each query: the summed
  weights exp(s / T) of its neighbours' votes, divided by exp(s_max / T)
  (s_max: its highest similarity) so that small temperatures do not
  overflow; each query's ranking of classes is unchanged.

  Args:
    queries: [Q, D] embeddings (normalised here).
    bank: [N, D] embeddings of labelled examples (normalised here).
    bank_labels: int [N] in [0, num_classes).
    num_classes: C.
    k: neighbours that vote (min(k, N) when the bank is smaller).
    temperature: softness of the vote weights exp(similarity / T).
    chunk: queries scored at a time.
  """
  _check(k, temperature, num_classes)
  queries, bank = normalize(queries), normalize(bank)
  if queries.shape.rank != 2 or bank.shape.rank != 2 or (
      queries.shape[-1] is not None and bank.shape[-1] is not None and
      queries.shape[-1] != bank.shape[-1]):
    raise ValueError(f'knn: queries {queries.shape} and bank {bank.shape} '
                     'must be [Q, D] and [N, D] with the same D.')
  bank_labels = tf.cast(bank_labels, tf.int32)
  k = tf.minimum(k, tf.shape(bank)[0])

  def score(batch):
    similarity = tf.matmul(batch, bank, transpose_b=True)  # [q, N]
    top, index = tf.math.top_k(similarity, k=k)  # [q, k]
    # exp(s / T) scaled by exp(-s_max / T) per query: the same ranking,
    # and no overflow (float32 exp(1 / T) is inf below T ~ 0.0113).
    weights = tf.exp((top - top[:, :1]) / temperature)
    votes = tf.one_hot(tf.gather(bank_labels, index), num_classes)
    return tf.reduce_sum(votes * weights[..., None], axis=1)

  num = queries.shape[0]
  if num is None:  # unknown inside a tf.function: one chunk
    return score(queries)
  parts = [score(queries[i:i + chunk]) for i in range(0, num, chunk)]
  return tf.concat(parts, axis=0) if parts else tf.zeros([0, num_classes])


def rank_of_label(scores, labels):
  """Place of each label among the classes ordered by score, highest first,
  equal scores by class index (0: the top). int32 [Q]."""
  labels = tf.cast(labels, tf.int32)
  mine = tf.gather(scores, labels, batch_dims=1)[:, None]
  classes = tf.range(tf.shape(scores)[-1])[None, :]
  before = tf.logical_or(scores > mine, tf.logical_and(
      tf.equal(scores, mine), classes < labels[:, None]))
  return tf.reduce_sum(tf.cast(before, tf.int32), axis=-1)


def knn_accuracy(queries, query_labels, bank, bank_labels, *,
                 num_classes: int, k: int = 200, temperature: float = 0.1,
                 weights=None) -> dict:
  """Top-1 and top-5 accuracy of the kNN classifier, as float32 scalars
  ``{'knn_top1', 'knn_top5'}``. A label is in the top k when fewer than k
  classes score above it, equal scores ordered by class index (so a class
  without votes is not in the top 5 just because others have none either).
  ``weights`` [Q] (1 real, 0 padding) makes padded queries count for
  nothing."""
  scores = knn_scores(queries, bank, bank_labels, num_classes=num_classes,
                      k=k, temperature=temperature)
  labels = tf.cast(query_labels, tf.int32)
  weights = (tf.ones_like(labels, tf.float32) if weights is None
             else tf.cast(weights, tf.float32))

  def accuracy(hits):
    return tf.math.divide_no_nan(tf.reduce_sum(hits * weights),
                                 tf.reduce_sum(weights))

  rank = rank_of_label(scores, labels)
  return {'knn_top1': accuracy(tf.cast(rank < 1, tf.float32)),
          'knn_top5': accuracy(tf.cast(rank < 5, tf.float32))}
