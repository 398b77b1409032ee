"""Sources: builtin, npz (incl. shared CIFAR-10 and bad inputs), TFDS mock,
split slicing, get_source errors."""
import errno
import os

import numpy as np
import pytest
import tensorflow as tf

from data_testutil import random_split, write_npz
from simclr_tf.config import DataConfig
from simclr_tf.data import builtin, splits
from simclr_tf.data import sources


def _take_all(ds):
  images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
  return np.stack(images), np.array(labels)


# Split slicing ------------------------------------------------------------


@pytest.mark.parametrize('split, n, expected', [
    ('train', 50, (0, 50)),
    ('train[:10]', 50, (0, 10)),
    ('train[-10:]', 50, (40, 50)),
    ('train[:1%]', 250, (0, 2)),  # round(2.5) == 2, as TFDS.
    ('train[:1%]', 350, (0, 4)),  # round(3.5) == 4.
    ('train[-10%:]', 50, (45, 50)),
    ('train[10%:20%]', 50, (5, 10)),
    ('train[:100%]', 7, (0, 7)),
    ('train[5:500]', 50, (5, 50)),
    ('test[30:10]', 50, (30, 30)),
])
def test_split_slicing(split, n, expected):
  assert splits.parse_split(split).indices(n) == expected


@pytest.mark.parametrize('bad', ['train[::2]', 'train[:10%%]', 'a+b',
                                 'train[:200%]', ''])
def test_split_errors_say_what_is_allowed(bad):
  with pytest.raises(ValueError, match='train'):
    splits.parse_split(bad)


# npz ----------------------------------------------------------------------


def test_npz_shards_are_concatenated_in_order(npz_root):
  source = sources.get_source(DataConfig(dataset=f'npz:{npz_root}'))
  assert source.num_examples('train') == 100
  assert source.num_examples('test') == 37
  assert source.num_examples('train[:10%]') == 10
  assert source.image_shape == (32, 32, 3)
  assert source.num_classes == 10 and source.class_names is None
  images, labels = _take_all(source.dataset('train'))
  assert images.dtype == np.uint8 and images.shape == (100, 32, 32, 3)
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(images[:, 0, 0, 0], np.arange(100))
  images, _ = _take_all(source.dataset('train[10%:20%]'))
  np.testing.assert_array_equal(images[:, 0, 0, 0], np.arange(10, 20))


def test_npz_shards_split_over_input_pipelines(npz_root):
  source = sources.get_source(DataConfig(dataset=f'npz:{npz_root}'))
  seen = []
  for i in range(3):
    ctx = tf.distribute.InputContext(3, i, 3)
    images, _ = _take_all(source.dataset('test', ctx, shuffle_files=True,
                                         seed=i))
    assert len(images) == source.shard_sizes('test', 3)[i]
    seen += list(images[:, 0, 0, 0])
  assert sorted(seen) == list(range(37))


def test_npz_shuffle_files_is_seeded(npz_root):
  source = sources.get_source(DataConfig(dataset=f'npz:{npz_root}'))
  order = lambda seed: _take_all(source.dataset(
      'train', shuffle_files=True, seed=seed))[0][:, 0, 0, 0].tolist()
  assert order(1) == order(1) != order(2)
  assert sorted(order(1)) == list(range(100))


def test_npz_grayscale_and_classes_txt(tmp_path):
  root = str(tmp_path)
  write_npz(root, 'train', *random_split(5, size=8, channels=None))
  with open(os.path.join(root, 'classes.txt'), 'w') as f:
    f.write('\n'.join(f'c{i}' for i in range(12)) + '\n')
  source = sources.get_source(DataConfig(dataset=f'npz:{root}'))
  assert source.num_classes == 12 and source.class_names[3] == 'c3'
  image, _ = next(iter(source.dataset('train')))
  assert image.shape == (8, 8, 3)
  np.testing.assert_array_equal(image[..., 0], image[..., 2])


@pytest.mark.parametrize('arrays, message', [
    (dict(images=np.zeros((3, 4, 4, 3), np.uint8)), "no array 'labels'"),
    (dict(images=np.zeros((3, 4, 4, 3), np.float32), labels=np.zeros(3, int)),
     'dtype float32; expected uint8'),
    (dict(images=np.zeros((3, 4, 4, 3), np.uint8), labels=np.zeros(2, int)),
     '3 images but 2 labels'),
    (dict(images=np.zeros((3, 4), np.uint8), labels=np.zeros(3, int)),
     r'shape \(3, 4\); expected'),
    (dict(images=np.zeros((3, 4, 4, 3), np.uint8), labels=-np.ones(3, int)),
     'labels contain -1'),
    (dict(images=np.zeros((3, 4, 4, 3), np.uint8),
          labels=np.zeros(3, np.float32)), 'integer array'),
])
def test_npz_bad_inputs_raise_clear_errors(tmp_path, arrays, message):
  np.savez(str(tmp_path / 'train.npz'), **arrays)
  with pytest.raises(ValueError, match=message) as info:
    sources.get_source(DataConfig(dataset=f'npz:{tmp_path}'))
  assert 'train.npz' in str(info.value)


def test_npz_missing_dir_and_split_errors(tmp_path, npz_root):
  with pytest.raises(ValueError, match='does not exist'):
    sources.get_source(DataConfig(dataset=f'npz:{tmp_path}/nope'))
  source = sources.get_source(DataConfig(dataset=f'npz:{npz_root}'))
  with pytest.raises(ValueError, match=r"available splits are \['test', "
                     r"'train'\]"):
    source.num_examples('validation')


