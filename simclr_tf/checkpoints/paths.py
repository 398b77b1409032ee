"""Which checkpoint a run reads: path-level decisions, without TensorFlow.

The one owner of "which checkpoint or export does this mode read, and
where is its prefix". ``flags/preflight`` asks it before TensorFlow is
imported (``tf.io.gfile`` is imported only for remote paths such as
``gs://``); ``jobs`` and the ``Trainer`` ask it again once they run. What
*kind* the chosen prefix is (ours, our export, the original release's
checkpoint or export) is read from its keys by ``checkpoints.formats``.

Accepted ``--checkpoint`` paths: a checkpoint prefix (``.../ckpt-N``, with
its ``.index``), a directory holding checkpoints (a ``checkpoint`` state
file naming the newest complete one: ``tf.train.CheckpointManager``, ours
and the original's, writes it only after the checkpoint), a SavedModel
directory (``saved_model.pb`` + ``variables/``) or a directory of exported
versions (``<model_dir>/saved_model``: its newest all-digit version).
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Optional

from absl import logging

from simclr_tf import tasks
from simclr_tf.config import ConfigError

STATE_FILE = 'checkpoint'  # written by tf.train.CheckpointManager
CHECKPOINT_NAME = 'ckpt'  # training's checkpoints: <model_dir>/ckpt-<step>
_CKPT_FILE = re.compile(r'^ckpt-(\d+)\.(?:(index)|data-(\d+-of-\d+))$')
_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.M)
KINDS_TEXT = ('a checkpoint prefix with a .index file, a directory holding '
              "checkpoints (with a 'checkpoint' file), a SavedModel directory "
              '(saved_model.pb + variables/) or a directory of exported '
              'versions such as MODEL_DIR/saved_model')


class CheckpointError(ConfigError):
  """A checkpoint is missing or does not fit the model; says which."""


def is_remote(path) -> bool:
  """A path tf.io.gfile must open (gs://, hdfs:// ...)."""
  return '://' in path


def _gfile():
  import tensorflow as tf  # only for remote paths, e.g. gs://
  return tf.io.gfile


def exists(path):
  return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path):
  return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def _listdir(path):
  names = _gfile().listdir(path) if is_remote(path) else os.listdir(path)
  return [n.rstrip('/') for n in names]


def _read(path):
  if is_remote(path):
    with _gfile().GFile(path) as f:
      return f.read()
  with open(path, encoding='utf-8', errors='replace') as f:
    return f.read()


def complete_checkpoints(directory) -> list:
  """Prefixes of the ``ckpt-N`` checkpoints in ``directory`` whose
  ``.index`` and every data shard exist, oldest first (file names are
  matched exactly, never as patterns)."""
  steps = {}
  for name in _listdir(directory):
    match = _CKPT_FILE.match(name)
    if match:
      step, index, shards = match.groups()
      entry = steps.setdefault(int(step), {'index': False, 'data': set(),
                                           'shards': None})
      if index:
        entry['index'] = True
      else:
        shard, count = (int(x) for x in shards.split('-of-'))
        entry['data'].add(shard)
        entry['shards'] = count
  return [os.path.join(directory, f'{CHECKPOINT_NAME}-{step}')
          for step, e in sorted(steps.items())
          if e['index'] and e['shards'] is not None and
          e['data'] == set(range(e['shards']))]


def state_names(directory) -> Optional[str]:
  """The prefix the state file of ``directory`` names, or None when it is
  missing, empty or unreadable."""
  state = os.path.join(directory, STATE_FILE)
  if not exists(state) or isdir(state):
    return None
  match = _STATE_PATH.search(_read(state))
  if not match:
    return None
  prefix = match.group(1)
  if not (is_remote(prefix) or os.path.isabs(prefix)):
    prefix = os.path.join(directory, prefix)
  return prefix


