"""The run directory (``--model_dir``): the one owner of what a run writes
there besides checkpoints (``checkpoints``) and exports (``export/``).

  config.json               the run's Config, written before training
  result_<step>.json        every evaluation's scalars at that step, merged
  result.json               the newest evaluated step's result_<step>.json
  train/, eval[_<name>]/    TensorBoard summaries (``train/...``,
                            ``eval/...`` tags; README "TensorBoard")
  eval[_<name>]/projector/  TensorBoard Projector files (``write_projector``)
  eval[_<name>]/evaluated.json  which evaluations ran at which step, with
                            their settings (a finished run's rerun skips
                            them)

Only the chief writes: on other workers every method is a no-op, so callers
need no ``if chief``. JSON is written atomically (a temporary file renamed
over the old one), so a reader never sees half a file.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from typing import Optional

import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins import projector

from simclr_tf.config import Config


def write_json(path: str, obj) -> None:
  """Writes JSON atomically (temp file, then rename)."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True, default=str)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _write_bytes(path: str, content: bytes) -> None:
  tmp = f'{path}.tmp-{os.getpid()}'
  with tf.io.gfile.GFile(tmp, 'wb') as f:
    f.write(content)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def _write_text(path: str, text: str) -> None:
  _write_bytes(path, (text + '\n').encode('utf-8'))


def read_json(path: str) -> Optional[dict]:
  """The JSON object in ``path``, or None if there is no such file."""
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


class DiskFullError(OSError):
  """Writing into the run's filesystem failed for lack of space."""


_NO_SPACE = re.compile(r'(?:^|[\s}])([^\s;{}]+); No space left on device')


def disk_full_message(error: BaseException, model_dir: str,
                      kept: Optional[str] = None) -> Optional[str]:
  """One line for a write that failed because the disk is full (a TF
  ``ResourceExhaustedError`` naming the file, or an ``OSError`` ENOSPC),
  naming the file, the free space and what stays usable (``kept``, e.g.
  the newest complete checkpoint); None for any other error."""
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    path = error.filename or model_dir
  else:
    match = _NO_SPACE.search(str(error))
    if match is None:
      return None
    path = match.group(1)
  try:
    free = f'{shutil.disk_usage(model_dir).free / 2**20:.1f} MiB free'
  except OSError:
    free = 'free space unknown'
  return (f'the disk is full: writing {path} failed (No space left on '
          f'device; {free} on the filesystem of --model_dir={model_dir}). '
          + (f'What was complete is kept: {kept}. ' if kept else '') +
          'Free some space, then rerun the same command to go on.')


PROJECTOR_KEEP = 5  # steps whose Projector files are kept


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
    summaries (counts, ``*examples``, are kept out of TensorBoard), its
    images (uint8 ``[H, W, 3]``) as ``eval/<name>`` image summaries, and
    the scalars merged into ``result_<step>.json`` and ``result.json``.
    Returns the merged result."""
    writer = self.writer(self.eval_run)
    with writer.as_default(step=step):
      for k, v in scalars.items():
        if not k.endswith('examples'):
          tf.summary.scalar(f'eval/{k}', v)
      for k, image in (images or {}).items():
        tf.summary.image(f'eval/{k}', image[None], max_outputs=1)
    writer.flush()
    if not self.chief:
      return dict(scalars)
    path = self.join(f'result_{step}.json')
    payload = {**(read_json(path) or {}), **scalars, 'global_step': step,
               'eval_split': self.cfg.data.eval_split,
               'dataset': self.cfg.data.dataset,
               'class_names': self.cfg.data.class_names}
    write_json(path, payload)
    write_json(self.join('result.json'), payload)
    return payload

  @property
  def evaluated_file(self) -> str:
    """``<eval run>/evaluated.json``: for each step, the evaluators that ran
    there, each with its settings key and scalars."""
    return self.join(self.eval_run, 'evaluated.json')

  def evaluated(self, step: int) -> dict:
    """Evaluator name -> {'key', 'scalars'} recorded at ``step`` (read on
    every worker: all of them must skip the same evaluations)."""
    try:
      record = read_json(self.evaluated_file) or {}
    except ValueError:  # a damaged file: evaluate again
      return {}
    return record.get(str(step), {})

  def mark_evaluated(self, step: int, name: str, key: str,
                     scalars: dict) -> None:
    """Records that evaluator ``name`` ran at ``step`` with settings
    ``key`` (``evaluators.base.Evaluator.settings_key``)."""
    if not self.chief:
      return
    tf.io.gfile.makedirs(self.join(self.eval_run))
    try:
      record = read_json(self.evaluated_file) or {}
    except ValueError:
      record = {}
    record.setdefault(str(step), {})[name] = {'key': key,
                                              'scalars': dict(scalars)}
    write_json(self.evaluated_file, record)

  def write_projector(self, step: int, embeddings) -> str:
    """Writes ``embeddings`` (``evaluators.projector.Embeddings``) of
    ``step`` for TensorBoard's Projector into
    ``<eval run>/projector/<step>/`` (``tensor.tsv``, ``metadata.tsv``,
    ``sprite.png``) and lists the newest ``PROJECTOR_KEEP`` steps in
    ``<eval run>/projector_config.pbtxt``, deleting older ones. Returns
    the step's directory."""
    run = self.join(self.eval_run)
    folder = os.path.join(run, 'projector', str(step))
    if not self.chief:
      return folder
    tf.io.gfile.makedirs(folder)
    _write_text(os.path.join(folder, 'tensor.tsv'), '\n'.join(
        '\t'.join(f'{x:.6g}' for x in row) for row in embeddings.vectors))
    _write_text(os.path.join(folder, 'metadata.tsv'),
                '\n'.join(embeddings.metadata_lines()))
    _write_bytes(os.path.join(folder, 'sprite.png'),
                 tf.io.encode_png(embeddings.sprite).numpy())
    write_json(os.path.join(folder, 'shape.json'), {
        'tensor_shape': list(embeddings.vectors.shape),
        'thumb_side': embeddings.thumb_side})
    self._write_projector_config(run)
    return folder

  def _write_projector_config(self, run):
    root = os.path.join(run, 'projector')
    steps = sorted(int(d.rstrip('/')) for d in tf.io.gfile.listdir(root)
                   if d.rstrip('/').isdigit())
    for old in steps[:-PROJECTOR_KEEP]:
      tf.io.gfile.rmtree(os.path.join(root, str(old)))
    config = projector.ProjectorConfig()
    for step in steps[-PROJECTOR_KEEP:]:
      shape = read_json(os.path.join(root, str(step), 'shape.json'))
      if shape is None:  # a step whose writing was interrupted
        continue
      e = config.embeddings.add()
      e.tensor_name = f'final_avg_pool (step {step})'
      e.tensor_path = f'projector/{step}/tensor.tsv'
      e.metadata_path = f'projector/{step}/metadata.tsv'
      e.tensor_shape.extend(shape['tensor_shape'])
      e.sprite.image_path = f'projector/{step}/sprite.png'
      e.sprite.single_image_dim.extend([shape['thumb_side']] * 2)
    _write_text(os.path.join(run, 'projector_config.pbtxt'),
                text_format.MessageToString(config))

  def flush(self) -> None:
    for w in self._writers.values():
      w.flush()
