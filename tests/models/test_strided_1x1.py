"""The strided 1x1 conv with few input channels (issue 14, case 4):
oneDNN's backward-weights kernel for it wrote past its buffer (heap
corruption, segfault) at ResNet-18 --width_multiplier=0.125
--image_size=224. Conv2dFixedPadding runs it as a stride-1 conv of every
s-th pixel: the same outputs, variables and gradients."""
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from simclr_tf.models import layers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def test_same_outputs_and_kernel_gradient_as_the_strided_conv():
  layer = layers.Conv2dFixedPadding(16, 1, strides=2)
  x = tf.random.stateless_uniform([2, 7, 7, 8], seed=(1, 2))
  dy = tf.random.stateless_normal([2, 4, 4, 16], seed=(3, 4))
  with tf.GradientTape() as tape:
    y = layer(x)
    loss = tf.reduce_sum(y * dy)
  assert layer._subsample and [v.shape for v in layer.weights] == [
      (1, 1, 8, 16)]
  kernel = layer.conv.kernel
  sub = x[:, ::2, ::2, :]  # what a 1x1 'VALID' conv at stride 2 reads
  np.testing.assert_allclose(y, tf.einsum('bhwc,co->bhwo', sub, kernel[0, 0]),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(tape.gradient(loss, kernel)[0, 0],
                             tf.einsum('bhwc,bhwo->co', sub, dy),
                             rtol=1e-5, atol=1e-5)
  wide = layers.Conv2dFixedPadding(16, 1, strides=2)
  wide(tf.zeros([1, 7, 7, 16]))
  assert not wide._subsample  # 16 channels and more: the strided kernel


def test_the_shape_that_corrupted_the_heap_trains():
  """In a fresh process with oneDNN on (it crashed there with SIGABRT or
  SIGSEGV in ~5 s, every time, before the fix)."""
  code = ('import tensorflow as tf\n'
          'from simclr_tf.models import layers\n'
          'layer = layers.Conv2dFixedPadding(16, 1, strides=2)\n'
          'x = tf.random.uniform([8, 56, 56, 8])\n'
          'dy = tf.random.normal([8, 28, 28, 16])\n'
          'layer(x)\n'
          '@tf.function\n'
          'def grad():\n'
          '  with tf.GradientTape() as tape:\n'
          '    loss = tf.reduce_sum(layer(x) * dy)\n'
          '  return tape.gradient(loss, layer.conv.kernel)\n'
          'for _ in range(50):\n'
          '  g = grad()\n'
          'print("finite", bool(tf.reduce_all(tf.math.is_finite(g))))\n')
  proc = subprocess.run(
      [sys.executable, '-c', code], capture_output=True, text=True,
      cwd=ROOT, timeout=300,
      env={**os.environ, 'TF_ENABLE_ONEDNN_OPTS': '1',
           'TF_CPP_MIN_LOG_LEVEL': '2'})
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == 'finite True'
