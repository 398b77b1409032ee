"""Evaluators as hooks (in the style of big_vision's evaluators).

An ``Evaluator`` has a cadence, ``every_steps`` (0: only at the end), and
``run(model, step) -> Report``: scalars, optional images and optional
Projector data. It reads data and runs the model; it writes nothing. The
``Trainer`` runs each evaluator whenever training crosses a multiple of its
``every_steps`` (after that step's checkpoint is saved) and at the final
step; ``--mode=eval`` runs them on a checkpoint. ``run_due`` is that one
loop, and ``simclr_tf.rundir.RunDir`` writes what it returns.

Under a distribution strategy every worker runs every evaluator (they use
collectives); only the chief's ``RunDir`` writes.
"""
from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from typing import Optional

from absl import logging


@dataclasses.dataclass
class Report:
  """What one evaluation found.

  Attributes:
    scalars: name -> float, written as ``eval/<name>`` and into the result
      JSON (counts, ``*examples``, only into the JSON).
    images: name -> uint8 ``[H, W, 3]``, written as ``eval/<name>``.
    projector: embeddings for TensorBoard's Projector
      (``simclr_tf.evaluators.projector.Embeddings``), or None.
  """
  scalars: dict
  images: dict = dataclasses.field(default_factory=dict)
  projector: Optional[object] = None


class Evaluator(abc.ABC):
  """One kind of evaluation; see the module docstring."""
  name: str = 'evaluator'
  every_steps: int = 0

  def due(self, previous_step: int, step: int, final: bool) -> bool:
    """Whether training from ``previous_step`` to ``step`` crossed a
    multiple of ``every_steps``, or ``step`` is the final one."""
    every = self.every_steps
    crossed = every > 0 and previous_step // every < step // every
    return final or crossed

  def next_stop(self, step: int) -> Optional[int]:
    """The next step after ``step`` this evaluator runs at (None: only at
    the end), so the training loop can stop there."""
    if self.every_steps <= 0:
      return None
    return (step // self.every_steps + 1) * self.every_steps

  def settings_key(self) -> str:
    """A short digest of what decides this evaluator's result besides the
    weights: the evaluation flags, the dataset and splits, the eval batch
    and steps, the image size and eval crop. A finished run's rerun skips
    an evaluation recorded with the same key (``run_due``)."""
    cfg = self.cfg
    settings = {'evaluator': self.name,
                'evaluation': dataclasses.asdict(cfg.evaluation),
                'data': [cfg.data.dataset, cfg.data.eval_split,
                         cfg.data.train_split],
                'eval_batch': [cfg.train.eval_batch_size,
                               cfg.train.eval_steps],
                'image': [cfg.model.image_size,
                          cfg.augment.eval_crop_proportion]}
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]

  @abc.abstractmethod
  def run(self, model, step: int) -> Report:
    """Evaluates ``model`` (trained to ``step``)."""

  def describe(self, report: Report) -> str:
    """The log line's text for ``report``."""
    return ', '.join(f'{k} {v:.4f}' for k, v in report.scalars.items()
                     if isinstance(v, float))


def run_due(evaluators, model, step: int, rundir, *, previous_step: int,
            final: bool, skip_recorded: bool = False) -> dict:
  """Runs the evaluators due at ``step``, logs and records each report
  (``rundir``: a ``simclr_tf.rundir.RunDir``); returns their merged
  scalars ({} when none was due).

  ``skip_recorded`` (a finished run's rerun): an evaluator that ``rundir``
  recorded at ``step`` with the same ``settings_key`` is not run again; its
  recorded scalars are returned. ``--mode=eval`` always evaluates."""
  merged, skipped = {}, []
  recorded = rundir.evaluated(step) if skip_recorded else {}
  for evaluator in evaluators:
    if not evaluator.due(previous_step, step, final):
      continue
    key = evaluator.settings_key()
    done = recorded.get(evaluator.name)
    if done is not None and done.get('key') == key:
      skipped.append(evaluator.name)
      merged.update(done.get('scalars', {}))
      continue
    report = evaluator.run(model, step)
    logging.info('Eval (%s) at step %d: %s.', evaluator.name, step,
                 evaluator.describe(report))
    if report.scalars or report.images:
      rundir.record_eval(step, report.scalars, report.images)
    if report.projector is not None:
      rundir.write_projector(step, report.projector)
    rundir.mark_evaluated(step, evaluator.name, key, report.scalars)
    merged.update(report.scalars)
  if skipped:
    logging.info('Eval (%s) at step %d: already evaluated with these '
                 'settings (%s); not repeated (--mode=eval evaluates '
                 'again).', ', '.join(skipped), step, rundir.evaluated_file)
  return merged
