"""Bad input: one clear ``error:`` line, a non-zero exit, model_dir untouched.

Each case runs ``run.main`` in this process on a fresh ``FlagValues`` (the
code path of ``python run.py``, without a TensorFlow import per case) and
checks the message (flag, value, what would be right), the exit code (2:
flags and paths, 1: what needs the data, strategy or a checkpoint) and that
``--model_dir`` is exactly as before: absent, or an earlier run unchanged.
A few cases run ``run.py`` in a subprocess to prove what a user sees.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags as absl_flags

import flags as simclr_flags
import run as run_py
from simclr_tf import data, jobs, rundir, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ['--resnet_depth=18', '--width_multiplier=0.125', '--image_size=32',
        '--train_batch_size=8', '--eval_batch_size=8', '--proj_out_dim=16',
        '--warmup_epochs=0', '--use_blur=false', '--train_steps=1',
        '--steps_per_loop=1']
JPEG_HEADER_THEN_GARBAGE = b'\xff\xd8\xff\xe0 not really a jpeg'


def _npz(directory, split='train', n=8, **arrays):
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  arrays.setdefault('images', rng.integers(0, 255, (n, 32, 32, 3), np.uint8))
  arrays.setdefault('labels', np.arange(n) % 3)
  arrays = {k: v for k, v in arrays.items() if v is not None}
  np.savez(os.path.join(directory, f'{split}.npz'), **arrays)


def _folder(root, bad_file=None, content=b''):
  """A 2-class image folder; ``bad_file`` (under train/a) holds ``content``."""
  png = tf.io.encode_png(tf.zeros([8, 8, 3], tf.uint8)).numpy()
  for split in ('train', 'test'):
    for cls in ('a', 'b'):
      os.makedirs(os.path.join(root, split, cls))
      for i in range(2):
        with open(os.path.join(root, split, cls, f'{i}.png'), 'wb') as f:
          f.write(png)
  if bad_file:
    with open(os.path.join(root, 'train', 'a', bad_file), 'wb') as f:
      f.write(content)
  return root


@pytest.fixture(scope='module')
def d(tmp_path_factory):
  """Paths of every dataset and file the cases name, as format keys."""
  root = tmp_path_factory.mktemp('bad_input')
  p = {k: str(root / k) for k in (
      'good', 'only_test', 'no_npz', 'no_images_array', 'mismatch',
      'float_images', 'flat_images', 'empty_folder', 'corrupt_folder',
      'broken_jpeg', 'empty_dir', 'a_file', 'pre', 'five_classes')}
  _npz(p['good'], 'train', 16)
  for split in ('train', 'test'):
    _npz(p['five_classes'], split, 10, labels=np.arange(10) % 5)
  _npz(p['good'], 'test', 8)
  _npz(p['only_test'], 'test')
  os.makedirs(p['no_npz'])
  os.makedirs(p['empty_dir'])
  _npz(p['no_images_array'], images=None, pixels=np.zeros((8, 4), np.uint8))
  _npz(p['mismatch'], labels=np.zeros(7, int))
  _npz(p['float_images'], images=np.zeros((8, 32, 32, 3), np.float32))
  _npz(p['flat_images'], images=np.zeros((8, 32 * 32 * 3), np.uint8))
  for split in ('train', 'test'):
    for cls in ('a', 'b'):
      os.makedirs(os.path.join(p['empty_folder'], split, cls))
  _folder(p['corrupt_folder'], 'bad.jpg', b'<html>404 not found</html>')
  _folder(p['broken_jpeg'], 'bad.jpg', JPEG_HEADER_THEN_GARBAGE)
  with open(p['a_file'], 'w', encoding='utf-8') as f:
    f.write('x')
  _pretrained_run(p['pre'], p['good'])
  return p


def _pretrained_run(model_dir, npz_dir):
  """A training run's model_dir (config.json, ckpt-1) of the TINY model,
  without training: the Trainer's own manager saves its initial state."""
  fv = simclr_flags.define_flags(absl_flags.FlagValues())
  fv(['run.py', *TINY, f'--dataset=npz:{npz_dir}', f'--model_dir={model_dir}'])
  cfg = simclr_flags.config_from_flags(fv)
  source = data.get_source(cfg.data)
  cfg = jobs.with_dataset_facts(cfg, source)
  trainer = train.Trainer(cfg, tf.distribute.get_strategy(), source)
  trainer.manager.save(checkpoint_number=1)
  rundir.write_json(os.path.join(model_dir, 'config.json'), cfg.to_dict())


