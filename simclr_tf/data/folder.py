"""``folder:PATH`` source: ``PATH/<split>/<class>/*.{jpg,jpeg,png}``.

Files are streamed with tf.data: per class ``tf.io.matching_files`` gives a
sorted string tensor of paths (no Python object per file), and images are
decoded inside the pipeline. Counting uses ``os.scandir`` and keeps no file
names. Extensions ``jpg jpeg png`` in lower or upper case are read.

Classes are the union of the class directories of all splits, sorted by
name; label ``i`` is the ``i``-th name. Canonical order (for slicing and
sharding) is round-robin over classes: the first file (by name) of every
class in label order, then the second of every class, ...; classes that run
out drop out of the rotation. So ``train[:1%]`` holds about 1 % of every
class, not the first classes.

``check_split`` (called by a run before it writes anything) reads the first
bytes of every file of the split (15-30 us a file on a local disk here,
so 20-40 s for ImageNet's 1.28M) and raises naming the first that is not a
JPEG, PNG, GIF or BMP. A file with a valid header but a broken body still
raises ``InvalidArgumentError`` naming the file when it is read
(``corrupt_file_message`` extracts the message). With ``skip_corrupt=True``
neither check raises: such files are skipped and logged with a running count
(``FolderSource.num_skipped``).
"""
from __future__ import annotations

import os
import re
import threading
from typing import Optional

from absl import logging
import tensorflow as tf

from simclr_tf.data import sources
from simclr_tf.data import splits as splits_lib

EXTENSIONS = ('jpg', 'jpeg', 'png', 'JPG', 'JPEG', 'PNG')
_GLOB_CHARS = set('*?[]')
# First bytes of the formats tf.io.decode_image reads.
_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF87a', b'GIF89a', b'BM')
_SKIP_HINT = ('Remove or replace it, or skip such files with '
              '--skip_corrupt_images (DataConfig.skip_corrupt_images).')
_CORRUPT_RE = re.compile(r'(Image file .*? could not be read or decoded[^\n]*)')


def _subdirs(path: str) -> list:
  return sorted(e.name for e in os.scandir(path) if e.is_dir())


def _count_images(path: str) -> int:
  """Image files directly in ``path`` (names are not kept)."""
  if not os.path.isdir(path):
    return 0
  suffixes = tuple('.' + e for e in EXTENSIONS)
  with os.scandir(path) as it:
    return sum(1 for e in it if e.name.endswith(suffixes) and e.is_file())


def _bad_files(path: str) -> list:
  """``(file, why)`` for image-named files in ``path`` that are no image."""
  if not os.path.isdir(path):
    return []
  suffixes = tuple('.' + e for e in EXTENSIONS)
  bad = []
  with os.scandir(path) as it:
    for entry in it:
      if not (entry.name.endswith(suffixes) and entry.is_file()):
        continue
      try:
        with open(entry.path, 'rb') as f:
          head = f.read(8)
      except OSError as e:
        bad.append((entry.path, f'cannot be read ({e.strerror})'))
        continue
      if not head.startswith(_MAGIC):
        bad.append((entry.path, f'starts with {head!r}'))
  return bad


def _short(names, limit=5) -> str:
  names = list(names)
  more = f' and {len(names) - limit} more' if len(names) > limit else ''
  return f'{names[:limit]}{more}'


def corrupt_file_message(error: Exception) -> Optional[str]:
  """The corrupt-file message inside a TF op ``error`` from this source's
  pipeline (the file, what to do), or None if it is another error."""
  match = _CORRUPT_RE.search(str(error))
  return match.group(1) if match else None


