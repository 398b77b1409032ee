"""The kind of a checkpoint prefix, read from its keys."""
from __future__ import annotations


from simclr_tf.checkpoints import original, ours
from simclr_tf.checkpoints.paths import CheckpointError
from simclr_tf.checkpoints.reader import open_reader

OURS = 'simclr_tf checkpoint'
OURS_EXPORT = 'simclr_tf export'
ORIGINAL = 'original release checkpoint'
ORIGINAL_EXPORT = 'original release export'
ORIGINAL_KINDS = (ORIGINAL, ORIGINAL_EXPORT)
_GRAPH = ours.GRAPH_KEY


def shapes_of(prefix: str) -> dict:
  """Key -> shape of every tensor stored at ``prefix``."""
  return open_reader(prefix).get_variable_to_shape_map()


def detect(prefix: str) -> str:
  """One of OURS, OURS_EXPORT, ORIGINAL, ORIGINAL_EXPORT.

  Raises:
    CheckpointError: the keys are of neither project.
  """
  shapes = shapes_of(prefix)
  if original.is_checkpoint(shapes):
    return ORIGINAL
  if original.is_export(shapes):
    return ORIGINAL_EXPORT
  if _GRAPH in shapes and any(path.startswith('model/encoder/') for path in
                              ours.stored_variables(prefix)):
    return OURS_EXPORT if prefix.endswith('variables/variables') else OURS
  sample = sorted(k for k in shapes if k != _GRAPH)[:3]
  raise CheckpointError(
      f'{prefix!r} is neither a simclr_tf checkpoint nor one of the original '
      f'SimCLR release (no model/encoder/... or model/resnet_model/... '
      f'variables; its keys start {sample}).')


def training_style_shapes(prefix: str, kind: str):
  """Training-checkpoint key -> shape for an original checkpoint, or an
  original export that carries its object graph (a real one does); None
  when the export's keys are positions only."""
  shapes = shapes_of(prefix)
  if kind == ORIGINAL:
    return shapes
  keys = original.training_keys_of_export(prefix)
  return {train_key: shapes[key] for train_key, key in keys.items()} or None
