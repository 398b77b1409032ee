"""Opening a checkpoint prefix for reading tensors by key."""
from __future__ import annotations

from typing import Optional

import tensorflow as tf


def open_reader(prefix: str):
  """A CheckpointReader of the prefix itself (``get_tensor``,
  ``get_variable_to_shape_map``). ``tf.train.load_checkpoint`` first asks
  whether the path is a directory, which some filesystems answer yes for a
  prefix (a key-value store where ``ckpt-1`` prefixes ``ckpt-1.index``)."""
  return tf.compat.v1.train.NewCheckpointReader(prefix)


def damage(prefix: str) -> Optional[str]:
  """None when every tensor of ``prefix`` reads back whole (the index
  parses, each data shard is long enough and its CRC matches); else what
  is wrong, in one line. Reads the whole checkpoint once."""
  try:
    reader = open_reader(prefix)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except (tf.errors.OpError, IndexError, ValueError) as e:
    message = (getattr(e, 'message', None) or str(e)).strip()
    return message.splitlines()[0] if message else type(e).__name__
  return None
