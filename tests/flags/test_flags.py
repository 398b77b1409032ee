"""Flag definitions and config_from_flags: names, types, defaults, errors."""
import dataclasses
import os
import re

import pytest
from absl import flags as absl_flags

import flags as simclr_flags
from flags import to_config
from simclr_tf.config import Config, ConfigError

# The original SimCLR TF2 run.py flags and their absl types (width_multiplier
# was an int there; ours is a float so fractions work).
ORIGINAL_TYPES = {
    'learning_rate': 'float', 'learning_rate_scaling': 'string enum',
    'warmup_epochs': 'float', 'weight_decay': 'float',
    'batch_norm_decay': 'float', 'train_batch_size': 'int',
    'train_split': 'string', 'train_epochs': 'int', 'train_steps': 'int',
    'eval_steps': 'int', 'eval_batch_size': 'int', 'checkpoint_epochs': 'int',
    'checkpoint_steps': 'int', 'eval_split': 'string', 'dataset': 'string',
    'cache_dataset': 'bool', 'mode': 'string enum',
    'train_mode': 'string enum', 'lineareval_while_pretraining': 'bool',
    'checkpoint': 'string', 'zero_init_logits_layer': 'bool',
    'fine_tune_after_block': 'int', 'master': 'string', 'model_dir': 'string',
    'data_dir': 'string', 'use_tpu': 'bool', 'tpu_name': 'string',
    'tpu_zone': 'string', 'gcp_project': 'string',
    'optimizer': 'string enum', 'momentum': 'float', 'eval_name': 'string',
    'keep_checkpoint_max': 'int', 'keep_hub_module_max': 'int',
    'temperature': 'float', 'hidden_norm': 'bool',
    'proj_head_mode': 'string enum', 'proj_out_dim': 'int',
    'num_proj_layers': 'int', 'ft_proj_selector': 'int', 'global_bn': 'bool',
    'width_multiplier': 'float', 'resnet_depth': 'int', 'sk_ratio': 'float',
    'se_ratio': 'float', 'image_size': 'int',
    'color_jitter_strength': 'float', 'use_blur': 'bool',
}
OUR_TYPES = {
    'train_summary_steps': 'int', 'strategy': 'string enum', 'seed': 'int',
    'freeze_encoder': 'bool', 'steps_per_loop': 'int',
    'log_every_steps': 'int', 'export_every_checkpoint': 'bool',
    'skip_corrupt_images': 'bool', 'cifar_stem': 'string enum', 'jit': 'bool', 'cpu_devices': 'int', 'crop_area_min': 'float',
    'mixed_precision': 'string enum', 'deterministic': 'bool',
    'eval_watch': 'bool', 'eval_timeout_secs': 'int',
    'group1_projection': 'bool', 'probe_input_norm': 'bool',
    'teacher': 'string', 'distill_temperature': 'float',
    'distill_label_weight': 'float', 'labeled_split': 'string',
    'knn_every_epochs': 'float', 'knn_k': 'int', 'knn_temperature': 'float',
    'knn_bank_size': 'int', 'projector_examples': 'int',
    'eval_every_checkpoint': 'string enum', 'worker_timeout_secs': 'int',
}
ENUMS = {
    'learning_rate_scaling': {'linear', 'sqrt'},
    'mode': {'train', 'eval', 'train_then_eval', 'export'},
    'train_mode': {'pretrain', 'finetune', 'distill', 'supervised'},
    'optimizer': {'momentum', 'adam', 'lars', 'adamw', 'lamb'},
    'proj_head_mode': {'none', 'linear', 'nonlinear'},
    'strategy': {'auto', 'default', 'one_device', 'mirrored', 'multi_worker',
                 'tpu'},
    'cifar_stem': {'auto', 'true', 'false'},
    'mixed_precision': {'auto', 'none', 'bfloat16', 'float16'},
    'eval_every_checkpoint': {'auto', 'true', 'false'},
}


@pytest.fixture
def fv():
  return simclr_flags.define_flags(absl_flags.FlagValues())


def parse(fv, *args):
  fv(['prog', *args])
  return simclr_flags.config_from_flags(fv)


def error_of(fv, *args):
  with pytest.raises(ConfigError) as info:
    parse(fv, *args)
  return str(info.value)


def test_define_flags_is_idempotent(fv):
  before = sorted(fv)
  simclr_flags.define_flags(fv)
  assert sorted(fv) == before
  assert set(simclr_flags.ALL_FLAGS) <= set(fv)


def test_define_flags_defaults_to_absl_global_flags():
  simclr_flags.define_flags()
  simclr_flags.define_flags()
  assert 'temperature' in absl_flags.FLAGS
  assert simclr_flags.FLAGS is absl_flags.FLAGS


