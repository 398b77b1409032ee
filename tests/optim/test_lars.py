"""LARS (You et al. 2017; SimCLR Appendix B.1) against a numpy reference."""
import contextlib
import copy

import keras
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.optim import LARS, WarmupCosine

# (path scope, name, shape): kernel is decayed + adapted; bias, BN and the
# supervised head are excluded from both (``_excluded``).
SPECS = (
    ('resnet/conv2d', 'kernel', (3, 3, 2, 4)),
    ('resnet/conv2d', 'bias', (4,)),
    ('resnet/batch_normalization_3', 'gamma', (4,)),
    ('head_supervised', 'kernel', (4, 3)),
)
EXCLUDED = (False, True, True, True)


def _excluded(variables):
  return [v for v, e in zip(variables, EXCLUDED) if e]


def _make_variables(values):
  out = []
  for (scope, name, _), value in zip(SPECS, values):
    with contextlib.ExitStack() as stack:
      for part in scope.split('/'):
        stack.enter_context(keras.name_scope(part))
      out.append(keras.Variable(value, name=name, dtype='float32'))
  return out


def _init_values(seed=0):
  rng = np.random.default_rng(seed)
  return [rng.normal(size=s).astype(np.float32) for _, _, s in SPECS]


def _grads(step, seed=1):
  rng = np.random.default_rng(seed + step)
  return [rng.normal(size=s).astype(np.float32) for _, _, s in SPECS]


def _trust(w, d, eeta):
  wn, dn = np.linalg.norm(w), np.linalg.norm(d)
  return eeta * wn / dn if wn > 0 and dn > 0 else 1.0


def _reference_step(w, v, g, lr, hp, excluded):
  """numpy LARS step in float64 -> (new w, new v)."""
  w, v, g = (np.asarray(a, np.float64) for a in (w, v, g))
  m, eeta = hp['momentum'], hp['eeta']
  if not excluded:
    g = g + hp['weight_decay'] * w
  if hp['classic_momentum']:
    t = 1.0 if excluded else _trust(w, g, eeta)
    v = m * v + lr * t * g
    update = m * v + lr * t * g if hp['use_nesterov'] else v
  else:
    v = m * v + g
    update = m * v + g if hp['use_nesterov'] else v
    update = lr * (1.0 if excluded else _trust(w, update, eeta)) * update
  return w - update, v


def _run(hp, values, grads_per_step, lrs, learning_rate):
  variables = _make_variables(values)
  opt = LARS(learning_rate, **hp,
             exclude_from_weight_decay=_excluded(variables))
  opt.build(variables)
  ws = [np.asarray(x, np.float64) for x in values]
  vs = [np.zeros_like(w) for w in ws]
  for grads, lr in zip(grads_per_step, lrs):
    opt.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    for i, g in enumerate(grads):
      ws[i], vs[i] = _reference_step(ws[i], vs[i], g, lr, hp, EXCLUDED[i])
  return variables, ws


@pytest.mark.parametrize('classic', [True, False])
@pytest.mark.parametrize('nesterov', [False, True])
def test_matches_numpy_reference(classic, nesterov):
  hp = dict(momentum=0.9, weight_decay=0.1, eeta=0.01,
            classic_momentum=classic, use_nesterov=nesterov)
  grads = [_grads(s) for s in range(3)]
  variables, expected = _run(hp, _init_values(), grads, [0.5] * 3, 0.5)
  for var, want in zip(variables, expected):
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-6, atol=1e-7,
                               err_msg=var.path)


def test_schedule_learning_rate_follows_iterations():
  sched = WarmupCosine(1.0, 256, total_steps=4, warmup_steps=2)
  hp = dict(momentum=0.9, weight_decay=0.1, eeta=0.01,
            classic_momentum=True, use_nesterov=False)
  grads = [_grads(s) for s in range(3)]
  lrs = [float(sched(s)) for s in range(3)]
  variables, expected = _run(hp, _init_values(), grads, lrs, sched)
  for var, want in zip(variables, expected):
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-6, atol=1e-7)