def latest(directory, flag: str = 'model_dir',
           verify=None) -> Optional[str]:
  """The newest checkpoint of ``directory``: the one its state file names
  (``tf.train.CheckpointManager`` writes it after the checkpoint), or,
  when the state file is missing, garbled or names a checkpoint whose
  files are gone, the newest complete ``ckpt-N`` in it, with a warning
  (a run then resumes from it instead of starting over and overwriting
  it). None when there is no checkpoint.

  ``verify``: prefix -> None, or what is wrong with its bytes (e.g.
  ``checkpoints.reader.damage``); a damaged checkpoint is passed over,
  with a warning, for the newest older complete one that reads.

  Raises:
    CheckpointError: checkpoint files are there but none is complete, or
      every complete one is damaged.
  """
  if not directory or not isdir(directory):
    return None
  named = state_names(directory)
  complete = complete_checkpoints(directory)
  faults = []  # why the newest checkpoint is not the one used
  if named is not None and (named in complete or (
      not named.startswith(os.path.join(directory, CHECKPOINT_NAME + '-'))
      and exists(named + '.index'))):
    older = complete[:complete.index(named)] if named in complete else []
    candidates = [named] + older[::-1]
  else:
    candidates = complete[::-1]
    if complete:
      faults.append(f'the checkpoint state file in {directory} ' + (
          f'names {named}, whose files are incomplete or gone' if named
          else 'is missing, empty or unreadable'))
  damaged = []
  for prefix in candidates:
    fault = verify(prefix) if verify is not None else None
    if fault is None:
      if faults or damaged:
        why = '; '.join(faults + damaged)
        logging.warning('%s; using %s, the newest complete%s checkpoint%s.',
                        why[0].upper() + why[1:], prefix,
                        ' readable' if damaged else '',
                        ' (training overwrites the damaged files when it '
                        'reaches their step)' if damaged else '')
      return prefix
    damaged.append(f'{prefix} is damaged ({fault})')
  if damaged:
    raise CheckpointError(
        f'--{flag}={directory}: no checkpoint there can be read: ' +
        '; '.join(damaged) + '. Restore them from a copy, or move them '
        'away to start over.')
  leftovers = sorted(n for n in _listdir(directory) if _CKPT_FILE.match(n))
  if leftovers:
    raise CheckpointError(
        f'--{flag}={directory} holds checkpoint files but no complete '
        f'checkpoint (each needs its .index and every data shard): '
        f'{leftovers[:6]}. Restore the missing files, or move these away to '
        'start over.')
  return None


def saved_model_variables(path) -> Optional[str]:
  """``path/variables/variables`` if ``path`` is a SavedModel with them."""
  prefix = os.path.join(path, 'variables', 'variables')
  return prefix if exists(prefix + '.index') else None


def _newest_export(root) -> Optional[str]:
  """Variables of the newest ``root/<step>/`` version, or None (an export
  in progress or interrupted lives in a ``.tmp-*`` directory)."""
  steps = sorted((int(n) for n in _listdir(root) if n.isdigit()),
                 reverse=True)
  for step in steps:
    prefix = saved_model_variables(os.path.join(root, str(step)))
    if prefix:
      return prefix
  return None


def resolve(path: str, flag: str = 'checkpoint', verify=None) -> str:
  """The checkpoint prefix ``path`` stands for (see the module docstring).

  ``verify``: as for ``latest``; a damaged prefix or SavedModel named
  directly is refused, naming the fault.

  Raises:
    CheckpointError: nothing loadable at ``path``, saying what is there.
  """
  def checked(prefix):
    fault = verify(prefix) if verify is not None else None
    if fault:
      raise CheckpointError(f'--{flag}={path}: {prefix} is damaged ({fault})'
                            '; restore it from a copy or name another '
                            'checkpoint.')
    return prefix

  if exists(path + '.index'):
    return checked(path)
  if not isdir(path):
    raise CheckpointError(f'--{flag}={path} does not exist: expected '
                          f'{KINDS_TEXT}.')
  if exists(os.path.join(path, 'saved_model.pb')):
    found = saved_model_variables(path)
    if found:
      return checked(found)
    raise CheckpointError(f'--{flag}={path} is a SavedModel without '
                          'variables/variables.index: nothing to load.')
  found = latest(path, flag, verify)
  if found:
    return found
  found = _newest_export(path)
  if found:
    return checked(found)
  raise CheckpointError(f'--{flag}={path} is a directory without a '
                        f'checkpoint: expected {KINDS_TEXT}.')


