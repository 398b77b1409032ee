"""build_optimizer and weight_decay_loss (SimCLR Appendix B.1)."""
import contextlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.config import OptimConfig
from simclr_tf.models import ParamSets
from simclr_tf.optim import (LARS, WarmupCosine, build_optimizer,
                             weight_decay_loss)


@pytest.mark.parametrize('name, cls', [
    ('lars', LARS), ('momentum', keras.optimizers.SGD),
    ('adam', keras.optimizers.Adam), ('adamw', keras.optimizers.AdamW),
    ('lamb', keras.optimizers.Lamb),
])
def test_builds_each_optimizer(name, cls):
  cfg = OptimConfig(optimizer=name, weight_decay=1e-4, momentum=0.8)
  sched = WarmupCosine(0.3, 256, total_steps=10, warmup_steps=2)
  opt = build_optimizer(cfg, sched, ParamSets())
  assert type(opt) is cls
  if name == 'momentum':
    assert opt.nesterov and opt.momentum == 0.8
  if name == 'adamw':
    assert opt.weight_decay == pytest.approx(1e-4)
  if name == 'lars':
    assert opt.lars_weight_decay == 1e-4 and opt.weight_decay is None
    assert opt.momentum == 0.8 and opt.eeta == cfg.lars_eeta
  assert isinstance(build_optimizer(cfg, 1, ParamSets()), cls)  # int rate


# path -> (shape, fill value)
VARS = {
    'resnet/conv2d/kernel': ((3, 3, 2, 2), 1.0),
    'resnet/conv2d/bias': ((2,), 2.0),
    'resnet/batch_normalization/gamma': ((2,), 3.0),
    'resnet/batch_normalization/beta': ((2,), 4.0),
    'head_supervised/kernel': ((2, 5), 5.0),
    'head_supervised/bias': ((5,), 6.0),
}


def _variables():
  out = []
  for path, (shape, fill) in VARS.items():
    *scopes, name = path.split('/')
    with contextlib.ExitStack() as stack:
      for scope in scopes:
        stack.enter_context(keras.name_scope(scope))
      out.append(keras.Variable(np.full(shape, fill, np.float32), name=name))
  assert [v.path for v in out] == list(VARS)
  return out


def _sets(variables):
  """Roles as a model's structure would give them (names play no part)."""
  by_path = dict(zip(VARS, variables))
  return ParamSets(
      batch_norm=(by_path['resnet/batch_normalization/gamma'],
                  by_path['resnet/batch_normalization/beta']),
      biases=(by_path['resnet/conv2d/bias'], by_path['head_supervised/bias']),
      head=(by_path['head_supervised/kernel'],
            by_path['head_supervised/bias']))


def _hand_l2(paths):
  return sum(np.prod(VARS[p][0]) * VARS[p][1] ** 2 / 2 for p in paths)


@pytest.mark.parametrize('name, paths', [
    ('lars', ['head_supervised/kernel']),
    ('momentum', ['resnet/conv2d/kernel', 'resnet/conv2d/bias',
                  'head_supervised/kernel', 'head_supervised/bias']),
    ('adam', ['resnet/conv2d/kernel', 'resnet/conv2d/bias',
              'head_supervised/kernel', 'head_supervised/bias']),
    ('lamb', ['resnet/conv2d/kernel', 'resnet/conv2d/bias',
              'head_supervised/kernel', 'head_supervised/bias']),
    ('adamw', []),
])
def test_weight_decay_loss_selects_by_role(name, paths):
  cfg = OptimConfig(optimizer=name, weight_decay=1e-3)
  variables = _variables()
  loss = weight_decay_loss(variables, cfg, _sets(variables))
  assert loss.dtype == tf.float32 and loss.shape == ()
  assert float(loss) == pytest.approx(1e-3 * _hand_l2(paths), rel=1e-6)


def test_weight_decay_loss_zero_cases():
  assert float(weight_decay_loss([], OptimConfig(), ParamSets())) == 0.0
  cfg = OptimConfig(weight_decay=0.0, optimizer='adam')
  variables = _variables()
  assert float(weight_decay_loss(variables, cfg, _sets(variables))) == 0.0


def test_weight_decay_loss_inside_tf_function():
  variables = _variables()
  cfg = OptimConfig(optimizer='lars', weight_decay=1e-3)
  sets = _sets(variables)
  loss = tf.function(lambda: weight_decay_loss(variables, cfg, sets))()
  want = 1e-3 * _hand_l2(['head_supervised/kernel'])
  assert float(loss) == pytest.approx(want)
