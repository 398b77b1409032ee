"""simclr_tf.runtime.setup: what run.py used to do alone, for library
callers too (jobs.run calls it)."""
import keras
import numpy as np
import pytest

from simclr_tf import runtime
from simclr_tf.config import (Config, ConfigError, ModelConfig,
                              RuntimeConfig, TrainConfig)
from simclr_tf.models import build_model

TINY = ModelConfig(width_multiplier=0.125, proj_out_dim=8, num_classes=3)


def test_a_seed_gives_the_same_weights_twice():
  cfg = Config(model=TINY, train=TrainConfig(seed=7))
  runtime.setup(cfg)
  first = build_model(TINY).get_weights()
  runtime.setup(cfg)
  again = build_model(TINY).get_weights()
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)


def test_precision_policy_follows_the_config():
  try:
    runtime.setup(Config(runtime=RuntimeConfig(mixed_precision='bfloat16')))
    assert keras.mixed_precision.global_policy().name == 'mixed_bfloat16'
  finally:
    runtime.setup(Config(runtime=RuntimeConfig(mixed_precision='none')))
  assert keras.mixed_precision.global_policy().name == 'float32'


def test_logical_devices_are_set_once():
  """tests/conftest.py split the CPU into 2 before TensorFlow started."""
  runtime.setup(Config(runtime=RuntimeConfig(cpu_devices=2)))  # no-op
  with pytest.raises(ConfigError, match='cpu_devices=3 is invalid here'):
    runtime.setup(Config(runtime=RuntimeConfig(cpu_devices=3)))
