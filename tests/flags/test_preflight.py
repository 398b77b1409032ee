"""preflight(config): cheap path checks that name the flag, create nothing."""
import os
import subprocess
import sys

import pytest
from absl import flags as absl_flags

import flags as simclr_flags
from simclr_tf.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def config(*args):
  fv = simclr_flags.define_flags(absl_flags.FlagValues())
  fv(['prog', *args])
  return simclr_flags.config_from_flags(fv)


def tree(root):
  """Every path under ``root`` (to prove preflight creates nothing)."""
  return sorted(os.path.join(d, n) for d, dirs, files in os.walk(root)
                for n in dirs + files)


def preflight_error(*args):
  with pytest.raises(ConfigError) as info:
    simclr_flags.preflight(config(*args))
  return str(info.value)


def touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w', encoding='utf-8') as f:
    f.write('x')


def make_checkpoint_dir(directory, prefix='ckpt-3'):
  """What tf.train.CheckpointManager leaves: a state file, an .index and
  the data shard."""
  touch(os.path.join(directory, prefix + '.index'))
  touch(os.path.join(directory, prefix + '.data-00000-of-00001'))
  with open(os.path.join(directory, 'checkpoint'), 'w', encoding='utf-8') as f:
    f.write(f'model_checkpoint_path: "{prefix}"\n'
            f'all_model_checkpoint_paths: "{prefix}"\n')


def test_quick_job_passes_and_creates_nothing(tmp_path):
  model_dir = tmp_path / 'a' / 'b' / 'run'
  simclr_flags.preflight(config(f'--model_dir={model_dir}',
                                f'--data_dir={tmp_path / "cache"}'))
  assert tree(tmp_path) == []


def test_existing_model_dir_passes(tmp_path):
  simclr_flags.preflight(config(f'--model_dir={tmp_path}'))


def test_model_dir_under_a_regular_file(tmp_path):
  touch(str(tmp_path / 'file'))
  model_dir = tmp_path / 'file' / 'run'
  before = tree(tmp_path)
  msg = preflight_error(f'--model_dir={model_dir}')
  assert msg.startswith(f'--model_dir={model_dir} cannot be created')
  assert 'is a file' in msg
  assert tree(tmp_path) == before


def test_model_dir_is_a_regular_file(tmp_path):
  touch(str(tmp_path / 'file'))
  msg = preflight_error(f'--model_dir={tmp_path / "file"}')
  assert msg == f'--model_dir={tmp_path / "file"} is a file, not a directory.'


@pytest.mark.parametrize('name', ['saved_model', 'train', 'eval', 'eval_x'])
def test_a_file_where_the_run_writes_a_directory(tmp_path, name):
  """A file named saved_model failed the export after training with a
  FailedPreconditionError traceback (issue 14)."""
  touch(str(tmp_path / name))
  touch(str(tmp_path / 'notes'))
  msg = preflight_error(f'--model_dir={tmp_path}')
  assert msg.startswith(f'--model_dir={tmp_path}: {tmp_path / name} is a '
                        'file, but the run writes a directory of that name')
  assert msg.endswith('move the file away.')


def test_a_step_the_machine_cannot_hold_is_refused(tmp_path, monkeypatch):
  """--image_size=2000 ran ~50 s, then failed in the augmentation with a
  ResourceExhaustedError (a segfault on another machine); now refused
  before anything starts, on this machine's memory (issue 14, case 4)."""
  from flags import preflight as preflight_module  # noqa: F401
  from simclr_tf import footprint
  monkeypatch.setattr(footprint, 'memory_total', lambda: 24 * 2**30)
  msg = preflight_error(f'--model_dir={tmp_path / "r"}', '--image_size=2000')
  assert msg.startswith(
      '--image_size=2000 with --train_batch_size=128, --resnet_depth=18, '
      '--width_multiplier=0.25: a training step needs about 187.4 GiB of '
      'memory (256 augmented views of 2000x2000 and their activations), '
      'more than this machine has (24.0 GiB). Lower --train_batch_size (to '
      '8 or less), or --image_size (to ')
  assert 'ResNet' not in msg and not (tmp_path / 'r').exists()
  for fits in (['--image_size=224', '--width_multiplier=0.125'],
               ['--image_size=2000', '--mode=eval', '--eval_watch'],
               ['--image_size=2000', '--train_batch_size=8']):
    simclr_flags.preflight(config(f'--model_dir={tmp_path / "r"}', *fits))
  msg = preflight_error(f'--model_dir={tmp_path / "r"}', '--image_size=224',
                        '--resnet_depth=50', '--width_multiplier=1')
  assert 'needs about 31.9 GiB' in msg  # ImageNet's ResNet-50 at batch 128
  finetune = footprint.training_bytes(50, 1, 224, 128, 1, False)
  assert finetune < footprint.training_bytes(50, 1, 224, 128, 2, False)


