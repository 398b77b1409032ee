"""The run modes: train, eval (once or watching), train_then_eval, export.

``run(cfg, export_fn)`` is what ``run.py`` calls after validating flags.
``export_fn(model, model_dir, step, cfg)`` comes from ``export/`` (the
library does not import it) and is called at the end of training, at every
checkpoint when asked, and by ``--mode=export``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import tensorflow as tf
from absl import logging

from simclr_tf import (checkpoints, data, distribute, precision, rundir,
                       runlock, runtime, stopping, tasks, train)
from simclr_tf.config import Config, ConfigError
from simclr_tf.data import folder
from simclr_tf.evaluators import factory as evaluator_factory
from simclr_tf.evaluators import run_due

USER_ERRORS = (ConfigError, checkpoints.CheckpointError,
               distribute.StrategyError, train.TrainingError, ValueError,
               FileNotFoundError, rundir.DiskFullError,
               distribute.LostWorkerError)


class DataError(ValueError):
  """An input file turned out unreadable while the run was reading it."""


def with_dataset_facts(cfg: Config, source) -> Config:
  """Fills the number of classes and their names from the dataset."""
  model = dataclasses.replace(cfg.model, num_classes=source.num_classes)
  names = tuple(source.class_names) if source.class_names else None
  return dataclasses.replace(
      cfg, model=model,
      data=dataclasses.replace(cfg.data, class_names=names))


def _get_source(data_cfg):
  try:
    return data.get_source(data_cfg)
  except ValueError as e:
    raise ConfigError(f'--dataset={data_cfg.dataset}: {e}') from None


def _inputs_read(cfg: Config, task) -> list:
  """``(split flag, its batch flag or None)`` for every split the run reads."""
  train_in = task.training_inputs()
  evals = evaluator_factory.reads(cfg, task)
  eval_in = ([('eval_split', 'eval_batch_size')] if evals['eval_split']
             else [])
  bank_in = [('train_split', 'eval_batch_size')] if evals['train_split'] \
      else []
  return {
      'train': train_in,
      'train_then_eval': train_in + eval_in + bank_in,
      # --eval_watch sizes the training run from the train split.
      'eval': eval_in + (bank_in or ([('train_split', None)]
                                     if cfg.train.eval_watch else [])),
      'export': [],
  }[cfg.mode]


def check_inputs(cfg: Config, strategy, source, task) -> None:
  """Every split the run reads exists and has examples (image folders:
  every file has an image header), and every batch it uses splits evenly
  over the replicas. Called before anything is written.

  Raises:
    ConfigError: naming the flag, its value and what would be right.
  """
  for split_flag, batch_flag in _inputs_read(cfg, task):
    split = getattr(cfg.data, split_flag)
    try:
      source.check_split(split)
    except ValueError as e:
      raise ConfigError(f'--{split_flag}={split}: {e}') from None
    if batch_flag:
      _check_batch(batch_flag, getattr(cfg.train, batch_flag), strategy,
                   cfg.runtime.strategy)
    if split_flag == 'eval_split':
      _check_eval_steps(cfg, source.num_examples(split))


def _check_eval_steps(cfg, num_examples):
  """--eval_steps must not ask for more batches than the split holds."""
  batch, steps = cfg.train.eval_batch_size, cfg.train.eval_steps
  available = data.eval_steps(num_examples, batch)
  if steps > available:
    raise ConfigError(
        f'--eval_steps={steps} is invalid: --eval_split='
        f'{cfg.data.eval_split} has {num_examples} examples, {available} '
        f'batches of --eval_batch_size={batch}; use at most {available}, or '
        '0 to evaluate every example once.')


def _check_batch(flag, batch, strategy, strategy_flag):
  replicas = strategy.num_replicas_in_sync
  if batch % replicas:
    lower = batch // replicas * replicas
    hint = f'{lower} or {lower + replicas}' if lower else f'{replicas}'
    raise ConfigError(
        f'--{flag}={batch} is invalid: the global batch must be a multiple '
        f'of the {replicas} replicas of {type(strategy).__name__} '
        f'(--strategy={strategy_flag}), e.g. {hint}.')


@dataclasses.dataclass
class Outcome:
  """What a finished run did: its final step, the newest evaluation
  results and the export written (``lines()`` is ``run.py``'s summary)."""
  mode: str
  model_dir: str
  step: Optional[int] = None
  results: dict = dataclasses.field(default_factory=dict)
  export: Optional[str] = None
  exit_code: int = 0

  def lines(self) -> list:
    out = [f'done: --mode={self.mode}' + (
        f' at step {self.step}' if self.step is not None else '') +
           f', --model_dir={self.model_dir}']
    shown = [f'{k} {self.results[k]:.4f}' for k in
             ('top_1', 'top_5', 'knn_top1', 'knn_top5')
             if k in self.results]
    if shown:
      out.append('  eval: ' + ', '.join(shown))
    if self.export:
      out.append(f'  export: {self.export}')
    return out


def run(cfg: Config, export_fn=None) -> Outcome:
  """Runs ``cfg.mode``; returns its ``Outcome``.

  Every check that needs the dataset, the strategy or the model (splits,
  batch sizes, checkpoint architecture) runs before ``model_dir`` is
  created or written.
  """
  cfg = runtime.setup(cfg)
  logging.info('Computing in %s (%s).', precision.POLICIES[
      cfg.runtime.mixed_precision], cfg.runtime.precision_decision)
  try:
    return _run(cfg, export_fn)
  except (tf.errors.OpError, OSError) as e:
    message = _disk_full_message(e, cfg)
    if message is not None:
      raise rundir.DiskFullError(message) from None
    message = distribute.lost_worker_message(e, cfg.runtime)
    if message is not None:
      raise distribute.LostWorkerError(message) from None
    message = (folder.corrupt_file_message(e)
               if isinstance(e, tf.errors.OpError) else None)
    if message is None:
      raise
    raise DataError(message) from None


def _disk_full_message(error, cfg) -> Optional[str]:
  """``rundir.disk_full_message`` naming the checkpoint a rerun resumes
  from; the partial checkpoint the failed save left is removed."""
  model_dir = cfg.train.model_dir
  if rundir.disk_full_message(error, model_dir) is None:
    return None
  checkpoints.remove_partial(model_dir)
  try:
    newest = checkpoints.latest(model_dir)
  except checkpoints.CheckpointError:
    newest = None
  kept = (f'checkpoint {newest} (a rerun resumes from it)' if newest
          else None)
  return rundir.disk_full_message(error, model_dir, kept)


def _run(cfg, export_fn):
  strategy = distribute.build_strategy(cfg.runtime)
  source = _get_source(cfg.data)
  cfg = with_dataset_facts(cfg, source)
  choice = checkpoints.choose(cfg, verify=checkpoints.damage)
  cfg = checkpoints.resolve_architecture(
      cfg, choice, num_classes_from_checkpoint=cfg.mode == 'export')
  task = tasks.get(cfg)
  check_inputs(cfg, strategy, source, task)
  chief = distribute.is_chief(strategy)
  logging.info('Mode %s, %s, %d replica(s).', cfg.mode,
               type(strategy).__name__, strategy.num_replicas_in_sync)
  outcome = Outcome(cfg.mode, cfg.train.model_dir)
  if cfg.mode == 'export':
    outcome.step, outcome.export = _export_checkpoint(
        cfg, task, strategy, export_fn, chief, choice)
    return outcome
  if cfg.mode == 'eval':
    outcome.step, outcome.results = _eval_checkpoints(
        cfg, task, strategy, source, chief, choice)
    return outcome
  with runlock.hold(cfg.train.model_dir, enabled=chief):
    return _train(cfg, task, strategy, source, export_fn, chief, choice,
                  outcome)


def _train(cfg, task, strategy, source, export_fn, chief, choice, outcome):
  """Trains (and, for train_then_eval, evaluates) and exports; the run
  holds --model_dir's lock throughout (``runlock``)."""
  on_ckpt = None
  if export_fn is not None and cfg.train.export_every_checkpoint:
    on_ckpt = lambda t, step: _export(export_fn, t.model, cfg, step, chief)  # noqa: E731,E501
  run_dir = rundir.RunDir(cfg, chief)
  plan = train.plan_training(cfg, source.num_examples(cfg.data.train_split))
  evaluators = (evaluator_factory.build_evaluators(cfg, strategy, source,
                                                   task, plan)
                if cfg.mode == 'train_then_eval' else [])
  trainer = train.Trainer(cfg, strategy, source, task=task, chief=chief,
                          on_checkpoint=on_ckpt, start=choice,
                          evaluators=evaluators, run_dir=run_dir)
  if choice is not None:  # before model_dir is written
    checkpoints.check(choice.prefix, trainer.model,
                      whole=choice.role == 'resume')
  run_dir.write_config()
  step = trainer.train()
  if stopping.requested():  # arrived during the final evaluations
    raise stopping.Stopped(f'{stopping.requested()} after training to step '
                           f'{step} (saved); the export was not written. '
                           'Rerun the same command to write it.')
  outcome.step, outcome.results = step, dict(trainer.latest_eval)
  if export_fn is not None and not cfg.train.export_every_checkpoint:
    outcome.export = _export(export_fn, trainer.model, cfg, step, chief,
                             skip_existing=True)
  return outcome


def _export(export_fn, model, cfg, step, chief, **kwargs):
  """Exports ``model`` (chief only); returns the export's path or None.
  ``kwargs``: ``skip_existing`` (``export.export_model``), at the end of
  training, so a finished run's rerun keeps the export it wrote."""
  if chief:
    return export_fn(model, cfg.train.model_dir, step, cfg, **kwargs)
  return None


def _restore_for_eval(task, strategy, path):
  model = task.build_model(strategy)
  kind = checkpoints.restore_model(path, model)
  logging.info('Restored the model from %s (%s).', path, kind)
  return model, checkpoints.step_of(path)


def _eval_checkpoints(cfg, task, strategy, source, chief, choice):
  """Runs the run's evaluators on the chosen checkpoint, or
  (--eval_watch) on each new one in --model_dir up to the final step."""
  evaluators = evaluator_factory.build_evaluators(cfg, strategy, source, task)
  if not evaluators:
    raise ConfigError(
        '--mode=eval has nothing to evaluate: the model has no supervised '
        'head (pretrained with --lineareval_while_pretraining=false), and '
        f'--knn_every_epochs={cfg.evaluation.knn_every_epochs:g} and '
        f'--projector_examples={cfg.evaluation.projector_examples} turn the '
        'kNN monitor and the Projector off; enable one of them.')
  run_dir = rundir.RunDir(cfg, chief)

  results = {}

  def evaluate(path):
    model, step = _restore_for_eval(task, strategy, path)
    results.clear()
    results.update(run_due(evaluators, model, step, run_dir,
                           previous_step=step, final=True))
    return step

  if not cfg.train.eval_watch:
    return evaluate(choice.prefix), results
  done = watch(tf.train.checkpoints_iterator(
      cfg.train.model_dir, timeout=cfg.train.eval_timeout_secs or None),
               evaluate, watched_run_total(cfg, source))
  return (done[-1] if done else None), results


def watched_run_total(cfg, source) -> int:
  """The final step of the training run in --model_dir, which --eval_watch
  waits for: from that run's config.json (its own length flags and train
  split) when it has one, else from this command's flags."""
  stored = rundir.read_json(os.path.join(cfg.train.model_dir,
                                         'config.json')) or {}
  run_cfg = cfg
  if stored.get('data', {}).get('dataset') == cfg.data.dataset:
    t = stored.get('train', {})
    run_cfg = dataclasses.replace(
        cfg, data=dataclasses.replace(
            cfg.data, train_split=stored['data'].get('train_split',
                                                     cfg.data.train_split)),
        train=dataclasses.replace(cfg.train, **{
            k: t[k] for k in ('train_steps', 'train_epochs',
                              'train_batch_size') if k in t}))
  return train.plan_training(
      run_cfg, source.num_examples(run_cfg.data.train_split)).total_steps


def watch(paths, evaluate, total) -> list:
  """Evaluates each checkpoint ``paths`` yields until one of step
  ``total``; returns the steps evaluated. A checkpoint deleted before it
  could be read (the training run keeps only --keep_checkpoint_max) is
  skipped with a warning: the next one ``paths`` yields is newer; one
  that is there but damaged stops the watch, naming it."""
  done = []
  for path in paths:
    try:
      step = evaluate(path)
    except (tf.errors.OpError, IndexError, checkpoints.CheckpointError):
      if tf.io.gfile.exists(path + '.index'):
        fault = checkpoints.damage(path)
        if fault:
          raise checkpoints.CheckpointError(
              f'--eval_watch: {path} is damaged ({fault}); restore it from a'
              ' copy, or evaluate another with --checkpoint=PREFIX.') from None
        raise
      logging.warning('%s was deleted before it could be evaluated (the '
                      'training run keeps few checkpoints); going on with '
                      'the next.', path)
      continue
    done.append(step)
    if step >= total:
      break
  return done


def _export_checkpoint(cfg, task, strategy, export_fn, chief, choice):
  if export_fn is None:
    raise ConfigError('--mode=export: the export package is not available.')
  model, step = _restore_for_eval(task, strategy, choice.prefix)
  return step, _export(export_fn, model, cfg, step, chief)
