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

import re
from typing import Optional, Sequence

import keras
from keras import ops

# Variable-path patterns (``re.search``) excluded by default from weight decay
# and from the trust ratio: BN parameters, biases, the supervised head.
DEFAULT_EXCLUDE = ('batch_normalization', 'bias', 'head_supervised')


def _variable_path(variable) -> str:
  """Hierarchical Keras 3 path (``a/b/kernel``), falling back to ``name``."""
  return getattr(variable, 'path', None) or variable.name


def _matches_any(path: str, patterns: Sequence[str]) -> bool:
  return any(re.search(p, path) is not None for p in patterns)


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

  Exclusions are regex patterns searched in ``variable.path``; they are
  resolved once in ``build()`` because inside a replica function the
  variable is a per-replica ``tf.Variable`` without a path.

  Args:
    learning_rate: float or ``LearningRateSchedule``.
    momentum: in [0, 1).
    weight_decay: coupled L2 coefficient, >= 0.
    eeta: trust coefficient, > 0.
    classic_momentum: see above.
    use_nesterov: Nesterov momentum.
    exclude_from_weight_decay: patterns; None -> ``DEFAULT_EXCLUDE``.
    exclude_from_layer_adaptation: patterns; None -> the weight-decay ones.
    name: optimizer name.
  """

  def __init__(self, learning_rate=0.001, momentum: float = 0.9,
               weight_decay: float = 0.0, eeta: float = 0.001,
               classic_momentum: bool = True, use_nesterov: bool = False,
               exclude_from_weight_decay: Optional[Sequence[str]] = None,
               exclude_from_layer_adaptation: Optional[Sequence[str]] = None,
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
    if exclude_from_weight_decay is None:
      exclude_from_weight_decay = DEFAULT_EXCLUDE
    if exclude_from_layer_adaptation is None:
      exclude_from_layer_adaptation = exclude_from_weight_decay
    self._decay_excludes = _as_patterns(
        'exclude_from_weight_decay', exclude_from_weight_decay)
    self._adapt_excludes = _as_patterns(
        'exclude_from_layer_adaptation', exclude_from_layer_adaptation)
    self._use_decay = []
    self._use_adaptation = []

  def build(self, variables):
    """Creates one momentum slot per variable; resolves exclusions by path."""
    if self.built:
      return
    super().build(variables)
    paths = [_variable_path(v) for v in variables]
    self._use_decay = [not _matches_any(p, self._decay_excludes) for p in paths]
    self._use_adaptation = [
        not _matches_any(p, self._adapt_excludes) for p in paths]
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
        'exclude_from_weight_decay': list(self._decay_excludes),
        'exclude_from_layer_adaptation': list(self._adapt_excludes),
    })
    return config


def _check_hyper(name, value, ok, allowed):
  if not ok:
    raise ValueError(f'LARS {name}={value!r} is invalid: {allowed}.')


def _as_patterns(name, patterns):
  """Validates a sequence of regex strings -> tuple (a lone str is one)."""
  if isinstance(patterns, str):
    patterns = (patterns,)
  patterns = tuple(patterns)
  for p in patterns:
    if not isinstance(p, str):
      raise ValueError(f'LARS {name} entry {p!r} is invalid: must be a regex '
                       'string searched in variable.path.')
    re.compile(p)
  return patterns
