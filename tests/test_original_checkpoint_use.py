"""Using the original release's checkpoints: which checkpoint each mode
reads, the architecture taken from the checkpoint, and run.py fine-tuning,
evaluating and exporting one (fixture model A, rebuilt from its manifest).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import checkpoints
from simclr_tf.checkpoints import paths
from simclr_tf.config import Config, ModelConfig, TrainConfig
from tests.helpers import cli
from tests.helpers import original_release as ref


def _config(model_dir, mode='train', given=(), checkpoint=None, **model):
  return Config(mode=mode, model=ModelConfig(**model),
                train=TrainConfig(model_dir=str(model_dir),
                                  checkpoint=checkpoint),
                given_flags=tuple(given))


@pytest.fixture(scope='module')
def checkpoint_a(tmp_path_factory):
  return ref.write_checkpoint('A', str(tmp_path_factory.mktemp('orig')))


def test_architecture_comes_from_the_checkpoint(tmp_path, checkpoint_a):
  choice = paths.choose(_config(tmp_path / 'run', checkpoint=checkpoint_a))
  assert choice.role == 'warm_start'
  cfg = checkpoints.resolve_architecture(
      _config(tmp_path / 'run', checkpoint=checkpoint_a), choice)
  m = cfg.model
  assert (m.resnet_depth, m.width_multiplier, m.uses_cifar_stem,
          m.group1_projection, m.probe_input_norm, m.num_head_layers,
          m.proj_out_dim) == (18, 1.0, True, True, False, 3, 128)
  # Given flags that agree are kept.
  agree = _config(tmp_path / 'run', given=('resnet_depth', 'num_proj_layers'),
                  checkpoint=checkpoint_a, resnet_depth=18, num_proj_layers=3)
  assert checkpoints.resolve_architecture(agree, choice).model.resnet_depth == 18


def test_an_imagenet_stem_checkpoint_gets_its_input_size(tmp_path):
  prefix = ref.write_checkpoint('C', str(tmp_path / 'c'))
  cfg = _config(tmp_path / 'run', mode='export', checkpoint=prefix)
  cfg = checkpoints.resolve_architecture(cfg, paths.choose(cfg),
                                         num_classes_from_checkpoint=True)
  m = cfg.model
  assert (m.resnet_depth, m.sk_ratio, m.uses_cifar_stem, m.image_size,
          m.num_classes) == (50, 0.0625, False, 224, 1000)


@pytest.mark.parametrize('flag,value,stored', [
    ('resnet_depth', 50, 'resnet_depth=18'),
    ('width_multiplier', 0.5, 'width_multiplier=1.0'),
    ('group1_projection', False, 'group1_projection=True'),
    ('num_proj_layers', 2, 'projection head layers=3'),
    ('sk_ratio', 0.0625, 'sk_ratio=0.0'),
])
def test_a_given_flag_that_disagrees_is_named(tmp_path, checkpoint_a, flag,
                                              value, stored):
  cfg = _config(tmp_path / 'run', given=(flag,), checkpoint=checkpoint_a,
                **{flag: value})
  with pytest.raises(checkpoints.CheckpointError) as e:
    checkpoints.resolve_architecture(cfg, paths.choose(cfg))
  shown = str(value).lower() if isinstance(value, bool) else value
  assert str(e.value).startswith(f'--{flag}={shown} does not match the '
                                 f'checkpoint {checkpoint_a!r}')
  assert stored in str(e.value)
  assert not os.path.exists(tmp_path / 'run')


def test_each_mode_reads_one_checkpoint(tmp_path, checkpoint_a):
  run = tmp_path / 'run'
  own = ref.write_checkpoint('A', str(run), step=7)
  exports = tmp_path / 'other' / 'saved_model'
  ref.write_export_variables(str(exports / '20'))
  for mode, checkpoint, role, prefix in [
      ('train', checkpoint_a, 'resume', own),
      ('train_then_eval', None, 'resume', own),
      ('eval', checkpoint_a, 'restore', checkpoint_a),
      ('eval', None, 'restore', own),
      ('export', str(exports), 'restore',
       str(exports / '20' / 'variables' / 'variables')),
  ]:
    choice = paths.choose(_config(run, mode=mode, checkpoint=checkpoint))
    assert (choice.role, choice.prefix) == (role, prefix), mode
  # --mode=eval --checkpoint=X with an empty --model_dir reads X.
  choice = paths.choose(_config(tmp_path / 'empty', mode='eval',
                                checkpoint=checkpoint_a))
  assert choice.prefix == checkpoint_a
  assert paths.choose(_config(tmp_path / 'fresh')) is None


def test_our_run_directory_supplies_what_the_flags_do_not(tmp_path):
  run = tmp_path / 'run'
  os.makedirs(run)
  saved = _config(run, width_multiplier=0.5, resnet_depth=34,
                  image_size=48)
  with open(run / 'config.json', 'w') as f:
    json.dump(saved.to_dict(), f)
  from simclr_tf.models import build_model
  model = build_model(saved.model)
  prefix = tf.train.Checkpoint(model=model).save(str(run / 'ckpt'))
  choice = paths.Choice(prefix, 'restore', 'model_dir')
  cfg = checkpoints.resolve_architecture(_config(run, mode='eval', given=()),
                                         choice)
  assert (cfg.model.width_multiplier, cfg.model.resnet_depth,
          cfg.model.image_size) == (0.5, 34, 48)


def test_pretraining_warm_start_restores_encoder_and_projection_head(
    checkpoint_a):
  from simclr_tf.checkpoints import original
  from simclr_tf.models import build_model
  model = build_model(ModelConfig(resnet_depth=18, width_multiplier=1.0,
                                  group1_projection=True,
                                  probe_input_norm=False))
  assert checkpoints.warm_start(model, checkpoint_a) == \
      'original release checkpoint'
  for key, v in original.original_keys(model).items():
    np.testing.assert_array_equal(v.numpy(), ref.det_value(key, v.shape))


def test_a_missing_variable_is_named(tmp_path):
  key = ('model/_projection_head/linear_layers/1/bn_relu/bn/gamma'
         '/.ATTRIBUTES/VARIABLE_VALUE')
  prefix = ref.write_checkpoint('A', str(tmp_path), drop=[key])
  from simclr_tf.models import build_model
  model = build_model(ModelConfig(resnet_depth=18, width_multiplier=1.0,
                                  group1_projection=True))
  with pytest.raises(checkpoints.CheckpointError,
                     match='has no variable for simclr/projection_head/nl_1/'
                           'bn/batch_normalization/gamma'):
    checkpoints.warm_start(model, prefix)


def test_checkpoints_on_any_gfile_filesystem(checkpoint_a):
  """ram:// stands in for gs://: nothing may assume a local path."""
  directory = 'ram://simclr_test/orig'
  prefix = ref.write_checkpoint('A', directory)
  cfg = _config('ram://simclr_test/run', mode='eval', checkpoint=directory)
  choice = paths.choose(cfg)
  assert choice.prefix == prefix
  cfg = checkpoints.resolve_architecture(cfg, choice)
  from simclr_tf.models import build_model
  model = build_model(cfg.model)
  assert checkpoints.restore_model(choice.prefix, model) == \
      'original release checkpoint'


