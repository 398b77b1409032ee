"""Losses: NT-Xent with cross-replica negatives, supervised cross-entropy
and distillation.

All functions are pure: tensors in, float32 tensors out, no variables, no
summaries. They work eagerly, inside ``tf.function`` and inside
``strategy.run``.

NT-Xent follows SimCLR (Chen et al. 2020) Sec. 2.1, Eq. 1, with the negatives
of the whole global batch (Sec. 2.2, large-batch training): every replica
gathers the projections of all replicas, so with R replicas each anchor still
sees 2G - 2 negatives, G = R * N. The value is the original release's scale:
the sum of both directions (view 1 -> view 2 and view 2 -> view 1) averaged
over the local batch, i.e. twice the paper's Eq. 1 average over 2N anchors.
Published learning rates depend on that scale.

Distribution contract: inside ``strategy.run`` each replica gets the mean over
its local examples; the caller divides by ``num_replicas_in_sync`` before
taking gradients, and the SUM-reduced gradients then equal the single-device
gradients over the global batch (tested in ``tests/test_losses.py``).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple, Optional

import tensorflow as tf

# Subtracted from an anchor's similarity with itself so that softmax gives it
# zero weight. Finite (not -inf) so 0 * logit stays 0 in gradients.
LARGE_NUM = 1e9


class ContrastiveOutput(NamedTuple):
  """What ``nt_xent`` returns; N = local batch, G = global batch.

  Attributes:
    loss: float32 scalar, mean over the local N of (loss_a + loss_b).
    per_example_loss: float32 [N], loss_a + loss_b for each local anchor pair.
    logits_ab: float32 [N, G], view-1 anchors against all view-2 projections
      (already divided by the temperature).
    labels: int32 [N], column of each anchor's positive in ``logits_ab``,
      i.e. replica_id * N + i, in [0, G).
  """
  loss: tf.Tensor
  per_example_loss: tf.Tensor
  logits_ab: tf.Tensor
  labels: tf.Tensor


def _check_projections(z1, z2):
  """Casts both views to float32 and checks they are [N, D] of equal shape."""
  z1 = tf.cast(tf.convert_to_tensor(z1), tf.float32)
  z2 = tf.cast(tf.convert_to_tensor(z2), tf.float32)
  for name, z in (('z1', z1), ('z2', z2)):
    if z.shape.rank is not None and z.shape.rank != 2:
      raise ValueError(f'nt_xent: {name} has shape {z.shape} (rank '
                       f'{z.shape.rank}); expected rank 2, [batch, dim].')
  if not z1.shape.is_compatible_with(z2.shape):
    raise ValueError(f'nt_xent: z1 shape {z1.shape} and z2 shape {z2.shape} '
                     'differ; both views must be [batch, dim] with the same '
                     'batch and dim.')
  return z1, z2


def _check_temperature(temperature, fn='nt_xent',
                       usual='the paper uses 0.1 to 0.5'):
  """Rejects a Python number <= 0; tensors are trusted (checked by Config)."""
  if isinstance(temperature, numbers.Number) and not temperature > 0:
    raise ValueError(f'{fn}: temperature={temperature!r} is invalid; '
                     f'must be > 0 ({usual}).')
  return tf.cast(temperature, tf.float32)


def _gather_global(z1, z2):
  """All-gathers both views across replicas when there is more than one.

  Args:
    z1, z2: float32 [N, D], this replica's projections.

  Returns:
    (z1_all, z2_all, offset): [G, D] each, and int32 scalar replica_id * N,
    the global row of this replica's first example. Outside a replica context
    (or with one replica) G = N and offset = 0. ``all_gather`` is
    differentiable under MirroredStrategy: each replica's gradient flows back
    to its own rows, summed over every replica that used them.
  """
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return z1, z2, tf.constant(0, tf.int32)
  z1_all = ctx.all_gather(z1, axis=0)
  z2_all = ctx.all_gather(z2, axis=0)
  replica_id = tf.cast(ctx.replica_id_in_sync_group, tf.int32)
  return z1_all, z2_all, replica_id * tf.shape(z1)[0]


def _direction_loss(anchor, other_all, same_all, labels, mask, temperature):
  """Cross-entropy of one view's anchors against both views' global batch.

  Args:
    anchor: [N, D] local projections of this view.
    other_all: [G, D] global projections of the other view (positives there).
    same_all: [G, D] global projections of this view (own column masked).
    labels: int32 [N], global index of each anchor.
    mask: float32 [N, G], one-hot of ``labels``.
    temperature: float32 scalar.

  Returns:
    (per-example loss [N], logits against the other view [N, G]).
  """
  logits_other = tf.matmul(anchor, other_all, transpose_b=True) / temperature
  logits_same = tf.matmul(anchor, same_all, transpose_b=True) / temperature
  logits_same -= mask * LARGE_NUM
  logits = tf.concat([logits_other, logits_same], axis=1)  # [N, 2G]
  loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits)
  return loss, logits_other


def nt_xent(z1, z2, *, temperature, hidden_norm: bool = True
            ) -> ContrastiveOutput:
  """NT-Xent loss of two views with negatives from every replica.

  SimCLR Sec. 2.1, Eq. 1: for anchor i of view 1 the positive is i of view 2,
  the negatives are the other 2G - 2 projections of the global batch; the
  same for view 2. Similarity is the dot product of L2-normalised vectors
  (cosine) when ``hidden_norm`` is true.

  Args:
    z1: [N, D] projections of view 1 of the local batch (any float dtype).
    z2: [N, D] projections of view 2, row i paired with row i of ``z1``.
    temperature: tau > 0 (Python number or float scalar tensor).
    hidden_norm: L2-normalise z1, z2 along D before the dot products.

  Returns:
    ContrastiveOutput; ``loss`` is a float32 scalar equal to mean over the
    local N of (loss_a + loss_b) = 2 x the paper's Eq. 1 on one device.
  """
  z1, z2 = _check_projections(z1, z2)
  temperature = _check_temperature(temperature)
  if hidden_norm:
    z1 = tf.math.l2_normalize(z1, axis=-1)
    z2 = tf.math.l2_normalize(z2, axis=-1)
  z1_all, z2_all, offset = _gather_global(z1, z2)
  labels = offset + tf.range(tf.shape(z1)[0], dtype=tf.int32)
  mask = tf.one_hot(labels, tf.shape(z1_all)[0], dtype=tf.float32)
  loss_a, logits_ab = _direction_loss(z1, z2_all, z1_all, labels, mask,
                                      temperature)
  loss_b, _ = _direction_loss(z2, z1_all, z2_all, labels, mask, temperature)
  per_example = loss_a + loss_b
  return ContrastiveOutput(loss=tf.reduce_mean(per_example),
                           per_example_loss=per_example,
                           logits_ab=logits_ab, labels=labels)


def contrastive_metrics(out: ContrastiveOutput):
  """Contrastive accuracy and entropy of the view-1 -> view-2 logits.

  Args:
    out: ``nt_xent`` output with ``logits_ab`` [N, G] and ``labels`` [N].

  Returns:
    (accuracy, entropy), float32 scalars over the local batch: the fraction
    of anchors whose largest logit is their positive, and the mean entropy
    (nats) of softmax(logits_ab), in [0, log G].
  """
  logits = tf.cast(out.logits_ab, tf.float32)
  pred = tf.argmax(logits, axis=-1, output_type=tf.int32)
  acc = tf.reduce_mean(tf.cast(tf.equal(pred, out.labels), tf.float32))
  log_p = tf.nn.log_softmax(logits, axis=-1)
  entropy = -tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1)
  return acc, tf.reduce_mean(entropy)


def _check_labels_logits(fn, labels, logits):
  labels = tf.convert_to_tensor(labels)
  logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
  if not labels.dtype.is_integer:
    raise ValueError(f'{fn}: labels dtype is {labels.dtype.name}; expected '
                     'integer class indices [N] (argmax one-hot labels first).')
  if labels.shape.rank is not None and labels.shape.rank != 1:
    raise ValueError(f'{fn}: labels shape {labels.shape} has rank '
                     f'{labels.shape.rank}; expected [N] class indices.')
  if logits.shape.rank is not None and logits.shape.rank != 2:
    raise ValueError(f'{fn}: logits shape {logits.shape} has rank '
                     f'{logits.shape.rank}; expected [N, num_classes].')
  return labels, logits


def supervised_loss(labels, logits, weights: Optional[tf.Tensor] = None):
  """Mean softmax cross-entropy over the local batch (float32).

  Used for fine-tuning and the linear probe (SimCLR Sec. 4.2, SimCLRv2 Sec. 2).

  Args:
    labels: int [N] class indices.
    logits: [N, C] unnormalised scores (any float dtype; cast to float32).
    weights: optional [N] per-example weights (e.g. 1 real, 0 padding). Gives
      sum(w * ce) / sum(w), and 0 when sum(w) == 0.

  Returns:
    float32 scalar.
  """
  labels, logits = _check_labels_logits('supervised_loss', labels, logits)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=logits)
  if weights is None:
    return tf.reduce_mean(ce)
  weights = tf.cast(weights, tf.float32)
  if weights.shape.rank is not None and weights.shape.rank != 1:
    raise ValueError(f'supervised_loss: weights shape {weights.shape} has '
                     f'rank {weights.shape.rank}; expected [N].')
  return tf.math.divide_no_nan(tf.reduce_sum(weights * ce),
                               tf.reduce_sum(weights))


def top_k_correct(labels, logits, k: int):
  """1.0 where the label is among the k largest logits, else 0.0.

  Ties at the k-th place count as correct (``tf.math.in_top_k``).

  Args:
    labels: int [N] class indices.
    logits: [N, C] scores.
    k: 1 <= k (and <= C when C is known).

  Returns:
    float32 [N].
  """
  labels, logits = _check_labels_logits('top_k_correct', labels, logits)
  num_classes = logits.shape[-1]
  if not isinstance(k, numbers.Integral) or k < 1 or (
      num_classes is not None and k > num_classes):
    raise ValueError(f'top_k_correct: k={k!r} is invalid; must be an integer '
                     f'in [1, num_classes={num_classes}].')
  hit = tf.math.in_top_k(targets=labels, predictions=logits, k=k)
  return tf.cast(hit, tf.float32)


def distillation_loss(teacher_logits, student_logits, temperature=1.0):
  """Cross-entropy from the teacher's to the student's softened prediction
  (SimCLRv2 Eq. 2), averaged over the local batch (float32).

  ``-sum_y softmax(t / T)_y * log softmax(s / T)_y`` per example; the
  teacher's side is a constant (no gradient flows into the teacher).

  Args:
    teacher_logits: [N, C] (any float dtype; cast to float32).
    student_logits: [N, C].
    temperature: T > 0 (python float or scalar tensor).

  Returns:
    float32 scalar.
  """
  teacher = tf.cast(teacher_logits, tf.float32)
  student = tf.cast(student_logits, tf.float32)
  if (teacher.shape.rank != 2 or student.shape.rank != 2 or
      not teacher.shape.is_compatible_with(student.shape)):
    raise ValueError(f'distillation_loss: teacher logits {teacher.shape} and '
                     f'student logits {student.shape} must both be [N, C].')
  temperature = _check_temperature(temperature, 'distillation_loss',
                                   'SimCLRv2 uses 1')
  targets = tf.stop_gradient(tf.nn.softmax(teacher / temperature))
  return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
      labels=targets, logits=student / temperature))


def agreement(teacher_logits, student_logits):
  """Fraction of examples where student and teacher predict the same class
  (float32 scalar)."""
  same = tf.equal(tf.argmax(teacher_logits, axis=-1),
                  tf.argmax(student_logits, axis=-1))
  return tf.reduce_mean(tf.cast(same, tf.float32))
