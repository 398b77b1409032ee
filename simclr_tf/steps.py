"""Per-replica computations of one training step (no files, no summaries).

``compute_losses`` gives the objective of SimCLR pretraining (NT-Xent on the
projections of two views, plus the linear probe on a stop-gradient) or of
fine-tuning (cross-entropy), plus the weight-decay term; ``make_train_loop``
wraps it into a ``tf.function`` that runs several steps per call under a
strategy and returns the replica-averaged metrics.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from simclr_tf import losses
from simclr_tf.config import Config
from simclr_tf.optim import weight_decay_loss


def metric_names(cfg: Config, has_probe: bool) -> tuple:
  """Names of the scalars one training step reports."""
  names = ['total_loss', 'weight_decay']
  if cfg.train.train_mode == 'pretrain':
    names += ['contrast_loss', 'contrast_acc', 'contrast_entropy']
  if has_probe:
    names += ['supervised_loss', 'supervised_acc']
  return tuple(names)


def _supervised(labels, logits):
  loss = losses.supervised_loss(labels, logits)
  acc = tf.reduce_mean(losses.top_k_correct(labels, logits, 1))
  return {'supervised_loss': loss, 'supervised_acc': acc}


def compute_losses(model, batch, cfg: Config, train_vars):
  """Forward pass and objective for one replica's batch.

  Pretraining: views [b,H,W,3] x 2 are concatenated on the batch axis (BN
  statistics over both views), projections split back, NT-Xent (SimCLR
  Eq. 1) over the global batch; the probe sees both views with the labels
  duplicated. Fine-tuning: cross-entropy on one view.

  Returns:
    (total_loss float32 scalar, dict of float32 scalar metrics).
  """
  labels = tf.cast(batch['label'], tf.int32)
  metrics = {}
  total = tf.constant(0.0, tf.float32)
  if cfg.train.train_mode == 'pretrain':
    images = tf.concat([batch['view1'], batch['view2']], axis=0)
    outputs = model(images, training=True)
    z1, z2 = tf.split(outputs['proj_head_output'], 2, axis=0)
    con = losses.nt_xent(z1, z2, temperature=cfg.loss.temperature,
                         hidden_norm=cfg.loss.hidden_norm)
    acc, entropy = losses.contrastive_metrics(con)
    metrics.update(contrast_loss=con.loss, contrast_acc=acc,
                   contrast_entropy=entropy)
    total += con.loss
    labels = tf.concat([labels, labels], axis=0)
  else:
    outputs = model(batch['image'], training=True)
  if 'logits_sup' in outputs:
    metrics.update(_supervised(labels, outputs['logits_sup']))
    total += metrics['supervised_loss']
  decay = weight_decay_loss(train_vars, cfg.optim)
  total += decay
  metrics.update(weight_decay=decay, total_loss=total)
  return total, metrics


def trainable_variables(model, cfg: Config):
  """What the optimizer updates: all, or only the heads (freeze_encoder)."""
  if cfg.train.freeze_encoder:
    head_vars = model.projection_head.trainable_variables
    if model.supervised_head is not None:
      head_vars += model.supervised_head.trainable_variables
    return head_vars
  return model.trainable_variables


def make_train_loop(model, optimizer, strategy, cfg: Config, *,
                    jit_compile: bool = False):
  """Returns ``loop(iterator, num_steps) -> dict of mean metrics``.

  Each replica divides its loss by the number of replicas so that the
  gradients the optimizer sums across replicas equal the global-batch
  gradient (the contract of ``losses.nt_xent``). With a Keras
  ``LossScaleOptimizer`` (float16) the loss is multiplied by its dynamic
  scale before differentiation; the optimizer unscales the gradients and
  skips steps whose gradients are not finite.
  """
  train_vars = trainable_variables(model, cfg)
  names = metric_names(cfg, model.supervised_head is not None)
  replicas = strategy.num_replicas_in_sync
  scales_loss = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

  def replica_step(batch):
    with tf.GradientTape() as tape:
      loss, metrics = compute_losses(model, batch, cfg, train_vars)
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
    sums = {k: tf.constant(0.0) for k in names}
    for _ in tf.range(num_steps):
      per_replica = strategy.run(step_fn, args=(next(iterator),))
      sums = {k: sums[k] + strategy.reduce(tf.distribute.ReduceOp.MEAN,
                                           per_replica[k], axis=None)
              for k in names}
    return {k: v / tf.cast(num_steps, tf.float32) for k, v in sums.items()}

  return loop
