"""``npz:PATH`` source: images and labels stored as numpy ``.npz`` files.

Layout: ``PATH/<split>.npz`` or shards ``PATH/<split>-<k>.npz`` (k = 0, 1,
...; concatenated in numeric k order). Each file holds ``images`` (uint8
``[N, H, W, 3]``, or ``[N, H, W]`` / ``[N, H, W, 1]`` grayscale, repeated to
3 channels) and ``labels`` (integers ``[N]``). Optional ``PATH/classes.txt``
gives the class names, one per line in label order; without it
``num_classes`` is the largest label over all splits plus one.

Files are read with ``allow_pickle=False``. Array headers and labels are
checked when the source is created (cheap: image pixels are not read);
images are loaded on first use of a split. Canonical order for slicing is
the array order (shards concatenated).
"""
from __future__ import annotations

import os
import re
import zipfile
import zlib
from typing import Optional

import numpy as np

from simclr_tf.data import sources

_FILE_RE = re.compile(r'^(?P<split>.+?)(?:-(?P<shard>\d+))?\.npz$')


def _array_header(zf: zipfile.ZipFile, key: str, path: str):
  """``(shape, dtype)`` of array ``key`` in an open npz, without its data."""
  member = key + '.npy'
  if member not in zf.namelist():
    present = sorted(n[:-4] for n in zf.namelist() if n.endswith('.npy'))
    raise ValueError(f'{path} has no array {key!r} (arrays present: '
                     f'{present}); an npz source needs "images" and "labels".')
  with zf.open(member) as f:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape, _, dtype = read(f)
  return tuple(shape), np.dtype(dtype)


def _check_file(path: str) -> tuple[tuple, np.ndarray]:
  """Validates one npz file; returns ``((H, W), labels)``."""
  try:
    with zipfile.ZipFile(path) as zf:
      shape, dtype = _array_header(zf, 'images', path)
      lshape, ldtype = _array_header(zf, 'labels', path)
  except zipfile.BadZipFile as e:
    raise ValueError(f'{path} is not a valid .npz file ({e}).') from None
  if dtype != np.uint8:
    raise ValueError(
        f'{path}: images have dtype {dtype}; expected uint8 in [0, 255] '
        '(convert e.g. with (x * 255).round().astype(np.uint8)).')
  if len(shape) not in (3, 4) or (len(shape) == 4 and shape[3] not in (1, 3)):
    raise ValueError(f'{path}: images have shape {shape}; expected '
                     '[N, H, W, 3] (RGB) or [N, H, W] / [N, H, W, 1] (gray).')
  if len(lshape) != 1 or not np.issubdtype(ldtype, np.integer):
    raise ValueError(f'{path}: labels have shape {lshape} and dtype {ldtype};'
                     ' expected a 1-D integer array [N].')
  if lshape[0] != shape[0]:
    raise ValueError(f'{path}: {shape[0]} images but {lshape[0]} labels; '
                     'the two arrays must have the same length.')
  labels = _read_array(path, 'labels')
  if labels.size and labels.min() < 0:
    raise ValueError(f'{path}: labels contain {labels.min()}; labels must be '
                     '>= 0.')
  if labels.size and labels.max() > np.iinfo(np.int32).max:
    raise ValueError(f'{path}: labels contain {labels.max()}, which overflows '
                     'int32; labels must be class indices in [0, classes).')
  return tuple(shape[1:3]), labels


def _read_array(path: str, key: str) -> np.ndarray:
  """Array ``key`` of npz ``path``; a damaged file (bad CRC, truncated)
  raises ValueError naming it."""
  try:
    with np.load(path, allow_pickle=False) as z:
      return z[key]
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError,
          ValueError) as e:
    raise ValueError(f'{path}: its {key!r} array cannot be read ({e}); the '
                     'file is damaged: write it again.') from None


def _find_files(root: str) -> dict:
  """``{split: [file, ...]}`` with shards in numeric order."""
  if not os.path.isdir(root):
    raise ValueError(f'npz dataset directory {root!r} does not exist; '
                     'expected PATH/<split>.npz or PATH/<split>-<k>.npz.')
  found = {}
  for entry in os.scandir(root):
    match = _FILE_RE.match(entry.name)
    if match and entry.is_file():
      shard = match['shard']
      found.setdefault(match['split'], []).append(
          (-1 if shard is None else int(shard), entry.path))
  if not found:
    raise ValueError(f'No .npz files in {root!r}; expected '
                     'PATH/<split>.npz or PATH/<split>-<k>.npz.')
  files = {}
  for split, items in found.items():
    items.sort()
    if items[0][0] == -1 and len(items) > 1:
      raise ValueError(f'Split {split!r} in {root!r} has both {split}.npz and '
                       'sharded files; keep one layout.')
    shards = [k for k, _ in items]
    if shards[0] != -1 and shards != list(range(len(shards))):
      missing = sorted(set(range(shards[-1] + 1)) - set(shards))
      raise ValueError(
          f'Split {split!r} in {root!r} has shards {shards}: '
          f'{[f"{split}-{k}.npz" for k in missing]} missing; shards must '
          'be numbered 0, 1, ... without gaps.')
    files[split] = [path for _, path in items]
  return files


class NpzSource(sources.ArraySource):
  """Splits from ``PATH/<split>[-<k>].npz`` (see module docstring)."""

  def __init__(self, path: str, name: Optional[str] = None):
    super().__init__()
    self.name = name or f'npz:{path}'
    self._root = os.path.expanduser(path)
    self._files = _find_files(self._root)
    self._labels, sizes = {}, set()
    for split, paths in self._files.items():
      checked = [_check_file(p) for p in paths]
      self._labels[split] = np.concatenate([labels for _, labels in checked])
      split_sizes = {size for size, _ in checked}
      if len(split_sizes) > 1:
        raise ValueError(f'Shards of split {split!r} in {self._root!r} have '
                         f'different image sizes {sorted(split_sizes)}; all '
                         'shards of a split need the same H x W.')
      sizes |= split_sizes
    self.image_shape = (sizes.pop() + (3,)) if len(sizes) == 1 else None
    self.class_names = self._read_class_names()
    max_label = max(int(l.max()) if l.size else -1
                    for l in self._labels.values())
    if self.class_names is None:
      if max_label < 0:
        raise ValueError(f'{self._root!r}: no split holds an example, so '
                         'there are no classes; add examples or classes.txt.')
      self.num_classes = max_label + 1
    else:
      self.num_classes = len(self.class_names)
      if max_label >= self.num_classes:
        raise ValueError(
            f'{self._root!r}: a label is {max_label} but classes.txt names '
            f'only {self.num_classes} classes; labels must be < that.')

  def _read_class_names(self):
    path = os.path.join(self._root, 'classes.txt')
    if not os.path.isfile(path):
      return None
    with open(path, encoding='utf-8') as f:
      return tuple(line.strip() for line in f if line.strip())

  def _split_names(self):
    return list(self._files)

  def _count(self, name):
    return len(self._labels[name])

  def _load(self, name):
    images = []
    for path in self._files[name]:
      array = _read_array(path, 'images')
      if array.ndim == 3:
        array = array[..., None]
      if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
      images.append(array)
    images = images[0] if len(images) == 1 else np.concatenate(images)
    return images, self._labels[name]
