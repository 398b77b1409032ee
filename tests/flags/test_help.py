"""--help lists the flags by group: every flag once, under its group's header.

One subprocess (``python run.py --help``, ~0.3 s: TensorFlow is not
imported); the rest works in-process on a fresh ``FlagValues``.
"""
import os
import re
import subprocess
import sys

import pytest
from absl import flags as absl_flags

import cli  # tests/helpers/cli.py
import flags as simclr_flags
from flags import definitions
from flags import help as help_lib
from flags.groups import GROUPS, data, name_of

# The groups and the order --help lists them in.
ORDER = ['job', 'data', 'model', 'training', 'evaluation', 'export',
         'runtime']
# Flags whose group is worth pinning (the rest follows from the modules).
SOME_MEMBERS = {
    'mode': 'job', 'model_dir': 'job', 'checkpoint': 'job',
    'dataset': 'data', 'eval_split': 'data', 'use_blur': 'data',
    'resnet_depth': 'model', 'proj_out_dim': 'model',
    'learning_rate': 'training', 'teacher': 'training',
    'knn_k': 'evaluation', 'lineareval_while_pretraining': 'evaluation',
    'keep_hub_module_max': 'export', 'export_every_checkpoint': 'export',
    'strategy': 'runtime', 'use_tpu': 'runtime', 'seed': 'runtime',
}
FLAG_LINE = re.compile(r'^  (?:-\S,)?--(?:\[no\])?(\w+):')
HEADER_LINE = re.compile(r'^(\S.*)$')


def sections(text):
  """[(header, [flag names])] of the text after ``flags:``, in order."""
  body = text.split('\nflags:\n', 1)[1]
  out = []
  for line in body.splitlines():
    flag = FLAG_LINE.match(line)
    if flag:
      assert out, f'flag before any header: {line!r}'
      out[-1][1].append(flag.group(1))
    elif HEADER_LINE.match(line):
      out.append((line, []))
  return out


def check_grouped(text):
  """Asserts the grouping of ``text`` (what --help prints)."""
  found = sections(text)
  headers = [help_lib.header_of(group) for group in GROUPS]
  assert [h for h, _ in found][:len(headers)] == headers
  # After the groups only the --helpfull hint; no 'not in a group' block.
  assert [h for h, _ in found][len(headers):] == [help_lib.HELPFULL_HINT]
  listed = [name for _, names in found for name in names]
  assert sorted(listed) == sorted(simclr_flags.ALL_FLAGS)  # each exactly once
  for group, (_, names) in zip(GROUPS, found):
    assert set(names) == {n for n, g in definitions.GROUP_OF.items()
                          if g is group}, name_of(group)
    assert names == sorted(names)


@pytest.fixture
def fv():
  return simclr_flags.define_flags(absl_flags.FlagValues())


def test_groups_are_the_intended_ones_in_order():
  assert [name_of(group) for group in GROUPS] == ORDER
  for group in GROUPS:
    assert group.DESCRIPTION and '\n' not in group.DESCRIPTION
    assert len(help_lib.header_of(group)) <= 80
    assert group.ORIGINAL_SPECS or group.OUR_SPECS


def test_every_flag_is_in_exactly_one_group():
  names = [spec[1] for group in GROUPS
           for spec in group.ORIGINAL_SPECS + group.OUR_SPECS]
  assert len(names) == len(set(names))
  assert sorted(names) == sorted(simclr_flags.ALL_FLAGS)
  assert set(definitions.GROUP_OF) == set(simclr_flags.ALL_FLAGS)
  for name, group in SOME_MEMBERS.items():
    assert name_of(definitions.GROUP_OF[name]) == group, name


def test_original_and_our_flags_come_from_the_groups():
  assert definitions.ORIGINAL_FLAGS == tuple(
      spec[1] for group in GROUPS for spec in group.ORIGINAL_SPECS)
  assert definitions.OUR_FLAGS == tuple(
      spec[1] for group in GROUPS for spec in group.OUR_SPECS)
  assert not set(definitions.ORIGINAL_FLAGS) & set(definitions.OUR_FLAGS)


def test_each_flag_is_registered_under_its_group_module(fv):
  for name in simclr_flags.ALL_FLAGS:
    assert (fv.find_module_defining_flag(name)
            == definitions.GROUP_OF[name].__name__), name
  assert help_lib.ungrouped_flags(fv) == []


def test_grouped_help_lists_every_flag_once_under_its_group(fv):
  check_grouped('\nflags:\n' + help_lib.grouped_help(fv) + '\n\n'
                + help_lib.HELPFULL_HINT)


def test_a_spec_in_the_tables_without_a_group_raises(monkeypatch):
  monkeypatch.setattr(definitions, 'OUR_SPECS', definitions.OUR_SPECS + (
      ('int', 'stray_flag', 0, 'In no group.'),))
  with pytest.raises(ValueError, match='--stray_flag has no group'):
    definitions.define_flags(absl_flags.FlagValues())


def test_a_flag_in_two_groups_raises(monkeypatch):
  monkeypatch.setattr(data, 'OUR_SPECS', data.OUR_SPECS + (
      ('str', 'model_dir', None, 'Also in data.'),))
  with pytest.raises(ValueError, match='--model_dir is in two flag groups'):
    definitions._group_of_each_flag()  # pylint: disable=protected-access


def test_a_flag_defined_outside_the_groups_is_shown_as_ungrouped(fv):
  absl_flags.DEFINE_integer('stray_flag', 0, 'In no group.', flag_values=fv)
  assert help_lib.ungrouped_flags(fv) == ['stray_flag']
  with pytest.raises(AssertionError):
    check_grouped('\nflags:\n' + help_lib.grouped_help(fv) + '\n\n'
                  + help_lib.HELPFULL_HINT)


@pytest.mark.parametrize('arg', ['--help', '-?', '--helpshort', '-h'])
def test_help_flags_print_the_groups_and_exit(fv, capsys, arg):
  help_lib.define_help_flags(fv)
  help_lib.define_help_flags(fv)  # idempotent
  with pytest.raises(SystemExit) as info:
    fv(['prog', arg])
  assert info.value.code == 1  # as absl's --help
  out = capsys.readouterr().out
  assert out == help_lib.usage_text(fv)
  check_grouped(out)


def test_run_py_help_is_grouped_and_does_not_import_tensorflow():
  proc = subprocess.run(
      [sys.executable, '-X', 'importtime', os.path.join(cli.ROOT, 'run.py'),
       '--help'], capture_output=True, text=True, timeout=120, cwd=cli.ROOT)
  assert proc.returncode == 1, proc.stderr[-2000:]
  doc = 'simclr_tf command line: pretrain, fine-tune, evaluate and export'
  assert proc.stdout.startswith(doc)
  check_grouped(proc.stdout)
  imported = re.findall(r'\|\s+([\w.]+)\s*$', proc.stderr, re.M)
  assert 'absl.app' in imported  # -X importtime did list the imports
  assert not [m for m in imported
              if m.split('.')[0] in ('tensorflow', 'keras', 'numpy')]