def test_shared_cifar10_npz(shared_data_dir):
  root = os.path.join(shared_data_dir, 'cifar10')
  source = sources.get_source(DataConfig(dataset=f'npz:{root}'))
  assert source.num_examples('train') == 50000
  assert source.num_examples('test') == 10000
  assert source.class_names[0] == 'airplane' and source.num_classes == 10
  _, labels = _take_all(source.dataset('train[:10]'))
  np.testing.assert_array_equal(labels, [6, 9, 9, 4, 1, 1, 2, 7, 8, 3])
  assert source.num_examples('train[:1%]') == 500


# builtin ------------------------------------------------------------------


def test_builtin_generation_is_deterministic():
  a_images, a_labels = builtin.generate(40, seed=5)
  b_images, b_labels = builtin.generate(40, seed=5)
  c_images, _ = builtin.generate(40, seed=6)
  np.testing.assert_array_equal(a_images, b_images)
  np.testing.assert_array_equal(a_labels, b_labels)
  assert (a_images != c_images).any()
  assert a_images.dtype == np.uint8 and a_images.shape == (40, 32, 32, 3)
  assert np.bincount(a_labels).tolist() == [4] * 10
  assert a_images.std() > 20  # Not blank.


def test_builtin_cache_that_cannot_be_written_names_it(tmp_path,
                                                       monkeypatch):
  """A read-only cache raised a raw OSError traceback (issue 14)."""
  def read_only(path, exist_ok=False):
    raise OSError(errno.EROFS, 'Read-only file system', path)
  monkeypatch.setattr(builtin.os, 'makedirs', read_only)
  root = builtin.cache_dir(str(tmp_path))
  with pytest.raises(ValueError, match=(
      rf'^its cache {root} cannot be written \(Read-only file system: '
      rf'{root}\); .* Give --data_dir=DIR, a writable directory, or set '
      'XDG_CACHE_HOME.')):
    sources.get_source(DataConfig(data_dir=str(tmp_path)))


def test_builtin_source_is_cached_and_reloads(builtin_data_dir, monkeypatch):
  root = builtin.cache_dir(builtin_data_dir)
  assert sorted(os.listdir(root)) == ['classes.txt', 'test.npz', 'train.npz']
  mtime = os.path.getmtime(os.path.join(root, 'train.npz'))
  monkeypatch.setattr(builtin, 'generate', None)  # A reload must not rebuild.
  source = sources.get_source(DataConfig(data_dir=builtin_data_dir))
  assert os.path.getmtime(os.path.join(root, 'train.npz')) == mtime
  assert source.name == 'builtin'
  assert source.class_names == builtin.CLASS_NAMES
  assert source.num_classes == 10 and source.image_shape == (32, 32, 3)
  assert source.num_examples('train') == 10000
  assert source.num_examples('test') == 2000
  assert source.num_examples('train[:1%]') == 100
  images, labels = _take_all(source.dataset('test[:20]'))
  monkeypatch.undo()
  ref_images, ref_labels = builtin.generate(2000, seed=1)
  np.testing.assert_array_equal(images, ref_images[:20])
  np.testing.assert_array_equal(labels, ref_labels[:20])


# TFDS (mocked) and name errors --------------------------------------------


def _write_tfds_metadata(tfds, data_dir, sizes):
  """Writes cifar10 dataset_info with split sizes so mock_data knows them."""
  builder = tfds.builder('cifar10', data_dir=data_dir)
  infos = [tfds.core.SplitInfo(
      name=name, shard_lengths=[n], num_bytes=0,
      filename_template=tfds.core.ShardedFileTemplate(
          data_dir=builder.data_dir, dataset_name='cifar10', split=name,
          filetype_suffix='tfrecord',
          template='{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}'))
      for name, n in sizes.items()]
  builder.info.set_splits(tfds.core.SplitDict(infos))
  os.makedirs(builder.data_dir, exist_ok=True)
  builder.info.write_to_directory(builder.data_dir)


def test_tfds_source_with_mock_data(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  data_dir = str(tmp_path)
  _write_tfds_metadata(tfds, data_dir, {'train': 20, 'test': 6})
  with tfds.testing.mock_data(num_examples=20, data_dir=data_dir):
    source = sources.get_source(DataConfig(dataset='cifar10',
                                           data_dir=data_dir))
    # Names come from the dataset info (here '0'..'9': cifar10 reads its
    # names while preparing, which the mock skips).
    assert source.num_classes == 10 and len(source.class_names) == 10
    assert source.image_shape == (32, 32, 3)
    assert source.num_examples('train[:50%]') == 10
    assert source.shard_sizes('test', 2) == [3, 3]
    images, labels = _take_all(source.dataset('train', shuffle_files=True))
    assert images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3)
    assert labels.dtype == np.int32 and labels.min() >= 0
    ctx = tf.distribute.InputContext(2, 1, 2)
    assert len(list(source.dataset('train', ctx))) > 0
    with pytest.raises(ValueError, match=r"available: \['test', 'train'\]"):
      source.num_examples('validation')


def test_tfds_unprepared_dataset_says_how_to_fix(tmp_path):
  with pytest.raises(ValueError, match='tfds build cifar10'):
    sources.get_source(DataConfig(dataset='cifar10', data_dir=str(tmp_path)))


def test_data_config_rejects_prefix_without_path():
  from simclr_tf.config import ConfigError
  with pytest.raises(ConfigError, match='npz: needs a path'):
    DataConfig(dataset='npz:')


def test_unknown_dataset_name_lists_fixes():
  with pytest.raises(ValueError, match=r"(?s)unknown dataset 'cifar11'.*"
                     r"npz:PATH.*cifar10"):
    sources.get_source(DataConfig(dataset='cifar11'))
  with pytest.raises(ValueError, match='unknown prefix'):
    sources.get_source(DataConfig(dataset='zip:/tmp/x'))