def _run(args, **kwargs):
  return cli.run(args + ['--use_tpu=false'], **kwargs)


@pytest.mark.slow
def test_run_py_finetunes_evaluates_and_exports_an_original_checkpoint(
    tmp_path, checkpoint_a):
  data = cli.write_tiny_npz(tmp_path)
  common = [f'--dataset=npz:{data}', '--train_batch_size=8',
            '--eval_batch_size=8', '--log_every_steps=1', '--use_blur=false']
  # Fine-tune on 3 classes with no architecture flags; only the classifier
  # trains, so the encoder must hold the checkpoint's values exactly.
  ft = tmp_path / 'ft'
  args = common + [f'--model_dir={ft}', '--mode=train', '--train_steps=1',
                   '--train_mode=finetune', '--fine_tune_after_block=4',
                   f'--checkpoint={os.path.dirname(checkpoint_a)}']
  proc = _run(args)
  log = proc.stderr
  assert 'original release checkpoint' in log
  assert 'starts afresh' in log and '3 classes here' in log
  cfg = json.load(open(ft / 'config.json'))['model']
  assert (cfg['resnet_depth'], cfg['width_multiplier'], cfg['cifar_stem'],
          cfg['group1_projection'], cfg['num_classes']) == (18, 1.0, True,
                                                            True, 3)
  key = 'model/resnet_model/initial_conv_relu_max_pool/0/conv2d/kernel'
  from simclr_tf.models import build_model
  tuned = build_model(ModelConfig(**cfg))
  checkpoints.restore_model(checkpoints.latest(str(ft)), tuned)
  np.testing.assert_array_equal(
      tuned.encoder.stem.convs[0].conv.kernel.numpy(),
      ref.det_value(key + '/.ATTRIBUTES/VARIABLE_VALUE', [3, 3, 3, 64]))
  assert 'Already trained to step 1' in _run(args).stderr  # resumes
  # Export it with no flags at all: the SavedModel computes the original's
  # outputs (10 classes, from the checkpoint).
  exp = tmp_path / 'exp'
  _run([f'--model_dir={exp}', '--mode=export', f'--checkpoint={checkpoint_a}'])
  module = tf.saved_model.load(str(exp / 'saved_model' / '1'))
  expected = ref.expected('A_outputs.npz')
  out = module(tf.constant(expected['images']), training=False)
  for name in ('final_avg_pool', 'proj_head_output', 'logits_sup'):
    ref_value = expected[f'training_false/{name}']
    assert np.max(np.abs(out[name].numpy() - ref_value)) <= 1e-4 * max(
        1, np.max(np.abs(ref_value)))
  # Evaluating it on 3 classes: one error line, nothing written.
  ev = tmp_path / 'ev'
  proc = _run(common + [f'--model_dir={ev}', '--mode=eval',
                        f'--checkpoint={checkpoint_a}'], check=False)
  assert proc.returncode == 1
  assert 'error: checkpoint' in proc.stderr and 'supervised_head' in \
      proc.stderr
  assert not os.path.exists(ev)
