"""``builtin`` source: an offline dataset of coloured shapes, made by numpy.

Ten classes (``CLASS_NAMES``): circle, square, triangle, star, cross, ring,
crescent, semicircle, frame, heart. Every image (uint8 32x32x3) draws a
random position, scale, rotation, foreground colour with shading, background
colour with a linear gradient and a sinusoidal texture, and pixel noise.
Shapes are anti-aliased by 2x2 supersampling. Labels are exactly balanced.

Splits: ``train`` (10,000 images, seed 0) and ``test`` (2,000, seed 1);
``generate(n, seed)`` is deterministic. The splits are cached as npz (the
``npz:`` layout plus ``classes.txt``) in ``<data_dir>/builtin_v2/`` or, when
no data_dir is given, ``$XDG_CACHE_HOME/simclr_tf/builtin_v2/`` (default
``~/.cache/simclr_tf/builtin_v2/``); files are written to a temporary name
and moved into place with ``os.replace`` so readers never see partial files.
Canonical order (for slicing) is generation order, which is random in class.
"""
from __future__ import annotations

import errno
import os
import tempfile
from typing import Optional

from absl import logging
import numpy as np

from simclr_tf.data import npz

CLASS_NAMES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring',
               'crescent', 'semicircle', 'frame', 'heart')
SPLITS = {'train': (10000, 0), 'test': (2000, 1)}  # name: (size, seed)
IMAGE_SIZE = 32
VERSION_DIR = 'builtin_v2'
_SUPERSAMPLE = 2
_CHUNK = 1000


