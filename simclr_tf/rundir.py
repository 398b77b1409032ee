"""The run directory (``--model_dir``): the one owner of what a run writes
there besides checkpoints (``checkpoints``) and exports (``export/``).

  config.json               the run's Config, written before training
  result_<step>.json        every evaluation's scalars at that step, merged
  result.json               the newest evaluated step's result_<step>.json
  train/, eval[_<name>]/    TensorBoard summaries (``train/...``,
                            ``eval/...`` tags; README "TensorBoard")
  eval[_<name>]/projector/  TensorBoard Projector files (``write_projector``)

Only the chief writes: on other workers every method is a no-op, so callers
need no ``if chief``. JSON is written atomically (a temporary file renamed
over the old one), so a reader never sees half a file.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

from simclr_tf.config import Config


def write_json(path: str, obj) -> None:
  """Writes JSON atomically (temp file, then rename)."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def read_json(path: str) -> Optional[dict]:
  """The JSON object in ``path``, or None if there is no such file."""
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def eval_dir_name(eval_name: Optional[str]) -> str:
  """``eval`` or ``eval_<name>`` (``--eval_name``)."""
  return 'eval' if not eval_name else f'eval_{eval_name}'


class RunDir:
  """What a run writes into ``cfg.train.model_dir`` (module docstring)."""

  def __init__(self, cfg: Config, chief: bool = True):
    self.cfg, self.chief = cfg, chief
    self.path = cfg.train.model_dir
    self._writers = {}

  def join(self, *parts) -> str:
    return os.path.join(self.path, *parts)

  def write_config(self) -> None:
    """Creates the directory and writes ``config.json``."""
    if self.chief:
      tf.io.gfile.makedirs(self.path)
      write_json(self.join('config.json'), self.cfg.to_dict())

  def writer(self, name: str):
    """The summary writer of run ``name`` (``train``, ``eval``), one per
    name for the life of this object; a no-op writer off the chief."""
    if name not in self._writers:
      self._writers[name] = (
          tf.summary.create_file_writer(self.join(name)) if self.chief else
          tf.summary.create_noop_writer())
    return self._writers[name]

  @property
  def eval_run(self) -> str:
    return eval_dir_name(self.cfg.eval_name)

  def record_eval(self, step: int, scalars: dict, images=None) -> dict:
    """Writes one evaluation at ``step``: its scalars as ``eval/<name>``
    summaries (``num_examples`` counts are kept out of TensorBoard), its
    images (uint8 ``[H, W, 3]``) as ``eval/<name>`` image summaries, and
    the scalars merged into ``result_<step>.json`` and ``result.json``.
    Returns the merged result."""
    writer = self.writer(self.eval_run)
    with writer.as_default(step=step):
      for k, v in scalars.items():
        if not k.endswith('num_examples'):
          tf.summary.scalar(f'eval/{k}', v)
      for k, image in (images or {}).items():
        tf.summary.image(f'eval/{k}', image[None], max_outputs=1)
    writer.flush()
    if not self.chief:
      return dict(scalars)
    path = self.join(f'result_{step}.json')
    payload = {**(read_json(path) or {}), **scalars, 'global_step': step,
               'eval_split': self.cfg.data.eval_split,
               'dataset': self.cfg.data.dataset}
    write_json(path, payload)
    write_json(self.join('result.json'), payload)
    return payload

  def flush(self) -> None:
    for w in self._writers.values():
      w.flush()
