"""The ONE place that reads flag values: absl FlagValues -> validated Config.

Every dataclass field that a flag sets has the flag's name; ``SECTION_FLAGS``
lists them per Config section and ``FIELD_TO_FLAG`` maps the dotted field
name used in ``ConfigError`` messages (``loss.temperature``) to the flag
(``temperature``), so that errors name what the user typed:
``--temperature=-1 is invalid: must be > 0.``
"""
import os
import re

from simclr_tf import config as cfg_lib
from simclr_tf.config import ConfigError

from flags import definitions

FLAGS = definitions.FLAGS

# Config section attribute -> (its class, the flags that set its fields).
SECTION_FLAGS = {
    'data': (cfg_lib.DataConfig, (
        'dataset', 'data_dir', 'train_split', 'eval_split', 'labeled_split',
        'cache_dataset', 'skip_corrupt_images')),
    'augment': (cfg_lib.AugmentConfig, (
        'color_jitter_strength', 'use_blur', 'crop_area_min')),
    'model': (cfg_lib.ModelConfig, (
        'resnet_depth', 'width_multiplier', 'image_size', 'cifar_stem',
        'sk_ratio', 'se_ratio', 'batch_norm_decay', 'global_bn',
        'proj_head_mode', 'proj_out_dim', 'num_proj_layers',
        'ft_proj_selector', 'zero_init_logits_layer', 'group1_projection',
        'probe_input_norm')),
    'loss': (cfg_lib.LossConfig, ('temperature', 'hidden_norm',
                                  'distill_temperature',
                                  'distill_label_weight')),
    'optim': (cfg_lib.OptimConfig, (
        'optimizer', 'learning_rate', 'learning_rate_scaling',
        'warmup_epochs', 'weight_decay', 'momentum')),
    'train': (cfg_lib.TrainConfig, (
        'model_dir', 'train_mode', 'lineareval_while_pretraining',
        'fine_tune_after_block', 'freeze_encoder', 'checkpoint', 'teacher',
        'train_batch_size', 'train_epochs', 'train_steps', 'eval_batch_size',
        'eval_steps', 'checkpoint_epochs', 'checkpoint_steps',
        'keep_checkpoint_max', 'keep_hub_module_max',
        'export_every_checkpoint', 'steps_per_loop', 'train_summary_steps',
        'log_every_steps', 'seed', 'eval_watch', 'eval_timeout_secs')),
    'evaluation': (cfg_lib.EvalConfig, (
        'knn_every_epochs', 'knn_k', 'knn_temperature', 'knn_bank_size',
        'projector_examples', 'eval_every_checkpoint')),
    'runtime': (cfg_lib.RuntimeConfig, (
        'strategy', 'master', 'tpu_name', 'tpu_zone', 'gcp_project', 'jit',
        'mixed_precision', 'deterministic', 'cpu_devices',
        'worker_timeout_secs')),
}
TOP_LEVEL_FLAGS = ('mode', 'eval_name')  # fields of Config itself
# Flags that set no field directly (folded into another one).
DERIVED_FLAGS = {'use_tpu': 'runtime.strategy'}

FIELD_TO_FLAG = {f'{section}.{name}': name
                 for section, (_, names) in SECTION_FLAGS.items()
                 for name in names}
FIELD_TO_FLAG.update({f'config.{name}': name for name in TOP_LEVEL_FLAGS})

# Strings where '' means "not given".
_OPTIONAL_STRINGS = ('data_dir', 'checkpoint', 'teacher', 'labeled_split',
                     'master', 'tpu_name',
                     'tpu_zone', 'gcp_project', 'eval_name')
# Path flags: '~' expanded (a folder named '~' is never what was meant).
_PATHS = ('model_dir', 'checkpoint', 'teacher', 'data_dir')
_CIFAR_STEM = {'auto': None, 'true': True, 'false': False}
_ERROR = re.compile(r'^(\w+)\.(\w+)=(.*?) is invalid: (.*)$', re.DOTALL)