def _inside(label: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Boolean mask of shape ``label`` in shape coordinates (unit size)."""
  name = CLASS_NAMES[label]
  r = np.sqrt(x * x + y * y)
  box = np.maximum(np.abs(x), np.abs(y))
  if name == 'circle':
    return r < 1.0
  if name == 'square':
    return box < 0.8
  if name == 'triangle':
    s = np.sqrt(3.0)
    return (y > -0.5) & (s * x + y < 1.0) & (-s * x + y < 1.0)
  if name == 'star':
    t = np.mod(np.arctan2(y, x) * 5 / (2 * np.pi), 1.0)
    return r < 0.42 + 0.58 * np.abs(2 * t - 1) ** 2
  if name == 'cross':
    ax, ay = np.abs(x), np.abs(y)
    return ((ax < 0.3) & (ay < 0.9)) | ((ay < 0.3) & (ax < 0.9))
  if name == 'ring':
    return (r < 1.0) & (r > 0.6)
  if name == 'crescent':
    return (r < 1.0) & ((x - 0.45) ** 2 + y * y > 0.64)
  if name == 'semicircle':
    return (x * x + (y + 0.4) ** 2 < 1.0) & (y > -0.4)
  if name == 'frame':
    return (box < 0.85) & (box > 0.55)
  hx, hy = 1.25 * x, 1.25 * y + 0.15  # heart
  return (hx * hx + hy * hy - 1) ** 3 - hx * hx * hy ** 3 < 0


def _params(rng: np.random.Generator, n: int) -> dict:
  """Per-image random parameters, drawn in a fixed order."""
  labels = rng.permutation(np.arange(n) % len(CLASS_NAMES))
  p = dict(label=labels,
           # Large, roughly centred objects (as in CIFAR-10): random crops
           # of 8-100% of the image mostly keep part of the shape.
           centre=rng.uniform(-0.2, 0.2, (n, 2)),
           scale=rng.uniform(0.5, 0.8, n),
           angle=rng.uniform(0, 2 * np.pi, n),
           fg_level=rng.uniform(0.3, 0.5, n),
           bg=rng.uniform(0.1, 0.9, n),
           tint=rng.uniform(-0.12, 0.12, (n, 2, 3)),
           grad=rng.uniform(0, 0.3, n) * rng.choice([-1, 1], n),
           grad_angle=rng.uniform(0, 2 * np.pi, n),
           tex=rng.uniform(0, 0.08, n),
           tex_freq=rng.uniform(1, 5, n),
           tex_angle=rng.uniform(0, 2 * np.pi, n),
           tex_phase=rng.uniform(0, 2 * np.pi, n),
           shade=rng.uniform(-0.2, 0.2, n),
           noise=rng.uniform(0.01, 0.05, n))
  # Muted colours: a grey level with a slight tint, the shape 0.3-0.5
  # lighter or darker than its background. Colour then says little about
  # which image a view came from, so contrastive learning must use the
  # shape (with saturated random colours a few minutes of SimCLR learned
  # colour, not shape: probe 17% vs 13% for a random encoder).
  level, bg = p.pop('fg_level'), p['bg']
  fg = np.where(bg > 0.5, bg - level, bg + level)
  p['bg'] = np.clip(bg[:, None] + p['tint'][:, 0], 0, 1)
  p['fg'] = np.clip(fg[:, None] + p['tint'][:, 1], 0, 1)
  return p


def _alpha(p: dict, idx: np.ndarray, size: int) -> np.ndarray:
  """Coverage ``[n, size, size]`` in [0, 1] (anti-aliased) of the images
  ``idx`` (n of them), and their supersampled shape coordinates ``x, y``."""
  g = size * _SUPERSAMPLE
  u = ((np.arange(g, dtype=np.float32) + 0.5) / g * 2 - 1)
  dx = u[None, None, :] - p['centre'][idx, 0, None, None].astype(np.float32)
  dy = u[None, :, None] - p['centre'][idx, 1, None, None].astype(np.float32)
  cos = np.cos(p['angle'][idx]).astype(np.float32)[:, None, None]
  sin = np.sin(p['angle'][idx]).astype(np.float32)[:, None, None]
  inv = (1.0 / p['scale'][idx]).astype(np.float32)[:, None, None]
  x, y = (cos * dx + sin * dy) * inv, (cos * dy - sin * dx) * inv
  mask = np.zeros((len(idx), g, g), np.float32)
  for label in np.unique(p['label'][idx]):
    sel = p['label'][idx] == label
    mask[sel] = _inside(int(label), x[sel], y[sel])
  return mask.reshape(len(idx), size, _SUPERSAMPLE, size,
                      _SUPERSAMPLE).mean(axis=(2, 4)), x, y


def _directional(p, idx, key, size):
  """``cos(a) X + sin(a) Y`` on the image grid for angle ``p[key]``."""
  u = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1)
  a = p[key][idx].astype(np.float32)[:, None, None]
  return np.cos(a) * u[None, None, :] + np.sin(a) * u[None, :, None]


def _render(p: dict, idx: np.ndarray, size: int, rng) -> np.ndarray:
  """uint8 ``[len(idx), size, size, 3]`` for the images ``idx``."""
  alpha, x, _ = _alpha(p, idx, size)
  col = lambda k: p[k][idx].astype(np.float32)[:, None, None]
  bg_light = (col('grad') * _directional(p, idx, 'grad_angle', size)
              + col('tex') * np.sin(2 * np.pi * col('tex_freq') / 2
                                    * _directional(p, idx, 'tex_angle', size)
                                    + col('tex_phase')))
  shade_x = x.reshape(len(idx), size, _SUPERSAMPLE, size,
                      _SUPERSAMPLE).mean(axis=(2, 4))
  fg_light = col('shade') * np.clip(shade_x, -1.5, 1.5)
  bg = p['bg'][idx].astype(np.float32)[:, None, None, :] + bg_light[..., None]
  fg = p['fg'][idx].astype(np.float32)[:, None, None, :] + fg_light[..., None]
  a = alpha[..., None]
  image = bg * (1 - a) + fg * a
  image += rng.standard_normal(image.shape, np.float32) * col('noise')[
      ..., None]
  return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)


def generate(num_examples: int, seed: int, image_size: int = IMAGE_SIZE):
  """Deterministic images uint8 ``[N, S, S, 3]`` and labels int64 ``[N]``."""
  rng = np.random.default_rng(seed)
  p = _params(rng, num_examples)
  images = np.empty((num_examples, image_size, image_size, 3), np.uint8)
  for start in range(0, num_examples, _CHUNK):
    idx = np.arange(start, min(start + _CHUNK, num_examples))
    images[idx] = _render(p, idx, image_size, rng)
  return images, p['label'].astype(np.int64)


def cache_dir(data_dir: Optional[str] = None) -> str:
  """Where the built-in splits are cached (see module docstring)."""
  if data_dir:
    return os.path.join(os.path.expanduser(data_dir), VERSION_DIR)
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'simclr_tf', VERSION_DIR)


def _write_atomic(path: str, write) -> None:
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:
      write(f)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def ensure_cached(data_dir: Optional[str] = None) -> str:
  """Generates any missing split file into the cache; returns its path.

  Raises:
    ValueError: the cache directory cannot be written (read-only, no
      permission, full), naming it and what to give instead.
  """
  root = cache_dir(data_dir)
  try:
    _fill_cache(root)
  except OSError as e:
    if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC):
      raise
    raise ValueError(
        f'its cache {root} cannot be written '
        f'({e.strerror}: {e.filename or root}); the dataset is generated '
        'there once (about 37 MB). Give --data_dir=DIR, a writable '
        'directory, or set XDG_CACHE_HOME.') from None
  return root


def _fill_cache(root: str) -> None:
  os.makedirs(root, exist_ok=True)
  for split, (size, seed) in SPLITS.items():
    path = os.path.join(root, f'{split}.npz')
    if not os.path.exists(path):
      logging.info('Generating built-in %s split (%d images) into %s.',
                   split, size, path)
      images, labels = generate(size, seed)
      _write_atomic(path, lambda f, i=images, l=labels: np.savez(
          f, images=i, labels=l))
  classes = os.path.join(root, 'classes.txt')
  if not os.path.exists(classes):
    _write_atomic(classes, lambda f: f.write(
        ('\n'.join(CLASS_NAMES) + '\n').encode('utf-8')))


class BuiltinSource(npz.NpzSource):
  """The built-in shapes dataset (generated on first use, then cached)."""

  def __init__(self, data_dir: Optional[str] = None):
    super().__init__(ensure_cached(data_dir), name='builtin')
