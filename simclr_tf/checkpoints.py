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


def resolve(path: str) -> str:
  """Checkpoint prefix for a prefix, a directory of checkpoints or a SavedModel.

  Raises:
    CheckpointError: nothing loadable at ``path``.
  """
  if tf.io.gfile.exists(path + '.index'):
    return path
  if tf.io.gfile.isdir(path):
    saved_vars = os.path.join(path, 'variables', 'variables')
    if tf.io.gfile.exists(saved_vars + '.index'):
      return saved_vars
    latest = tf.train.latest_checkpoint(path)
    if latest:
      return latest
  raise CheckpointError(
      f'--checkpoint={path!r}: no checkpoint there (expected a checkpoint '
      'prefix with a .index file, a directory holding checkpoints, or an '
      'exported SavedModel directory).')


STEP_KEY = 'optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE'


def step_of(prefix: str) -> int:
  """Global step stored in a training checkpoint (0 if it has none)."""
  if STEP_KEY in dict(tf.train.list_variables(prefix)):
    return int(tf.train.load_variable(prefix, STEP_KEY))
  return 0


def latest(model_dir: str):
  """Newest checkpoint prefix in ``model_dir``, or None."""
  return tf.train.latest_checkpoint(model_dir) if model_dir else None


def check_compatible(path: str, model) -> None:
  """Raises CheckpointError naming the first encoder/head variable whose
  shape differs from (or is missing in) the checkpoint at ``path``."""
  stored = dict(tf.train.list_variables(path))
  for part in ('encoder', 'projection_head'):
    for v in getattr(model, part).variables:
      key = _key_for(v, model, part)
      if key is None:
        continue
      if key not in stored:
        raise CheckpointError(
            f'checkpoint {path!r} does not fit this model: variable '
            f'{v.path} ({key}) is missing; it was written for another '
            'architecture (check --resnet_depth, --width_multiplier, '
            '--sk_ratio, --se_ratio, --proj_head_mode, --num_proj_layers).')
      if tuple(stored[key]) != tuple(v.shape):
        raise CheckpointError(
            f'checkpoint {path!r} does not fit this model: variable '
            f'{v.path} has shape {tuple(v.shape)} here but '
            f'{tuple(stored[key])} in the checkpoint (another '
            'architecture: check --resnet_depth, --width_multiplier, '
            '--sk_ratio, --se_ratio, --proj_out_dim).')


_KEY_CACHE = {}


def _key_for(variable, model, part):
  """The checkpoint key of ``variable`` when saved as model/<part>/..."""
  cache = _KEY_CACHE.get(id(model))
  if cache is None:
    cache = {}
    ckpt = tf.train.Checkpoint(model=model)
    for name, value in _object_paths(ckpt):
      cache[id(value)] = name
    _KEY_CACHE[id(model)] = cache
  return cache.get(id(variable))


def _object_paths(root):
  """(checkpoint key, variable) for every variable reachable from ``root``."""
  graph = tf.train.TrackableView(root)
  out = []
  frontier = [('', root)]
  seen = set()
  while frontier:
    prefix, obj = frontier.pop()
    if id(obj) in seen:
      continue
    seen.add(id(obj))
    for name, child in graph.children(obj).items():
      path = f'{prefix}{name}'
      if isinstance(child, tf.Variable):
        out.append((f'{path}/.ATTRIBUTES/VARIABLE_VALUE', child))
      else:
        frontier.append((f'{path}/', child))
  return out


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
  stored = dict(tf.train.list_variables(prefix))
  for v in model.supervised_head.variables:
    key = _key_for(v, model, 'supervised_head')
    if key not in stored or tuple(stored[key]) != tuple(v.shape):
      return False
  return True
