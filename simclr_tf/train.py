"""The training loop: steps, checkpoints, summaries, progress, evaluators.

``Trainer`` builds the model and optimizer under the strategy's scope,
resumes from the newest checkpoint in ``model_dir`` (model, optimizer slots
and global step) or warm-starts the model from ``--checkpoint``, then runs
``steps_per_loop`` steps per ``tf.function`` call, saving a checkpoint
every ``checkpoint_steps`` and at the end. Files are written only into
``model_dir`` and only by the chief.

Crashes: a run killed at any point and rerun with the same command resumes
from the newest complete checkpoint (``tf.train.CheckpointManager`` names
it in its ``checkpoint`` file only after the checkpoint is written) and,
with ``--seed`` and ``--deterministic``, ends with the same weights as an
uninterrupted run: the input stream restarts at the resumed step (see
``simclr_tf.data.pipeline``). A non-finite loss or weight stops training
with ``TrainingError`` before anything of that state is saved.

Evaluators (``simclr_tf.evaluators``) run after the checkpoint of each step
at their cadence and at the final step; the loop stops at their steps as it
does at checkpoints. What is written into ``model_dir`` besides checkpoints
goes through ``simclr_tf.rundir.RunDir``.
"""
from __future__ import annotations

import dataclasses
import math
import time

import tensorflow as tf
from absl import logging

