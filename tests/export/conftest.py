"""Fixtures for export tests: the tiny SimCLR model, exported once.

ResNet-18 at width 0.125, 32 px, 3 classes, 16-d projection (a few seconds
to export on a 2-core CPU); a stub model for the file-system tests, where
what is exported does not matter and each export should be quick.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from export import export_model
from simclr_tf.config import Config, ModelConfig
from simclr_tf.models import build_model

from stub_model import StubModel  # tests/helpers/stub_model.py  # noqa: F401

TINY = ModelConfig(width_multiplier=0.125, image_size=32, num_classes=3,
                   proj_out_dim=16)
STEP = 5


@pytest.fixture(scope='session')
def tiny_cfg():
  return Config(model=TINY)


@pytest.fixture(scope='session')
def tiny_model():
  keras.utils.set_random_seed(0)
  return build_model(TINY)


@pytest.fixture(scope='session')
def tiny_export(tiny_model, tiny_cfg, tmp_path_factory):
  """Path of ``<model_dir>/saved_model/5`` for the tiny model."""
  model_dir = str(tmp_path_factory.mktemp('tiny_run'))
  return export_model(tiny_model, model_dir, STEP, tiny_cfg)


@pytest.fixture(scope='session')
def loaded_export(tiny_export):
  return tf.saved_model.load(tiny_export)


@pytest.fixture(scope='session')
def images():
  """float32 [4, 32, 32, 3] in [0, 1], on the uint8 grid (PNG-exact)."""
  rng = np.random.default_rng(0)
  return (rng.integers(0, 256, (4, 32, 32, 3)) / 255.0).astype(np.float32)


@pytest.fixture
def stub_model():
  model = StubModel()
  model(tf.zeros([1, 8, 8, 3]))
  return model