class FolderSource(sources.Source):
  """Image folder dataset (see module docstring)."""

  def __init__(self, path: str, skip_corrupt: bool = False):
    self.name = f'folder:{path}'
    self._root = os.path.expanduser(path)
    self._skip_corrupt = skip_corrupt
    if not os.path.isdir(self._root):
      raise ValueError(f'Image folder {self._root!r} does not exist; expected '
                       'PATH/<split>/<class>/*.{jpg,jpeg,png}.')
    self._splits = _subdirs(self._root)
    classes = sorted({c for s in self._splits
                      for c in _subdirs(os.path.join(self._root, s))})
    if not classes:
      raise ValueError(f'Image folder {self._root!r} has no class '
                       'directories; expected PATH/<split>/<class>/*.jpg.')
    bad = [n for n in [self._root] + self._splits + classes
           if _GLOB_CHARS & set(n)]
    if bad:
      raise ValueError(f'Image folder names {bad} contain glob characters '
                       f'{sorted(_GLOB_CHARS)}; rename them.')
    self.class_names = tuple(classes)
    self.num_classes = len(classes)
    self.image_shape = None
    self._counts = {}
    self._lock = threading.Lock()
    self.num_skipped = 0

  def _parse(self, split):
    sl = splits_lib.parse_split(split)
    if sl.name not in self._splits:
      raise ValueError(f'split {split!r} does not exist in {self._root!r}: '
                       f'available splits are {self._splits}.')
    return sl

  def check_split(self, split):
    """Raises ValueError if ``split`` is missing or empty or, unless corrupt
    files are skipped, names the first file that is not an image."""
    sl = self._parse(split)
    split_dir = os.path.join(self._root, sl.name)
    if not sum(self._class_counts(sl.name)):
      raise ValueError(
          f'split {split!r} of {self.name!r} has no images: no *.jpg, *.jpeg '
          f'or *.png files in {split_dir}/<class>/ for the classes '
          f'{_short(self.class_names)}.')
    super().check_split(split)
    if self._skip_corrupt:
      return
    bad = sorted(b for c in self.class_names
                 for b in _bad_files(os.path.join(split_dir, c)))
    if bad:
      path, why = bad[0]
      more = f' ({len(bad) - 1} more such file(s))' if len(bad) > 1 else ''
      raise ValueError(f'image file {path} is not a JPEG, PNG, GIF or BMP: '
                       f'it {why}{more}. {_SKIP_HINT}')

  def _class_counts(self, name):
    if name not in self._counts:
      self._counts[name] = [
          _count_images(os.path.join(self._root, name, c))
          for c in self.class_names]
    return self._counts[name]

  def num_examples(self, split):
    sl = self._parse(split)
    begin, end = sl.indices(sum(self._class_counts(sl.name)))
    return end - begin

  def _files(self, name):
    """``(path, label)`` in canonical (class round-robin) order."""
    present = [i for i, n in enumerate(self._class_counts(name)) if n]
    if not present:
      return tf.data.Dataset.from_tensor_slices(
          (tf.constant([], tf.string), tf.constant([], tf.int32)))
    patterns = [[os.path.join(self._root, name, self.class_names[i], '*.' + e)
                 for e in EXTENSIONS] for i in present]
    classes = tf.data.Dataset.from_tensor_slices(
        (tf.constant(patterns, tf.string), tf.constant(present, tf.int32)))
    return classes.interleave(
        lambda pats, label: tf.data.Dataset.from_tensor_slices(
            tf.io.matching_files(pats)).map(lambda p: (p, label)),
        cycle_length=max(1, len(present)), block_length=1)

  def dataset(self, split, input_context=None, shuffle_files=False, seed=None):
    sl = self._parse(split)
    begin, end = sl.indices(sum(self._class_counts(sl.name)))
    files = self._files(sl.name).skip(begin).take(end - begin)
    num_shards, shard_id = sources.shard_of(input_context)
    if num_shards > 1:
      files = files.shard(num_shards, shard_id)
    if shuffle_files:
      size = max(1, len(range(shard_id, end - begin, num_shards)))
      files = files.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    decoded = files.interleave(
        _decode_or_flag, cycle_length=16, block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return decoded.filter(self._keep).map(lambda p, x, y, ok: (x, y))

  def _keep(self, path, image, label, ok):
    """True for decoded files; a bad file is logged (skip) or raises."""
    del image, label
    keep = tf.cond(ok, lambda: tf.constant(True),
                   lambda: tf.py_function(self._on_corrupt, [path], tf.bool))
    return tf.reshape(keep, [])

  def _on_corrupt(self, path):
    path = path.numpy().decode('utf-8', 'replace')
    if not self._skip_corrupt:
      raise ValueError(f'Image file {path} could not be read or decoded as '
                       f'an image. {_SKIP_HINT}')
    with self._lock:
      self.num_skipped += 1
      count = self.num_skipped
    logging.warning('Skipped corrupt image file %s (%d skipped so far in %s).',
                    path, count, self._root)
    return False


def _decode_or_flag(path, label):
  """One-element dataset ``(path, image, label, ok)``; ``ok`` False if the
  file does not read or decode (then ``image`` is a 1x1 placeholder)."""
  def decode(p, y):
    image = tf.io.decode_image(tf.io.read_file(p), channels=3,
                               expand_animations=False)
    return p, image, y, tf.constant(True)
  good = tf.data.Dataset.from_tensors((path, label)).map(decode)
  bad = tf.data.Dataset.from_tensors(
      (path, tf.zeros([1, 1, 3], tf.uint8), label, tf.constant(False)))
  return good.ignore_errors().concatenate(bad).take(1)
