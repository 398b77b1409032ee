"""Test setup: two logical CPU devices so 1-vs-2 replica tests can run.

Logical devices must be configured before TensorFlow initialises its
runtime, so this happens at import time of the conftest, before any test.
"""
import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Shared test helpers (tests/helpers/*.py) import as top-level modules.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'helpers'))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices('CPU')
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

SHARED_DATA = os.path.normpath(os.path.join(
    os.path.dirname(__file__), '..', '..', 'shared', 'data'))


@pytest.fixture
def shared_data_dir():
  """Path of ../shared/data; skips when absent unless CI requires it."""
  if os.path.isdir(SHARED_DATA):
    return SHARED_DATA
  if os.environ.get('SIMCLR_REQUIRE_SHARED_DATA') == '1':
    pytest.fail(f'SIMCLR_REQUIRE_SHARED_DATA=1 but {SHARED_DATA} is missing')
  pytest.skip(f'{SHARED_DATA} not present (shared CIFAR-10 copy)')


@pytest.fixture(scope='session')
def one_cpu_replica():
  """MirroredStrategy over one CPU device, as the original release runs
  on a CPU (its global BN then is Keras's synchronized layer)."""
  return tf.distribute.MirroredStrategy(['/cpu:0'])


@pytest.fixture(scope='session')
def two_replicas():
  """MirroredStrategy over the two logical CPU devices.

  One per process: TF numbers collective instances per strategy from the
  same start, so a second MirroredStrategy's all-gather can collide with
  the first's ("Collective instance 100 expected type ..."). Tests that
  need their own strategy (e.g. the command line) run in a subprocess.
  """
  return tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
  """A test that runs a job in-process (``jobs.run`` with the default
  ``--mixed_precision=auto``) sets the process's Keras policy, bfloat16 on
  a CPU with bfloat16 units; later tests start from float32 again."""
  yield
  import keras  # after TensorFlow's logical devices are set above
  if keras.mixed_precision.global_policy().name != 'float32':
    keras.mixed_precision.set_global_policy('float32')
