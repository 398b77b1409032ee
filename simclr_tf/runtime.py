"""Process-wide setup a run needs before it builds anything: logical CPU
devices, the random seed, op determinism and the precision policy.

``jobs.run`` calls ``setup``, so the library behaves as ``run.py`` does
(a Config with a seed seeds the weights; one with ``mixed_precision``
computes in that precision, ``auto`` deciding it from the device).
Idempotent: calling it again with the same
Config changes nothing but re-seeding.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from simclr_tf import distribute, precision
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


def resolve_precision(cfg: Config) -> Config:
  """``cfg`` with ``runtime.mixed_precision`` decided (``auto`` resolved on
  this machine's devices, ``simclr_tf.precision``) and the reason in
  ``runtime.precision_decision``, so ``config.json`` records both."""
  rt = cfg.runtime
  if rt.precision_decision is not None:  # decided already
    return cfg
  facts = (precision.device_facts(
      trains_on_tpu=distribute.strategy_name(rt) == 'tpu')
           if rt.mixed_precision == 'auto' else None)
  decision = precision.decide(rt.mixed_precision, facts)
  return dataclasses.replace(cfg, runtime=dataclasses.replace(
      rt, mixed_precision=decision.precision,
      precision_decision=decision.reason))


def setup(cfg: Config) -> Config:
  """Applies ``cfg.runtime`` and ``cfg.train.seed`` to this process;
  returns ``cfg`` with its precision decided (``resolve_precision``)."""
  _logical_cpus(cfg.runtime.cpu_devices)
  if cfg.train.seed is not None:
    keras.utils.set_random_seed(cfg.train.seed)
  if cfg.runtime.deterministic:
    tf.config.experimental.enable_op_determinism()
  cfg = resolve_precision(cfg)
  keras.mixed_precision.set_global_policy(
      precision.POLICIES[cfg.runtime.mixed_precision])
  return cfg