def test_exclusions_are_the_variables_given_not_names():
  variables = _make_variables(_init_values())
  plain = LARS(0.1, weight_decay=1e-6)  # excludes nothing by default
  plain.build(variables)
  assert all(plain.uses_weight_decay(v) and plain.uses_layer_adaptation(v)
             for v in variables)
  opt = LARS(0.1, weight_decay=1e-6,
             exclude_from_weight_decay=_excluded(variables))
  opt.build(variables)
  assert [opt.uses_weight_decay(v) for v in variables] == [
      not e for e in EXCLUDED]
  assert [opt.uses_layer_adaptation(v) for v in variables] == [
      not e for e in EXCLUDED]
  assert opt.weight_decay is None  # Keras's decoupled decay stays off.


def test_layer_adaptation_exclusions_can_differ():
  variables = _make_variables(_init_values())
  opt = LARS(0.1, exclude_from_weight_decay=[variables[1]],
             exclude_from_layer_adaptation=[variables[0], variables[3]])
  opt.build(variables)
  assert [opt.uses_weight_decay(v) for v in variables] == [
      True, False, True, True]
  assert [opt.uses_layer_adaptation(v) for v in variables] == [
      False, True, True, False]


@pytest.mark.parametrize('classic', [True, False])
def test_zero_weight_and_zero_gradient_use_trust_one(classic):
  hp = dict(momentum=0.9, weight_decay=0.0, eeta=0.01,
            classic_momentum=classic, use_nesterov=False)
  values = _init_values()
  values[0] = np.zeros_like(values[0])  # adapted kernel, ||w|| = 0.
  zero = [np.zeros_like(g) for g in _grads(0)]
  grads = [_grads(0), zero, _grads(2)]
  variables, expected = _run(hp, values, grads, [0.5] * 3, 0.5)
  for var, want in zip(variables, expected):
    assert np.all(np.isfinite(var.numpy()))
    np.testing.assert_allclose(var.numpy(), want, rtol=1e-6, atol=1e-7)
  # First step on the zero kernel is a plain SGD step (trust ratio 1).
  first = _make_variables(values)
  opt = LARS(0.5, **hp, exclude_from_weight_decay=_excluded(first))
  opt.apply_gradients(zip([tf.constant(g) for g in grads[0]], first))
  np.testing.assert_allclose(first[0].numpy(), -0.5 * grads[0][0], rtol=1e-6)


def test_zero_gradient_from_start_leaves_weights():
  variables = _make_variables(_init_values())
  opt = LARS(0.5, classic_momentum=False)
  opt.apply_gradients(
      zip([tf.zeros(s) for _, _, s in SPECS], variables))
  for var, want in zip(variables, _init_values()):
    np.testing.assert_array_equal(var.numpy(), want)


def test_get_config_round_trips():
  sched = WarmupCosine(0.3, 512, total_steps=100, warmup_steps=10)
  opt = LARS(sched, momentum=0.8, weight_decay=1e-6, eeta=0.002,
             classic_momentum=False, use_nesterov=True,
             exclude_from_weight_decay=_make_variables(_init_values())[:1])
  config = opt.get_config()
  clone = LARS.from_config(copy.deepcopy(config))  # Keras mutates it.
  assert clone.get_config() == config
  assert 'exclude_from_weight_decay' not in config  # variables: not config
  assert float(clone.learning_rate) == pytest.approx(0.0)
  again = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
  assert isinstance(again, LARS) and again.get_config() == config


@pytest.mark.parametrize('kwargs, bad', [
    (dict(momentum=1.0), 'momentum=1.0'),
    (dict(weight_decay=-1.0), 'weight_decay=-1.0'),
    (dict(eeta=0.0), 'eeta=0.0'),
    (dict(exclude_from_weight_decay=[3]), '3'),
    (dict(exclude_from_weight_decay=['bias']), "'bias'.*not a name pattern"),
])
def test_bad_hyperparameters_are_named(kwargs, bad):
  with pytest.raises(ValueError, match=bad):
    LARS(0.1, **kwargs)
