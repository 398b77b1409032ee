"""Versioned, atomic SavedModel exports: ``model_dir/saved_model/<step>/``.

``export_model(model, model_dir, step, cfg)`` is the ``export_fn`` that
``simclr_tf.jobs`` calls at the end of training, at every checkpoint
(``--export_every_checkpoint``) and for ``--mode=export``. It

1. writes the SavedModel into ``saved_model/.tmp-<step>-<host>-<pid>/`` (a
   name that is never all digits, so TF Serving and ``list_versions`` skip
   it),
2. checks it is complete (``saved_model.pb`` and ``variables/``),
3. renames it to ``saved_model/<step>/``. Re-exporting a step that exists
   replaces it: the old one is renamed aside, the new one renamed in, the
   old one deleted. A reader never sees a partial version directory, though
   it can find the step missing for the instant between the two renames.
4. deletes all but the ``keep_hub_module_max`` newest versions (0 = keep
   all); the version just written is always kept.

An interrupted export leaves the previous versions complete and the newest
of them newest. What it leaves behind is deleted on exceptions; after a kill
the next export into the same root cleans it up: a ``.tmp-*`` directory is
deleted, and a complete version moved aside to ``.old-<step>-*`` just before
a kill is renamed back to ``<step>`` if that is missing (else deleted).
Only leftovers of processes that ran on this host and are gone are touched;
other hosts' stay. On object stores (``gs://``) renames are copies, so
step 3 is not atomic there.
"""
from __future__ import annotations

import json
import os
import re
import socket

import tensorflow as tf
from absl import logging

from export.module import (SIGNATURE_NAMES, ExportModule,
                           eval_crop_proportion)
from simclr_tf import precision
from simclr_tf.models import param_sets
from simclr_tf.optim import weight_decay_loss

EXPORT_SUBDIR = 'saved_model'
FORMAT = 'simclr_tf export v1'  # assets.extra/simclr_export.json 'format'
METADATA_FILE = os.path.join('assets.extra', 'simclr_export.json')
_VERSION = re.compile(r'^\d+$')
# What write_version leaves when killed: .tmp-<step>-<host>-<pid>, .old-...
_LEFTOVER = re.compile(r'^\.(tmp|old)-(\d+)-(.+)-(\d+)$')


class ExportError(ValueError):
  """Bad export arguments or an incomplete export; says which."""


def export_dir(model_dir: str) -> str:
  """Where versions live: ``model_dir/saved_model``."""
  return os.path.join(model_dir, EXPORT_SUBDIR)


def list_versions(root: str) -> list:
  """Steps of the complete-looking version directories under ``root``,
  ascending (names that are all digits)."""
  if not tf.io.gfile.isdir(root):
    return []
  names = [n.rstrip('/') for n in tf.io.gfile.listdir(root)]
  return sorted(int(n) for n in names if _VERSION.match(n)
                and tf.io.gfile.isdir(os.path.join(root, n)))


def latest_export(model_dir: str):
  """Path of the newest export in ``model_dir``, or None."""
  versions = list_versions(export_dir(model_dir))
  return (os.path.join(export_dir(model_dir), str(versions[-1]))
          if versions else None)


def build_module(model, *, image_size: int, crop_proportion: float = 0.875,
                 optim_cfg=None) -> ExportModule:
  """The exported module for ``model`` (see ``export.module``).

  ``optim_cfg`` (an ``OptimConfig``) sets ``regularization_losses`` to the
  explicit L2 term training added to its loss
  (``simclr_tf.optim.weight_decay_loss``): ``weight_decay * sum(l2_loss)``
  over the supervised head's kernel for LARS (which decays the encoder
  inside the optimizer), over every non-BatchNorm weight for
  momentum/Adam/LAMB. Empty for AdamW (decoupled decay), a zero weight
  decay, or no ``optim_cfg``.
  """
  regularization = None
  if optim_cfg is not None and optim_cfg.optimizer != 'adamw' and (
      optim_cfg.weight_decay > 0):
    variables, sets = model.trainable_variables, param_sets(model)

    def regularization():
      return weight_decay_loss(variables, optim_cfg, sets)
  return ExportModule(
      model, image_size=image_size,
      crop_proportion=eval_crop_proportion(image_size, crop_proportion),
      regularization=regularization)


