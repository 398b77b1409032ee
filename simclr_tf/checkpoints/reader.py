"""Opening a checkpoint prefix for reading tensors by key."""
from __future__ import annotations

import tensorflow as tf


def open_reader(prefix: str):
  """A CheckpointReader of the prefix itself (``get_tensor``,
  ``get_variable_to_shape_map``). ``tf.train.load_checkpoint`` first asks
  whether the path is a directory, which some filesystems answer yes for a
  prefix (a key-value store where ``ckpt-1`` prefixes ``ckpt-1.index``)."""
  return tf.compat.v1.train.NewCheckpointReader(prefix)
