"""Writing checkpoints: the CheckpointManager a training run saves with."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from simclr_tf.checkpoints.paths import (CHECKPOINT_NAME, STATE_FILE,
                                         complete_checkpoints, state_names)
from simclr_tf.checkpoints.reader import open_reader

STEP_KEY = 'optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE'
# Where a save in progress writes (TF's sharded save), left by a failed one.
_PARTIAL = re.compile(rf'^{CHECKPOINT_NAME}-\d+_temp$')


def remove_partial(model_dir: str) -> list:
  """Removes the temporary directories a failed or killed checkpoint save
  left in ``model_dir`` (``ckpt-N_temp``); returns their paths."""
  if not os.path.isdir(model_dir):
    return []
  found = [os.path.join(model_dir, n) for n in sorted(os.listdir(model_dir))
           if _PARTIAL.match(n)]
  for path in found:
    shutil.rmtree(path, ignore_errors=True)
  return found


def _write_state(model_dir: str, prefixes: list) -> None:
  """Writes the state file CheckpointManager reads (a text CheckpointState):
  the last of ``prefixes`` is the newest, all are kept count of. Written
  atomically, as the manager itself does."""
  names = [os.path.relpath(p, model_dir) if p.startswith(model_dir) else p
           for p in prefixes]
  lines = [f'model_checkpoint_path: {json.dumps(names[-1])}'] + [
      f'all_model_checkpoint_paths: {json.dumps(n)}' for n in names]
  state = os.path.join(model_dir, STATE_FILE)
  with tf.io.gfile.GFile(state + '.tmp', 'w') as f:
    f.write('\n'.join(lines) + '\n')
  tf.io.gfile.rename(state + '.tmp', state, overwrite=True)


def make_manager(model, optimizer, model_dir: str, max_to_keep: int, *,
                 chief: bool = True,
                 resume_from=None) -> tf.train.CheckpointManager:
  """CheckpointManager over {model, optimizer} in ``model_dir``.

  ``resume_from``: the checkpoint the run resumes from
  (``paths.latest``); when the state file does not name it (garbled,
  empty, or naming a checkpoint whose files are gone), the state file is
  rewritten to list the complete checkpoints, so the manager resumes from
  it and keeps counting them for ``max_to_keep``.

  Non-chief workers of a multi-worker run must save too (the save is a
  collective); they write to a private temporary directory.
  """
  if chief:
    remove_partial(model_dir)
  if chief and resume_from and state_names(model_dir) != resume_from:
    complete = complete_checkpoints(model_dir)
    _write_state(model_dir, complete[:complete.index(resume_from) + 1]
                 if resume_from in complete else [resume_from])
  directory = model_dir if chief else tempfile.mkdtemp(prefix='simclr_ckpt_')
  ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
  return tf.train.CheckpointManager(ckpt, directory, max_to_keep=max_to_keep,
                                    checkpoint_name=CHECKPOINT_NAME)


def step_of(prefix: str) -> int:
  """Global step stored in a checkpoint: ours (the optimizer's iterations)
  or the original release's (``global_step``); 0 if it has none."""
  reader = open_reader(prefix)
  for key in (STEP_KEY, 'global_step/.ATTRIBUTES/VARIABLE_VALUE'):
    if reader.has_tensor(key):
      return int(reader.get_tensor(key))
  return 0
