"""``folder:`` source: streaming, class order, slicing, corrupt files."""
import os

import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.config import DataConfig
from simclr_tf.data import pipeline
from simclr_tf.data import sources

# class -> number of files; sizes differ per file to exercise the per-image
# crop path.
CLASSES = {'cat': 3, 'ant': 2, 'dog': 4}


def _write_image(path, value, size):
  image = np.full((size, size + 2, 3), value, np.uint8)
  if path.endswith('.png'):
    data = tf.io.encode_png(image)
  else:
    data = tf.io.encode_jpeg(image, quality=100)
  tf.io.write_file(path, data)


@pytest.fixture
def folder(tmp_path):
  """train/<class>/NN.{png,jpg} whose pixel value encodes (class, index);
  test/ has only two classes; one gray PNG."""
  root = tmp_path / 'images'
  for split in ('train', 'test'):
    for c, (name, count) in enumerate(sorted(CLASSES.items())):
      if split == 'test' and name == 'dog':
        continue
      os.makedirs(root / split / name)
      for i in range(count):
        ext = 'png' if i % 2 else 'jpg'
        _write_image(str(root / split / name / f'{i:02d}.{ext}'),
                     40 * c + 10 * i, 8 + i)
  gray = np.full((6, 6, 1), 200, np.uint8)
  tf.io.write_file(str(root / 'test' / 'ant' / 'gray.PNG'),
                   tf.io.encode_png(gray))
  (root / 'train' / 'ant' / 'notes.txt').write_text('not an image')
  return str(root)


def _values(ds):
  return [(int(x.numpy()[0, 0, 0]), int(y)) for x, y in ds]


def test_classes_sorted_counts_and_round_robin_order(folder):
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}'))
  assert source.class_names == ('ant', 'cat', 'dog')
  assert source.num_classes == 3 and source.image_shape is None
  assert source.num_examples('train') == 9
  assert source.num_examples('test') == 6
  got = _values(source.dataset('train'))
  # Round-robin over classes (ant, cat, dog), files by name; ant has 2.
  expected = [(0, 0), (40, 1), (80, 2), (10, 0), (50, 1), (90, 2),
              (60, 1), (100, 2), (110, 2)]
  assert [l for _, l in got] == [l for _, l in expected]
  np.testing.assert_allclose([v for v, _ in got], [v for v, _ in expected],
                             atol=2)


def test_slicing_and_sharding(folder):
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}'))
  assert source.num_examples('train[:3]') == 3
  assert [l for _, l in _values(source.dataset('train[:3]'))] == [0, 1, 2]
  assert source.num_examples('train[50%:]') == 5
  shards = [_values(source.dataset('train', tf.distribute.InputContext(2, i, 2),
                                   shuffle_files=True, seed=0))
            for i in range(2)]
  assert [len(s) for s in shards] == source.shard_sizes('train', 2) == [5, 4]
  assert sorted(shards[0] + shards[1]) == sorted(
      _values(source.dataset('train')))


def test_gray_png_becomes_rgb(folder):
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}'))
  shapes = {tuple(x.shape) for x, _ in source.dataset('test')}
  assert (6, 6, 3) in shapes


def test_corrupt_file_error_names_it(folder):
  bad = os.path.join(folder, 'train', 'cat', '01b.jpg')
  with open(bad, 'wb') as f:
    f.write(b'\xff\xd8\xff garbage')
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}'))
  with pytest.raises(tf.errors.OpError, match='01b.jpg could not be read'):
    list(source.dataset('train'))


def test_corrupt_file_skipped_and_counted(folder, caplog):
  for name in ('x.png', 'y.jpg'):
    with open(os.path.join(folder, 'train', 'dog', name), 'wb') as f:
      f.write(b'not an image at all')
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}',
                                         skip_corrupt_images=True))
  assert source.num_examples('train') == 11
  assert len(list(source.dataset('train'))) == 9
  assert source.num_skipped == 2
  assert 'Skipped corrupt image file' in caplog.text
  assert '(2 skipped so far' in caplog.text


def test_mixed_sizes_go_through_pretrain_and_eval(folder):
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}'))
  ds = pipeline.make_dataset(source, 'train', mode='pretrain', batch_size=4,
                             image_size=16, seed=0)
  batch = next(iter(ds))
  assert batch['view1'].shape == (4, 16, 16, 3)
  assert batch['view2'].shape == (4, 16, 16, 3)
  ds = pipeline.make_dataset(source, 'test', mode='eval', batch_size=4,
                             image_size=16)
  masks = [b['mask'].numpy() for b in ds]
  assert sum(m.sum() for m in masks) == 6 and len(masks) == 2


def test_folder_errors(tmp_path, folder):
  with pytest.raises(ValueError, match='does not exist'):
    sources.get_source(DataConfig(dataset=f'folder:{tmp_path}/nope'))
  os.makedirs(tmp_path / 'empty' / 'train')
  with pytest.raises(ValueError, match='no class directories'):
    sources.get_source(DataConfig(dataset=f'folder:{tmp_path}/empty'))
  source = sources.get_source(DataConfig(dataset=f'folder:{folder}'))
  with pytest.raises(ValueError, match=r"available splits are \['test', "
                     r"'train'\]"):
    source.dataset('val')
