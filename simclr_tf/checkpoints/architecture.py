"""The model a checkpoint fixes: architecture fields the user did not give
are taken from it, those given are checked against it.

* The original release's checkpoints (and exports that carry their object
  graph) fix the architecture through their shapes
  (``original.infer_architecture``); a given flag that disagrees stops the
  run with one line naming the flag, its value and the checkpoint's.
* simclr_tf's own checkpoints and exports: the run's ``config.json`` (the
  checkpoint's directory, or the export's ``simclr_export.json``) supplies
  the fields not given; shapes are then checked by ``load.check`` as before.

What is taken lands in the Config, so ``config.json`` records it and a
resume, an evaluation or an export rebuilds the same model.
"""
from __future__ import annotations

import dataclasses
import math
import os

from absl import logging

from simclr_tf import rundir
from simclr_tf.checkpoints import formats, original
from simclr_tf.checkpoints.paths import CheckpointError, Choice
from simclr_tf.config import TrainConfig, head_layers

# ModelConfig fields that decide variables' shapes or the computation.
ARCHITECTURE = ('resnet_depth', 'width_multiplier', 'cifar_stem', 'sk_ratio',
                'se_ratio', 'group1_projection', 'proj_head_mode',
                'num_proj_layers', 'proj_out_dim', 'probe_input_norm')
_HEAD = ('proj_head_mode', 'num_proj_layers')


def _given(cfg, name) -> bool:
  """Whether the user set ``name`` (a library caller sets everything)."""
  return cfg.given_flags is None or name in cfg.given_flags


def _stored_config(prefix: str) -> dict:
  """Config (as a dict) of the simclr_tf run that wrote ``prefix``, or {}."""
  if prefix.endswith(os.path.join('variables', 'variables')):
    export = os.path.dirname(os.path.dirname(prefix))
    meta = rundir.read_json(os.path.join(export, 'assets.extra',
                                   'simclr_export.json'))
    config = (meta or {}).get('config')
  else:
    config = rundir.read_json(os.path.join(os.path.dirname(prefix), 'config.json'))
  return config or {}


def _our_model_fields(prefix: str):
  """ModelConfig of the simclr_tf run that wrote ``prefix``, or None."""
  return _stored_config(prefix).get('model')


def _same(a, b) -> bool:
  if isinstance(a, float) or isinstance(b, float):
    return a is not None and b is not None and math.isclose(a, b,
                                                            rel_tol=1e-6)
  return a == b


def _mismatch(flag, value, name, stored, prefix):
  shown = str(value).lower() if isinstance(value, bool) else value
  return CheckpointError(
      f'--{flag}={shown} does not match the checkpoint {prefix!r}, which '
      f'holds {name}={stored!r}; drop the flag to use the checkpoint\'s '
      'value, or give another checkpoint.')


def _check_given(cfg, found: dict, prefix: str) -> None:
  """Every architecture flag the user gave agrees with ``found``."""
  model = cfg.model
  for name in ARCHITECTURE:
    if name in _HEAD or name == 'probe_input_norm' or not _given(cfg, name):
      continue
    mine = model.uses_cifar_stem if name == 'cifar_stem' else getattr(
        model, name)
    if not _same(mine, found[name]):
      raise _mismatch(name, getattr(model, name), name, found[name], prefix)
  given_head = [n for n in _HEAD if _given(cfg, n)]
  stored_layers = head_layers(found['proj_head_mode'],
                              found['num_proj_layers'])
  if given_head and model.num_head_layers != stored_layers:
    raise _mismatch(given_head[0], getattr(model, given_head[0]),
                    'projection head layers', stored_layers, prefix)


def _merge(cfg, found: dict, names):
  """cfg with ``found``'s ``names`` fields where the user gave none."""
  changes = {n: found[n] for n in names
             if found.get(n) is not None and not _given(cfg, n)}
  if (not _given(cfg, 'image_size') and 'image_size' not in changes and
      changes.get('cifar_stem') is False and cfg.model.image_size <= 32):
    changes['image_size'] = 224  # an ImageNet-stem network's input
  if not changes:
    return cfg, {}
  model = dataclasses.replace(cfg.model, **changes)
  return dataclasses.replace(cfg, model=model), changes


def resolve_architecture(cfg, choice, *, num_classes_from_checkpoint=False):
  """``cfg`` completed (and checked) by the checkpoint ``choice`` reads.

  Args:
    cfg: a Config.
    choice: a ``paths.Choice`` or None.
    num_classes_from_checkpoint: take the classifier's size from the
      checkpoint (``--mode=export``, which reads no labels).

  Raises:
    CheckpointError: a given architecture flag disagrees with an original
      checkpoint.
  """
  if choice is None:
    return cfg
  kind = formats.detect(choice.prefix)
  if kind in formats.ORIGINAL_KINDS:
    shapes = formats.training_style_shapes(choice.prefix, kind)
    if shapes is None:
      logging.info('%s: an original export without its object graph; the '
                   'architecture comes from the flags.', choice.prefix)
      return cfg
    found = original.infer_architecture(shapes)
    _check_given(cfg, found, choice.prefix)
  else:
    found = _our_model_fields(choice.prefix)
    if not found:
      return cfg
  # Our runs also record the image size they trained at.
  names = ARCHITECTURE + (() if kind in formats.ORIGINAL_KINDS
                          else ('image_size',))
  cfg, changes = _merge(cfg, found, names)
  if num_classes_from_checkpoint and found.get('num_classes'):
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, num_classes=found['num_classes']))
  if changes:
    logging.info('Architecture from %s (%s): %s', choice.prefix, kind,
                 ', '.join(f'{k}={v}' for k, v in sorted(changes.items())))
  return cfg


def checkpoint_config(cfg, prefix: str, flag: str = 'teacher'):
  """The Config of the model ``prefix`` holds, for building it as it was
  trained (a teacher to distill): every architecture field, the number of
  classes and (simclr_tf runs) the image size from the checkpoint, and the
  training mode that wrote it (its heads follow from the mode; the original
  release's checkpoints count as fine-tuned). Other fields come from
  ``cfg``, whose flags do not apply to this model.
  """
  bare = dataclasses.replace(cfg, given_flags=())
  resolved = resolve_architecture(bare, Choice(prefix, 'restore', flag),
                                  num_classes_from_checkpoint=True)
  stored = _stored_config(prefix).get('train', {})
  train = TrainConfig(
      train_mode=stored.get('train_mode', 'finetune'),
      lineareval_while_pretraining=stored.get('lineareval_while_pretraining',
                                              True))
  return dataclasses.replace(resolved, train=train)
