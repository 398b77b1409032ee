"""``folder:PATH`` source: ``PATH/<split>/<class>/**/<image>``.

Each class folder is read recursively (images may sit in subfolders, e.g.
Tiny ImageNet's ``train/<class>/images/``), for every format
``tf.io.decode_image`` reads: JPEG, PNG, GIF, BMP and WebP, extensions
matched case-insensitively (``.Jpg``), as Keras's
``image_dataset_from_directory`` and torchvision's ``ImageFolder`` do.
File names are listed once per split with ``os.walk`` (symlinked folders
are not followed, so a symlink loop cannot hang the listing) and used as
exact paths, never as patterns.

Classes are the union of the class directories of all splits, sorted by
name; label ``i`` is the ``i``-th name. Every split a run reads must hold
images of every class: a class folder without images (or missing from the
split) stops the run naming it, which also catches a flat
``val/images/`` folder with an annotation file (it would be one class
named ``images``). Canonical order (for slicing and sharding) is
round-robin over classes: the first file (by path) of every class in label
order, then the second of every class, ...; classes that run out drop out
of the rotation. So ``train[:1%]`` holds about 1 % of every class.

``check_split`` (called by a run before it writes anything) logs how many
images and classes the split has, and reads the first bytes of every file
(15-30 us a file on a local disk here, so 20-40 s for ImageNet's 1.28M),
raising naming the first that is not an image. A file with a valid header
but a broken body still raises ``InvalidArgumentError`` naming the file
when it is read (``corrupt_file_message`` extracts the message). With
``skip_corrupt=True`` neither check raises: such files are skipped and
logged with a running count (``FolderSource.num_skipped``).
"""
from __future__ import annotations

import itertools
import os
import re
import threading
from typing import Optional

from absl import logging
import tensorflow as tf

from simclr_tf.data import sources
from simclr_tf.data import splits as splits_lib

# The formats tf.io.decode_image reads, by extension (any letter case).
EXTENSIONS = ('.jpg', '.jpeg', '.png', '.gif', '.bmp', '.webp')
# Their first bytes (WebP: 'RIFF', 4 size bytes, 'WEBP').
_MAGIC = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n', b'GIF87a', b'GIF89a', b'BM',
          b'RIFF')
_FORMATS_TEXT = 'JPEG, PNG, GIF, BMP or WebP'

_SKIP_HINT = ('Remove or replace it, or skip such files with '
              '--skip_corrupt_images.')
_CORRUPT_RE = re.compile(
    r'(Image file .*? (?:could not be read or decoded|is missing)[^\n]*)')


def _subdirs(path: str) -> list:
  return sorted(e.name for e in os.scandir(path) if e.is_dir())


def is_image_name(name: str) -> bool:
  return name.lower().endswith(EXTENSIONS)


def list_images(path: str) -> list:
  """Sorted paths of the image files under ``path``, recursively (symlinked
  folders are not followed); [] if ``path`` is not a folder."""
  if not os.path.isdir(path):
    return []
  found = []
  for folder, dirs, files in os.walk(path):
    dirs.sort()
    found.extend(os.path.join(folder, f) for f in sorted(files)
                 if is_image_name(f))
  return found


def _is_image_file(path: str):
  """None if ``path`` starts like an image, else why not."""
  try:
    with open(path, 'rb') as f:
      head = f.read(12)
  except OSError as e:
    return f'cannot be read ({e.strerror})'
  if not head.startswith(_MAGIC) or (head.startswith(b'RIFF') and
                                     head[8:12] != b'WEBP'):
    return f'starts with {head[:8]!r}'
  return None


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
                       'PATH/<split>/<class>/<images>.')
    self._splits = _subdirs(self._root)
    classes = sorted({c for s in self._splits
                      for c in _subdirs(os.path.join(self._root, s))})
    if not classes:
      raise ValueError(f'Image folder {self._root!r} has no class '
                       'directories; expected PATH/<split>/<class>/*.jpg.')
    self.class_names = tuple(classes)
    self.num_classes = len(classes)
    self.image_shape = None
    self._lists = {}
    self._lock = threading.Lock()
    self.num_skipped = 0

  def _parse(self, split):
    sl = splits_lib.parse_split(split)
    if sl.name not in self._splits:
      raise ValueError(f'split {split!r} does not exist in {self._root!r}: '
                       f'available splits are {self._splits}.')
    return sl

  def check_split(self, split):
    """Raises ValueError if ``split`` is missing or empty, if one of its
    classes has no image, or (unless corrupt files are skipped) naming the
    first file that is not an image. Logs its images and classes."""
    sl = self._parse(split)
    split_dir = os.path.join(self._root, sl.name)
    counts = [len(f) for f in self._class_files(sl.name)]
    if not sum(counts):
      raise ValueError(
          f'split {split!r} of {self.name!r} has no images: no '
          f'{_FORMATS_TEXT} files under {split_dir}/<class>/ for the classes '
          f'{_short(self.class_names)}.')
    empty = [c for c, n in zip(self.class_names, counts) if not n]
    if empty:
      here = _subdirs(split_dir)
      hint = (f' {split_dir} has {len(here)} class folder(s) {_short(here)} '
              f'while the classes of all splits are {len(self.class_names)}'
              '; a flat folder of images with an annotation file (e.g. Tiny '
              "ImageNet's val/images/) is not read: arrange it as "
              f'{sl.name}/<class>/<image>.' if len(here) == 1 else '')
      raise ValueError(
          f'split {split!r} of {self.name!r}: class(es) {_short(empty)} have '
          f'no {_FORMATS_TEXT} image under {split_dir}/<class>/ (every '
          f'split needs every class of every split).{hint}')
    logging.info('%s split %r: %d images in %d classes.', self.name, split,
                 self.num_examples(split), self.num_classes)
    super().check_split(split)
    if self._skip_corrupt:
      return
    bad = [(f, why) for files in self._class_files(sl.name) for f in files
           for why in [_is_image_file(f)] if why]
    if bad:
      path, why = min(bad)
      more = f' ({len(bad) - 1} more such file(s))' if len(bad) > 1 else ''
      raise ValueError(f'image file {path} is not a {_FORMATS_TEXT}: it '
                       f'{why}{more}. {_SKIP_HINT}')

  def _class_files(self, name) -> list:
    """Per class (label order), the sorted image paths of split ``name``."""
    if name not in self._lists:
      self._lists[name] = [list_images(os.path.join(self._root, name, c))
                           for c in self.class_names]
    return self._lists[name]

  def num_examples(self, split):
    sl = self._parse(split)
    begin, end = sl.indices(sum(map(len, self._class_files(sl.name))))
    return end - begin

  def _files(self, name):
    """``(path, label)`` in canonical (class round-robin) order."""
    per_class = self._class_files(name)
    paths, labels = [], []
    for row in itertools.zip_longest(*per_class):
      for label, path in enumerate(row):
        if path is not None:
          paths.append(path)
          labels.append(label)
    return tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string), tf.constant(labels, tf.int32)))

  def dataset(self, split, input_context=None, shuffle_files=False, seed=None):
    sl = self._parse(split)
    begin, end = sl.indices(sum(map(len, self._class_files(sl.name))))
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
    if not os.path.exists(path):  # never skipped: the data is going away
      raise ValueError(f'Image file {path} is missing: it was listed when '
                       'the run started and has been deleted or moved since '
                       '(is the data folder still there?).')
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