def state(path):
  """What is at ``path``: None, or {relative path: bytes} of every file."""
  if not os.path.lexists(path):
    return None
  if not os.path.isdir(path):
    with open(path, 'rb') as f:
      return f.read()
  found = {}
  for directory, _, files in os.walk(path):
    for name in files:
      full = os.path.join(directory, name)
      with open(full, 'rb') as f:
        found[os.path.relpath(full, path)] = f.read()
  return found


def run_in_process(capsys, args):
  """``python run.py *args`` in this process: (exit code, the error text)."""
  fv = simclr_flags.define_flags(absl_flags.FlagValues())
  argv = fv(['run.py', *args])
  code = run_py.main(argv, flag_values=fv)
  err = capsys.readouterr().err
  errors = [line for line in err.splitlines() if line.startswith('error: ')]
  assert len(errors) == 1, err[-3000:]
  assert 'Traceback' not in err, err[-3000:]
  return code, errors[0][len('error: '):]


def check_case(capsys, tmp_path, d, args, code, *expected, model_dir=None):
  """Runs ``args`` (``{key}`` formatted from ``d`` and ``{md}``); asserts the
  exit code, every ``expected`` substring and an unchanged model_dir."""
  md = model_dir or str(tmp_path / 'model_dir')
  keys = {**d, 'md': md}
  args = [a.format(**keys) for a in args]
  if not any(a.startswith('--model_dir=') for a in args):
    args.append(f'--model_dir={md}')
  md = next(a for a in args if a.startswith('--model_dir='))[12:]
  before = state(md)
  got_code, message = run_in_process(capsys, [*TINY, *args])
  for text in expected:
    assert text.format(**keys) in message, message
  assert got_code == code, message
  assert state(md) == before, f'model_dir changed: {message}'
  return message


