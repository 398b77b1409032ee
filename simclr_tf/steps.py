"""The distributed multi-step training loop (no files, no summaries).

``make_train_loop`` wraps a task's per-replica objective
(``simclr_tf.tasks``) into a ``tf.function`` that runs several steps per
call under a strategy and returns the replica-averaged metrics.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from simclr_tf.models import param_sets


def make_train_loop(model, optimizer, strategy, task, *,
                    jit_compile: bool = False, per_step: bool = False):
  """Returns ``loop(iterator, num_steps) -> dict of metrics``: their means
  over the steps, or with ``per_step`` float32 ``[num_steps]`` arrays of
  every step's value (dense training curves, the exact step of a NaN).

  Each replica divides its loss by the number of replicas so that the
  gradients the optimizer sums across replicas equal the global-batch
  gradient (the contract of ``losses.nt_xent``). With a Keras
  ``LossScaleOptimizer`` (float16) the loss is multiplied by its dynamic
  scale before differentiation; the optimizer unscales the gradients and
  skips steps whose gradients are not finite.
  """
  train_vars = task.trainable_variables(model)
  sets = param_sets(model)
  names = task.metric_names(model)
  replicas = strategy.num_replicas_in_sync
  scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

  def replica_step(batch):
    with tf.GradientTape() as tape:
      loss, metrics = task.compute_losses(model, batch, train_vars, sets)
      scaled = loss / replicas
      if scales_loss:
        scaled = optimizer.scale_loss(scaled)
    grads = tape.gradient(scaled, train_vars)
    optimizer.apply_gradients(zip(grads, train_vars))
    return metrics

  step_fn = tf.function(replica_step, jit_compile=True) if jit_compile \
      else replica_step

  @tf.function
  def loop(iterator, num_steps):
    values = {k: tf.TensorArray(tf.float32, size=num_steps) for k in names}
    for i in tf.range(num_steps):
      per_replica = strategy.run(step_fn, args=(next(iterator),))
      values = {k: values[k].write(i, tf.cast(strategy.reduce(
          tf.distribute.ReduceOp.MEAN, per_replica[k], axis=None),
                                               tf.float32))
                for k in names}
    stacked = {k: v.stack() for k, v in values.items()}
    if per_step:
      return stacked
    return {k: tf.reduce_mean(v) for k, v in stacked.items()}

  return loop
