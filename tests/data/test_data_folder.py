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


# -- Issue 14: nested class folders, every format, odd names, flat folders.


def _save(path, value, fmt):
  from PIL import Image  # a tensorboard dependency
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.full((6, 6, 3), value, np.uint8)).save(path, fmt)


@pytest.fixture
def nested(tmp_path):
  """Tiny ImageNet's layout (train/<class>/images/*.JPEG), every format
  decode_image reads in mixed-case names, a backslash in a class name and
  a symlink loop."""
  root = tmp_path / 'nested'
  for split in ('train', 'val'):
    _save(str(root / split / 'a' / 'images' / 'x0.JPEG'), 10, 'JPEG')
    _save(str(root / split / 'a' / 'images' / 'deep' / 'x1.Jpg'), 20, 'JPEG')
    _save(str(root / split / 'b' / 'one.gif'), 30, 'GIF')
    _save(str(root / split / 'b' / 'two.BMP'), 40, 'BMP')
    _save(str(root / split / 'b' / 'three.webp'), 50, 'WEBP')
    _save(str(root / split / 'c\\d' / 'e.png'), 60, 'PNG')
  os.symlink(root / 'train' / 'a', root / 'train' / 'a' / 'images' / 'loop')
  (root / 'train' / 'b' / 'labels.txt').write_text('not an image')
  return str(root)


def test_nested_folders_every_format_and_odd_names(nested, caplog):
  """Used to find 0 images in a/ (a subfolder), 0 in b/ (gif, bmp, webp)
  and count c\\d without reading it."""
  source = sources.get_source(DataConfig(dataset=f'folder:{nested}'))
  assert source.class_names == ('a', 'b', 'c\\d')
  assert source.num_examples('train') == 6
  with caplog.at_level('INFO'):
    source.check_split('train')
  assert "split 'train': 6 images in 3 classes" in caplog.text
  # Pixel value 10, 20 (class a), 30, 40, 50 (b), 60 (c\d); JPEG and WebP
  # are lossy, so values are compared to the nearest 10.
  got = sorted((int(round(x.numpy()[0, 0, 0] / 10)) * 10, int(y))
               for x, y in source.dataset('train'))
  assert got == [(10, 0), (20, 0), (30, 1), (40, 1), (50, 1), (60, 2)]


def test_flat_split_and_empty_class_are_refused(tmp_path):
  root = tmp_path / 'tiny'
  for c in ('a', 'b', 'c'):
    _save(str(root / 'train' / c / 'images' / f'{c}.JPEG'), 10, 'JPEG')
  _save(str(root / 'val' / 'images' / 'val_0.JPEG'), 10, 'JPEG')
  (root / 'val' / 'val_annotations.txt').write_text('val_0.JPEG\ta\n')
  source = sources.get_source(DataConfig(dataset=f'folder:{root}'))
  with pytest.raises(ValueError, match=r"split 'val' .*class\(es\) \['a', "
                     r"'b', 'c'\] have no .*annotation file .*Tiny ImageNet"):
    source.check_split('val')
  with pytest.raises(ValueError, match=r"split 'train' .*\['images'\] have "
                     'no'):
    source.check_split('train')


@pytest.mark.parametrize('skip_corrupt', [False, True])
def test_a_file_deleted_while_reading_stops_naming_it(nested, skip_corrupt):
  """Deleting the data while a run reads it used to hang the run (with
  --skip_corrupt_images every file was skipped); now it stops, naming the
  missing file, skipping or not."""
  from simclr_tf.data import folder as folder_lib
  source = folder_lib.FolderSource(nested, skip_corrupt=skip_corrupt)
  source.check_split('train')
  gone = os.path.join(nested, 'train', 'b', 'one.gif')
  os.remove(gone)
  with pytest.raises(Exception, match=rf'Image file {gone} is missing') as e:
    list(source.dataset('train'))
  assert folder_lib.corrupt_file_message(e.value).startswith(
      f'Image file {gone} is missing')