@pytest.mark.parametrize('name,kind', sorted({**ORIGINAL_TYPES,
                                              **OUR_TYPES}.items()))
def test_flag_exists_with_type(fv, name, kind):
  assert fv[name].flag_type() == kind


def test_flag_lists_match_the_original_and_ours():
  assert set(simclr_flags.ORIGINAL_FLAGS) == set(ORIGINAL_TYPES)
  assert set(simclr_flags.OUR_FLAGS) == set(OUR_TYPES)


@pytest.mark.parametrize('name', sorted(ENUMS))
def test_enum_choices(fv, name):
  assert set(fv[name].parser.enum_values) == ENUMS[name]


def test_help_is_one_clear_line(fv):
  for name in simclr_flags.ALL_FLAGS:
    text = fv[name].help
    assert text and "\n" not in text and len(text) < 140, name


def test_no_arguments_give_the_quick_job(fv):
  cfg = parse(fv)
  assert isinstance(cfg, Config)
  for name, value in simclr_flags.QUICK_JOB.items():
    assert fv[name].value == value, name
  assert cfg.data.dataset == 'builtin'
  assert (cfg.model.resnet_depth, cfg.model.width_multiplier,
          cfg.model.image_size) == (18, 0.25, 32)
  assert cfg.model.uses_cifar_stem and cfg.model.cifar_stem is None
  assert (cfg.train.train_batch_size, cfg.train.train_epochs) == (128, 4)
  assert (cfg.optim.optimizer, cfg.optim.learning_rate,
          cfg.optim.learning_rate_scaling) == ('lars', 1.0, 'linear')
  assert (cfg.optim.warmup_epochs, cfg.optim.weight_decay) == (1, 1e-4)
  assert (cfg.loss.temperature, cfg.augment.color_jitter_strength,
          cfg.augment.use_blur, cfg.augment.crop_area_min) == (
              0.5, 0.5, False, 0.25)
  assert (cfg.data.train_split, cfg.data.eval_split) == ('train', 'test')
  assert (cfg.mode, cfg.train.model_dir) == ('train_then_eval', 'runs/quick')
  assert (cfg.train.eval_batch_size, cfg.train.checkpoint_epochs) == (256, 1)
  assert cfg.model.global_bn
  assert cfg.runtime.strategy == 'auto'  # the quick job runs locally


def test_other_defaults_follow_the_original(fv):
  cfg = parse(fv)
  assert cfg.train.train_mode == 'pretrain'
  assert cfg.train.lineareval_while_pretraining
  assert (cfg.model.proj_head_mode, cfg.model.proj_out_dim,
          cfg.model.num_proj_layers, cfg.model.ft_proj_selector) == (
              'nonlinear', 128, 3, 0)
  assert (cfg.model.batch_norm_decay, cfg.optim.momentum) == (0.9, 0.9)
  assert (cfg.train.keep_checkpoint_max, cfg.train.keep_hub_module_max) == (
      5, 1)
  assert cfg.loss.hidden_norm and cfg.train.fine_tune_after_block == -1
  assert cfg.train.checkpoint is None and cfg.data.data_dir is None
  assert cfg.train.seed is None and cfg.eval_name is None


def test_field_to_flag_covers_every_flag_and_real_fields():
  mapped = set(simclr_flags.FIELD_TO_FLAG.values())
  assert mapped | set(to_config.DERIVED_FLAGS) == set(simclr_flags.ALL_FLAGS)
  sections = {f.name: f.type for f in dataclasses.fields(Config)}
  for dotted in simclr_flags.FIELD_TO_FLAG:
    section, name = dotted.split('.')
    cls = Config if section == 'config' else to_config.SECTION_FLAGS[
        section][0]
    assert name in {f.name for f in dataclasses.fields(cls)}, dotted
    assert section == 'config' or section in sections


def test_width_multiplier_accepts_fractions_and_integers(fv):
  assert parse(fv, '--width_multiplier=0.125').model.width_multiplier == 0.125
  fv.unparse_flags()
  assert parse(fv, '--width_multiplier=2').model.width_multiplier == 2.0


@pytest.mark.parametrize('value,expected', [('auto', None), ('true', True),
                                            ('false', False)])
def test_cifar_stem(fv, value, expected):
  assert parse(fv, f'--cifar_stem={value}').model.cifar_stem is expected


