"""Preset flagfiles parse into valid Configs with their documented values."""
import pytest
from absl import flags as absl_flags

import flags as simclr_flags

PRESETS = {
    'cifar10_simclr': {
        'data.dataset': 'cifar10', 'data.train_split': 'train',
        'data.eval_split': 'test', 'model.resnet_depth': 18,
        'model.width_multiplier': 1.0, 'model.uses_cifar_stem': True,
        'model.image_size': 32, 'train.train_batch_size': 512,
        'train.train_epochs': 1000, 'train.train_mode': 'pretrain',
        'optim.optimizer': 'lars', 'optim.learning_rate': 1.0,
        'optim.learning_rate_scaling': 'linear', 'optim.weight_decay': 1e-4,
        'loss.temperature': 0.5, 'augment.use_blur': False,
        'augment.color_jitter_strength': 0.5,
    },
    'imagenet_r50_simclr': {
        'data.dataset': 'imagenet2012', 'data.eval_split': 'validation',
        'model.resnet_depth': 50, 'model.width_multiplier': 1.0,
        'model.uses_cifar_stem': False, 'model.image_size': 224,
        'train.train_batch_size': 4096, 'train.train_epochs': 100,
        'optim.optimizer': 'lars', 'optim.learning_rate': 0.075,
        'optim.learning_rate_scaling': 'sqrt', 'optim.weight_decay': 1e-4,
        'loss.temperature': 0.1, 'augment.use_blur': True,
        'augment.color_jitter_strength': 1.0, 'model.global_bn': True,
    },
    'simclrv2_finetune_1pct': {
        'data.dataset': 'imagenet2012_subset/1pct', 'data.train_split': 'train',
        'data.eval_split': 'validation', 'model.resnet_depth': 152,
        'model.width_multiplier': 3.0, 'model.sk_ratio': 0.0625,
        'model.image_size': 224, 'model.num_proj_layers': 3,
        'model.ft_proj_selector': 1, 'model.zero_init_logits_layer': True,
        'train.train_mode': 'finetune', 'train.fine_tune_after_block': -1,
        'train.train_batch_size': 1024, 'train.train_epochs': 60,
        'optim.optimizer': 'lars', 'optim.learning_rate': 0.005,
        'optim.learning_rate_scaling': 'sqrt', 'optim.weight_decay': 0.0,
        'optim.warmup_epochs': 0.0, 'model.global_bn': True,
    },
    'cifar10_cpu': {
        'data.dataset': 'cifar10', 'data.eval_split': 'test',
        'model.resnet_depth': 18, 'model.width_multiplier': 0.25,
        'model.uses_cifar_stem': True, 'model.image_size': 32,
        'train.train_batch_size': 256, 'train.train_epochs': 5,
        'optim.learning_rate': 1.0, 'optim.learning_rate_scaling': 'linear',
        'optim.weight_decay': 1e-4, 'loss.temperature': 0.5,
        'augment.color_jitter_strength': 0.5, 'augment.use_blur': False,
    },
    'smoke': {
        'data.dataset': 'builtin', 'model.width_multiplier': 0.125,
        'train.train_batch_size': 16, 'train.train_steps': 4,
        'train.eval_steps': 1, 'model.image_size': 32,
        'evaluation.knn_bank_size': 256, 'evaluation.projector_examples': 128,
    },
}
# SimCLRv2's three stages on CIFAR-10 at CPU scale (README section).
_CPU_10PCT = {
    'data.dataset': 'cifar10', 'data.train_split': 'train[:10%]',
    'data.eval_split': 'test', 'model.resnet_depth': 18,
    'model.width_multiplier': 0.25, 'model.ft_proj_selector': 1,
    'train.train_batch_size': 256, 'train.train_epochs': 30,
    'optim.optimizer': 'lars', 'optim.weight_decay': 0.0,
    'optim.warmup_epochs': 0.0,
}
PRESETS['cifar10_cpu_finetune_10pct'] = {
    **_CPU_10PCT, 'train.train_mode': 'finetune',
    'train.checkpoint': 'runs/cifar10_cpu', 'optim.learning_rate': 1.0,
    'model.zero_init_logits_layer': True,
}
PRESETS['cifar10_cpu_supervised_10pct'] = {
    **_CPU_10PCT, 'train.train_mode': 'supervised', 'train.checkpoint': None,
    'optim.learning_rate': 1.0,
}
PRESETS['cifar10_cpu_distill'] = {
    'data.train_split': 'train', 'model.width_multiplier': 0.25,
    'train.train_mode': 'distill',
    'train.teacher': 'runs/cifar10_cpu_finetune_10pct',
    'loss.distill_temperature': 1.0, 'loss.distill_label_weight': 0.0,
    'train.train_epochs': 10, 'optim.learning_rate': 1.0,
}
PRESETS['simclrv2_finetune_10pct'] = {
    **PRESETS['simclrv2_finetune_1pct'],
    'data.dataset': 'imagenet2012_subset/10pct', 'train.train_epochs': 30,
}


def load(name, *extra):
  fv = simclr_flags.define_flags(absl_flags.FlagValues())
  fv(['prog', f'--flagfile={simclr_flags.preset_path(name)}', *extra])
  return simclr_flags.config_from_flags(fv)


def lines_of(name):
  with open(simclr_flags.preset_path(name), encoding='utf-8') as f:
    return f.read().splitlines()


def set_flags(name):
  """Flag names a preset sets (``--x=1`` -> x, ``--nox`` -> x)."""
  names = []
  for line in lines_of(name):
    if line.startswith('--'):
      flag = line[2:].split('=', 1)[0]
      if flag not in simclr_flags.ALL_FLAGS and flag.startswith('no'):
        flag = flag[2:]
      names.append(flag)
  return names


def get(cfg, dotted):
  section, attr = dotted.split('.')
  return getattr(getattr(cfg, section), attr)


def test_the_documented_presets_exist():
  assert set(simclr_flags.preset_names()) == set(PRESETS)


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_preset_gives_its_documented_config(name):
  cfg = load(name)
  for dotted, value in PRESETS[name].items():
    assert get(cfg, dotted) == value, dotted


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_preset_starts_with_what_and_how_long(name):
  lines = lines_of(name)
  header = '\n'.join(line for line in lines if line.startswith('#'))
  assert lines[0].startswith('# Reproduces:')
  assert '# Time:' in header
  first_flag = next(i for i, line in enumerate(lines) if line.startswith('--'))
  assert all(line.startswith('#') for line in lines[:first_flag])


@pytest.mark.parametrize('name', sorted(PRESETS))
def test_preset_pins_every_quick_job_flag(name):
  """Tuning QUICK_JOB must never change a preset."""
  names = set_flags(name)
  assert set(simclr_flags.QUICK_JOB) <= set(names)
  assert set(names) <= set(simclr_flags.ALL_FLAGS)
  assert len(names) == len(set(names)), 'a flag is set twice'


def test_later_flags_override_a_preset():
  cfg = load('cifar10_cpu', '--dataset=npz:/data/cifar10', '--train_epochs=1')
  assert cfg.data.dataset == 'npz:/data/cifar10'
  assert cfg.train.train_epochs == 1


def test_unknown_preset_names_the_available_ones():
  with pytest.raises(ValueError, match='smoke'):
    simclr_flags.preset_path('nope')
