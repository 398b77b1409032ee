"""Process-wide setup a run needs before it builds anything: logical CPU
devices, the random seed, op determinism and the precision policy.

``jobs.run`` calls ``setup``, so the library behaves as ``run.py`` does
(a Config with a seed seeds the weights; one with ``mixed_precision``
computes in that precision). Idempotent: calling it again with the same
Config changes nothing but re-seeding.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from simclr_tf.config import Config, ConfigError


def _logical_cpus(count: int) -> None:
  """Splits the first CPU into ``count`` logical devices (0: as it is)."""
  if not count:
    return
  cpu = tf.config.list_physical_devices('CPU')[0]
  current = tf.config.get_logical_device_configuration(cpu) or []
  if len(current) == count:
    return
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count)
  except RuntimeError:
    raise ConfigError(
        f'cpu_devices={count} is invalid here: TensorFlow already runs with '
        f'{len(tf.config.list_logical_devices("CPU"))} CPU device(s) in this '
        'process, and devices can only be split before it starts; set it '
        'in a fresh process.') from None


def setup(cfg: Config) -> None:
  """Applies ``cfg.runtime`` and ``cfg.train.seed`` to this process."""
  _logical_cpus(cfg.runtime.cpu_devices)
  if cfg.train.seed is not None:
    keras.utils.set_random_seed(cfg.train.seed)
  if cfg.runtime.deterministic:
    tf.config.experimental.enable_op_determinism()
  precision = cfg.runtime.mixed_precision
  keras.mixed_precision.set_global_policy(
      'float32' if precision == 'none' else f'mixed_{precision}')
