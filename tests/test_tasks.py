"""Training modes as tasks: the registry, and what each task owns."""
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import steps, tasks
from simclr_tf.config import (Config, ConfigError, ModelConfig, OptimConfig,
                              TrainConfig)
from simclr_tf.models import param_sets
from simclr_tf.optim import build_optimizer

TINY = ModelConfig(resnet_depth=18, width_multiplier=0.125, image_size=32,
                   num_classes=4, proj_out_dim=8)


def _cfg(**train):
  return Config(model=TINY, optim=OptimConfig(learning_rate=0.5),
                train=TrainConfig(train_batch_size=8, **train))


def test_registry_covers_every_train_mode():
  from simclr_tf.config import TRAIN_MODES
  assert TRAIN_MODES == tasks.NAMES
  for name in tasks.NAMES:
    task = tasks.get(_cfg(train_mode=name))
    assert task.name == name and task.needs == tasks.MODES[name].needs
  with pytest.raises(ValueError, match="train_mode='nope'"):
    tasks.task_class('nope')


def _batch(views):
  rng = np.random.default_rng(0)
  images = {k: tf.constant(rng.uniform(size=(8, 32, 32, 3)), tf.float32)
            for k in (('view1', 'view2') if views == 2 else ('image',))}
  return {**images, 'label': tf.constant(np.arange(8) % 4, tf.int32)}


def _train(task, views, num_steps=2):
  strategy = tf.distribute.get_strategy()
  model = task.build_model(strategy)
  optimizer = build_optimizer(task.cfg.optim, 0.5, param_sets(model))
  optimizer.build(task.trainable_variables(model))
  before = {v.path: v.numpy() for v in model.variables}
  loop = steps.make_train_loop(model, optimizer, strategy, task)
  data = tf.data.Dataset.from_tensors(_batch(views)).repeat()
  metrics = loop(iter(data), tf.constant(num_steps))
  changed = {v.path for v in model.variables
             if not np.array_equal(before[v.path], v.numpy())}
  return model, changed, metrics


@pytest.mark.parametrize('mode,views', [('pretrain', 2), ('finetune', 1)])
def test_freeze_encoder_keeps_all_encoder_state(mode, views):
  """Weights and BN moving averages of the encoder stay as they were; the
  heads train (before the fix the encoder's BN moving statistics moved)."""
  model, changed, metrics = _train(
      tasks.get(_cfg(train_mode=mode, freeze_encoder=True)), views)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  encoder = {v.path for v in model.encoder.variables}
  assert not changed & encoder
  assert not model.encoder.trainable_variables
  assert changed & {v.path for v in model.supervised_head.variables}
  if mode == 'pretrain':
    assert changed & {v.path for v in model.projection_head.variables}


def test_unfrozen_encoder_trains_and_updates_bn_statistics():
  model, changed, _ = _train(tasks.get(_cfg(train_mode='finetune')), 1)
  moving = {v.path for v in model.encoder.non_trainable_variables}
  assert moving and moving <= changed


def test_freeze_encoder_contradicting_fine_tune_after_block():
  with pytest.raises(ConfigError, match='fine_tune_after_block=2.*'
                     'freeze_encoder'):
    TrainConfig(train_mode='finetune', fine_tune_after_block=2,
                freeze_encoder=True)
  TrainConfig(train_mode='finetune', fine_tune_after_block=4,
              freeze_encoder=True)


@pytest.mark.parametrize('mode,views,probe_label', [
    ('pretrain', 2, 'probe_acc'), ('finetune', 1, 'acc')])
def test_task_facts(mode, views, probe_label):
  task = tasks.get(_cfg(train_mode=mode))
  assert task.views == views and task.images_per_step == 8 * views
  assert dict(task.progress)['supervised_acc'] == probe_label
  assert task.evaluates()
  assert not tasks.get(_cfg(lineareval_while_pretraining=False)).evaluates()