def test_values_reach_their_sections(fv):
  cfg = parse(fv, '--seed=7', '--data_dir=', '--checkpoint=/ckpt',
              '--eval_name=probe', '--mode=export', '--strategy=one_device',
              '--mixed_precision=bfloat16', '--jit', '--deterministic',
              '--freeze_encoder', '--eval_watch', '--eval_timeout_secs=30',
              '--steps_per_loop=10', '--skip_corrupt_images', '--noglobal_bn')
  assert cfg.train.seed == 7 and cfg.data.data_dir is None
  assert cfg.train.checkpoint == '/ckpt' and cfg.eval_name == 'probe'
  assert cfg.mode == 'export' and cfg.runtime.strategy == 'one_device'
  assert cfg.runtime.mixed_precision == 'bfloat16' and cfg.runtime.jit
  assert cfg.runtime.deterministic and cfg.train.freeze_encoder
  assert cfg.train.eval_watch and cfg.train.eval_timeout_secs == 30
  assert cfg.train.steps_per_loop == 10 and cfg.data.skip_corrupt_images
  assert not cfg.model.global_bn


@pytest.mark.parametrize('args', [['--use_tpu'], ['--tpu_name=my-tpu'],
                                  ['--use_tpu', '--strategy=tpu']])
def test_tpu_flags_imply_tpu_strategy(fv, args):
  assert parse(fv, *args).runtime.strategy == 'tpu'


def test_tpu_flag_conflicts_with_other_strategy(fv):
  msg = error_of(fv, '--use_tpu', '--strategy=mirrored')
  assert msg.startswith('--strategy=mirrored is invalid:')
  assert '--use_tpu' in msg


def test_finetune_allows_fine_tune_after_block(fv):
  cfg = parse(fv, '--train_mode=finetune', '--fine_tune_after_block=4')
  assert cfg.train.fine_tune_after_block == 4


BAD_VALUES = [
    (['--train_batch_size=-8'],
     '--train_batch_size=-8 is invalid: must be > 0'),
    (['--train_batch_size=0'], '--train_batch_size=0 is invalid: must be > 0'),
    (['--eval_batch_size=0'], '--eval_batch_size=0 is invalid: must be > 0'),
    (['--learning_rate=0'], '--learning_rate=0 is invalid: must be > 0'),
    (['--learning_rate=-0.5'], '--learning_rate=-0.5 is invalid: must be > 0'),
    (['--temperature=-1'], '--temperature=-1 is invalid: must be > 0.'),
    (['--temperature=0'], '--temperature=0 is invalid: must be > 0.'),
    (['--width_multiplier=0'], '--width_multiplier=0 is invalid: must be > 0'),
    (['--width_multiplier=-0.25'], '--width_multiplier=-0.25 is invalid'),
    (['--resnet_depth=19'], '--resnet_depth=19 is invalid: must be one of '
     '[18, 34, 50, 101, 152, 200]'),
    (['--sk_ratio=1.5'], '--sk_ratio=1.5 is invalid: must be in [0, 1)'),
    (['--sk_ratio=-0.1'], '--sk_ratio=-0.1 is invalid: must be in [0, 1)'),
    (['--se_ratio=1'], '--se_ratio=1 is invalid: must be in [0, 1)'),
    (['--ft_proj_selector=4'], '--ft_proj_selector=4 is invalid: must be in '
     "[-4, 3] for --proj_head_mode='nonlinear' with 3 head layer(s)"),
    (['--proj_head_mode=none', '--ft_proj_selector=1'],
     "--ft_proj_selector=1 is invalid: must be in [-1, 0] for "
     "--proj_head_mode='none'"),
    (['--num_proj_layers=2', '--ft_proj_selector=-4'],
     '--ft_proj_selector=-4 is invalid: must be in [-3, 2]'),
    (['--fine_tune_after_block=2'], '--fine_tune_after_block=2 is invalid: '
     "only applies to --train_mode='finetune'"),
    (['--train_mode=finetune', '--fine_tune_after_block=5'],
     '--fine_tune_after_block=5 is invalid: must be in [-1, 4]'),
    (['--image_size=4'], '--image_size=4 is invalid: must be >= 8 for the '
     'CIFAR stem'),
    (['--image_size=16', '--cifar_stem=false'], '--image_size=16 is invalid: '
     'must be >= 32 for the ImageNet stem'),
    (['--weight_decay=-1e-4'],
     '--weight_decay=-0.0001 is invalid: must be >= 0'),
    (['--momentum=1'], '--momentum=1 is invalid: must be in [0, 1)'),
    (['--batch_norm_decay=1'], '--batch_norm_decay=1 is invalid'),
    (['--warmup_epochs=-1'], '--warmup_epochs=-1 is invalid: must be >= 0'),
    (['--color_jitter_strength=-1'], '--color_jitter_strength=-1 is invalid'),
    (['--proj_out_dim=0'], '--proj_out_dim=0 is invalid: must be > 0'),
    (['--train_epochs=0'], '--train_epochs=0 is invalid: must be > 0 when '
     'train_steps is 0'),
    (['--train_steps=-1'], '--train_steps=-1 is invalid: must be >= 0'),
    (['--keep_checkpoint_max=0'], '--keep_checkpoint_max=0 is invalid'),
    (['--steps_per_loop=0'], '--steps_per_loop=0 is invalid: must be > 0'),
    (['--train_split='], "--train_split='' is invalid: must name a split"),
    (['--dataset='], "--dataset='' is invalid"),
    (['--dataset=npz:'], '--dataset=npz: is invalid: give a path'),
    (['--dataset=folder:'], '--dataset=folder: is invalid: give a path'),
    (['--model_dir='], "--model_dir='' is invalid: give a directory"),
    (['--knn_k=0'], '--knn_k=0 is invalid: must be > 0'),
    (['--seed=-1'], '--seed=-1 is invalid: must be in [0, 2**32 - 1]'),
    (['--seed=4294967296'], '--seed=4294967296 is invalid: must be in [0, '
     '2**32 - 1]'),
    (['--eval_name=../outside'], '--eval_name=../outside is invalid: must be '
     'a plain name'),
    (['--eval_name=a/b'], '--eval_name=a/b is invalid: must be a plain name'),
    (['--model_dir=runs/glob[1]'], '--model_dir=runs/glob[1] is invalid: '
     'must not contain any of * ? [ ]'),
    (['--checkpoint=runs/c*'], '--checkpoint=runs/c* is invalid: must not '
     'contain any of * ? [ ]'),
    (['--knn_temperature=0'], '--knn_temperature=0 is invalid: must be a '
     'number > 0'),
    (['--knn_every_epochs=-1'], '--knn_every_epochs=-1 is invalid: must be a '
     'number >= 0 (0 turns the kNN monitor off)'),
    (['--knn_bank_size=-1'], '--knn_bank_size=-1 is invalid: must be >= 0'),
    (['--train_summary_steps=-2'], '--train_summary_steps=-2 is invalid: '
     'must be >= 0, or -1'),
]


