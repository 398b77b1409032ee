"""LARS: layer-wise adaptive rate scaling (You et al. 2017, arXiv:1708.03888).

SimCLR (Chen et al. 2020, Sec. 4 and Appendix B.1) trains with LARS at large
batch sizes: momentum 0.9, weight decay 1e-6, trust coefficient 0.001, and
neither weight decay nor layer adaptation for batch-norm parameters, biases
and the supervised linear-probe head.

Weight decay here is coupled (added to the gradient before the trust ratio),
as in the SimCLR release; Keras's own decoupled ``weight_decay`` mechanism is
deliberately left off (``super().__init__(weight_decay=None)``).
"""
from __future__ import annotations

from typing import Iterable, Optional

import keras
from keras import ops

def _l2_norm(x):
  """Frobenius norm of a tensor of any rank -> scalar.

  ``keras.ops.norm`` refuses 4-D kernels over all axes, hence sum of squares.
  """
  return ops.sqrt(ops.sum(ops.square(x)))


def trust_ratio(weights, direction, eeta):
  """LARS local learning-rate multiplier (You et al. 2017, Eq. 6).

  Args:
    weights: the variable's value, any shape.
    direction: gradient (classic momentum) or momentum update, same shape.
    eeta: trust coefficient (python float).

  Returns:
    scalar ``eeta * ||w|| / ||direction||`` if both norms are > 0, else 1.
  """
  w_norm = _l2_norm(weights)
  d_norm = _l2_norm(direction)
  ok = ops.logical_and(ops.greater(w_norm, 0), ops.greater(d_norm, 0))
  safe_d = ops.where(ops.greater(d_norm, 0), d_norm, ops.ones_like(d_norm))
  return ops.where(ok, eeta * w_norm / safe_d, ops.ones_like(w_norm))


