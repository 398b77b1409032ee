"""One real SimCLR pretraining step from every data source."""
import os
import sys

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'data'))
from data_testutil import random_split  # noqa: E402
from test_data_sources import _write_tfds_metadata  # noqa: E402

from simclr_tf import data, steps, tasks  # noqa: E402
from simclr_tf.config import (AugmentConfig, Config, DataConfig,  # noqa: E402
                              ModelConfig, OptimConfig, TrainConfig)
from simclr_tf.models import build_model, param_sets  # noqa: E402
from simclr_tf.optim import build_optimizer  # noqa: E402


def _one_step(data_cfg, split='train'):
  source = data.get_source(data_cfg)
  cfg = Config(data=data_cfg,
               model=ModelConfig(width_multiplier=0.125, proj_out_dim=8,
                                 num_classes=source.num_classes),
               optim=OptimConfig(learning_rate=0.1),
               augment=AugmentConfig(use_blur=True),
               train=TrainConfig(model_dir='unused', train_batch_size=4))
  strategy = tf.distribute.get_strategy()
  model = build_model(cfg.model)
  optimizer = build_optimizer(cfg.optim, 0.1, param_sets(model))
  optimizer.build(model.trainable_variables)
  dataset = data.build_dataset(strategy, source, split, mode='pretrain',
                               global_batch_size=4, image_size=32,
                               augment_cfg=cfg.augment, seed=0,
                               jit_compile=False)
  before = [v.numpy() for v in model.encoder.trainable_variables]
  metrics = steps.make_train_loop(model, optimizer, strategy,
                                   tasks.get(cfg))(
      iter(dataset), tf.constant(1))
  assert np.isfinite(float(metrics['contrast_loss']))
  assert float(metrics['contrast_loss']) > 0
  assert int(optimizer.iterations) == 1
  assert any(not np.array_equal(b, v.numpy()) for b, v in
             zip(before, model.encoder.trainable_variables))


def test_step_from_builtin(tmp_path):
  _one_step(DataConfig(dataset='builtin', data_dir=str(tmp_path)),
            split='train[:64]')


def test_step_from_shared_cifar10_npz(shared_data_dir):
  _one_step(DataConfig(dataset='npz:' + os.path.join(shared_data_dir,
                                                     'cifar10')),
            split='train[:64]')


def test_step_from_image_folder(tmp_path):
  images, labels = random_split(12, num_classes=3)
  for i, (image, label) in enumerate(zip(images, labels)):
    folder = tmp_path / 'train' / f'class{label}'
    folder.mkdir(parents=True, exist_ok=True)
    encode = tf.io.encode_png if i % 2 else tf.io.encode_jpeg
    ext = 'png' if i % 2 else 'jpg'
    tf.io.write_file(str(folder / f'{i}.{ext}'), encode(image))
  _one_step(DataConfig(dataset=f'folder:{tmp_path}'))


def test_step_from_tfds_mock(tmp_path):
  tfds = pytest.importorskip('tensorflow_datasets')
  _write_tfds_metadata(tfds, str(tmp_path), {'train': 16, 'test': 4})
  with tfds.testing.mock_data(num_examples=16, data_dir=str(tmp_path)):
    _one_step(DataConfig(dataset='cifar10', data_dir=str(tmp_path)))
