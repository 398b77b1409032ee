"""Projection head (SimCLR Sec. 2.1, SimCLRv2 Sec. 2) and supervised head."""
from __future__ import annotations

import keras
import tensorflow as tf

from simclr_tf.models.layers import BatchNormRelu


class LinearBN(keras.layers.Layer):
  """Dense layer, optionally followed by BatchNorm.

  With BN the dense layer has no bias and BN's beta plays that role only when
  ``use_bias`` (the original head's convention: middle layers get a bias and
  a ReLU, the last layer neither). ``units=None`` keeps the input width.
  [B, Din] -> [B, units or Din].
  """

  def __init__(self, units=None, use_bias: bool = True, use_bn: bool = False,
               zero_init: bool = False, bn_kwargs=None, **kwargs):
    super().__init__(**kwargs)
    self.units, self.use_bias, self.use_bn = units, use_bias, use_bn
    self.zero_init = zero_init
    self.bn_kwargs = dict(bn_kwargs or {})
    self.dense = None
    self.bn = (BatchNormRelu(relu=False, center=use_bias, **self.bn_kwargs,
                             name='bn') if use_bn else None)

  def build(self, input_shape):
    units = self.units if self.units is not None else int(input_shape[-1])
    init = ('zeros' if self.zero_init
            else keras.initializers.RandomNormal(stddev=0.01))
    self.dense = keras.layers.Dense(
        units, use_bias=self.use_bias and not self.use_bn,
        kernel_initializer=init, name='dense')

  def call(self, inputs, training=False):
    outputs = self.dense(inputs)
    if self.bn is not None:
      outputs = self.bn(outputs, training=training)
    return outputs

  def get_config(self):
    return {**super().get_config(), 'units': self.units,
            'use_bias': self.use_bias, 'use_bn': self.use_bn,
            'zero_init': self.zero_init, 'bn_kwargs': self.bn_kwargs}


class ProjectionHead(keras.layers.Layer):
  """g(.) of SimCLR: ``num_layers`` LinearBN layers (0 for mode 'none').

  Middle layers keep the input width and end in bias + ReLU; the last maps
  to ``out_dim`` without bias. Returns (proj_head_output [B, out_dim or D],
  hiddens) where hiddens = [input, layer1 output, ..., last output] and
  ``hiddens[ft_proj_selector]`` feeds fine-tuning (SimCLRv2 Sec. 2).
  """

  def __init__(self, num_layers: int, out_dim: int = 128, bn_kwargs=None,
               **kwargs):
    super().__init__(**kwargs)
    self.num_layers, self.out_dim = num_layers, out_dim
    self.bn_kwargs = dict(bn_kwargs or {})
    # A tuple, not a list: Keras 3 keeps lists out of tf.train.Checkpoint.
    self.linear_layers = tuple(
        LinearBN(out_dim if last else None, use_bias=not last, use_bn=True,
                 bn_kwargs=self.bn_kwargs, name=f'nl_{j}')
        for j, last in ((j, j == num_layers - 1) for j in range(num_layers)))

  def call(self, inputs, training=False):
    hiddens = [inputs]
    for j, layer in enumerate(self.linear_layers):
      outputs = layer(hiddens[-1], training=training)
      if j != self.num_layers - 1:
        outputs = tf.nn.relu(outputs)
      hiddens.append(outputs)
    return hiddens[-1], hiddens

  def get_config(self):
    return {**super().get_config(), 'num_layers': self.num_layers,
            'out_dim': self.out_dim, 'bn_kwargs': self.bn_kwargs}


class SupervisedHead(keras.layers.Layer):
  """Linear classifier on the encoder (or a head layer): [B, D] -> [B, K].

  Kernel ~ N(0, 0.01^2) or zeros (``zero_init``), bias zeros. The
  optimizers know it as the model's ``supervised_head`` (no LARS decay or
  trust ratio; an explicit L2 term instead). ``input_norm`` standardises
  the input with a parameter-free BatchNorm (as the linear probes of MAE
  and MoCo v3): the probe trained during pretraining shares the encoder's
  learning rate, and on unnormalised features it diverges at the rates
  SimCLR uses (measured: loss 2.3 -> 15 within 150 steps at lr 0.5).
  """

  def __init__(self, num_classes: int, zero_init: bool = False,
               input_norm: bool = False, bn_kwargs=None,
               name: str = 'head_supervised', **kwargs):
    super().__init__(name=name, **kwargs)
    self.num_classes, self.zero_init = num_classes, zero_init
    self.input_norm = input_norm
    self.bn_kwargs = dict(bn_kwargs or {})
    self.norm = (BatchNormRelu(relu=False, center=False, scale=False,
                               **self.bn_kwargs, name='input_norm')
                 if input_norm else None)
    self.linear = LinearBN(num_classes, use_bias=True, use_bn=False,
                           zero_init=zero_init, name='linear')

  def call(self, inputs, training=False):
    if self.norm is not None:
      inputs = self.norm(inputs, training=training)
    return self.linear(inputs, training=training)

  def get_config(self):
    return {**super().get_config(), 'num_classes': self.num_classes,
            'zero_init': self.zero_init, 'input_norm': self.input_norm,
            'bn_kwargs': self.bn_kwargs}
