"""Checkpoints in the original SimCLR release's format, rebuilt from the
reference manifests (``../shared/reference/original_tf2``) with their
deterministic weights, as that folder's README describes."""
from __future__ import annotations

import json
import math
import os
import zlib

import numpy as np
import pytest

REFERENCE = os.path.normpath(os.path.join(
    os.path.dirname(__file__), '..', '..', '..', 'shared', 'reference',
    'original_tf2'))


def reference_path(*parts) -> str:
  """A file of the reference fixtures; skips the test when they are absent
  (a user's clone has no ``../shared``), unless CI requires them."""
  path = os.path.join(REFERENCE, *parts)
  if not os.path.exists(path):
    if os.environ.get('SIMCLR_REQUIRE_SHARED_DATA') == '1':
      raise FileNotFoundError(f'reference fixture missing: {path}')
    pytest.skip(f'reference fixtures not found at {REFERENCE}')
  return path


def det_value(key: str, shape) -> np.ndarray:
  """The fixture's value of checkpoint key ``key`` (README's rule)."""
  shape = tuple(int(s) for s in shape)
  rng = np.random.default_rng(zlib.crc32(key.encode('utf-8')))
  if 'moving_variance' in key or 'gamma' in key:
    v = rng.uniform(0.5, 1.5, shape)
  elif 'moving_mean' in key or 'beta' in key or 'bias' in key:
    v = rng.normal(0.0, 0.1, shape)
  else:
    fan_in = max(1, math.prod(shape[:-1]))
    v = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
  return v.astype(np.float32)


def manifest(name: str) -> list:
  """Rows (key, dtype, shape, part or variable name, ...) of a manifest."""
  with open(reference_path('manifests', name)) as f:
    rows = [line.rstrip('\n').split('\t') for line in f][1:]
  return rows


def _save(prefix, values: dict):
  import tensorflow as tf
  names = sorted(values)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[''] * len(names),
                    tensors=[tf.constant(values[n]) for n in names])


def write_checkpoint(model: str, directory: str, step: int = 1,
                     overrides=None, drop=()) -> str:
  """The original's training checkpoint of model 'A', 'B' or 'C' (slots
  zero) in ``directory`` (any path tf.io.gfile writes) with its
  ``checkpoint`` state file; returns the prefix. ``overrides``: key ->
  value replacing the rule's value; ``drop``: keys left out."""
  import tensorflow as tf
  values = {}
  for key, _, shape, part, _ in manifest(f'{model}.tsv'):
    shape = json.loads(shape)
    if part == 'model':
      values[key] = det_value(key, shape)
    elif part == 'optimizer':
      values[key] = np.zeros(shape, np.float32)
    elif key.startswith(('global_step', 'save_counter')):
      values[key] = np.array(step if 'global' in key else 1, np.int64)
  values.update(overrides or {})
  for key in drop:
    del values[key]
  tf.io.gfile.makedirs(directory)
  prefix = os.path.join(directory, f'ckpt-{step}')
  _save(prefix, values)
  with tf.io.gfile.GFile(os.path.join(directory, 'checkpoint'), 'w') as f:
    f.write(f'model_checkpoint_path: "ckpt-{step}"\n'
            f'all_model_checkpoint_paths: "ckpt-{step}"\n')
  return prefix


def write_export_variables(directory: str) -> str:
  """Model A's SavedModel ``variables/variables`` (keys of the original's
  export, values of the training keys they stand for) plus an empty
  ``saved_model.pb``; returns the variables prefix."""
  values = {}
  for key, _, shape, _, train_key in manifest('A_saved_model_variables.tsv'):
    if train_key:
      values[key] = det_value(train_key, json.loads(shape))
  os.makedirs(os.path.join(directory, 'variables'), exist_ok=True)
  open(os.path.join(directory, 'saved_model.pb'), 'wb').close()
  prefix = os.path.join(directory, 'variables', 'variables')
  _save(prefix, values)
  return prefix


def expected(name: str):
  """An ``expected/*.npz`` of the fixtures."""
  return np.load(reference_path('expected', name), allow_pickle=False)


def _tree(paths_to_values: dict):
  """Nested tf.train.Checkpoint objects whose child names are the path
  components (so saved object paths equal the given paths)."""
  import tensorflow as tf
  nested = {}
  for path, value in paths_to_values.items():
    node = nested
    *parents, leaf = path.split('/')
    for part in parents:
      node = node.setdefault(part, {})
    node[leaf] = value

  def build(node):
    return tf.train.Checkpoint(**{k: build(v) if isinstance(v, dict) else v
                                  for k, v in node.items()})
  return build(nested)


def write_export_with_graph(directory: str) -> str:
  """Model A's export as the original writes it, object graph included:
  the variables reachable as ``trainable_variables_list/<i>`` (stored
  there), ``model/<layer>/variables/<j>`` and their training paths
  ``model/resnet_model/...``. Returns the variables prefix."""
  import tensorflow as tf
  suffix = '/.ATTRIBUTES/VARIABLE_VALUE'
  rows = [r for r in manifest('A_saved_model_variables.tsv') if r[4]]
  variables = {train_key: tf.Variable(det_value(train_key, json.loads(shape)))
               for _, _, shape, _, train_key in rows}
  listed = {key.removesuffix(suffix): variables[train_key]
            for key, *_, train_key in rows}
  training = {k.removesuffix(suffix): v for k, v in variables.items()}
  # The saver stores each variable under the shortest path that reaches it
  # (breadth first): trainable_variables_list/<i> (depth 2), else
  # model/<layer>/variables/<j> (depth 4), as in the original's export.
  root = _tree({**listed, **training})
  os.makedirs(os.path.join(directory, 'variables'), exist_ok=True)
  open(os.path.join(directory, 'saved_model.pb'), 'wb').close()
  prefix = os.path.join(directory, 'variables', 'variables')
  root.write(prefix)
  return prefix
