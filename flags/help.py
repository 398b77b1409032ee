"""``--help``: the program's docstring, then its flags by group.

absl's ``--help`` (also ``-?`` and ``--helpshort``) prints the key flags of
the main module in one block. ``define_help_flags`` replaces those flags by
ones that print each group of ``flags/groups/`` under its own header, in
``GROUPS`` order, every flag rendered by absl (help, default, choices), and
adds ``-h`` as the short name of ``--helpshort``. ``--helpfull`` stays
absl's: every flag, absl's own included, listed by defining module (one
module per group for ours).

    simclr_flags.define_flags()
    simclr_flags.define_help_flags()   # before app.run(main)
"""
import errno
import sys

from absl import app
from absl import flags as absl_flags

from flags.definitions import FLAGS
from flags.groups import GROUPS, name_of

HELPFULL_HINT = ("Try --helpfull for every flag, absl's own (--flagfile, "
                 'logging) too.')


def header_of(group):
  """The header line of ``group`` in ``--help`` (without a trailing colon)."""
  return f'{name_of(group)}: {group.DESCRIPTION}'


def ungrouped_flags(flag_values=FLAGS):
  """Names of flags in ``flag_values`` that belong to no group.

  absl's own flags (``--help``, logging, ...) are not ours to group; any
  other flag must be defined from a group's spec (``flags/groups/``).
  """
  grouped = {group.__name__ for group in GROUPS}
  names = set()
  for key in flag_values:
    flag = flag_values[key]
    module = flag_values.find_module_defining_flag(flag.name) or ''
    if module not in grouped and not module.startswith('absl.'):
      names.add(flag.name)
  return sorted(names)


def grouped_help(flag_values=FLAGS):
  """The flags' help, one block per group, in ``GROUPS`` order.

  Each block is absl's ``module_help`` of the group's module (the flags it
  defined, sorted by name) under the group's header instead of the module
  name. Flags of no group (a bug) follow in a last block that names them.

  Args:
    flag_values: the ``FlagValues`` the flags are defined on.

  Returns:
    The help text, starting with a newline, as absl's ``module_help``.
  """
  blocks = []
  for group in GROUPS:
    text = flag_values.module_help(group.__name__)
    if text:
      blocks.append(text.replace(f'\n{group.__name__}:',
                                 f'\n{header_of(group)}', 1))
  stray = ungrouped_flags(flag_values)
  if stray:
    blocks.append('\nnot in a group (give each a module of flags/groups/): '
                  + ', '.join(f'--{name}' for name in stray))
  return '\n'.join(blocks)


def usage_text(flag_values=FLAGS):
  """What ``--help`` prints: the main module's docstring, then the groups."""
  doc = getattr(sys.modules.get('__main__'), '__doc__', None)
  if not doc:
    doc = f'\nUSAGE: {sys.argv[0]} [flags]\n'
  return (f'{doc}\nflags:\n{grouped_help(flag_values)}\n\n'
          f'{HELPFULL_HINT}\n')


class _GroupedHelp:
  """Mixin for absl's help flags: print ``usage_text`` and exit as absl does."""

  def __init__(self, flag_values):
    super().__init__()
    self.allow_override = True  # it replaces absl's flag of the same name
    self._flag_values = flag_values

  def parse(self, arg):
    absl_flags.BooleanFlag.parse(self, arg)
    if self.value:
      try:
        sys.stdout.write(usage_text(self._flag_values))
        sys.stdout.flush()
      except OSError as e:  # `run.py --help | head`: as absl, no traceback
        if e.errno != errno.EPIPE:
          raise
      sys.exit(1)  # absl's --help exit status


class _Help(_GroupedHelp, app.HelpFlag):
  """``--help`` and ``-?``."""


class _Helpshort(_GroupedHelp, app.HelpshortFlag):
  """``--helpshort`` and ``-h`` (absl gives it no short name)."""
  SHORT_NAME = 'h'


def define_help_flags(flag_values=FLAGS):
  """Makes ``--help``, ``-?``, ``--helpshort`` and ``-h`` list flags by group.

  Defines absl's help flags first (``app.define_help_flags`` is idempotent,
  so ``app.run`` will not define them again), then replaces ``--help`` and
  ``--helpshort`` by grouped ones. Idempotent.

  Args:
    flag_values: the ``FlagValues`` to define them on (absl's global FLAGS,
      the one ``app.run`` parses, by default).

  Returns:
    ``flag_values``.
  """
  if flag_values is FLAGS:
    app.define_help_flags()
  for cls in (_Help, _Helpshort):
    absl_flags.DEFINE_flag(cls(flag_values), flag_values,
                           module_name='absl.app')
  return flag_values