from simclr_tf import checkpoints, evaluators as evaluators_lib, rundir
from simclr_tf import steps, stopping, tasks
from simclr_tf.config import Config
from simclr_tf.models import param_sets
from simclr_tf.optim import (WarmupCosine, build_optimizer, unwrap,
                             warmup_steps_for)


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss became NaN/Inf)."""


@dataclasses.dataclass(frozen=True)
class TrainPlan:
  """Lengths derived from the config and the size of the train split."""
  num_examples: int
  total_steps: int
  checkpoint_every: int
  warmup_steps: int
  steps_per_epoch: float


def plan_training(cfg: Config, num_examples: int) -> TrainPlan:
  """Total steps as the original (``N * epochs // B + 1`` if no train_steps)."""
  t = cfg.train
  batch = t.train_batch_size
  total = t.train_steps or num_examples * t.train_epochs // batch + 1
  every = t.checkpoint_steps or max(
      1, int(round(t.checkpoint_epochs * num_examples / batch)))
  warmup = min(warmup_steps_for(cfg.optim.warmup_epochs, num_examples, batch),
               total)
  return TrainPlan(num_examples, total, every, warmup, num_examples / batch)


def summary_every(train_summary_steps: int, total_steps: int) -> int:
  """Steps between training summaries: as given (0: none), or for -1
  ``min(100, total // 100)``, at least 1: every step of runs under 200
  steps, ~100 points or more for longer ones."""
  if train_summary_steps >= 0:
    return train_summary_steps
  return max(1, min(100, total_steps // 100))


class _Clock:
  """Training speed without the first loop call (tracing and compiling the
  step, seconds of it): the rate over the later calls, or the first call's
  when there is no other yet."""

  def __init__(self, step: int):
    self._start, self._start_step = time.time(), step
    self.first_call = None
    self._steady_start = self._steady_step = None
    self.steady_steps = 0

  def tick(self, step: int) -> None:
    now = time.time()
    if self.first_call is None:
      self.first_call = now - self._start
      self._first_steps = step - self._start_step
      self._steady_start, self._steady_step = now, step
    else:
      self.steady_steps = step - self._steady_step
      self._now = now

  def steps_per_sec(self) -> float:
    if self.steady_steps:
      return self.steady_steps / max(self._now - self._steady_start, 1e-9)
    return self._first_steps / max(self.first_call, 1e-9)


def _format_eta(seconds: float) -> str:
  seconds = int(max(0, seconds))
  return f'{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s'


class Trainer:
  """Trains one model as the config says; see the module docstring."""

  def __init__(self, cfg: Config, strategy, source, *, task=None,
               chief: bool = True, on_checkpoint=None, start=None,
               evaluators=(), run_dir=None):
    self.cfg, self.strategy, self.source, self.chief = (
        cfg, strategy, source, chief)
    self.evaluators = list(evaluators)
    self.run_dir = run_dir or rundir.RunDir(cfg, chief)
    self.latest_eval = {}  # the newest scalars of every evaluator
    self.task = task if task is not None else tasks.get(cfg)
    # The checkpoint to start from (checkpoints.choose): resume or warm start.
    self.start = start if start is not None else checkpoints.choose(
        cfg, verify=checkpoints.damage)
    self.on_checkpoint = on_checkpoint
    self.plan = plan_training(cfg, source.num_examples(cfg.data.train_split))
    self.model = self.task.build_model(strategy)
    self.task.prepare(strategy)
    with strategy.scope():
      schedule = WarmupCosine(
          cfg.optim.learning_rate, cfg.train.train_batch_size,
          total_steps=self.plan.total_steps,
          warmup_steps=self.plan.warmup_steps,
          scaling=cfg.optim.learning_rate_scaling)
      self.optimizer = build_optimizer(
          cfg.optim, schedule, param_sets(self.model),
          loss_scale=cfg.runtime.mixed_precision == 'float16')
      self.optimizer.build(self.task.trainable_variables(self.model))
    self.schedule = schedule
    self.manager = checkpoints.make_manager(
        self.model, unwrap(self.optimizer), cfg.train.model_dir,
        cfg.train.keep_checkpoint_max, chief=chief,
        resume_from=self.start.prefix if self.start is not None and
        self.start.role == 'resume' else None)

  @property
  def global_step(self) -> int:
    return int(self.optimizer.iterations.numpy())

  def restore(self) -> int:
    """Resumes from model_dir, else warm-starts from --checkpoint.

    Every worker resumes from the checkpoint ``start`` names (in the shared
    --model_dir): a non-chief worker's manager writes to a private
    directory and knows no checkpoint of its own."""
    resume = (self.start.prefix if self.start is not None and
              self.start.role == 'resume' else
              self.manager.latest_checkpoint)
    if resume:
      self.manager.checkpoint.restore(resume)
      logging.info('Resumed from %s at step %d.', resume, self.global_step)
    elif self.start is not None and self.start.role == 'warm_start':
      checkpoints.warm_start(self.model, self.start.prefix,
                             zero_init_logits=self.cfg.model.
                             zero_init_logits_layer)
    return self.global_step

  def _dataset(self, start_step):
    """The training stream as an uninterrupted run has it at ``start_step``
    (with a seed, a resumed run sees the batches it would have seen)."""
    return self.task.dataset(self.strategy, self.source,
                             self.cfg.data.train_split, start_step)

  def train(self) -> int:
    """Runs to ``plan.total_steps``; returns the final global step."""
    step = self.restore()
    total = self.plan.total_steps
    if step >= total:
      logging.info('Already trained to step %d of %d.', step, total)
      self._evaluate(step, step, final=True, skip_recorded=True)
      return step
    loop = steps.make_train_loop(self.model, self.optimizer, self.strategy,
                                 self.task, jit_compile=self.cfg.runtime.jit,
                                 per_step=True)
    iterator = iter(self._dataset(step))
    writer = self.run_dir.writer('train')
    if step == 0 and self.chief:
      self.task.write_start_summaries(writer, self.strategy, self.source)
    return self._run(loop, iterator, writer, step, total)

  def _steps_to_next_stop(self, step, total):
    """Steps to run in one loop call: up to ``steps_per_loop``, ending at
    the next checkpoint, evaluation or the final step."""
    every = self.plan.checkpoint_every
    stops = [total, (step // every + 1) * every]
    stops += [s for s in (e.next_stop(step) for e in self.evaluators)
              if s is not None]
    return min(self.cfg.train.steps_per_loop, min(stops) - step)

  def _evaluate(self, previous_step, step, final, skip_recorded=False):
    self.latest_eval.update(evaluators_lib.run_due(
        self.evaluators, self.model, step, self.run_dir,
        previous_step=previous_step, final=final,
        skip_recorded=skip_recorded))

  def _run(self, loop, iterator, writer, step, total):
    t = self.cfg.train
    clock = _Clock(step)
    last_log = None
    while step < total:
      n = self._steps_to_next_stop(step, total)
      values = {k: v.numpy().tolist() for k, v in
                loop(iterator, tf.constant(n, tf.int32)).items()}
      step = self.global_step
      self._check_finite(values, step)
      metrics = {k: sum(v) / len(v) for k, v in values.items()}
      clock.tick(step)
      rate = clock.steps_per_sec() * self.task.images_per_step
      lr = float(self.schedule(step))
      self._write_scalars(writer, values, rate, step, total)
      if (last_log is None or step - last_log >= t.log_every_steps or
          step == total):
        self._log_progress(metrics, lr, clock, step, total)
        last_log = step
      if step % self.plan.checkpoint_every == 0 or step == total:
        self._save(step)
      self._evaluate(step - n, step, final=step == total)
      if stopping.requested():
        writer.flush()
        self._stop(step)
    writer.flush()
    return step

  def _stop(self, step):
    """Saves a checkpoint of ``step`` (consistent: between loop calls)
    unless it has one, then raises ``stopping.Stopped``. Multi-worker runs
    stop without saving: the save is a collective the other workers may
    not join."""
    name = stopping.requested()
    saved = self.manager.latest_checkpoint
    if saved is None or checkpoints.step_of(saved) != step:
      if isinstance(self.strategy,
                    tf.distribute.MultiWorkerMirroredStrategy):
        raise stopping.Stopped(
            f'{name} at step {step}: a multi-worker run stops without '
            f'saving; the newest checkpoint is {saved}. Rerun every worker '
            'with the same command to resume from it.')
      self._check_weights_finite(step)
      saved = self.manager.save(checkpoint_number=step)
    raise stopping.Stopped(
        f'{name} at step {step}: saved {saved}. Rerun the same command to '
        'resume from it.')

  def _check_finite(self, values, step):
    """Raises TrainingError naming the first step whose metrics hold a
    NaN/Inf. ``values``: name -> per-step values of the steps ending at
    ``step``.

    Runs before the checkpoint of ``step`` is saved, so no checkpoint or
    export of the non-finite state is written.
    """
    n = len(next(iter(values.values())))
    for i in range(n):
      bad = {k: v[i] for k, v in values.items() if not math.isfinite(v[i])}
      if bad:
        raise TrainingError(f'Non-finite loss at step {step - n + 1 + i}: '
                            f'{bad}. {self._stopped_hint()}')

  def _stopped_hint(self):
    last = self.manager.latest_checkpoint
    saved = (f'the last good checkpoint is {last} (rerunning resumes from '
             'it)' if last else 'no checkpoint was saved')
    return (f'Training stopped; {saved}. Lower --learning_rate or check the '
            'input data.')

  def _check_weights_finite(self, step):
    """A step can leave NaN/Inf weights behind a finite loss (an overflowing
    update); the loss shows it only a step later, after this step's
    checkpoint would have been written."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(v))
                            for v in self.model.trainable_variables])
    if not bool(finite):
      raise TrainingError(
          f'Non-finite weights after step {step}. {self._stopped_hint()}')

  def _save(self, step):
    """Checkpoint (and ``on_checkpoint``, e.g. an export) of ``step``.

    ``on_checkpoint`` runs first: a run killed between the two resumes
    from the previous checkpoint and redoes both, so every step's export
    exists once a rerun completes (the other order could lose it).
    """
    self._check_weights_finite(step)
    if self.on_checkpoint is not None:
      self.on_checkpoint(self, step)
    path = self.manager.save(checkpoint_number=step)
    logging.info('Saved checkpoint %s', path)

  def _write_scalars(self, writer, values, rate, step, total):
    """``train/...`` summaries of the steps ending at ``step`` that are
    multiples of ``summary_every`` (and the final step); ``rate``, the
    throughput so far, is written with each."""
    every = summary_every(self.cfg.train.train_summary_steps, total)
    if not every:
      return
    n = len(next(iter(values.values())))
    for i in range(n):
      s = step - n + 1 + i
      if s % every and s != total:
        continue
      with writer.as_default(step=s):
        for k, v in values.items():
          tf.summary.scalar(f'train/{k}', v[i])
        tf.summary.scalar('train/learning_rate', float(self.schedule(s)))
        tf.summary.scalar('train/throughput_images_per_sec', rate)

  def _log_progress(self, metrics, lr, clock, step, total):
    """One progress line: the first right after the first loop call
    (naming its tracing time), then every ``log_every_steps``. Rates and
    the ETA come from the steps after the first call; images/s counts
    examples, views/s what the encoder sees (two views an example when
    pretraining)."""
    parts = [f'step {step}/{total}', f'loss {metrics["total_loss"]:.4f}']
    parts += [f'{label} {metrics[name]:.3f}'
              for name, label in self.task.progress if name in metrics]
    parts += [f'{label} {self.latest_eval[name]:.3f}'
              for name, label in (('knn_top1', 'knn@1'), ('top_1', 'eval@1'))
              if name in self.latest_eval]
    per_sec = clock.steps_per_sec()
    views = self.task.images_per_step
    examples = self.cfg.train.train_batch_size
    speed = f'{per_sec * examples:.1f} images/s'
    if views != examples:
      speed += f' ({per_sec * views:.1f} views/s)'
    parts += [f'lr {lr:.4g}', speed]
    if clock.first_call is not None and clock.steady_steps == 0:
      parts.append(f'first call {clock.first_call:.1f} s (tracing '
                   'included)')
    else:
      parts.append(f'ETA {_format_eta((total - step) / max(per_sec, 1e-9))}')
    logging.info(' | '.join(parts))

