"""The run modes: train, eval (once or watching), train_then_eval, export.

``run(cfg, export_fn)`` is what ``run.py`` calls after validating flags.
``export_fn(model, model_dir, step, cfg)`` comes from ``export/`` (the
library does not import it) and is called at the end of training, at every
checkpoint when asked, and by ``--mode=export``.
"""
from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from absl import logging

from simclr_tf import checkpoints, data, distribute, evaluate, train
from simclr_tf.config import Config, ConfigError

USER_ERRORS = (ConfigError, checkpoints.CheckpointError,
               distribute.StrategyError, train.TrainingError, ValueError,
               FileNotFoundError)


def with_dataset_facts(cfg: Config, source) -> Config:
  """Fills the number of classes from the dataset."""
  model = dataclasses.replace(cfg.model, num_classes=source.num_classes)
  return dataclasses.replace(cfg, model=model)


def run(cfg: Config, export_fn=None) -> int:
  """Runs ``cfg.mode``; returns a process exit code."""
  strategy = distribute.build_strategy(cfg.runtime)
  source = data.get_source(cfg.data)
  cfg = with_dataset_facts(cfg, source)
  chief = distribute.is_chief(strategy)
  logging.info('Mode %s, %s, %d replica(s).', cfg.mode,
               type(strategy).__name__, strategy.num_replicas_in_sync)
  if cfg.mode == 'export':
    return _export_latest(cfg, strategy, export_fn, chief)
  if cfg.mode == 'eval':
    _eval_checkpoints(cfg, strategy, source, chief)
    return 0
  if chief:
    tf.io.gfile.makedirs(cfg.train.model_dir)
    train.write_json(os.path.join(cfg.train.model_dir, 'config.json'),
                     cfg.to_dict())
  on_ckpt = None
  if export_fn is not None and cfg.train.export_every_checkpoint:
    on_ckpt = lambda t, step: _export(export_fn, t.model, cfg, step, chief)  # noqa: E731,E501
  trainer = train.Trainer(cfg, strategy, source, chief=chief,
                          on_checkpoint=on_ckpt)
  step = trainer.train()
  if export_fn is not None and not cfg.train.export_every_checkpoint:
    _export(export_fn, trainer.model, cfg, step, chief)
  if cfg.mode == 'train_then_eval':
    _eval_model(cfg, strategy, source, trainer.model, step, chief)
  return 0


def _export(export_fn, model, cfg, step, chief):
  if chief:
    path = export_fn(model, cfg.train.model_dir, step, cfg)
    logging.info('Exported SavedModel to %s', path)


def _eval_model(cfg, strategy, source, model, step, chief):
  """Top-1/top-5 of ``model`` on the eval split; results into model_dir."""
  if model.supervised_head is None:
    logging.warning('No supervised head (lineareval_while_pretraining=false)'
                    '; skipping evaluation.')
    return None
  split = cfg.data.eval_split
  batch = cfg.train.eval_batch_size
  num = source.num_examples(split)
  steps = cfg.train.eval_steps or data.eval_steps(num, batch)
  dataset = data.build_dataset(
      strategy, source, split, mode='eval', global_batch_size=batch,
      image_size=cfg.model.image_size, augment_cfg=cfg.augment)
  result = evaluate.evaluate(model, strategy, dataset, steps)
  logging.info('Eval at step %d on %s: top_1 %.4f, top_5 %.4f, loss %.4f '
               '(%d examples).', step, split, result['top_1'],
               result['top_5'], result['loss'], result['num_examples'])
  if chief:
    train.record_eval(cfg.train.model_dir, step, result, cfg,
                      cfg.eval_name)
  return result


def _restore_for_eval(cfg, strategy, path):
  model = train.build_model_for(cfg, strategy)
  checkpoints.check_compatible(path, model)
  tf.train.Checkpoint(model=model).restore(path).expect_partial()
  return model, checkpoints.step_of(path)


def _eval_checkpoints(cfg, strategy, source, chief):
  model_dir = cfg.train.model_dir
  latest = checkpoints.latest(model_dir)
  if latest is None and not cfg.train.eval_watch:
    raise checkpoints.CheckpointError(
        f'--mode=eval: no checkpoint in --model_dir={model_dir!r}; train '
        'first (--mode=train) or point --model_dir at a training run.')
  if not cfg.train.eval_watch:
    model, step = _restore_for_eval(cfg, strategy, latest)
    _eval_model(cfg, strategy, source, model, step, chief)
    return
  total = train.plan_training(
      cfg, source.num_examples(cfg.data.train_split)).total_steps
  for path in tf.train.checkpoints_iterator(
      model_dir, timeout=cfg.train.eval_timeout_secs or None):
    model, step = _restore_for_eval(cfg, strategy, path)
    _eval_model(cfg, strategy, source, model, step, chief)
    if step >= total:
      return


def _export_latest(cfg, strategy, export_fn, chief):
  if export_fn is None:
    raise ConfigError('--mode=export: the export package is not available.')
  path = cfg.train.checkpoint or checkpoints.latest(cfg.train.model_dir)
  if path is None:
    raise checkpoints.CheckpointError(
        f'--mode=export: no checkpoint in --model_dir='
        f'{cfg.train.model_dir!r} and no --checkpoint given.')
  model, step = _restore_for_eval(cfg, strategy, checkpoints.resolve(path))
  _export(export_fn, model, cfg, step, chief)
  return 0