def write_saved_model(module: ExportModule, path: str) -> tuple:
  """``tf.saved_model.save`` of ``module`` with its signatures at ``path``;
  returns the output keys."""
  keys = module.trace()
  tf.saved_model.save(module, path, signatures=module.signatures())
  return keys


def _check_complete(path: str) -> None:
  for name in ('saved_model.pb', os.path.join('variables',
                                               'variables.index')):
    if not tf.io.gfile.exists(os.path.join(path, name)):
      raise ExportError(f'export at {path!r} is incomplete: {name} is '
                        'missing after tf.saved_model.save returned.')


def _rmtree(path: str) -> None:
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)


def _move_into_place(tmp: str, final: str, aside: str) -> None:
  """Renames ``tmp`` to ``final``, replacing an existing ``final``."""
  if tf.io.gfile.exists(final):
    _rmtree(aside)
    tf.io.gfile.rename(final, aside)
    tf.io.gfile.rename(tmp, final)
    _rmtree(aside)
  else:
    tf.io.gfile.rename(tmp, final)


def _is_dead(host: str, pid: int) -> bool:
  """True if process ``pid`` of this host is gone (other hosts: unknown)."""
  if host != socket.gethostname():
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return True
  except OSError:  # e.g. PermissionError: it exists, owned by another user.
    return False
  return False


def clean_leftovers(root: str) -> list:
  """Removes what killed exports left in ``root`` (module docstring);
  returns the names it removed or renamed back."""
  if not tf.io.gfile.isdir(root):
    return []
  cleaned = []
  for name in sorted(n.rstrip('/') for n in tf.io.gfile.listdir(root)):
    match = _LEFTOVER.match(name)
    if not match or not _is_dead(match.group(3), int(match.group(4))):
      continue
    path, version = os.path.join(root, name), os.path.join(root,
                                                           match.group(2))
    if match.group(1) == 'old' and not tf.io.gfile.exists(version):
      tf.io.gfile.rename(path, version)  # the version a kill left aside
    else:
      _rmtree(path)
    cleaned.append(name)
  return cleaned


def write_version(module: ExportModule, root: str, step: int,
                  metadata=None) -> str:
  """Writes ``root/<step>/`` via a temporary directory; returns its path.

  First cleans up what killed exports left in ``root``.
  """
  tf.io.gfile.makedirs(root)
  clean_leftovers(root)
  final = os.path.join(root, str(step))
  owner = f'{socket.gethostname()}-{os.getpid()}'
  tmp = os.path.join(root, f'.tmp-{step}-{owner}')
  aside = os.path.join(root, f'.old-{step}-{owner}')
  _rmtree(tmp)
  try:
    keys = write_saved_model(module, tmp)
    if metadata is not None:
      tf.io.gfile.makedirs(os.path.join(tmp, 'assets.extra'))
      with tf.io.gfile.GFile(os.path.join(tmp, METADATA_FILE), 'w') as f:
        json.dump({**metadata, 'outputs': list(keys)}, f, indent=2,
                  sort_keys=True)
    _check_complete(tmp)
    _move_into_place(tmp, final, aside)
  except BaseException:
    _rmtree(tmp)
    raise
  return final


def prune_versions(root: str, keep_max: int, keep=()) -> list:
  """Deletes all but the ``keep_max`` newest versions (0 = none deleted)
  and never those in ``keep``; returns the deleted steps."""
  if keep_max == 0:
    return []
  versions = list_versions(root)
  doomed = [v for v in versions[:-keep_max] if v not in keep]
  for step in doomed:
    _rmtree(os.path.join(root, str(step)))
  return doomed


