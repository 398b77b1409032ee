"""Checkpoint management, warm starts and compatibility checks.

A training checkpoint holds ``model`` and ``optimizer`` (slots and the step
counter ``optimizer.iterations``, which is the global step). A warm start
restores the encoder and projection head (and the supervised head when it
fits and is not re-zeroed) from a training checkpoint or from the
``variables/`` of an exported SavedModel, whose module keeps the model under
the same ``model`` attribute.
"""
from __future__ import annotations

import os
import tempfile

import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import trackable_object_graph_pb2

CHECKPOINT_NAME = 'ckpt'


class CheckpointError(ValueError):
  """A checkpoint is missing or does not fit the model; says which."""


def make_manager(model, optimizer, model_dir: str, max_to_keep: int, *,
                 chief: bool = True) -> tf.train.CheckpointManager:
  """CheckpointManager over {model, optimizer} in ``model_dir``.

  Non-chief workers of a multi-worker run must save too (the save is a
  collective); they write to a private temporary directory.
  """
  directory = model_dir if chief else tempfile.mkdtemp(prefix='simclr_ckpt_')
  ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
  return tf.train.CheckpointManager(ckpt, directory, max_to_keep=max_to_keep,
                                    checkpoint_name=CHECKPOINT_NAME)


def _saved_model_variables(path: str):
  """``path/variables/variables`` if ``path`` holds SavedModel variables."""
  prefix = os.path.join(path, 'variables', 'variables')
  return prefix if tf.io.gfile.exists(prefix + '.index') else None


def _newest_export(root: str):
  """Variables of the newest ``root/<step>/`` SavedModel, or None.

  Only all-digit names count (an export in progress, or one a kill
  interrupted, is in a ``.tmp-*`` directory).
  """
  steps = sorted((int(n.rstrip('/')) for n in tf.io.gfile.listdir(root)
                  if n.rstrip('/').isdigit()), reverse=True)
  for step in steps:
    prefix = _saved_model_variables(os.path.join(root, str(step)))
    if prefix:
      return prefix
  return None


def resolve(path: str) -> str:
  """Checkpoint prefix for a prefix, a directory of checkpoints, an exported
  SavedModel or a directory of exported versions (its newest complete one).

  A directory of checkpoints resolves to the newest complete checkpoint:
  ``tf.train.CheckpointManager`` names a checkpoint in its ``checkpoint``
  file only after writing it, so one a crash interrupted is never picked.

  Raises:
    CheckpointError: nothing loadable at ``path``.
  """
  if tf.io.gfile.exists(path + '.index'):
    return path
  if tf.io.gfile.isdir(path):
    found = (_saved_model_variables(path) or tf.train.latest_checkpoint(path)
             or _newest_export(path))
    if found:
      return found
  raise CheckpointError(
      f'--checkpoint={path!r}: no checkpoint there (expected a checkpoint '
      'prefix with a .index file, a directory holding checkpoints, an '
      'exported SavedModel directory or a directory of exported versions '
      'such as MODEL_DIR/saved_model).')


STEP_KEY = 'optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE'


def step_of(prefix: str) -> int:
  """Global step stored in a training checkpoint (0 if it has none)."""
  if STEP_KEY in dict(tf.train.list_variables(prefix)):
    return int(tf.train.load_variable(prefix, STEP_KEY))
  return 0


def latest(model_dir: str):
  """Newest complete checkpoint prefix in ``model_dir``, or None (see
  ``resolve``)."""
  return tf.train.latest_checkpoint(model_dir) if model_dir else None