# (id, args, exit code, substrings of the message). Every case's model_dir
# is absent before and must stay absent.
CASES = [
    # Refused by preflight in well under a second, before TFDS is imported
    # (it took ~23 s and named DataConfig.data_dir).
    ('unknown_dataset', ['--dataset=nosuchds', '--data_dir={empty_dir}'], 2,
     '--dataset=nosuchds: no prepared TFDS dataset of that name in '
     '--data_dir={empty_dir}', 'builtin, npz:PATH or folder:PATH'),
    ('data_dir_missing', ['--dataset=cifar10', '--data_dir={empty_dir}/x'],
     2, '--data_dir={empty_dir}/x is not a directory'),
    ('tfds_not_prepared', ['--dataset=cifar10', '--data_dir={empty_dir}'], 2,
     '--dataset=cifar10: no prepared TFDS dataset of that name in '
     '--data_dir={empty_dir}', 'tfds build cifar10 --data_dir=DIR'),
    ('npz_dir_missing', ['--dataset=npz:{good}/nope'], 2,
     '--dataset=npz:{good}/nope: {good}/nope is not a directory'),
    ('npz_no_files', ['--dataset=npz:{no_npz}'], 1,
     '--dataset=npz:{no_npz}: No .npz files', 'PATH/<split>.npz'),
    ('npz_no_train_npz', ['--dataset=npz:{only_test}'], 1,
     "--train_split=train: split 'train' does not exist",
     "available splits are ['test']"),
    ('train_split_missing', ['--dataset=npz:{good}', '--train_split=nosuch'],
     1, "--train_split=nosuch: split 'nosuch' does not exist",
     "available splits are ['test', 'train']"),
    ('eval_split_missing', ['--dataset=npz:{good}', '--eval_split=nosuch'],
     1, "--eval_split=nosuch: split 'nosuch' does not exist"),
    ('empty_slice', ['--dataset=npz:{good}', '--train_split=train[:0]'], 1,
     "--train_split=train[:0]: split 'train[:0]'", 'has no examples'),
    ('npz_missing_array', ['--dataset=npz:{no_images_array}'], 1,
     "{no_images_array}/train.npz has no array 'images'",
     "arrays present: ['labels', 'pixels']"),
    ('npz_length_mismatch', ['--dataset=npz:{mismatch}'], 1,
     '{mismatch}/train.npz: 8 images but 7 labels', 'same length'),
    ('npz_float_images', ['--dataset=npz:{float_images}'], 1,
     '{float_images}/train.npz: images have dtype float32', 'expected uint8'),
    ('npz_wrong_rank', ['--dataset=npz:{flat_images}'], 1,
     '{flat_images}/train.npz: images have shape (8, 3072)',
     'expected [N, H, W, 3]'),
    ('folder_without_images', ['--dataset=folder:{empty_folder}'], 1,
     "--train_split=train: split 'train' of 'folder:{empty_folder}' has no "
     'images', '{empty_folder}/train/<class>/'),
    ('folder_corrupt_image', ['--dataset=folder:{corrupt_folder}'], 1,
     '--train_split=train: image file {corrupt_folder}/train/a/bad.jpg is '
     "not a JPEG, PNG, GIF, BMP or WebP: it starts with b'<html>40'",
     '--skip_corrupt_images'),
    ('batch_zero', ['--dataset=npz:{good}', '--train_batch_size=0'], 2,
     '--train_batch_size=0 is invalid: must be > 0'),
    ('eval_batch_negative', ['--dataset=npz:{good}', '--eval_batch_size=-8'],
     2, '--eval_batch_size=-8 is invalid: must be > 0'),
    ('learning_rate_negative', ['--dataset=npz:{good}',
                                '--learning_rate=-1'], 2,
     '--learning_rate=-1 is invalid: must be > 0'),
    ('temperature_zero', ['--dataset=npz:{good}', '--temperature=0'], 2,
     '--temperature=0 is invalid: must be > 0'),
    ('width_zero', ['--dataset=npz:{good}', '--width_multiplier=0'], 2,
     '--width_multiplier=0 is invalid: must be > 0'),
    ('width_negative', ['--dataset=npz:{good}', '--width_multiplier=-0.5'],
     2, '--width_multiplier=-0.5 is invalid: must be > 0'),
    ('resnet_depth', ['--dataset=npz:{good}', '--resnet_depth=19'], 2,
     '--resnet_depth=19 is invalid: must be one of [18, 34, 50, 101, 152, '
     '200]'),
    ('sk_ratio', ['--dataset=npz:{good}', '--sk_ratio=1.5'], 2,
     '--sk_ratio=1.5 is invalid: must be in [0, 1)'),
    ('se_ratio', ['--dataset=npz:{good}', '--se_ratio=-0.1'], 2,
     '--se_ratio=-0.1 is invalid: must be in [0, 1)'),
    ('ft_proj_selector', ['--dataset=npz:{good}', '--proj_head_mode=linear',
                          '--ft_proj_selector=3'], 2,
     '--ft_proj_selector=3 is invalid: must be in [-2, 1] for '
     "--proj_head_mode='linear' with 1 head layer(s)"),
    ('fine_tune_after_block_pretraining', ['--dataset=npz:{good}',
                                           '--fine_tune_after_block=2'], 2,
     '--fine_tune_after_block=2 is invalid: only applies to '
     "--train_mode='finetune'; use -1 when pretraining"),
    ('finetune_without_checkpoint', ['--dataset=npz:{good}',
                                     '--train_mode=finetune'], 2,
     '--train_mode=finetune needs --checkpoint=PATH',
     '--model_dir={md} holds no checkpoint', 'saved_model/<step>'),
    ('image_size_cifar_stem', ['--dataset=npz:{good}', '--image_size=4'], 2,
     '--image_size=4 is invalid: must be >= 8 for the CIFAR stem'),
    ('image_size_imagenet_stem', ['--dataset=npz:{good}', '--image_size=16',
                                  '--cifar_stem=false'],
     2, '--image_size=16 is invalid: must be >= 32 for the ImageNet stem'),
    ('model_dir_under_a_file', ['--dataset=npz:{good}',
                                '--model_dir={a_file}/run'], 2,
     '--model_dir={a_file}/run cannot be created: {a_file} is a file'),
    ('strategy_tpu_without_tpu', ['--dataset=npz:{good}', '--strategy=tpu'],
     1, '--strategy=tpu: no TPU reachable', '--tpu_name'),
    ('eval_without_checkpoint', ['--dataset=npz:{good}', '--mode=eval'], 2,
     '--mode=eval: --model_dir={md} holds no checkpoint', 'train first'),
    ('export_without_checkpoint', ['--dataset=npz:{good}', '--mode=export'],
     2, '--mode=export: --model_dir={md} holds no checkpoint',
     '--checkpoint=PATH'),
    ('checkpoint_missing', ['--dataset=npz:{good}',
                            '--checkpoint={pre}/ckpt-99'], 2,
     '--checkpoint={pre}/ckpt-99 does not exist: expected a checkpoint '
     'prefix with a .index file'),
    ('checkpoint_dir_without_checkpoint', ['--dataset=npz:{good}',
                                           '--checkpoint={empty_dir}'], 2,
     '--checkpoint={empty_dir} is a directory without a checkpoint'),
    ('checkpoint_other_width', ['--dataset=npz:{good}', '--checkpoint={pre}',
                                '--width_multiplier=0.25'], 1,
     "checkpoint '{pre}/ckpt-1' does not fit this model: variable "
     'simclr/resnet/stem/conv/conv2d/kernel has shape (3, 3, 3, 16) here '
     'but (3, 3, 3, 8) in the checkpoint', '--width_multiplier'),
    ('finetune_checkpoint_other_depth', [
        '--dataset=npz:{good}', '--train_mode=finetune', '--checkpoint={pre}',
        '--resnet_depth=34'], 1,
     "checkpoint '{pre}/ckpt-1' does not fit this model: variable "
     'simclr/resnet/block_group1/block3/conv_a/conv2d/kernel is missing '
     'there', '--resnet_depth'),
    ('export_checkpoint_other_width', [
        '--dataset=npz:{good}', '--mode=export', '--checkpoint={pre}',
        '--width_multiplier=0.25'], 1,
     "checkpoint '{pre}/ckpt-1' does not fit this model"),
]