def _check_args(step, keep_max, image_size):
  if isinstance(step, bool) or not isinstance(step, int) or step < 0:
    raise ExportError(f'step={step!r} is invalid: must be an int >= 0 (the '
                      'global step names the version directory).')
  if isinstance(keep_max, bool) or not isinstance(keep_max, int) or (
      keep_max < 0):
    raise ExportError(f'keep_max={keep_max!r} is invalid: must be an int '
                      '>= 0 (0 keeps every export).')
  if image_size is None:
    raise ExportError('image_size=None: pass cfg (its model.image_size) or '
                      'image_size= to export_model.')


def existing_version(model_dir: str, step: int):
  """``saved_model/<step>/`` if it holds a complete export of this format
  (``FORMAT``), else None."""
  path = os.path.join(export_dir(model_dir), str(step))
  meta = os.path.join(path, METADATA_FILE)
  try:
    _check_complete(path)
    with tf.io.gfile.GFile(meta) as f:
      found = json.load(f)
  except (ExportError, tf.errors.OpError, OSError, ValueError):
    return None
  return path if (found.get('format') == FORMAT and
                  found.get('global_step') == step) else None


def export_model(model, model_dir: str, step, cfg=None, *, keep_max=None,
                 image_size=None, skip_existing: bool = False) -> str:
  """Exports ``model`` to ``model_dir/saved_model/<step>/``; returns the path.

  The export computes in float32 whatever policy ``model`` trained under
  (``precision.float32_compute``).

  Args:
    model: a built ``SimCLRModel``.
    model_dir: the run's directory.
    step: global step (int >= 0), the version number.
    cfg: the run's ``Config``: image size, eval crop, weight decay for
      ``regularization_losses`` and ``train.keep_hub_module_max``.
    keep_max: overrides ``cfg.train.keep_hub_module_max`` (0 keeps all;
      without cfg the default keeps all).
    image_size: overrides ``cfg.model.image_size`` (needed without cfg).
    skip_existing: when ``saved_model/<step>/`` already holds a complete
      export of this format, keep it and return its path (a finished run's
      rerun); otherwise a step's export is rewritten.
  """
  if hasattr(step, '__index__') and not isinstance(step, bool):
    step = int(step)  # numpy / tf integer scalars
  if keep_max is None:
    keep_max = cfg.train.keep_hub_module_max if cfg is not None else 0
  if image_size is None and cfg is not None:
    image_size = cfg.model.image_size
  _check_args(step, keep_max, image_size)
  if skip_existing:
    path = existing_version(model_dir, step)
    if path is not None:
      logging.info('Step %d is already exported to %s; not rewritten '
                   '(--mode=export rewrites it).', step, path)
      return path
  crop = cfg.augment.eval_crop_proportion if cfg is not None else 0.875
  module = build_module(model, image_size=image_size, crop_proportion=crop,
                        optim_cfg=cfg.optim if cfg is not None else None)
  root = export_dir(model_dir)
  with precision.float32_compute(model):
    path = write_version(module, root, step,
                         metadata=_metadata(module, step, cfg, image_size))
  prune_versions(root, keep_max, keep=(step,))
  logging.info('Exported SavedModel to %s', path)
  return path


def _metadata(module, step, cfg, image_size) -> dict:
  """What ``assets.extra/simclr_export.json`` records about an export."""
  return {
      'format': FORMAT,
      'global_step': step,
      'image_size': image_size,
      'eval_crop_proportion': module.crop_proportion,
      'signatures': list(SIGNATURE_NAMES),
      'num_variables': len(module.variables),
      'num_trainable_variables': len(module.trainable_variables),
      'num_regularization_losses': len(module.regularization_losses),
      'config': cfg.to_dict() if cfg is not None else None,
  }
