"""Damaged or odd npz datasets stop with a ValueError naming the file and
what is wrong (issue 14: these raised raw tracebacks or were silently
accepted)."""
import os

import numpy as np
import pytest

from simclr_tf.data import npz


def _write(root, name, n=8, labels=None):
  os.makedirs(root, exist_ok=True)
  labels = np.arange(n) % 2 if labels is None else labels
  np.savez(os.path.join(root, name),
           images=np.zeros((len(labels), 4, 4, 3), np.uint8), labels=labels)


def test_shard_gap_is_refused(tmp_path):
  for k in (0, 1, 3):
    _write(str(tmp_path), f'train-{k}.npz')
  with pytest.raises(ValueError, match=r"shards \[0, 1, 3\]: \['train-2.npz'"
                     r"\] missing"):
    npz.NpzSource(str(tmp_path))


def test_labels_overflowing_int32_are_refused(tmp_path):
  _write(str(tmp_path), 'train.npz', labels=np.array([0, 2 ** 31], np.int64))
  with pytest.raises(ValueError, match=r'train.npz: labels contain '
                     r'2147483648, which overflows int32'):
    npz.NpzSource(str(tmp_path))


def test_all_splits_empty_is_refused(tmp_path):
  _write(str(tmp_path), 'train.npz', labels=np.zeros([0], np.int64))
  with pytest.raises(ValueError, match='no split holds an example'):
    npz.NpzSource(str(tmp_path))


def test_bad_crc_names_the_file(tmp_path):
  path = str(tmp_path / 'train.npz')
  np.savez(path, images=np.full((64, 8, 8, 3), 7, np.uint8),
           labels=np.arange(64) % 2)
  data = bytearray(open(path, 'rb').read())
  at = data.index(bytes([7] * 16)) + 8  # inside the image pixels
  data[at] ^= 0xFF
  open(path, 'wb').write(bytes(data))
  source = npz.NpzSource(str(tmp_path))  # headers and labels are fine
  with pytest.raises(ValueError, match=r"train.npz: its 'images' array "
                     r'cannot be read \(.*CRC.*\); the file is damaged'):
    source._load('train')
