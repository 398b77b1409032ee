"""Writing checkpoints: the CheckpointManager a training run saves with."""
from __future__ import annotations

import os
import re
import shutil
import tempfile

import tensorflow as tf

from simclr_tf.checkpoints.paths import (CHECKPOINT_NAME, state_names,
                                         complete_checkpoints)
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
    tf.compat.v1.train.update_checkpoint_state(
        model_dir, resume_from,
        all_model_checkpoint_paths=complete[:complete.index(resume_from) + 1]
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