@dataclasses.dataclass(frozen=True)
class Choice:
  """The checkpoint a run reads.

  prefix: what ``tf.train.load_checkpoint`` opens.
  role: 'resume' (the run's own newest checkpoint in --model_dir: model,
    optimizer and step), 'warm_start' (--checkpoint: the model only),
    'restore' (eval and export: the whole model).
  flag: the flag that named it ('model_dir' or 'checkpoint').
  """
  prefix: str
  role: str
  flag: str


def teacher(cfg, verify=None) -> Optional[str]:
  """The prefix of the model a training run distills (--teacher), or None
  when the run distills nothing (other modes; eval and export of a student
  read no teacher).

  Raises:
    CheckpointError: the mode needs a teacher and --teacher is missing or
      names nothing loadable.
  """
  t = cfg.train
  if (cfg.mode not in ('train', 'train_then_eval') or
      tasks.MODES[t.train_mode].needs != 'teacher'):
    return None
  if not t.teacher:
    raise CheckpointError(
        f'--train_mode={t.train_mode} needs --teacher=PATH, the classifier to'
        ' distill: the --model_dir of a --train_mode=finetune run, one of '
        'its ckpt-N prefixes or saved_model/<step> exports, or a fine-tuned '
        'checkpoint of the original SimCLR release.')
  return resolve(t.teacher, flag='teacher', verify=verify)


def choose(cfg, verify=None) -> Optional[Choice]:
  """The checkpoint ``cfg`` (a Config) reads, or None (a fresh run, or
  --eval_watch waiting for one). The rule for every mode:

  * train, train_then_eval: the run's own newest checkpoint (resume),
    else --checkpoint (warm start);
  * eval, export: --checkpoint when given, else the newest checkpoint in
    --model_dir. (``--eval_watch`` follows --model_dir; see jobs.)

  Raises:
    CheckpointError: a mode that needs a checkpoint has none, or
      --checkpoint names nothing loadable.
  """
  t, mode = cfg.train, cfg.mode
  own = latest(t.model_dir, verify=verify)
  given = resolve(t.checkpoint, verify=verify) if t.checkpoint else None
  if mode in ('train', 'train_then_eval'):
    if own:
      return Choice(own, 'resume', 'model_dir')
    if given:
      return Choice(given, 'warm_start', 'checkpoint')
    if tasks.MODES[t.train_mode].needs == 'checkpoint':
      raise CheckpointError(
          f'--train_mode={t.train_mode} needs --checkpoint=PATH (a pretrained '
          f'model) because --model_dir={t.model_dir} holds no checkpoint to '
          'resume: pass the --model_dir of a pretraining run, one of its '
          'ckpt-N prefixes, its saved_model/<step> export, or a checkpoint '
          'of the original SimCLR release (--train_mode=supervised trains '
          'from scratch).')
    return None
  if mode == 'eval' and t.eval_watch:
    return None
  if given or own:
    return Choice(given or own, 'restore',
                  'checkpoint' if given else 'model_dir')
  where = f'--model_dir={t.model_dir} holds no checkpoint'
  if mode == 'export':
    raise CheckpointError(f'--mode=export: {where}; give --checkpoint=PATH '
                          'or train first.')
  raise CheckpointError(f'--mode=eval: {where}; train first, give the '
                        'training --model_dir or --checkpoint=PATH, or add '
                        '--eval_watch to wait.')