def test_footprint_counts_what_a_measured_step_held():
  """Peak RSS measured here (TF 2.21, oneDNN, ResNet-18 width 0.25, one
  encoder step, issue 14's investigation): 1,556,320 KiB at 128 views of
  224 px; 804,544 KiB at 64 views of 128 px. The activation estimate
  without the run.py share stays within 0.9-1.1x of them."""
  from simclr_tf import footprint
  for views, size, kib in ((128, 224, 1556320), (64, 128, 804544)):
    acts, _ = footprint._count(18, 0.25, size, False)
    estimate = 0.64 * 2**30 + footprint.ACTIVATION_FACTOR * 4 * views * acts
    assert 0.9 < estimate / (kib * 1024) < 1.1, (views, size)


def test_run_subdirs_are_the_names_their_owners_write(tmp_path):
  from export import saved_model
  from flags.preflight import RUN_SUBDIRS
  from simclr_tf import rundir
  assert RUN_SUBDIRS == (saved_model.EXPORT_SUBDIR, 'train',
                                   rundir.eval_dir_name(None))
  assert rundir.eval_dir_name('x').startswith('eval_')


@pytest.mark.skipif(os.geteuid() == 0, reason='root ignores permissions')
def test_model_dir_in_read_only_parent(tmp_path):
  parent = tmp_path / 'ro'
  parent.mkdir()
  parent.chmod(0o500)
  try:
    msg = preflight_error(f'--model_dir={parent / "run"}')
  finally:
    parent.chmod(0o700)
  assert 'no write permission' in msg and '--model_dir=' in msg


def test_missing_checkpoint(tmp_path):
  missing = tmp_path / 'nope'
  msg = preflight_error(f'--model_dir={tmp_path / "run"}',
                        f'--checkpoint={missing}')
  assert msg.startswith(f'--checkpoint={missing} does not exist')
  assert tree(tmp_path) == []


def test_checkpoint_prefix_directory_and_saved_model_pass(tmp_path):
  touch(str(tmp_path / 'prefix' / 'ckpt-1.index'))
  make_checkpoint_dir(str(tmp_path / 'dir'))
  touch(str(tmp_path / 'sm' / 'saved_model.pb'))
  touch(str(tmp_path / 'sm' / 'variables' / 'variables.index'))
  for path in ('prefix/ckpt-1', 'dir', 'sm'):
    simclr_flags.preflight(config(f'--model_dir={tmp_path / "run"}',
                                  f'--checkpoint={tmp_path / path}'))


def test_exported_versions_and_eval_of_a_checkpoint_pass(tmp_path):
  """--checkpoint=<run>/saved_model (its newest version) is accepted, and
  --mode=eval --checkpoint=X needs no checkpoint in --model_dir."""
  touch(str(tmp_path / 'run0' / 'saved_model' / '5' / 'saved_model.pb'))
  touch(str(tmp_path / 'run0' / 'saved_model' / '5' / 'variables' /
            'variables.index'))
  make_checkpoint_dir(str(tmp_path / 'ckpts'))
  simclr_flags.preflight(config(f'--model_dir={tmp_path / "run"}',
                                f'--checkpoint={tmp_path}/run0/saved_model'))
  for mode in ('eval', 'export'):
    simclr_flags.preflight(config(f'--model_dir={tmp_path / "empty"}',
                                  f'--mode={mode}',
                                  f'--checkpoint={tmp_path / "ckpts"}'))
  assert not os.path.exists(tmp_path / 'empty')