def format_value(value) -> str:
  """A flag value as it would be typed: -1.0 -> '-1', True -> 'true'."""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
    return str(int(value))
  if value is None or value == '':
    return "''"
  return str(value)


def flag_error(flag_values, name, allowed) -> ConfigError:
  """``ConfigError('--name=VALUE is invalid: allowed.')``."""
  value = format_value(flag_values[name].value)
  return ConfigError(f'--{name}={value} is invalid: {allowed}.')


def _flagify(text):
  """Names flags inside a message: "train_mode='x'" -> "--train_mode='x'"."""
  names = '|'.join(sorted(definitions.ALL_FLAGS, key=len, reverse=True))
  return re.sub(rf'(?<![\w.-])({names})=', r'--\1=', text)


def _renamed(error, flag_values) -> ConfigError:
  """``error`` with the dataclass field replaced by its flag, if it has one."""
  match = _ERROR.match(str(error))
  if not match:
    return error
  section, field, _, allowed = match.groups()
  name = FIELD_TO_FLAG.get(f'{section}.{field}')
  if name is None:
    return error
  allowed = _flagify(allowed).rstrip('.')
  return flag_error(flag_values, name, allowed)


def _value(flag_values, name):
  value = flag_values[name].value
  if name in _PATHS and value:
    value = os.path.expanduser(value)  # the shell leaves --flag=~/x as is
  if name in _OPTIONAL_STRINGS:
    return value or None
  if name == 'cifar_stem':
    return _CIFAR_STEM[value]
  return value


def _strategy(flag_values):
  """--strategy, with --use_tpu / --tpu_name turning 'auto' into 'tpu'."""
  strategy = flag_values.strategy
  wants_tpu = [n for n in ('use_tpu', 'tpu_name') if flag_values[n].value]
  if not wants_tpu:
    return strategy
  if strategy in ('auto', 'tpu'):
    return 'tpu'
  raise flag_error(
      flag_values, 'strategy',
      f'--{wants_tpu[0]} asks for a TPU; use --strategy=tpu or auto, or '
      f'drop --{wants_tpu[0]}')


def _check_flags(flag_values):
  """Rules about flag values that no dataclass field sees as typed."""
  if not flag_values.model_dir:
    raise flag_error(flag_values, 'model_dir',
                     'give a directory for checkpoints and results')
  dataset = flag_values.dataset
  for prefix in ('npz:', 'folder:'):
    if dataset.startswith(prefix) and not dataset[len(prefix):]:
      raise flag_error(flag_values, 'dataset',
                       f'give a path after {prefix!r}, e.g. {prefix}/data/x')


def _section(section, flag_values, **overrides):
  cls, names = SECTION_FLAGS[section]
  kwargs = {name: _value(flag_values, name) for name in names}
  kwargs.update(overrides)
  return cls(**kwargs)


def _build(flag_values):
  sections = {s: _section(s, flag_values) for s in SECTION_FLAGS
              if s != 'runtime'}
  sections['runtime'] = _section('runtime', flag_values,
                                 strategy=_strategy(flag_values))
  top = {name: _value(flag_values, name) for name in TOP_LEVEL_FLAGS}
  given = tuple(sorted(name for name in definitions.ALL_FLAGS
                       if flag_values[name].present))
  return cfg_lib.Config(**top, **sections, given_flags=given)


def config_from_flags(flag_values=FLAGS) -> cfg_lib.Config:
  """Returns the validated Config for the parsed ``flag_values``.

  Raises:
    ConfigError: a flag value is out of range or conflicts with another;
      the message names the flag and its value and says what is allowed.
      Filesystem checks are separate (``preflight``).
  """
  _check_flags(flag_values)
  try:
    return _build(flag_values)
  except ConfigError as e:
    raise _renamed(e, flag_values) from None
