"""ResNet v1 encoder (He et al. 2016) with the SimCLR/SimCLRv2 options.

Depths 18/34 use basic blocks, 50 and above bottlenecks; ``width_multiplier``
scales every channel count; the CIFAR stem (3x3/1 conv, no max-pool) replaces
the ImageNet stem (7x7/2 conv + 3x3/2 max-pool). ``sk_ratio`` > 0 switches on
SimCLRv2's selective kernels in bottlenecks, a stem of three 3x3 convs and
ResNet-D shortcuts (He et al. 2019); ``se_ratio`` > 0 adds squeeze-excitation.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from simclr_tf import footprint
from simclr_tf.models.layers import (BatchNormRelu, Conv2dFixedPadding,
                                     FixedPadding, SelectiveKernel,
                                     SqueezeExcitation)

# depth -> (bottleneck?, blocks per group)
RESNET_SPECS = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
    200: (True, (3, 24, 36, 3)),
}
OUTPUT_NAMES = ('initial_conv', 'initial_max_pool', 'block_group1',
                'block_group2', 'block_group3', 'block_group4',
                'final_avg_pool')


class Shortcut(keras.layers.Layer):
  """Projection shortcut: 1x1 conv + BN, or (ResNet-D) avg-pool then 1x1."""

  def __init__(self, filters: int, strides: int, resnet_d: bool,
               bn_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.strides, self.resnet_d = filters, strides, resnet_d
    self.bn_kwargs = dict(bn_kwargs or {})
    pool = []
    if resnet_d:
      if strides > 1:
        pool.append(FixedPadding(2))
      pool.append(keras.layers.AveragePooling2D(
          2, strides, padding='same' if strides == 1 else 'valid'))
    # Sublayers live in tuples: Keras 3 keeps lists out of tf.train.Checkpoint.
    self.pool = tuple(pool)
    self.conv = Conv2dFixedPadding(filters, 1, 1 if resnet_d else strides,
                                   name='shortcut_conv')
    self.bn = BatchNormRelu(relu=False, **self.bn_kwargs, name='shortcut_bn')

  def call(self, inputs, training=False):
    for layer in self.pool:
      inputs = layer(inputs)
    return self.bn(self.conv(inputs), training=training)

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'strides': self.strides, 'resnet_d': self.resnet_d,
            'bn_kwargs': self.bn_kwargs}


class ResidualBlock(keras.layers.Layer):
  """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) residual block.

  [B,H,W,Cin] -> [B,H/s,W/s,filters * (4 if bottleneck else 1)].
  """

  def __init__(self, filters: int, strides: int, bottleneck: bool,
               use_projection: bool, sk_ratio: float = 0.0,
               se_ratio: float = 0.0, bn_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.strides, self.bottleneck = filters, strides, bottleneck
    self.use_projection = use_projection
    self.sk_ratio, self.se_ratio = sk_ratio, se_ratio
    self.bn_kwargs = dict(bn_kwargs or {})
    bn = self.bn_kwargs
    out = 4 * filters if bottleneck else filters
    self.shortcut = (Shortcut(out, strides, sk_ratio > 0, bn, name='shortcut')
                     if use_projection else None)
    self.body = tuple(self._bottleneck_body(filters, strides, sk_ratio, bn)
                      if bottleneck else [
                     Conv2dFixedPadding(filters, 3, strides, name='conv_a'),
                     BatchNormRelu(**bn, name='bn_a'),
                     Conv2dFixedPadding(filters, 3, 1, name='conv_b'),
                     BatchNormRelu(relu=False, init_zero=True, **bn,
                                   name='bn_b')])
    self.se = (SqueezeExcitation(filters, se_ratio, name='se')
               if se_ratio > 0 else None)

  @staticmethod
  def _bottleneck_body(filters, strides, sk_ratio, bn):
    body = [Conv2dFixedPadding(filters, 1, 1, name='conv_a'),
            BatchNormRelu(**bn, name='bn_a')]
    if sk_ratio > 0:
      body.append(SelectiveKernel(filters, strides, sk_ratio, bn_kwargs=bn,
                                  name='sk'))
    else:
      body += [Conv2dFixedPadding(filters, 3, strides, name='conv_b'),
               BatchNormRelu(**bn, name='bn_b')]
    body += [Conv2dFixedPadding(4 * filters, 1, 1, name='conv_c'),
             BatchNormRelu(relu=False, init_zero=True, **bn, name='bn_c')]
    return body

  def call(self, inputs, training=False):
    shortcut = inputs
    if self.shortcut is not None:
      shortcut = self.shortcut(inputs, training=training)
    for layer in self.body:
      if isinstance(layer, (BatchNormRelu, SelectiveKernel)):
        inputs = layer(inputs, training=training)
      else:
        inputs = layer(inputs)
    if self.se is not None:
      inputs = self.se(inputs)
    return tf.nn.relu(inputs + shortcut)

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'strides': self.strides, 'bottleneck': self.bottleneck,
            'use_projection': self.use_projection, 'sk_ratio': self.sk_ratio,
            'se_ratio': self.se_ratio, 'bn_kwargs': self.bn_kwargs}


class BlockGroup(keras.layers.Layer):
  """``num_blocks`` residual blocks; the first projects and strides."""

  def __init__(self, filters: int, num_blocks: int, strides: int,
               bottleneck: bool, in_channels: int, sk_ratio: float = 0.0,
               se_ratio: float = 0.0, bn_kwargs=None,
               always_project: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.num_blocks, self.strides = filters, num_blocks, strides
    self.in_channels, self.always_project = in_channels, always_project
    # A projection shortcut only where the shape changes, as the standard
    # architectures; ``always_project`` is the original release's layout,
    # which also projects in ResNet-18/34's first group (4,224 parameters
    # more in ResNet-18).
    out = 4 * filters if bottleneck else filters
    project = always_project or strides > 1 or in_channels != out
    self.bottleneck, self.sk_ratio, self.se_ratio = (
        bottleneck, sk_ratio, se_ratio)
    self.bn_kwargs = dict(bn_kwargs or {})
    self.blocks = tuple(
        ResidualBlock(filters, strides if i == 0 else 1, bottleneck,
                      use_projection=(i == 0 and project), sk_ratio=sk_ratio,
                      se_ratio=se_ratio, bn_kwargs=self.bn_kwargs,
                      name=f'block{i + 1}')
        for i in range(num_blocks))

  def call(self, inputs, training=False):
    for block in self.blocks:
      inputs = block(inputs, training=training)
    return inputs

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'num_blocks': self.num_blocks, 'strides': self.strides,
            'bottleneck': self.bottleneck, 'in_channels': self.in_channels,
            'sk_ratio': self.sk_ratio, 'se_ratio': self.se_ratio,
            'bn_kwargs': self.bn_kwargs, 'always_project': self.always_project}


class Stem(keras.layers.Layer):
  """CIFAR (3x3/1), ImageNet (7x7/2 + max-pool) or SK (three 3x3) stem.

  Returns (initial_conv, initial_max_pool); the former is the conv output
  before BN as in the original release.
  """

  def __init__(self, filters: int, cifar_stem: bool, deep_stem: bool,
               bn_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.cifar_stem, self.deep_stem = (
        filters, cifar_stem, deep_stem)
    self.bn_kwargs = dict(bn_kwargs or {})
    bn = self.bn_kwargs
    if cifar_stem:
      self.convs = (Conv2dFixedPadding(filters, 3, 1, name='conv'),)
    elif deep_stem:
      half = max(1, filters // 2)
      self.convs = (Conv2dFixedPadding(half, 3, 2, name='conv_a'),
                    BatchNormRelu(**bn, name='bn_a'),
                    Conv2dFixedPadding(half, 3, 1, name='conv_b'),
                    BatchNormRelu(**bn, name='bn_b'),
                    Conv2dFixedPadding(filters, 3, 1, name='conv_c'))
    else:
      self.convs = (Conv2dFixedPadding(filters, 7, 2, name='conv'),)
    self.bn = BatchNormRelu(**bn, name='bn')
    self.pool = (None if cifar_stem else
                 keras.layers.MaxPooling2D(3, 2, padding='same'))

  def call(self, inputs, training=False):
    for layer in self.convs:
      if isinstance(layer, BatchNormRelu):
        inputs = layer(inputs, training=training)
      else:
        inputs = layer(inputs)
    initial_conv = inputs
    outputs = self.bn(inputs, training=training)
    if self.pool is not None:
      outputs = self.pool(outputs)
    return initial_conv, outputs

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'cifar_stem': self.cifar_stem, 'deep_stem': self.deep_stem,
            'bn_kwargs': self.bn_kwargs}


class ResNet(keras.layers.Layer):
  """The encoder: images [B,H,W,3] in [0,1] -> dict of named feature maps.

  Outputs: initial_conv, initial_max_pool, block_group1..4 (NHWC) and
  final_avg_pool [B, 512*w (basic) or 2048*w (bottleneck)].
  ``group1_projection`` gives the first block of group 1 a projection
  shortcut even where the shape does not change (the original release's
  layout; it only matters for ResNet-18/34).
  ``frozen_groups`` (0..5) marks the stem (1) and block groups 1..4 (2..5)
  that come first as non-trainable (fine_tune_after_block + 1); their
  output is cut from the gradient and their BN runs in inference mode.
  """

  def __init__(self, depth: int, width_multiplier: float = 1.0,
               cifar_stem: bool = False, sk_ratio: float = 0.0,
               se_ratio: float = 0.0, batch_norm_decay: float = 0.9,
               batch_norm_epsilon: float = 1e-5, global_bn: bool = False,
               frozen_groups: int = 0, group1_projection: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    if depth not in RESNET_SPECS:
      raise ValueError(f'resnet depth={depth!r} is not supported; use one of '
                       f'{sorted(RESNET_SPECS)}.')
    self.depth, self.width_multiplier = depth, width_multiplier
    self.cifar_stem, self.sk_ratio, self.se_ratio = (
        cifar_stem, sk_ratio, se_ratio)
    self.batch_norm_decay, self.batch_norm_epsilon = (
        batch_norm_decay, batch_norm_epsilon)
    self.global_bn, self.frozen_groups = global_bn, frozen_groups
    self.group1_projection = group1_projection
    bn = dict(momentum=batch_norm_decay, epsilon=batch_norm_epsilon,
              synchronized=global_bn)
    bottleneck, blocks = RESNET_SPECS[depth]
    width = lambda c: footprint.channels(c, width_multiplier)  # noqa: E731
    self.stem = Stem(width(64), cifar_stem, deep_stem=sk_ratio > 0,
                     bn_kwargs=bn, name='stem')
    expansion = 4 if bottleneck else 1
    in_channels = [width(64)] + [width(64 * 2**i) * expansion for i in range(3)]
    self.block_groups = tuple(
        BlockGroup(width(64 * 2**i), n, 1 if i == 0 else 2, bottleneck,
                   in_channels[i], sk_ratio, se_ratio, bn,
                   always_project=group1_projection,
                   name=f'block_group{i + 1}')
        for i, n in enumerate(blocks))
    for i, layer in enumerate((self.stem, *self.block_groups)):
      layer.trainable = i >= frozen_groups

  def call(self, inputs, training=False):
    initial_conv, x = self.stem(inputs, training=training)
    outputs = {'initial_conv': initial_conv, 'initial_max_pool': x}
    if self.frozen_groups == 1:
      x = tf.stop_gradient(x)
    for i, group in enumerate(self.block_groups):
      x = group(x, training=training)
      if self.frozen_groups == i + 2:
        x = tf.stop_gradient(x)
      outputs[f'block_group{i + 1}'] = x
    outputs['final_avg_pool'] = tf.reduce_mean(x, axis=[1, 2])
    return outputs

  def get_config(self):
    return {**super().get_config(), 'depth': self.depth,
            'width_multiplier': self.width_multiplier,
            'cifar_stem': self.cifar_stem, 'sk_ratio': self.sk_ratio,
            'se_ratio': self.se_ratio,
            'batch_norm_decay': self.batch_norm_decay,
            'batch_norm_epsilon': self.batch_norm_epsilon,
            'global_bn': self.global_bn, 'frozen_groups': self.frozen_groups,
            'group1_projection': self.group1_projection}
