"""What machine a benchmark ran on, and the measurements the step
benchmarks share (``train_step.py`` and ``original_step.py``).

TensorFlow is imported inside the functions only: ``original_step.py``
runs the original release under tf-keras and must not import Keras 3 or
simclr_tf, and the scripts set their environment before TensorFlow starts.
"""
import os
import platform
import time


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo, else platform's guess."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'unknown'


def fields(**extra) -> dict:
  """The JSON fields naming the machine and its load (``extra`` added)."""
  import tensorflow as tf
  return {'nproc': os.cpu_count(), 'cpu_model': cpu_model(),
          'tensorflow': tf.__version__,
          'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS'), **extra,
          'loadavg_1min': round(os.getloadavg()[0], 2)}


def matmul_peak(n=4096, reps=5) -> float:
  """Best fp32 GFLOP/s of an n x n matmul through TensorFlow."""
  import tensorflow as tf
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  mm = tf.function(lambda x, y: tf.reduce_sum(tf.matmul(x, y)))
  mm(a, b).numpy()
  best = float('inf')
  for _ in range(reps):
    start = time.perf_counter()
    mm(a, b).numpy()
    best = min(best, time.perf_counter() - start)
  return 2 * n ** 3 / best / 1e9


def forward_flops(forward, image_size) -> float:
  """FLOPs (TF profiler) of ``forward`` (images -> one output tensor: a
  model's training-mode pass) on one image; traced only, never run."""
  import tensorflow as tf
  graph = tf.function(forward).get_concrete_function(
      tf.TensorSpec([1, image_size, image_size, 3])).graph
  opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  opts['output'] = 'none'
  return float(tf.compat.v1.profiler.profile(graph, options=opts)
               .total_float_ops)


def fixed_views(batch, image_size, num_classes=10):
  """The step benchmarks' one fixed batch: float32 views
  ``[2, batch, size, size, 3]`` in [0, 1) and int64 labels ``[batch]``."""
  import numpy as np
  rng = np.random.default_rng(0)
  views = rng.random((2, batch, image_size, image_size, 3), np.float32)
  return views, rng.integers(0, num_classes, batch).astype(np.int64)