@keras.saving.register_keras_serializable(package='simclr_tf')
class LARS(keras.optimizers.Optimizer):
  """LARS with momentum as used by SimCLR (Appendix B.1).

  With ``classic_momentum=True`` (the SimCLR default) for each variable:
    g <- g + weight_decay * w              (unless excluded from decay)
    t <- eeta * ||w|| / ||g||              (1 if excluded or a norm is 0)
    v <- momentum * v + lr * t * g
    w <- w - (momentum * v + lr * t * g if use_nesterov else v)
  With ``classic_momentum=False`` the trust ratio is taken on the update:
    v <- momentum * v + g ;  u <- momentum * v + g if nesterov else v
    w <- w - lr * eeta * ||w|| / ||u|| * u

  Exclusions are variables (the SimCLR recipe's sets come from the model's
  structure: ``simclr_tf.optim.factory.lars_excluded``), matched by identity
  and resolved once in ``build()``, because inside a replica function the
  optimizer sees per-replica ``tf.Variable``s. They are not part of
  ``get_config``: pass them again when rebuilding.

  Args:
    learning_rate: float or ``LearningRateSchedule``.
    momentum: in [0, 1).
    weight_decay: coupled L2 coefficient, >= 0.
    eeta: trust coefficient, > 0.
    classic_momentum: see above.
    use_nesterov: Nesterov momentum.
    exclude_from_weight_decay: variables without weight decay (None: none).
    exclude_from_layer_adaptation: variables without the trust ratio;
      None -> the weight-decay ones.
    name: optimizer name.
  """

  def __init__(self, learning_rate=0.001, momentum: float = 0.9,
               weight_decay: float = 0.0, eeta: float = 0.001,
               classic_momentum: bool = True, use_nesterov: bool = False,
               exclude_from_weight_decay: Optional[Iterable] = None,
               exclude_from_layer_adaptation: Optional[Iterable] = None,
               name: str = 'LARS', **kwargs):
    if isinstance(learning_rate, int) and not isinstance(learning_rate, bool):
      learning_rate = float(learning_rate)
    _check_hyper('momentum', momentum, 0 <= momentum < 1, 'must be in [0, 1)')
    _check_hyper('weight_decay', weight_decay, weight_decay >= 0,
                 'must be >= 0')
    _check_hyper('eeta', eeta, eeta > 0, 'must be > 0')
    # weight_decay=None: Keras must not add its decoupled decay on top.
    super().__init__(learning_rate=learning_rate, weight_decay=None,
                     name=name, **kwargs)
    self.momentum = float(momentum)
    self.lars_weight_decay = float(weight_decay)
    self.eeta = float(eeta)
    self.classic_momentum = bool(classic_momentum)
    self.use_nesterov = bool(use_nesterov)
    self._decay_excludes = _as_variables(
        'exclude_from_weight_decay', exclude_from_weight_decay or ())
    self._adapt_excludes = (
        self._decay_excludes if exclude_from_layer_adaptation is None else
        _as_variables('exclude_from_layer_adaptation',
                      exclude_from_layer_adaptation))
    self._use_decay = []
    self._use_adaptation = []

  def build(self, variables):
    """Creates one momentum slot per variable; resolves the exclusions."""
    if self.built:
      return
    super().build(variables)
    no_decay = {self._var_key(v) for v in self._decay_excludes}
    no_adapt = {self._var_key(v) for v in self._adapt_excludes}
    keys = [self._var_key(v) for v in variables]
    self._use_decay = [k not in no_decay for k in keys]
    self._use_adaptation = [k not in no_adapt for k in keys]
    self.momentums = self.add_optimizer_variables(variables, 'momentum')

  def uses_weight_decay(self, variable) -> bool:
    """Whether ``variable`` (a built one) gets coupled weight decay."""
    return self._use_decay[self._get_variable_index(variable)]

  def uses_layer_adaptation(self, variable) -> bool:
    """Whether ``variable`` (a built one) gets the trust ratio."""
    return self._use_adaptation[self._get_variable_index(variable)]

  def update_step(self, gradient, variable, learning_rate):
    """One LARS step for ``variable`` (any shape) given its ``gradient``."""
    index = self._get_variable_index(variable)
    dtype = variable.dtype
    lr = ops.cast(learning_rate, dtype)
    grad = ops.cast(gradient, dtype)
    weights = ops.convert_to_tensor(variable)
    velocity = self.momentums[index]
    momentum = ops.cast(self.momentum, dtype)
    adapt = self._use_adaptation[index]
    if self._use_decay[index] and self.lars_weight_decay > 0:
      grad = grad + ops.cast(self.lars_weight_decay, dtype) * weights
    if self.classic_momentum:
      trust = trust_ratio(weights, grad, self.eeta) if adapt else 1.0
      scaled = lr * trust * grad
      next_v = momentum * velocity + scaled
      update = momentum * next_v + scaled if self.use_nesterov else next_v
    else:
      next_v = momentum * velocity + grad
      direction = momentum * next_v + grad if self.use_nesterov else next_v
      trust = trust_ratio(weights, direction, self.eeta) if adapt else 1.0
      update = lr * trust * direction
    self.assign(velocity, next_v)
    self.assign_sub(variable, update)

  def get_config(self):
    config = super().get_config()
    config.update({
        'momentum': self.momentum,
        'weight_decay': self.lars_weight_decay,
        'eeta': self.eeta,
        'classic_momentum': self.classic_momentum,
        'use_nesterov': self.use_nesterov,
    })
    return config


def _check_hyper(name, value, ok, allowed):
  if not ok:
    raise ValueError(f'LARS {name}={value!r} is invalid: {allowed}.')


def _as_variables(name, variables):
  """Validates an iterable of variables -> tuple."""
  variables = (variables,) if isinstance(variables, str) else tuple(variables)
  for v in variables:
    if not hasattr(v, 'assign'):
      raise ValueError(f'LARS {name} entry {v!r} is invalid: must be a '
                       "variable (the model's, matched by identity), not a "
                       'name pattern.')
  return variables
