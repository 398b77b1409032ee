"""Cheap filesystem checks of a Config, run before any heavy work.

``preflight(config)`` looks at paths only: it creates, writes and imports
nothing (TensorFlow's ``tf.io.gfile`` is imported only for remote paths such
as ``gs://``). Each error names the flag, its value and what would be right.
"""
import os
import re

from simclr_tf.config import ConfigError

_STATE_FILE = 'checkpoint'  # written by tf.train.CheckpointManager
_STATE_PATH = re.compile(r'^model_checkpoint_path:\s*"(.*)"\s*$', re.M)
_CHECKPOINT_KINDS = ('a checkpoint prefix with a .index file, a directory '
                     "holding checkpoints (with a 'checkpoint' file), or a "
                     'SavedModel directory (saved_model.pb + variables/)')


def _remote(path):
  return '://' in path


def _gfile():
  import tensorflow as tf  # only for remote paths, e.g. gs://
  return tf.io.gfile


def _exists(path):
  return _gfile().exists(path) if _remote(path) else os.path.exists(path)


def _isdir(path):
  return _gfile().isdir(path) if _remote(path) else os.path.isdir(path)


def _read(path):
  if _remote(path):
    with _gfile().GFile(path) as f:
      return f.read()
  with open(path, encoding='utf-8', errors='replace') as f:
    return f.read()


def _latest_prefix(directory):
  """The newest checkpoint prefix the state file in ``directory`` names and
  whose ``.index`` exists, else None (as ``tf.train.latest_checkpoint``)."""
  state = os.path.join(directory, _STATE_FILE)
  if not _exists(state) or _isdir(state):
    return None
  match = _STATE_PATH.search(_read(state))
  if not match:
    return None
  prefix = match.group(1)
  if not (_remote(prefix) or os.path.isabs(prefix)):
    prefix = os.path.join(directory, prefix)
  return prefix if _exists(prefix + '.index') else None


def _nearest_existing(path):
  path = os.path.abspath(path)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return path


def _writable(path):
  return os.access(path, os.W_OK | os.X_OK)


def _check_creatable(flag, path, need_write=True):
  """``path`` is a writable directory or could be created as one."""
  if _remote(path):
    return  # checking would mean writing; the run reports it
  if os.path.exists(path):
    if not os.path.isdir(path):
      raise ConfigError(f'--{flag}={path} is a file, not a directory.')
    if need_write and not _writable(path):
      raise ConfigError(f'--{flag}={path} is not writable.')
    return
  parent = _nearest_existing(path)
  if not os.path.isdir(parent):
    raise ConfigError(f'--{flag}={path} cannot be created: {parent} is a '
                      'file, not a directory.')
  if not _writable(parent):
    raise ConfigError(f'--{flag}={path} cannot be created: no write '
                      f'permission in {parent}.')


def _check_checkpoint(path):
  """``--checkpoint`` names something a warm start can load."""
  if _exists(path + '.index'):
    return
  if not _isdir(path):
    raise ConfigError(f'--checkpoint={path} does not exist: expected '
                      f'{_CHECKPOINT_KINDS}.')
  if _exists(os.path.join(path, 'saved_model.pb')):
    if _exists(os.path.join(path, 'variables', 'variables.index')):
      return
    raise ConfigError(f'--checkpoint={path} is a SavedModel without '
                      'variables/variables.index: nothing to load.')
  if _latest_prefix(path) is None:
    raise ConfigError(f'--checkpoint={path} is a directory without a '
                      f'checkpoint: expected {_CHECKPOINT_KINDS}.')


def _has_checkpoint(model_dir):
  return _isdir(model_dir) and _latest_prefix(model_dir) is not None


def _check_needs_checkpoint(config):
  """Modes that start from a checkpoint have one to start from."""
  t, mode = config.train, config.mode
  if t.checkpoint or _has_checkpoint(t.model_dir):
    return
  where = f'--model_dir={t.model_dir} holds no checkpoint'
  if mode == 'export':
    raise ConfigError(f'--mode=export: {where}; give --checkpoint=PATH or '
                      'train first.')
  if mode == 'eval' and not t.eval_watch:
    raise ConfigError(f'--mode=eval: {where}; train first, give the '
                      'training --model_dir, or add --eval_watch to wait.')
  if mode in ('train', 'train_then_eval') and t.train_mode == 'finetune':
    raise ConfigError(f'--train_mode=finetune needs --checkpoint=PATH (a '
                      f'pretrained model) because {where} to resume: pass '
                      'the --model_dir of a pretraining run, one of its '
                      'ckpt-N prefixes or its saved_model/<step> export.')


def _check_data(data):
  """Local dataset paths and --data_dir exist."""
  for prefix in ('npz:', 'folder:'):
    if data.dataset.startswith(prefix):
      path = os.path.expanduser(data.dataset[len(prefix):])
      if not os.path.isdir(path):
        raise ConfigError(f'--dataset={data.dataset}: {path} is not a '
                          'directory.')
  if not data.data_dir:
    return
  data_dir = os.path.expanduser(data.data_dir)
  if data.dataset == 'builtin':  # a cache, created on first use
    _check_creatable('data_dir', data_dir, need_write=False)
  elif not _isdir(data_dir):
    raise ConfigError(f'--data_dir={data.data_dir} is not a directory '
                      '(TFDS data is read from it, never downloaded).')


def preflight(config) -> None:
  """Checks the paths of ``config`` (a ``simclr_tf.config.Config``).

  Raises:
    ConfigError: --model_dir cannot be created or written, --checkpoint
      holds nothing loadable, a mode needs a checkpoint that is missing,
      --data_dir or a npz:/folder: dataset path is missing.
  """
  _check_creatable('model_dir', config.train.model_dir)
  if config.train.checkpoint:
    _check_checkpoint(config.train.checkpoint)
  _check_needs_checkpoint(config)
  _check_data(config.data)
