"""simclr_tf's own checkpoints and exports, read through the object graph.

A training checkpoint holds ``model`` and ``optimizer`` (slots and the step
counter ``optimizer.iterations``, which is the global step); an export's
``variables/`` keep the model under the same ``model`` attribute. Both are
restored object by object (``tf.train.Checkpoint(model=...).restore``);
this module checks shapes first, naming the variable that does not fit.
"""
from __future__ import annotations

import tensorflow as tf
from tensorflow.core.protobuf import trackable_object_graph_pb2

from simclr_tf.checkpoints.paths import CheckpointError
from simclr_tf.checkpoints.reader import open_reader


GRAPH_KEY = '_CHECKPOINTABLE_OBJECT_GRAPH'


def object_graph_keys(prefix: str) -> dict:
  """Object path (``model/encoder/...``) -> the key its variable is stored
  under, for every path through the checkpoint's object graph ({} when it
  has none).

  A variable is stored once, under the first path the saver found (often
  through the optimizer, or an export's variable list), so keys alone do
  not tell which model variable it is; the object graph does.
  """
  reader = open_reader(prefix)
  if not reader.has_tensor(GRAPH_KEY):
    return {}
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(reader.get_tensor(GRAPH_KEY))
  shapes = reader.get_variable_to_shape_map()
  found, frontier, seen = {}, [(0, '')], set()
  while frontier:
    node_id, path = frontier.pop()
    node = graph.nodes[node_id]
    for attr in node.attributes:
      if attr.name == 'VARIABLE_VALUE' and attr.checkpoint_key in shapes:
        found[path] = attr.checkpoint_key
    if node_id in seen:
      continue
    seen.add(node_id)
    for child in node.children:
      frontier.append((child.node_id, f'{path}/{child.local_name}'
                       if path else child.local_name))
  return found


def stored_variables(prefix: str) -> dict:
  """Object path -> stored shape, for every path (``object_graph_keys``)."""
  shapes = open_reader(prefix).get_variable_to_shape_map()
  return {path: tuple(shapes[key])
          for path, key in object_graph_keys(prefix).items()}


def model_paths(model) -> dict:
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
  stored, paths = stored_variables(path), model_paths(model)
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


def head_fits(prefix, model) -> bool:
  """The checkpoint holds a classifier of this model's shape."""
  stored, paths = stored_variables(prefix), model_paths(model)
  return all(stored.get(paths.get(id(v))) == tuple(v.shape)
             for v in model.supervised_head.variables)


def restore(prefix: str, model, parts) -> None:
  """Restores the named top layers of ``model`` (e.g. ``encoder``)."""
  layers = {name: getattr(model, name) for name in parts}
  status = tf.train.Checkpoint(model=tf.train.Checkpoint(**layers)).restore(
      prefix)
  status.expect_partial()