@pytest.mark.parametrize('args,expected', BAD_VALUES,
                         ids=[' '.join(a) for a, _ in BAD_VALUES])
def test_bad_values_name_the_flag(fv, args, expected):
  msg = error_of(fv, *args)
  assert msg.startswith(expected), msg
  # The dataclass field (e.g. 'loss.temperature=') never leaks through.
  assert not re.search(
      r'\b(data|augment|model|loss|optim|train|runtime|config)\.\w+=', msg)


@pytest.mark.parametrize('args', [['--strategy=gpu'], ['--optimizer=sgd'],
                                  ['--mode=predict'], ['--cifar_stem=yes'],
                                  ['--learning_rate_scaling=log']])
def test_unknown_enum_values_are_rejected_naming_the_flag(fv, args):
  with pytest.raises(absl_flags.IllegalFlagValueError) as info:
    fv(['prog', *args])
  assert args[0] in str(info.value) and 'should be one of' in str(info.value)


@pytest.mark.parametrize('value,text', [(-1.0, '-1'), (1e-4, '0.0001'),
                                        (True, 'true'), ('', "''"),
                                        (None, "''"), (0.0625, '0.0625'),
                                        ('train[:1%]', 'train[:1%]')])
def test_format_value(value, text):
  assert to_config.format_value(value) == text


FLOAT_FLAGS = sorted(n for n, kind in {**ORIGINAL_TYPES, **OUR_TYPES}.items()
                     if kind == 'float')


@pytest.mark.parametrize('name', FLOAT_FLAGS)
@pytest.mark.parametrize('value', ['inf', '-inf', 'nan'])
def test_float_flags_refuse_non_finite_values(fv, name, value):
  """--temperature=inf used to train silently doing nothing, and
  --warmup_epochs=inf failed later without naming the flag."""
  msg = error_of(fv, f'--{name}={value}')
  assert msg.startswith(f'--{name}='), msg
  assert 'is invalid' in msg


def test_home_in_path_flags_is_expanded(fv):
  """--model_dir=~/x used to create a folder named '~' in the current one."""
  cfg = parse(fv, '--model_dir=~/runs/x', '--checkpoint=~/ckpt',
              '--data_dir=~/data')
  home = os.path.expanduser('~')
  assert cfg.train.model_dir == os.path.join(home, 'runs', 'x')
  assert cfg.train.checkpoint == os.path.join(home, 'ckpt')
  assert cfg.data.data_dir == os.path.join(home, 'data')
