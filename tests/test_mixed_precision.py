"""Mixed precision: a whole pretraining step under bfloat16 and float16.

float16 runs with dynamic loss scaling (Keras ``LossScaleOptimizer``); the
loss and the softmax stay float32, the variables float32. Tiny model:
ResNet-18 at width 0.125, 16 px, 4 pairs.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import checkpoints, config, steps, tasks
from simclr_tf.models import param_sets
from simclr_tf.optim import build_optimizer, unwrap


@pytest.fixture
def policy(request):
  keras.mixed_precision.set_global_policy(f'mixed_{request.param}')
  yield request.param
  keras.mixed_precision.set_global_policy('float32')


def _cfg(precision):
  return config.Config(
      model=config.ModelConfig(resnet_depth=18, width_multiplier=0.125,
                               image_size=16, proj_out_dim=8),
      optim=config.OptimConfig(optimizer='lars', learning_rate=0.1),
      train=config.TrainConfig(train_batch_size=4),
      runtime=config.RuntimeConfig(mixed_precision=precision))


def _step(precision, views, num_steps=1, scale=None):
  """``num_steps`` steps of the product's train loop on one batch.

  Returns (model, optimizer, mean metrics, number of variables changed);
  ``scale`` overrides the initial float16 loss scale (2**15).
  """
  cfg = _cfg(precision)
  strategy = tf.distribute.get_strategy()
  task = tasks.get(cfg)
  model = task.build_model(strategy)
  opt = build_optimizer(cfg.optim, 0.1, param_sets(model),
                        loss_scale=precision == 'float16')
  opt.build(task.trainable_variables(model))
  if scale is not None and precision == 'float16':
    opt.dynamic_scale.assign(scale)
  before = [v.numpy() for v in model.trainable_variables]
  batch = {'view1': views[0], 'view2': views[1],
           'label': tf.constant([0, 1, 2, 3], tf.int64)}
  ds = tf.data.Dataset.from_tensors(batch).repeat()
  loop = steps.make_train_loop(model, opt, strategy, task)
  metrics = loop(iter(ds), tf.constant(num_steps))
  after = [v.numpy() for v in model.trainable_variables]
  changed = sum(not np.array_equal(b, a) for b, a in zip(before, after))
  return model, opt, metrics, changed


def _views(value=None):
  rng = np.random.default_rng(0)
  views = rng.random((2, 4, 16, 16, 3)).astype(np.float32)
  if value is not None:
    views[0, 0, 0, 0, 0] = value
  return tf.constant(views)


@pytest.mark.parametrize('policy', ['bfloat16', 'float16'], indirect=True)
def test_step_is_finite_with_float32_loss_and_variables(policy):
  model, opt, metrics, changed = _step(policy, _views(), scale=1.0)
  out = model(tf.zeros([2, 16, 16, 3]), training=False)
  assert out['proj_head_output'].dtype == policy  # compute dtype
  assert all(v.dtype == tf.float32 for v in model.trainable_variables)
  assert all(m.dtype == tf.float32 for m in metrics.values())
  assert all(np.isfinite(float(m)) for m in metrics.values())
  assert int(opt.iterations) == 1 and changed > 0
  assert isinstance(opt, keras.optimizers.LossScaleOptimizer) == (
      policy == 'float16')


@pytest.mark.parametrize('policy', ['float16'], indirect=True)
def test_float16_skips_a_step_with_non_finite_gradients(policy):
  model, opt, metrics, changed = _step(policy, _views(np.inf), scale=1.0)
  assert not np.isfinite(float(metrics['contrast_loss']))
  assert changed == 0, 'weights moved on a non-finite step'
  assert int(opt.iterations) == 0
  assert float(opt.dynamic_scale) == 0.5  # halved


@pytest.mark.parametrize('policy', ['float16'], indirect=True)
def test_float16_scale_comes_down_until_steps_apply(policy):
  # This tiny model's gradients reach ~175, so 175 * 2**15 overflows
  # float16: the first steps are skipped while the scale halves.
  model, opt, _, changed = _step(policy, _views(), num_steps=12)
  assert 1 <= int(opt.iterations) < 12
  assert float(opt.dynamic_scale) < 2.0 ** 15 and changed > 0


@pytest.mark.parametrize('policy', ['float16'], indirect=True)
def test_checkpoint_layout_does_not_depend_on_loss_scaling(policy, tmp_path):
  model, opt, _, _ = _step(policy, _views(), scale=1.0)
  manager = checkpoints.make_manager(model, unwrap(opt), str(tmp_path), 1)
  path = manager.save(checkpoint_number=1)
  keys = {k for k, _ in tf.train.list_variables(path)}
  assert checkpoints.STEP_KEY in keys
  assert checkpoints.step_of(path) == 1


def test_bfloat16_step_loss_equals_float32_within_bfloat16_tolerance():
  """The same weights and batch: the first step's losses in bfloat16 and in
  float32 agree to bfloat16's precision (8 bits of mantissa: ~0.4%
  relative per op; under 1% over this network)."""
  results = {}
  for precision in ('none', 'bfloat16'):
    keras.mixed_precision.set_global_policy(
        'float32' if precision == 'none' else 'mixed_bfloat16')
    try:
      keras.utils.set_random_seed(0)
      _, _, metrics, changed = _step(precision, _views())
    finally:
      keras.mixed_precision.set_global_policy('float32')
    assert changed > 0
    results[precision] = {k: float(v) for k, v in metrics.items()}
  full, half = results['none'], results['bfloat16']
  assert set(full) == set(half)
  assert all(np.isfinite(v) for v in half.values())
  for key in ('contrast_loss', 'supervised_loss', 'total_loss'):
    np.testing.assert_allclose(half[key], full[key], rtol=1e-2, err_msg=key)
  assert full['contrast_loss'] != half['contrast_loss']  # really bfloat16
