"""Fixtures for simclr_tf.data tests: tiny datasets written to tmp dirs."""
import pytest

from data_testutil import random_split, write_npz


@pytest.fixture
def npz_root(tmp_path):
  """An npz dataset: train (100 examples in 2 shards), test (37)."""
  root = str(tmp_path / 'npzdata')
  images, labels = random_split(100, seed=1)
  write_npz(root, 'train-0', images[:60], labels[:60])
  write_npz(root, 'train-1', images[60:], labels[60:])
  write_npz(root, 'test', *random_split(37, seed=2))
  return root


@pytest.fixture(scope='session')
def builtin_data_dir(tmp_path_factory):
  """A data_dir holding the generated built-in dataset (made once)."""
  from simclr_tf.data import builtin
  data_dir = str(tmp_path_factory.mktemp('builtin'))
  builtin.ensure_cached(data_dir)
  return data_dir
