"""ResNet encoder: architecture, parameter counts, options."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.models import OUTPUT_NAMES, ResNet, count_params
from simclr_tf.models.layers import (BatchNormRelu, Conv2dFixedPadding,
                                     FixedPadding, SelectiveKernel,
                                     SqueezeExcitation)
from simclr_tf.models.resnet import ResidualBlock, Shortcut


def _built(depth, size=32, **kwargs):
  net = ResNet(depth, **kwargs)
  outputs = net(tf.random.uniform([2, size, size, 3]), training=False)
  return net, outputs


@pytest.mark.parametrize('depth,expected', [(18, 11_176_512),
                                            (50, 23_508_032)])
def test_parameter_counts_match_standard_architectures(depth, expected):
  net, _ = _built(depth, size=64, cifar_stem=False)
  assert count_params(net.trainable_variables) == expected


def test_width_multiplier_scales_channels():
  net, out = _built(18, width_multiplier=0.25, cifar_stem=True)
  assert out['final_avg_pool'].shape == (2, 128)
  assert out['block_group1'].shape == (2, 32, 32, 16)
  assert out['block_group4'].shape == (2, 4, 4, 128)
  _, out50 = _built(50, width_multiplier=0.125, cifar_stem=True)
  assert out50['final_avg_pool'].shape == (2, 256)


def test_named_outputs_imagenet_stem():
  _, out = _built(18, size=64, width_multiplier=0.25, cifar_stem=False)
  assert set(out) == set(OUTPUT_NAMES)
  assert out['initial_conv'].shape == (2, 32, 32, 16)
  assert out['initial_max_pool'].shape == (2, 16, 16, 16)
  assert [out[f'block_group{i}'].shape[1] for i in range(1, 5)] == [16, 8, 4, 2]


def test_cifar_stem_keeps_resolution_and_has_no_pool():
  net, out = _built(18, width_multiplier=0.25, cifar_stem=True)
  assert out['initial_conv'].shape == (2, 32, 32, 16)
  assert out['initial_max_pool'].shape == (2, 32, 32, 16)
  assert net.stem.pool is None
  assert net.stem.convs[0].kernel_size == 3


def test_fixed_padding_is_explicit_and_parity_independent():
  pad = FixedPadding(7)
  assert pad(tf.zeros([1, 5, 6, 1])).shape == (1, 11, 12, 1)
  pad3 = FixedPadding(3)(tf.ones([1, 4, 4, 1]))
  assert float(tf.reduce_sum(pad3)) == 16.0  # pads are zeros, 1 each side
  conv = Conv2dFixedPadding(4, 3, strides=2)
  for side in (16, 17):
    assert conv(tf.zeros([1, side, side, 3])).shape[1] == math.ceil(side / 2)
  # Padding does not depend on parity: the top-left output sees the same
  # (zero-padded) window for even and odd inputs.
  x = tf.random.uniform([1, 17, 17, 3])
  odd = conv(x)
  even = conv(x[:, :16, :16])
  np.testing.assert_allclose(odd[:, :7, :7], even[:, :7, :7], atol=1e-6)


def test_batch_norm_settings_and_zero_init_last_bn():
  net, _ = _built(18, width_multiplier=0.25, batch_norm_decay=0.8,
                  batch_norm_epsilon=1e-3)
  bns = [l for l in net._flatten_layers() if isinstance(l, BatchNormRelu)]
  assert bns and all(b.bn.momentum == 0.8 and b.bn.epsilon == 1e-3
                     for b in bns)
  block = net.block_groups[0].blocks[0]
  assert np.all(block.body[-1].bn.gamma.numpy() == 0.0)
  assert np.all(block.body[1].bn.gamma.numpy() == 1.0)
  assert all('batch_normalization' in v.path
             for b in bns for v in b.bn.variables)


def test_global_bn_uses_synchronized_batch_norm():
  net, _ = _built(18, width_multiplier=0.125, global_bn=True)
  bns = [l.bn for l in net._flatten_layers() if isinstance(l, BatchNormRelu)]
  assert all(b.synchronized for b in bns)


def test_projection_shortcut_only_where_shape_changes():
  net18, _ = _built(18, width_multiplier=0.25)
  assert net18.block_groups[0].blocks[0].shortcut is None
  assert all(g.blocks[0].shortcut is not None for g in net18.block_groups[1:])
  net50, _ = _built(50, width_multiplier=0.125)
  assert net50.block_groups[0].blocks[0].shortcut is not None


def test_selective_kernel_resnet_d_and_deep_stem():
  net, out = _built(50, size=64, width_multiplier=0.125, sk_ratio=0.0625,
                    cifar_stem=False)
  assert out['final_avg_pool'].shape == (2, 256)
  convs = [l for l in net.stem.convs if isinstance(l, Conv2dFixedPadding)]
  assert [c.kernel_size for c in convs] == [3, 3, 3]
  assert [c.strides for c in convs] == [2, 1, 1]
  shortcut = net.block_groups[1].blocks[0].shortcut
  assert isinstance(shortcut.pool[-1], keras.layers.AveragePooling2D)
  assert shortcut.conv.strides == 1
  sk = net.block_groups[0].blocks[0].body[2]
  assert isinstance(sk, SelectiveKernel)
  assert sk.conv.filters == 2 * 8
  assert sk.fuse.filters == 32  # max(8 * 0.0625, 32)


def test_selective_kernel_mixes_two_paths_with_softmax_weights():
  sk = SelectiveKernel(filters=4, strides=1, sk_ratio=0.5, min_dim=2)
  x = tf.random.uniform([2, 6, 6, 3])
  y = sk(x, training=False)
  assert y.shape == (2, 6, 6, 4)
  paths = sk.bn(sk.conv(x), training=False)
  a, b = tf.split(paths, 2, axis=-1)
  lo, hi = tf.minimum(a, b), tf.maximum(a, b)
  assert bool(tf.reduce_all(y >= lo - 1e-6)) and bool(
      tf.reduce_all(y <= hi + 1e-6))
  assert sk.fuse.filters == 2


def test_squeeze_excitation():
  se = SqueezeExcitation(filters=8, se_ratio=0.25)
  x = tf.random.uniform([2, 4, 4, 16])
  y = se(x)
  assert y.shape == x.shape
  assert se.reduce.filters == 2 and se.expand.filters == 16
  assert bool(tf.reduce_all(tf.abs(y) <= tf.abs(x) + 1e-6))
  plain, _ = _built(18, width_multiplier=0.125)
  with_se, _ = _built(18, width_multiplier=0.125, se_ratio=0.25)
  assert count_params(with_se.trainable_variables) > count_params(
      plain.trainable_variables)
  assert with_se.block_groups[0].blocks[0].se is not None


def test_frozen_groups_have_no_trainable_variables_and_stop_gradients():
  net, _ = _built(18, width_multiplier=0.125, frozen_groups=3)
  assert not net.stem.trainable_variables
  assert not net.block_groups[1].trainable_variables
  assert net.block_groups[2].trainable_variables
  x = tf.random.uniform([2, 32, 32, 3])
  before = [v.numpy() for v in net.block_groups[0].non_trainable_variables]
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(net(x, training=True)['final_avg_pool'])
  grads = tape.gradient(loss, net.trainable_variables)
  assert all(g is not None for g in grads)
  after = [v.numpy() for v in net.block_groups[0].non_trainable_variables]
  for b, a in zip(before, after):  # frozen BN keeps its moving statistics
    np.testing.assert_array_equal(b, a)


def test_unknown_depth_is_a_clear_error():
  with pytest.raises(ValueError, match=r'depth=19.*18, 34, 50'):
    ResNet(19)


def test_layers_get_config_round_trip():
  for layer in (ResidualBlock(8, 2, True, True, sk_ratio=0.25, se_ratio=0.25,
                              bn_kwargs={'momentum': 0.8}),
                Shortcut(16, 2, True), ResNet(34, 0.5, cifar_stem=True)):
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize('shape', [(6, 5, 5, 4), (6, 4)])
def test_fused_batch_norm_matches_keras_batch_norm(shape):
  from simclr_tf.models.layers import FusedBatchNorm
  x = tf.random.normal(shape) * 3 + 1
  ours = FusedBatchNorm(momentum=0.8, epsilon=1e-3)
  ref = keras.layers.BatchNormalization(momentum=0.8, epsilon=1e-3)
  for layer in (ours, ref):
    layer(x[:1])
    layer.gamma.assign(tf.linspace(0.5, 2.0, shape[-1]))
    layer.beta.assign(tf.linspace(-1.0, 1.0, shape[-1]))
  np.testing.assert_allclose(ours(x, training=True), ref(x, training=True),
                             atol=1e-4)
  np.testing.assert_allclose(ours.moving_mean, ref.moving_mean, atol=1e-5)
  # The biased batch variance, as Keras (and synchronized) BN keep it.
  var = np.var(x.numpy().reshape(-1, shape[-1]), axis=0)
  np.testing.assert_allclose(ours.moving_variance, 0.8 + 0.2 * var,
                             rtol=1e-4)
  np.testing.assert_allclose(ours.moving_variance, ref.moving_variance,
                             rtol=1e-4)
  np.testing.assert_allclose(ours(x, training=False), ref(x, training=False),
                             atol=1e-4)
  ours.trainable = False  # frozen: inference mode even when training
  np.testing.assert_allclose(ours(x, training=True), ref(x, training=False),
                             atol=1e-4)
