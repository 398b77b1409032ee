"""Building blocks of the ResNet encoder (He et al. 2016, v1) as Keras 3 layers.

Every layer takes primitive keyword arguments, creates its sublayers in
``__init__`` and mirrors them in ``get_config``. Tensors are NHWC.
"""
from __future__ import annotations

import keras
import tensorflow as tf


def conv_initializer():
  """He-style fan-in truncated normal, as the original release."""
  return keras.initializers.VarianceScaling()


class FixedPadding(keras.layers.Layer):
  """Pads H and W by ``kernel_size - 1`` split as evenly as possible.

  Explicit padding makes a strided conv's output independent of whether the
  input side is odd or even (unlike 'SAME'). [B,H,W,C] -> [B,H+k-1,W+k-1,C].
  """

  def __init__(self, kernel_size: int, **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = kernel_size
    total = kernel_size - 1
    self._pads = [[0, 0], [total // 2, total - total // 2],
                  [total // 2, total - total // 2], [0, 0]]

  def call(self, inputs):
    return tf.pad(inputs, self._pads)

  def get_config(self):
    return {**super().get_config(), 'kernel_size': self.kernel_size}


# Input channels below which a strided 1x1 conv avoids oneDNN's kernel
# (``Conv2dFixedPadding.build``): its largest block, AVX-512's.
ONEDNN_CHANNEL_BLOCK = 16


class Conv2dFixedPadding(keras.layers.Layer):
  """Bias-free conv; 'SAME' at stride 1, explicit padding + 'VALID' above.

  [B,H,W,Cin] -> [B,ceil(H/s),ceil(W/s),filters].
  """

  def __init__(self, filters: int, kernel_size: int, strides: int = 1,
               **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
    self.pad = FixedPadding(kernel_size) if strides > 1 else None
    self.conv = keras.layers.Conv2D(
        filters, kernel_size, strides=strides,
        padding='valid' if strides > 1 else 'same', use_bias=False,
        kernel_initializer=conv_initializer(), name='conv2d')

  def build(self, input_shape):
    # oneDNN's 1x1 backward-weights kernel at stride > 1 writes past its
    # buffer when the input has fewer channels than its block (16 with
    # AVX-512, 8 with AVX2): heap corruption or a segfault in the first
    # step (found with ResNet-18 --width_multiplier=0.125 --image_size=224,
    # block group 2's 8 -> 16 shortcut). A 1x1 conv at stride s is a
    # stride-1 conv of every s-th pixel: the same result, variables and
    # gradients, another kernel.
    self._subsample = (self.kernel_size == 1 and self.strides > 1 and
                       input_shape[-1] is not None and
                       input_shape[-1] < ONEDNN_CHANNEL_BLOCK)
    if self._subsample:
      self.conv.strides = (1, 1)

  def call(self, inputs):
    if self._subsample:
      return self.conv(inputs[:, ::self.strides, ::self.strides, :])
    if self.pad is not None:
      inputs = self.pad(inputs)
    return self.conv(inputs)

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'kernel_size': self.kernel_size, 'strides': self.strides}


class FusedBatchNorm(keras.layers.Layer):
  """Per-replica BatchNorm on TF's fused kernel (NHWC or [B, C]).

  Keras 3's BatchNormalization composes moments and arithmetic from
  separate ops; the fused kernel (oneDNN-accelerated on CPU) made a
  ResNet-18 SimCLR step markedly faster here. Same variables (gamma, beta,
  moving_mean, moving_variance) and semantics: batch statistics in training
  (moving averages updated with ``momentum``), moving statistics otherwise
  or when the layer is frozen. Moving statistics are MEAN-aggregated across
  replicas. Cross-replica BN uses Keras's ``synchronized`` layer instead.
  """

  def __init__(self, momentum=0.9, epsilon=1e-5, center=True, scale=True,
               gamma_initializer='ones', **kwargs):
    super().__init__(**kwargs)
    self.momentum, self.epsilon = momentum, epsilon
    self.center, self.scale = center, scale
    self.gamma_initializer = keras.initializers.get(gamma_initializer)
    self.gamma = self.beta = None

  def build(self, input_shape):
    shape = (int(input_shape[-1]),)
    if self.scale:
      self.gamma = self.add_weight(shape=shape, name='gamma', autocast=False,
                                   initializer=self.gamma_initializer)
    if self.center:
      self.beta = self.add_weight(shape=shape, name='beta', autocast=False,
                                  initializer='zeros')
    self.moving_mean = self.add_weight(
        shape=shape, name='moving_mean', initializer='zeros', trainable=False,
        autocast=False, aggregation='mean')
    self.moving_variance = self.add_weight(
        shape=shape, name='moving_variance', initializer='ones',
        trainable=False, autocast=False, aggregation='mean')

  def call(self, inputs, training=False):
    shape = tf.shape(inputs)
    x = inputs if inputs.shape.rank == 4 else tf.reshape(
        inputs, [-1, 1, 1, inputs.shape[-1]])
    channels = self.moving_mean.shape[0]
    gamma = (tf.convert_to_tensor(self.gamma) if self.scale
             else tf.ones([channels]))
    beta = (tf.convert_to_tensor(self.beta) if self.center
            else tf.zeros([channels]))
    if training and self.trainable:
      y, mean, var = tf.compat.v1.nn.fused_batch_norm(
          x, gamma, beta, epsilon=self.epsilon, is_training=True)
      # The kernel returns the Bessel-corrected variance; the moving average
      # keeps the biased one, as Keras BN, its synchronized form and the
      # original release's BN do, so that 1 replica and N replicas with
      # global BN store the same statistics.
      count = tf.cast(tf.size(x) // channels, var.dtype)
      var = var * (count - 1.0) / tf.maximum(count, 1.0)
      decay = 1.0 - self.momentum
      self.moving_mean.assign_sub((self.moving_mean - mean) * decay)
      self.moving_variance.assign_sub((self.moving_variance - var) * decay)
    else:
      y, _, _ = tf.compat.v1.nn.fused_batch_norm(
          x, gamma, beta, mean=tf.convert_to_tensor(self.moving_mean),
          variance=tf.convert_to_tensor(self.moving_variance),
          epsilon=self.epsilon, is_training=False)
    return y if inputs.shape.rank == 4 else tf.reshape(y, shape)

  def get_config(self):
    return {**super().get_config(), 'momentum': self.momentum,
            'epsilon': self.epsilon, 'center': self.center,
            'scale': self.scale, 'gamma_initializer':
            keras.initializers.serialize(self.gamma_initializer)}


class BatchNormRelu(keras.layers.Layer):
  """BatchNorm (optionally cross-replica synchronized) then optional ReLU.

  ``init_zero`` starts gamma at 0 so a residual block begins as the identity
  (Goyal et al. 2017), as the original release does for each block's last BN.
  """

  def __init__(self, relu: bool = True, init_zero: bool = False,
               momentum: float = 0.9, epsilon: float = 1e-5,
               synchronized: bool = False, center: bool = True,
               scale: bool = True, **kwargs):
    super().__init__(**kwargs)
    self.relu, self.init_zero, self.center = relu, init_zero, center
    self.scale = scale
    self.momentum, self.epsilon, self.synchronized = (
        momentum, epsilon, synchronized)
    bn_args = dict(momentum=momentum, epsilon=epsilon, center=center,
                   scale=scale,
                   gamma_initializer='zeros' if init_zero else 'ones')
    self.bn = (keras.layers.BatchNormalization(synchronized=True, **bn_args)
               if synchronized else
               FusedBatchNorm(**bn_args, name='batch_normalization'))

  def call(self, inputs, training=False):
    outputs = self.bn(inputs, training=training)
    return tf.nn.relu(outputs) if self.relu else outputs

  def get_config(self):
    return {**super().get_config(), 'relu': self.relu,
            'init_zero': self.init_zero, 'momentum': self.momentum,
            'epsilon': self.epsilon, 'synchronized': self.synchronized,
            'center': self.center, 'scale': self.scale}


class SqueezeExcitation(keras.layers.Layer):
  """Squeeze-and-excitation (Hu et al. 2018): channel gates from pooled stats.

  Reduces to ``max(1, int(filters * se_ratio))`` channels, expands back to the
  input's channels, sigmoid gate. [B,H,W,C] -> [B,H,W,C].
  """

  def __init__(self, filters: int, se_ratio: float, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.se_ratio = filters, se_ratio
    self.reduce = keras.layers.Conv2D(
        max(1, int(filters * se_ratio)), 1, use_bias=True,
        kernel_initializer=conv_initializer(), name='se_reduce')
    self.expand = None

  def build(self, input_shape):
    self.expand = keras.layers.Conv2D(
        int(input_shape[-1]), 1, use_bias=True,
        kernel_initializer=conv_initializer(), name='se_expand')

  def call(self, inputs):
    squeezed = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
    gates = self.expand(tf.nn.relu(self.reduce(squeezed)))
    return tf.sigmoid(gates) * inputs

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'se_ratio': self.se_ratio}


class SelectiveKernel(keras.layers.Layer):
  """Selective-kernel 3x3 conv of SimCLRv2 (Li et al. 2019, as in the release).

  One conv of ``2 * filters`` channels gives two paths; their sum is pooled,
  passed through a 1x1 conv of ``max(int(filters * sk_ratio), min_dim)``
  channels + BN-ReLU and a 1x1 conv back to ``2 * filters``, whose softmax
  over the two paths weights them. [B,H,W,Cin] -> [B,H/s,W/s,filters]; the
  output is already batch-normalized and rectified.
  """

  def __init__(self, filters: int, strides: int, sk_ratio: float,
               min_dim: int = 32, bn_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.filters, self.strides = filters, strides
    self.sk_ratio, self.min_dim = sk_ratio, min_dim
    self.bn_kwargs = dict(bn_kwargs or {})
    self.conv = Conv2dFixedPadding(2 * filters, 3, strides, name='sk_conv')
    self.bn = BatchNormRelu(**self.bn_kwargs, name='sk_bn')
    self.fuse = keras.layers.Conv2D(
        max(int(filters * sk_ratio), min_dim), 1, use_bias=False,
        kernel_initializer=conv_initializer(), name='sk_fuse')
    self.fuse_bn = BatchNormRelu(**self.bn_kwargs, name='sk_fuse_bn')
    self.select = keras.layers.Conv2D(
        2 * filters, 1, use_bias=False, kernel_initializer=conv_initializer(),
        name='sk_select')

  def call(self, inputs, training=False):
    paths = self.bn(self.conv(inputs), training=training)
    paths = tf.stack(tf.split(paths, 2, axis=-1))  # [2,B,H,W,filters]
    pooled = tf.reduce_mean(tf.reduce_sum(paths, 0), [1, 2], keepdims=True)
    mixing = self.select(self.fuse_bn(self.fuse(pooled), training=training))
    mixing = tf.nn.softmax(tf.stack(tf.split(mixing, 2, axis=-1)), axis=0)
    return tf.reduce_sum(paths * mixing, axis=0)

  def get_config(self):
    return {**super().get_config(), 'filters': self.filters,
            'strides': self.strides, 'sk_ratio': self.sk_ratio,
            'min_dim': self.min_dim, 'bn_kwargs': self.bn_kwargs}