def _stored_variables(prefix: str) -> dict:
  """Object path (``model/encoder/...``) -> stored shape, for every path.

  A variable is stored once, under the first path the saver found (often
  through the optimizer), so keys alone do not tell which model variable
  it is; the checkpoint's object graph does.
  """
  reader = tf.train.load_checkpoint(prefix)
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor('_CHECKPOINTABLE_OBJECT_GRAPH'))
  shapes = reader.get_variable_to_shape_map()
  found, frontier, seen = {}, [(0, '')], set()
  while frontier:
    node_id, path = frontier.pop()
    node = graph.nodes[node_id]
    for attr in node.attributes:
      if attr.name == 'VARIABLE_VALUE' and attr.checkpoint_key in shapes:
        found[path] = tuple(shapes[attr.checkpoint_key])
    if node_id in seen:
      continue
    seen.add(node_id)
    for child in node.children:
      frontier.append((child.node_id, f'{path}/{child.local_name}'
                       if path else child.local_name))
  return found


def _model_paths(model) -> dict:
  """id(variable) -> object path when saved as ``Checkpoint(model=model)``."""
  ids = {id(v) for v in model.variables}
  paths, frontier, seen = {}, [('', tf.train.Checkpoint(model=model))], set()
  while frontier:
    prefix, obj = frontier.pop()
    if id(obj) in seen:
      continue
    seen.add(id(obj))
    for name, child in tf.train.TrackableView(obj).children(obj).items():
      if id(child) in ids:
        paths.setdefault(id(child), prefix + name)
      else:
        frontier.append((f'{prefix}{name}/', child))
  return paths


_HINTS = {
    'encoder': 'check --resnet_depth, --width_multiplier, --sk_ratio, '
               '--se_ratio',
    'projection_head': 'check --proj_head_mode, --num_proj_layers, '
                       '--proj_out_dim',
    'supervised_head': 'the classifier: the dataset has another number of '
                       'classes than the run that wrote it',
}


def check_compatible(path: str, model, *,
                     supervised_head: bool = False) -> None:
  """Raises CheckpointError naming the first variable of the encoder, the
  projection head and (``supervised_head``: when the whole model is
  restored, e.g. a resume or an evaluation) the classifier whose shape
  differs from, or is missing in, the checkpoint at ``path`` (a classifier
  missing there is fine: it starts afresh)."""
  stored, paths = _stored_variables(path), _model_paths(model)
  parts = ['encoder', 'projection_head']
  if supervised_head and model.supervised_head is not None:
    parts.append('supervised_head')
  for part in parts:
    for v in getattr(model, part).variables:
      key = paths.get(id(v))
      if key not in stored and part == 'supervised_head':
        continue  # e.g. pretrained without the probe: it starts afresh
      if key not in stored:
        raise CheckpointError(
            f'checkpoint {path!r} does not fit this model: variable '
            f'{v.path} is missing there; it was written for another '
            f'architecture ({_HINTS[part]}).')
      if stored[key] != tuple(v.shape):
        raise CheckpointError(
            f'checkpoint {path!r} does not fit this model: variable '
            f'{v.path} has shape {tuple(v.shape)} here but {stored[key]} '
            f'in the checkpoint ({_HINTS[part]}).')


def warm_start(model, path: str, *, zero_init_logits: bool = False) -> str:
  """Restores the model's weights (not the optimizer) from ``path``.

  The supervised head is restored only when the checkpoint has one of the
  same shape; ``zero_init_logits`` then re-zeroes it (SimCLRv2 fine-tuning).
  Returns the resolved checkpoint prefix.
  """
  prefix = resolve(path)
  check_compatible(prefix, model)
  parts = {'encoder': model.encoder, 'projection_head': model.projection_head}
  head = model.supervised_head
  if head is not None and not zero_init_logits and _head_fits(prefix, model):
    parts['supervised_head'] = head
  status = tf.train.Checkpoint(model=tf.train.Checkpoint(**parts)).restore(
      prefix)
  status.expect_partial()
  if head is not None and zero_init_logits:
    for v in head.trainable_variables:
      v.assign(tf.zeros_like(v))
  logging.info('Warm-started %s from %s.', sorted(parts), prefix)
  return prefix


def _head_fits(prefix, model) -> bool:
  stored, paths = _stored_variables(prefix), _model_paths(model)
  return all(stored.get(paths.get(id(v))) == tuple(v.shape)
             for v in model.supervised_head.variables)
