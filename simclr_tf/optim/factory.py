"""Optimizer factory and the explicit L2 term of SimCLR (Appendix B.1).

``build_optimizer`` maps ``OptimConfig.optimizer`` to an optimizer;
``weight_decay_loss`` returns the L2 penalty the training loop adds to the
loss, chosen so that each variable is decayed exactly once:

- ``lars``: LARS decays everything except BN, biases and the supervised head
  internally, so the loss only adds L2 for the supervised head's kernels.
- ``adamw``: decoupled decay lives inside the optimizer -> 0.
- others (``momentum``, ``adam``, ``lamb``): L2 on every variable except
  batch-norm ones (biases included, as in the SimCLR release).

Which variable is a BN parameter, a bias or the supervised head's comes
from the model's structure (``simclr_tf.models.param_sets``), so these
rules live here once and hold whatever the layers are named.
"""
from __future__ import annotations

from typing import Iterable

import keras
import tensorflow as tf

from simclr_tf.config import OPTIMIZERS, OptimConfig
from simclr_tf.models.param_sets import ParamSets
from simclr_tf.optim.lars import LARS


def build_optimizer(cfg: OptimConfig, learning_rate, sets: ParamSets, *,
                    loss_scale: bool = False):
  """Optimizer for ``cfg.optimizer``.

  Args:
    cfg: ``OptimConfig``.
    learning_rate: float or ``LearningRateSchedule`` (e.g. ``WarmupCosine``).
    sets: the model's ``ParamSets`` (``param_sets(model)``): LARS leaves
      ``lars_excluded(sets)`` out of decay and trust ratio.
    loss_scale: wrap it in Keras' dynamic ``LossScaleOptimizer`` (float16
      mixed precision: small gradients would underflow in float16). A step
      whose gradients are not finite is skipped and the scale halved.

  Returns:
    ``LARS`` (coupled decay, exclusions ``lars_excluded``), ``SGD``
    (momentum, Nesterov, as the release), ``Adam``, ``AdamW`` (decoupled
    ``cfg.weight_decay``) or ``Lamb`` (Keras 3 built-in); wrapped when
    ``loss_scale`` (``unwrap`` gives the inner one back).
  """
  optimizer = _build(cfg, learning_rate, sets)
  if loss_scale:
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer


def unwrap(optimizer):
  """The optimizer that owns the slots and the step counter.

  Checkpoints hold this one, so their layout is the same with and without
  loss scaling (the scale itself starts afresh after a restore).
  """
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return optimizer.inner_optimizer
  return optimizer


def lars_excluded(sets: ParamSets) -> tuple:
  """What LARS neither decays nor adapts: BN parameters, biases and the
  supervised head (SimCLR Appendix B.1)."""
  return sets.batch_norm + sets.biases + sets.head


def _build(cfg: OptimConfig, learning_rate, sets):
  if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
    learning_rate = float(learning_rate)
  name = cfg.optimizer
  if name == 'lars':
    return LARS(learning_rate, momentum=cfg.momentum,
                weight_decay=cfg.weight_decay, eeta=cfg.lars_eeta,
                classic_momentum=cfg.classic_momentum,
                use_nesterov=cfg.use_nesterov,
                exclude_from_weight_decay=lars_excluded(sets))
  if name == 'momentum':
    return keras.optimizers.SGD(learning_rate, momentum=cfg.momentum,
                                nesterov=True)
  if name == 'adam':
    return keras.optimizers.Adam(learning_rate)
  if name == 'adamw':
    return keras.optimizers.AdamW(learning_rate, weight_decay=cfg.weight_decay)
  if name == 'lamb':
    return keras.optimizers.Lamb(learning_rate)
  raise ValueError(f'optimizer={name!r} is invalid: must be one of '
                   f'{list(OPTIMIZERS)}.')


def _l2_loss(variable):
  """sum(x^2) / 2 in float32 (``tf.nn.l2_loss``), any shape -> scalar."""
  return tf.nn.l2_loss(tf.cast(tf.convert_to_tensor(variable), tf.float32))


def _penalised(variable, sets: ParamSets, optimizer: str) -> bool:
  if optimizer == 'lars':
    return (sets.in_head(variable) and not sets.is_bias(variable)
            and not sets.is_batch_norm(variable))
  return not sets.is_batch_norm(variable)


def weight_decay_loss(trainable_variables: Iterable, cfg: OptimConfig,
                      sets: ParamSets):
  """Explicit L2 term to add to the loss for ``cfg.optimizer``.

  Args:
    trainable_variables: Keras variables.
    cfg: ``OptimConfig``.
    sets: their roles (``param_sets(model)``).

  Returns:
    float32 scalar ``cfg.weight_decay * sum(l2_loss(v))`` over the selected
    variables (see the module docstring); 0 for ``adamw``.
  """
  if cfg.optimizer not in OPTIMIZERS:
    raise ValueError(f'optimizer={cfg.optimizer!r} is invalid: must be one of '
                     f'{list(OPTIMIZERS)}.')
  zero = tf.constant(0., tf.float32)
  if cfg.optimizer == 'adamw' or cfg.weight_decay == 0:
    return zero
  losses = [_l2_loss(v) for v in trainable_variables
            if _penalised(v, sets, cfg.optimizer)]
  if not losses:
    return zero
  return tf.cast(cfg.weight_decay, tf.float32) * tf.add_n(losses)