@pytest.mark.parametrize('args,code,expected',
                         [c[1:3] + (c[3:],) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_fails_cleanly_before_model_dir(capsys, tmp_path, d, args,
                                                  code, expected):
  check_case(capsys, tmp_path, d, args, code, *expected)
  assert not os.path.exists(tmp_path / 'model_dir')


def test_model_dir_is_a_file(capsys, tmp_path, d):
  check_case(capsys, tmp_path, d, ['--dataset=npz:{good}'], 2,
             '--model_dir={a_file} is a file, not a directory',
             model_dir=d['a_file'])


# Cases on an earlier run's model_dir: it must stay byte for byte the same
# (config.json not rewritten, no summaries, no checkpoint).
EXISTING_RUN_CASES = [
    ('resume_other_width', ['--dataset=npz:{good}', '--width_multiplier=0.25',
                            '--train_steps=2'], 1,
     "checkpoint '{md}/ckpt-1' does not fit this model: variable "
     'simclr/resnet/stem/conv/conv2d/kernel has shape (3, 3, 3, 16)'),
    ('resume_other_number_of_classes', ['--dataset=npz:{five_classes}',
                                        '--train_steps=2'], 1,
     "checkpoint '{md}/ckpt-1' does not fit this model: variable "
     'simclr/head_supervised/linear/dense/kernel has shape (64, 5) here but '
     '(64, 3)', 'another number of classes'),
    ('resume_eval_split_missing', ['--dataset=npz:{good}',
                                   '--eval_split=nosuch', '--train_steps=2'],
     1, "--eval_split=nosuch: split 'nosuch' does not exist"),
    ('eval_other_depth', ['--dataset=npz:{good}', '--mode=eval',
                          '--resnet_depth=34'], 1,
     "checkpoint '{md}/ckpt-1' does not fit this model: variable "
     'simclr/resnet/block_group1/block3/conv_a/conv2d/kernel is missing'),
]


@pytest.mark.parametrize('args,code,expected',
                         [c[1:3] + (c[3:],) for c in EXISTING_RUN_CASES],
                         ids=[c[0] for c in EXISTING_RUN_CASES])
def test_bad_input_leaves_an_earlier_run_unchanged(capsys, tmp_path, d, args,
                                                   code, expected):
  model_dir = str(tmp_path / 'earlier_run')
  shutil.copytree(d['pre'], model_dir)
  check_case(capsys, tmp_path, d, args, code, *expected, model_dir=model_dir)


def run_subprocess(args):
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
  return subprocess.run([sys.executable, os.path.join(ROOT, 'run.py'), *args],
                        capture_output=True, text=True, timeout=240, env=env,
                        cwd=ROOT)


def assert_one_error_line(proc, code, *expected):
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error: ')]
  assert proc.returncode == code, proc.stderr[-3000:]
  assert len(errors) == 1 and 'Traceback' not in proc.stderr, (
      proc.stderr[-3000:])
  for text in expected:
    assert text in errors[0], errors[0]


def test_command_line_flag_error_exits_2(tmp_path, d):
  model_dir = tmp_path / 'm'
  proc = run_subprocess([f'--dataset=npz:{d["good"]}', '--temperature=-1',
                         f'--model_dir={model_dir}'])
  assert_one_error_line(proc, 2, '--temperature=-1 is invalid: must be > 0')
  assert not model_dir.exists()


@pytest.mark.slow
def test_command_line_batch_not_divisible_by_replicas(tmp_path, d):
  """Needs its own process: --cpu_devices=2 and a MirroredStrategy."""
  model_dir = tmp_path / 'm'
  proc = run_subprocess([*TINY, f'--dataset=npz:{d["good"]}',
                         '--cpu_devices=2', '--strategy=mirrored',
                         '--train_batch_size=7', f'--model_dir={model_dir}'])
  assert_one_error_line(
      proc, 1, '--train_batch_size=7 is invalid: the global batch must be a '
      'multiple of the 2 replicas of MirroredStrategy (--strategy=mirrored), '
      'e.g. 6 or 8.')
  assert not model_dir.exists()


@pytest.mark.slow
def test_command_line_image_that_breaks_while_training(tmp_path, d):
  """A JPEG header on a broken body passes the header check and fails when
  read: one error line naming the file, and no checkpoint is written."""
  model_dir = tmp_path / 'm'
  proc = run_subprocess([*TINY, f'--dataset=folder:{d["broken_jpeg"]}',
                         f'--model_dir={model_dir}'])
  assert_one_error_line(
      proc, 1, f'Image file {d["broken_jpeg"]}/train/a/bad.jpg could not be '
      'read or decoded', '--skip_corrupt_images')
  assert not [f for f in os.listdir(model_dir) if f.startswith('ckpt')]
