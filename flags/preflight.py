"""Cheap filesystem checks of a Config, run before any heavy work.

``preflight(config)`` looks at paths only: it creates, writes and imports
nothing (TensorFlow's ``tf.io.gfile`` is imported only for remote paths such
as ``gs://``). Each error names the flag, its value and what would be right.
"""
import json
import os

from simclr_tf import footprint, tasks
from simclr_tf.checkpoints import paths
from simclr_tf.config import ConfigError

def _nearest_existing(path):
  path = os.path.abspath(path)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  return path


def _writable(path):
  return os.access(path, os.W_OK | os.X_OK)


def _check_creatable(flag, path, need_write=True):
  """``path`` is a writable directory or could be created as one."""
  if paths.is_remote(path):
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


# What a run writes as directories in --model_dir: export/saved_model.py's
# EXPORT_SUBDIR and simclr_tf/rundir.py's summary directories (a test holds
# these names equal to theirs; both modules import TensorFlow).
RUN_SUBDIRS = ('saved_model', 'train', 'eval')
_WHAT = {'saved_model': 'its exports', 'train': 'training summaries',
         'eval': 'evaluation summaries and Projector files'}


def _check_run_subdirs(model_dir):
  """Nothing the run writes as a directory is a file in ``model_dir``."""
  if paths.is_remote(model_dir) or not os.path.isdir(model_dir):
    return
  for name in sorted(os.listdir(model_dir)):
    path = os.path.join(model_dir, name)
    if (name in RUN_SUBDIRS or name.startswith('eval_')) and (
        not os.path.isdir(path)):
      raise ConfigError(
          f'--model_dir={model_dir}: {path} is a file, but the run writes a '
          f'directory of that name ({_WHAT.get(name, _WHAT["eval"])}); '
          'move the file away.')


def _processes(runtime) -> int:
  """Processes the global batch is split over (multi_worker: TF_CONFIG's
  workers; otherwise one)."""
  if runtime.strategy != 'multi_worker':
    return 1
  try:
    return max(1, len(json.loads(os.environ['TF_CONFIG'])['cluster']
                      ['worker']))
  except (KeyError, ValueError, TypeError):
    return 1  # the strategy reports a bad TF_CONFIG


def _check_memory(config, total=None):
  """A training step fits in this machine's memory (CPU training; an
  accelerator's memory is not known here)."""
  rt, m, t = config.runtime, config.model, config.train
  if (config.mode not in ('train', 'train_then_eval') or rt.tpu_name or
      rt.strategy == 'tpu' or os.path.exists('/dev/nvidia0')):
    return
  total = total or footprint.memory_total()
  if total is None:
    return
  why = footprint.refusal(
      m.resnet_depth, m.width_multiplier, m.image_size,
      max(1, t.train_batch_size // _processes(rt)),
      tasks.MODES[t.train_mode].views, m.uses_cifar_stem, total)
  if why:
    raise ConfigError(
        f'--image_size={m.image_size} with --train_batch_size='
        f'{t.train_batch_size}, --resnet_depth={m.resnet_depth}, '
        f'--width_multiplier={m.width_multiplier:g}: {why}')


def _check_data(data):
  """Local dataset paths and --data_dir exist."""
  for prefix in ('npz:', 'folder:'):
    if data.dataset.startswith(prefix):
      path = os.path.expanduser(data.dataset[len(prefix):])
      if not os.path.isdir(path):
        raise ConfigError(f'--dataset={data.dataset}: {path} is not a '
                          'directory.')
  if data.data_dir:
    data_dir = os.path.expanduser(data.data_dir)
    if data.dataset == 'builtin':  # a cache, created on first use
      _check_creatable('data_dir', data_dir, need_write=False)
    elif not paths.isdir(data_dir):
      raise ConfigError(f'--data_dir={data.data_dir} is not a directory '
                        '(TFDS data is read from it, never downloaded).')
  _check_tfds_prepared(data)


def tfds_data_dir(data_dir) -> str:
  """Where TFDS reads prepared data: --data_dir, else $TFDS_DATA_DIR, else
  ~/tensorflow_datasets (TFDS's own default)."""
  return os.path.expanduser(data_dir or os.environ.get(
      'TFDS_DATA_DIR', '~/tensorflow_datasets'))


def _check_tfds_prepared(data):
  """A TFDS name must have its prepared folder (``<data_dir>/<name>/``,
  e.g. ``cifar10/3.0.2/``) locally: found in a second here, instead of
  after importing TFDS and asking its catalogue (~23 s)."""
  name = data.dataset
  if name == 'builtin' or name.startswith(('npz:', 'folder:')):
    return
  root = tfds_data_dir(data.data_dir)
  if paths.is_remote(root):
    return  # TFDS checks it (listing a bucket here would be slow)
  if not os.path.isdir(os.path.join(root, *name.split(':')[0].split('/'))):
    raise ConfigError(
        f'--dataset={name}: no prepared TFDS dataset of that name in '
        f'--data_dir={root} (simclr_tf reads TFDS data and never downloads '
        f'it). If it is a TFDS name, run `tfds build {name} --data_dir=DIR` '
        'where there is network and pass --data_dir=DIR; otherwise use '
        'builtin, npz:PATH or folder:PATH.')


def preflight(config) -> None:
  """Checks the paths of ``config`` (a ``simclr_tf.config.Config``).

  Raises:
    ConfigError: --model_dir cannot be created or written (or holds a file
      where the run writes a directory), --checkpoint
      holds nothing loadable, a mode needs a checkpoint that is missing,
      --train_mode=distill has no loadable --teacher,
      --data_dir or a npz:/folder: dataset path is missing, or a
      training step cannot fit in this machine's memory.
  """
  _check_creatable('model_dir', config.train.model_dir)
  _check_run_subdirs(config.train.model_dir)
  paths.choose(config)  # the checkpoint the mode reads exists
  paths.teacher(config)  # and the model it distills
  _check_data(config.data)
  _check_memory(config)
