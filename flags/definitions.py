"""Every command-line flag of simclr_tf, defined on an absl ``FlagValues``.

Names, types and meaning follow the original SimCLR TF2 ``run.py``
(google-research/simclr, ``tf2/run.py``) wherever the flag exists there
(``ORIGINAL_FLAGS``); ``OUR_FLAGS`` are additions. Differences from the
original: ``--width_multiplier`` is a float (0.25 makes a tiny model),
``--mode`` also accepts ``export``, ``--optimizer`` also ``adamw``/``lamb``,
and the defaults are the quick offline job (``QUICK_JOB``), not ImageNet.

The flags are defined in groups (data, model, training, ...), one module of
``flags/groups/`` each; that module owns the group membership, and each flag
is registered with absl under it, so ``run.py --help`` (``flags.help``) and
absl's ``--helpfull`` list the flags by group.

Only ``flags.to_config.config_from_flags`` reads the values.
"""
from absl import flags as absl_flags

from flags import groups as groups_lib

FLAGS = absl_flags.FLAGS

# The no-argument run: a quick offline job (built-in shapes dataset, tiny
# ResNet-18, a few epochs on CPU). Flags not named here take the original
# run.py's defaults. Presets set every key of this dict explicitly, so tuning
# it never changes a preset.
QUICK_JOB = {
    'dataset': 'builtin',
    'resnet_depth': 18,
    'width_multiplier': 0.25,
    'image_size': 32,
    'train_batch_size': 128,
    'train_epochs': 4,
    # Gentler crops than the paper's 0.08 learn shape faster in a short run
    # (width 0.25, 4 epochs: probe 27% vs 22% at 3 epochs with 0.08, w 0.125).
    'crop_area_min': 0.25,
    'steps_per_loop': 10,
    'learning_rate': 1.0,
    'learning_rate_scaling': 'linear',
    'warmup_epochs': 1.0,
    'weight_decay': 1e-4,
    'temperature': 0.5,
    'color_jitter_strength': 0.5,
    'use_blur': False,
    'optimizer': 'lars',
    'train_split': 'train',
    'eval_split': 'test',
    'mode': 'train_then_eval',
    'model_dir': 'runs/quick',
    'eval_batch_size': 256,
    'checkpoint_epochs': 1,
    'global_bn': True,
    'use_tpu': False,  # the original defaults to True; the quick job is local
}

# The tables, gathered from the group modules of flags/groups/ (each flag's
# group is the module that holds its spec): (kind, name, original default,
# help[, choices]). Defaults are replaced by QUICK_JOB where it names the flag.
GROUPS = groups_lib.GROUPS
ORIGINAL_SPECS = tuple(spec for group in GROUPS
                       for spec in group.ORIGINAL_SPECS)
OUR_SPECS = tuple(spec for group in GROUPS for spec in group.OUR_SPECS)


def _group_of_each_flag():
  """Flag name -> its group module; raises if a flag is in two groups."""
  group_of = {}
  for group in GROUPS:
    for spec in group.ORIGINAL_SPECS + group.OUR_SPECS:
      name = spec[1]
      if name in group_of:
        raise ValueError(
            f'--{name} is in two flag groups, {group_of[name].__name__} and '
            f'{group.__name__}; keep it in one.')
      group_of[name] = group
  return group_of


GROUP_OF = _group_of_each_flag()

ORIGINAL_FLAGS = tuple(spec[1] for spec in ORIGINAL_SPECS)
OUR_FLAGS = tuple(spec[1] for spec in OUR_SPECS)
ALL_FLAGS = ORIGINAL_FLAGS + OUR_FLAGS

_DEFINE = {
    'float': absl_flags.DEFINE_float,
    'int': absl_flags.DEFINE_integer,
    'bool': absl_flags.DEFINE_bool,
    'str': absl_flags.DEFINE_string,
}


def default_of(name):
  """The default of flag ``name``: QUICK_JOB's, else the original's."""
  if name in QUICK_JOB:
    return QUICK_JOB[name]
  for spec in ORIGINAL_SPECS + OUR_SPECS:
    if spec[1] == name:
      return spec[2]
  raise KeyError(f'no flag named {name!r}')


def _define(spec, flag_values):
  """Defines one flag, registered under its group's module (for --help)."""
  kind, name, _, help_text = spec[:4]
  group = GROUP_OF.get(name)
  if group is None:
    raise ValueError(
        f'--{name} has no group: put its spec in the ORIGINAL_SPECS or '
        'OUR_SPECS of a module of flags/groups/, not in the tables of '
        'flags/definitions.py.')
  default = default_of(name)
  if kind == 'enum':
    absl_flags.DEFINE_enum(name, default, list(spec[4]), help_text,
                           flag_values=flag_values,
                           module_name=group.__name__)
  else:
    _DEFINE[kind](name, default, help_text, flag_values=flag_values,
                  module_name=group.__name__)


def define_flags(flag_values=FLAGS):
  """Defines every flag on ``flag_values`` (absl's global FLAGS by default).

  Idempotent: flags already defined there are left alone, so calling it
  twice (run.py and a test, say) is safe.
  """
  for spec in ORIGINAL_SPECS + OUR_SPECS:
    if spec[1] not in flag_values:
      _define(spec, flag_values)
  return flag_values
