"""Top-1 / top-5 evaluation over every example of a split exactly once.

The eval dataset pads the split to whole global batches and marks padding
with ``mask`` = 0, so sums weighted by the mask count each real example once
whatever the batch size and number of replicas.
"""
from __future__ import annotations

import tensorflow as tf

from simclr_tf import losses

_SUMS = ('loss', 'top_1', 'top_5', 'count')


def _replica_sums(model, batch):
  """Per-replica sums of loss, top-1/top-5 hits and real examples."""
  logits = tf.cast(model(batch['image'], training=False)['logits_sup'],
                   tf.float32)
  labels = tf.cast(batch['label'], tf.int32)
  mask = tf.cast(batch['mask'], tf.float32)
  k = min(5, int(logits.shape[-1]))
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels,
                                                      logits=logits)
  return {'loss': tf.reduce_sum(ce * mask),
          'top_1': tf.reduce_sum(losses.top_k_correct(labels, logits, 1) *
                                 mask),
          'top_5': tf.reduce_sum(losses.top_k_correct(labels, logits, k) *
                                 mask),
          'count': tf.reduce_sum(mask)}


def make_eval_step(model, strategy):
  """A tf.function: distributed batch -> dict of global (SUM-reduced) sums."""

  @tf.function
  def step(batch):
    sums = strategy.run(lambda b: _replica_sums(model, b), args=(batch,))
    return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
            for k, v in sums.items()}

  return step


def evaluate(model, strategy, dist_dataset, num_steps: int,
             step_fn=None) -> dict:
  """Evaluates the supervised head (linear probe or fine-tuned classifier).

  Args:
    model: a ``SimCLRModel`` with a supervised head.
    strategy: the strategy ``dist_dataset`` was distributed with.
    dist_dataset: eval batches {'image', 'label', 'mask'}.
    num_steps: batches to run (all of them for a full pass).
    step_fn: ``make_eval_step(model, strategy)`` made before, so repeated
      evaluations of one model trace it once; None: made here.

  Returns:
    {'top_1', 'top_5', 'loss', 'num_examples'}: accuracies in [0, 1] and the
    mean cross-entropy over the real (mask = 1) examples.
  """
  if model.supervised_head is None:
    raise ValueError('evaluate: the model has no supervised head; pretrain '
                     'with --lineareval_while_pretraining=true or fine-tune '
                     'before evaluating top-1/top-5.')
  step = step_fn or make_eval_step(model, strategy)
  totals = {k: 0.0 for k in _SUMS}
  iterator = iter(dist_dataset)
  for _ in range(num_steps):
    for k, v in step(next(iterator)).items():
      totals[k] += float(v)
  count = totals['count']
  if count <= 0:
    raise ValueError(f'evaluate: {num_steps} step(s) saw no example; the '
                     'eval split is empty.')
  return {'top_1': totals['top_1'] / count, 'top_5': totals['top_5'] / count,
          'loss': totals['loss'] / count, 'num_examples': int(round(count))}