@pytest.mark.parametrize('setup,expected', [
    (lambda d: os.makedirs(d), 'is a directory without a checkpoint'),
    (lambda d: touch(os.path.join(d, 'saved_model.pb')),
     'SavedModel without variables/variables.index'),
    # A state file naming a deleted checkpoint (as latest_checkpoint sees it).
    (lambda d: (make_checkpoint_dir(d), os.remove(
        os.path.join(d, 'ckpt-3.index')), os.remove(
            os.path.join(d, 'ckpt-3.data-00000-of-00001'))),
     'without a checkpoint'),
    # ... or one whose data is gone too: leftovers are named.
    (lambda d: (make_checkpoint_dir(d), os.remove(
        os.path.join(d, 'ckpt-3.index'))),
     "holds checkpoint files but no complete checkpoint (each needs its "
     ".index and every data shard): ['ckpt-3.data-00000-of-00001']"),
])
def test_checkpoint_directory_without_a_checkpoint(tmp_path, setup,
                                                   expected):
  path = str(tmp_path / 'ckpt')
  setup(path)
  msg = preflight_error(f'--model_dir={tmp_path / "run"}',
                        f'--checkpoint={path}')
  assert msg.startswith(f'--checkpoint={path} ') and expected in msg


def test_finetune_needs_a_checkpoint(tmp_path):
  msg = preflight_error(f'--model_dir={tmp_path / "run"}',
                        '--train_mode=finetune')
  assert '--train_mode=finetune needs --checkpoint=PATH' in msg
  assert f'--model_dir={tmp_path / "run"}' in msg


def test_finetune_resumes_from_model_dir_without_checkpoint_flag(tmp_path):
  make_checkpoint_dir(str(tmp_path / 'run'))
  simclr_flags.preflight(config(f'--model_dir={tmp_path / "run"}',
                                '--train_mode=finetune'))


def test_finetune_preset_needs_a_checkpoint(tmp_path):
  cfg_path = simclr_flags.preset_path('simclrv2_finetune_1pct')
  msg = preflight_error(f'--flagfile={cfg_path}',
                        f'--model_dir={tmp_path / "run"}')
  assert '--checkpoint' in msg


def test_eval_and_export_need_a_checkpoint(tmp_path):
  run = f'--model_dir={tmp_path / "run"}'
  assert preflight_error(run, '--mode=eval').startswith('--mode=eval:')
  assert preflight_error(run, '--mode=export').startswith('--mode=export:')
  simclr_flags.preflight(config(run, '--mode=eval', '--eval_watch'))
  make_checkpoint_dir(str(tmp_path / 'run'))
  simclr_flags.preflight(config(run, '--mode=eval'))
  simclr_flags.preflight(config(run, '--mode=export'))


def test_missing_data_dir(tmp_path):
  missing = tmp_path / 'tfds'
  msg = preflight_error(f'--model_dir={tmp_path / "run"}',
                        '--dataset=cifar10', f'--data_dir={missing}')
  assert msg.startswith(f'--data_dir={missing} is not a directory')


def test_builtin_data_dir_must_be_creatable(tmp_path):
  touch(str(tmp_path / 'file'))
  msg = preflight_error(f'--model_dir={tmp_path / "run"}',
                        f'--data_dir={tmp_path / "file" / "cache"}')
  assert msg.startswith('--data_dir=') and 'cannot be created' in msg


@pytest.mark.parametrize('prefix', ['npz', 'folder'])
def test_missing_dataset_path(tmp_path, prefix):
  missing = tmp_path / 'data'
  msg = preflight_error(f'--model_dir={tmp_path / "run"}',
                        f'--dataset={prefix}:{missing}')
  assert msg == f'--dataset={prefix}:{missing}: {missing} is not a directory.'
  (tmp_path / 'data').mkdir()
  simclr_flags.preflight(config(f'--model_dir={tmp_path / "run"}',
                                f'--dataset={prefix}:{missing}'))
  assert tree(tmp_path) == [str(missing)]


def test_preflight_imports_no_tensorflow_for_local_paths(tmp_path):
  code = (
      'import sys\n'
      'from absl import flags\n'
      'import flags as f\n'
      'fv = f.define_flags(flags.FlagValues())\n'
      f'fv(["p", "--model_dir={tmp_path / "run"}"])\n'
      'f.preflight(f.config_from_flags(fv))\n'
      'assert "tensorflow" not in sys.modules, "tensorflow imported"\n')
  subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True,
                 timeout=60)
