"""simclr_tf's command line: flag definitions, Config building, presets.

    import flags as simclr_flags
    simclr_flags.define_flags()                 # on absl's global FLAGS
    simclr_flags.define_help_flags()            # --help lists them by group
    cfg = simclr_flags.config_from_flags()      # validated Config
    simclr_flags.preflight(cfg)                 # cheap path checks

Each flag belongs to one group (``flags/groups/``: job, data, model,
training, evaluation, export, runtime); ``--help`` lists them by group.
Presets are absl flagfiles in ``flags/presets/`` (``--flagfile=PATH``).
"""
import os

from flags.definitions import (ALL_FLAGS, FLAGS, ORIGINAL_FLAGS, OUR_FLAGS,
                               QUICK_JOB, default_of, define_flags)
from flags.groups import GROUPS
from flags.help import define_help_flags
from flags.preflight import preflight
from flags.to_config import FIELD_TO_FLAG, config_from_flags

PRESET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'presets')


def preset_names():
  """Names of the preset flagfiles (``cifar10_cpu`` for cifar10_cpu.cfg)."""
  return sorted(f[:-4] for f in os.listdir(PRESET_DIR) if f.endswith('.cfg'))


def preset_path(name):
  """Absolute path of preset ``name``, for ``--flagfile=``."""
  path = os.path.join(PRESET_DIR, f'{name}.cfg')
  if not os.path.isfile(path):
    raise ValueError(f'No preset {name!r}: available are {preset_names()}.')
  return path


__all__ = ['ALL_FLAGS', 'FIELD_TO_FLAG', 'FLAGS', 'GROUPS', 'ORIGINAL_FLAGS',
           'OUR_FLAGS', 'PRESET_DIR', 'QUICK_JOB', 'config_from_flags',
           'default_of', 'define_flags', 'define_help_flags', 'preflight',
           'preset_names', 'preset_path']
