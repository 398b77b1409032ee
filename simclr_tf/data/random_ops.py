"""Stateless random numbers shared by the augmentation ops.

The same seed must give the same augmentation with and without XLA. Philox
bits agree on both, but their float conversions differ, so we convert.
"""
from __future__ import annotations

import tensorflow as tf

ALG = 'philox'


def split_seeds(seed, n):
  """``n`` independent int ``[2]`` seeds from one."""
  return tf.unstack(tf.random.experimental.stateless_split(seed, n, ALG))


def uniform(seed, shape, minval=0.0, maxval=1.0):
  """Stateless uniform float32 in [minval, maxval) from 24 random bits."""
  bits = tf.random.stateless_uniform(shape, seed, minval=None, maxval=None,
                                     dtype=tf.uint32, alg=ALG)
  unit = tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) * 2.0 ** -24
  return minval + (maxval - minval) * unit


def per_image(v):
  """``[B]`` -> ``[B, 1, 1, 1]`` to scale images."""
  return tf.reshape(v, [-1, 1, 1, 1])
