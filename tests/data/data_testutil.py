"""Helpers for simclr_tf.data tests (importable from test modules)."""
import os

import numpy as np


def write_npz(root, split, images, labels, **extra):
  """Writes ``root/<split>.npz`` (``split`` may be ``train-0`` for shards)."""
  os.makedirs(root, exist_ok=True)
  np.savez(os.path.join(root, f'{split}.npz'), images=images, labels=labels,
           **extra)
  return root


def random_split(n, size=32, num_classes=10, seed=0, channels=3):
  """uint8 images ``[n, size, size, channels]`` whose pixel (0, 0, 0) holds
  the example index (mod 256) and labels ``index % num_classes``."""
  rng = np.random.default_rng(seed)
  shape = (n, size, size) + ((channels,) if channels else ())
  images = rng.integers(0, 256, shape, dtype=np.uint8)
  index = (np.arange(n) % 256).astype(np.uint8)
  images[:, 0, 0] = index[:, None] if channels else index
  labels = np.arange(n, dtype=np.int64) % num_classes
  return images, labels
