"""--mode=eval (issue 14): --eval_watch skips a checkpoint deleted before it
was read, stops at the watched run's own final step, and a run with
nothing to evaluate is refused."""
import dataclasses
import json
import os

import pytest
import tensorflow as tf

import cli
from simclr_tf import checkpoints, data, jobs, tasks
from simclr_tf.config import (Config, ConfigError, DataConfig, EvalConfig,
                              ModelConfig, TrainConfig)
from simclr_tf.models import build_model

MODEL = ModelConfig(resnet_depth=18, width_multiplier=0.125, image_size=32,
                    proj_out_dim=16, num_classes=3)


@pytest.fixture(scope='module')
def npz_dir(tmp_path_factory):
  return cli.write_tiny_npz(tmp_path_factory.mktemp('npz'))


def test_watch_skips_a_checkpoint_deleted_before_it_was_read(tmp_path):
  """A training run with --keep_checkpoint_max=1 deletes ckpt-1 while the
  watcher is about to read it: the real restore fails, the watcher goes on
  with the next (it used to crash with NotFoundError)."""
  model = build_model(MODEL)
  ckpt = tf.train.Checkpoint(model=model)
  first = ckpt.write(str(tmp_path / 'ckpt-1'))
  last = ckpt.write(str(tmp_path / 'ckpt-3'))
  for name in os.listdir(tmp_path):
    if name.startswith('ckpt-1.'):
      os.remove(tmp_path / name)

  def evaluate(path):
    checkpoints.restore_model(path, model)
    return int(path.rsplit('-', 1)[1])

  assert jobs.watch(iter([first, last]), evaluate, total=3) == [3]
  # A checkpoint that is there but unreadable is not skipped.
  with open(last + '.index', 'wb') as f:
    f.write(b'garbage')
  with pytest.raises(checkpoints.CheckpointError,
                     match=r"--eval_watch: .*ckpt-3 is damaged \(.*sstable"):
    jobs.watch(iter([last]), evaluate, total=3)


def test_watch_waits_for_the_watched_runs_final_step(npz_dir, tmp_path):
  """The total comes from the training run's config.json (it used to come
  from the watcher's own flags, so a finished run was waited on forever)."""
  model_dir = tmp_path / 'run'
  model_dir.mkdir()
  stored = Config(data=DataConfig(dataset=f'npz:{npz_dir}'), model=MODEL,
                  train=TrainConfig(model_dir=str(model_dir), train_steps=7))
  (model_dir / 'config.json').write_text(json.dumps(stored.to_dict()))
  watcher = Config(data=DataConfig(dataset=f'npz:{npz_dir}'), model=MODEL,
                   train=TrainConfig(model_dir=str(model_dir),
                                     train_epochs=100, train_batch_size=8))
  source = data.get_source(watcher.data)
  assert jobs.watched_run_total(watcher, source) == 7
  (model_dir / 'config.json').unlink()
  assert jobs.watched_run_total(watcher, source) == 48 * 100 // 8 + 1


def test_eval_with_nothing_to_evaluate_is_refused(npz_dir, tmp_path):
  cfg = Config(data=DataConfig(dataset=f'npz:{npz_dir}'), model=MODEL,
               mode='eval',
               train=TrainConfig(model_dir=str(tmp_path),
                                 lineareval_while_pretraining=False),
               evaluation=EvalConfig(knn_every_epochs=0,
                                     projector_examples=0))
  with pytest.raises(ConfigError, match=r'nothing to evaluate.*'
                     r'--knn_every_epochs=0 and --projector_examples=0'):
    jobs._eval_checkpoints(cfg, tasks.get(cfg), tf.distribute.get_strategy(),
                           data.get_source(cfg.data), True, None)


def test_eval_steps_beyond_the_data_are_refused_up_front(npz_dir, tmp_path):
  """It used to train, then fail with StopIteration and write no result."""
  cfg = Config(data=DataConfig(dataset=f'npz:{npz_dir}'), model=MODEL,
               train=TrainConfig(model_dir=str(tmp_path), eval_batch_size=8,
                                 eval_steps=4))
  source = data.get_source(cfg.data)
  with pytest.raises(ConfigError, match=r'--eval_steps=4 is invalid: '
                     r'--eval_split=test has 20 examples, 3 batches of '
                     r'--eval_batch_size=8; use at most 3'):
    jobs.check_inputs(cfg, tf.distribute.get_strategy(), source,
                      tasks.get(cfg))
  jobs.check_inputs(dataclasses.replace(
      cfg, train=dataclasses.replace(cfg.train, eval_steps=3)),
                    tf.distribute.get_strategy(), source, tasks.get(cfg))
