"""A full disk during a checkpoint or an export (issue 14): one error line
naming the file and that the disk is full; what was complete stays usable
and no partial checkpoint or export is left behind."""
import errno
import os
import subprocess

import pytest
import tensorflow as tf

import cli
from export import saved_model
from simclr_tf import checkpoints, jobs, rundir
from simclr_tf.config import Config, DataConfig, ModelConfig, TrainConfig

SAVE_ERROR = ('{{function_node __wrapped__SaveV2_dtypes_191_device_/job:'
              'localhost/replica:0/task:0/device:CPU:0}} /runs/a/ckpt-2_temp/'
              'part-00000-of-00001.data-00000-of-00001.tempstate1550; No '
              'space left on device [Op:SaveV2]')


def test_disk_full_message_names_the_file_and_what_is_kept(tmp_path):
  d = str(tmp_path)
  message = rundir.disk_full_message(
      tf.errors.ResourceExhaustedError(None, None, SAVE_ERROR), d,
      kept='checkpoint /runs/a/ckpt-1')
  assert message.startswith('the disk is full: writing /runs/a/ckpt-2_temp/'
                            'part-00000-of-00001.data-00000-of-00001.'
                            'tempstate1550 failed (No space left on device; ')
  assert f'MiB free on the filesystem of --model_dir={d}). What was ' \
         'complete is kept: checkpoint /runs/a/ckpt-1.' in message
  assert rundir.disk_full_message(
      OSError(errno.ENOSPC, 'No space left on device', '/runs/a/x.json'),
      d).startswith('the disk is full: writing /runs/a/x.json failed')
  out_of_memory = tf.errors.ResourceExhaustedError(
      None, None, 'OOM when allocating tensor with shape[4096,4096]')
  assert rundir.disk_full_message(out_of_memory, d) is None
  assert rundir.disk_full_message(OSError(errno.EACCES, 'denied'), d) is None


def test_remove_partial_takes_only_temporary_save_directories(tmp_path):
  for name in ('ckpt-2_temp', 'ckpt-12_temp', 'ckpt-2_tempx', 'train'):
    (tmp_path / name).mkdir()
  removed = checkpoints.remove_partial(str(tmp_path))
  assert [os.path.basename(p) for p in removed] == ['ckpt-12_temp',
                                                    'ckpt-2_temp']
  assert sorted(os.listdir(tmp_path)) == ['ckpt-2_tempx', 'train']


@pytest.fixture
def small_disk(tmp_path):
  """A 2 MiB tmpfs: room for one checkpoint of the tiny model, not two."""
  path = tmp_path / 'disk'
  path.mkdir()
  mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs',
                            str(path)], capture_output=True, text=True)
  if mounted.returncode != 0:
    pytest.skip(f'cannot mount a small tmpfs here: {mounted.stderr.strip()}')
  yield str(path)
  subprocess.run(['umount', str(path)], check=True)


@pytest.mark.parametrize('steps,writing', [(3, 'ckpt-2_temp'),
                                           (1, 'saved_model/.tmp-1-')])
def test_a_full_disk_stops_the_run_with_one_line(tmp_path, small_disk, steps,
                                                 writing):
  model_dir = os.path.join(small_disk, 'run')
  cfg = Config(data=DataConfig(dataset=f'npz:{cli.write_tiny_npz(tmp_path)}'),
               mode='train',
               model=ModelConfig(resnet_depth=18, width_multiplier=0.125,
                                 image_size=32, proj_out_dim=16),
               train=TrainConfig(model_dir=model_dir, train_steps=steps,
                                 train_batch_size=8, checkpoint_steps=1))
  with pytest.raises(jobs.USER_ERRORS, match=(
      rf'^the disk is full: writing {model_dir}/{writing}.* failed \(No space'
      rf' left on device; .* What was complete is kept: checkpoint '
      rf'{model_dir}/ckpt-1 \(a rerun resumes from it\)')):
    jobs.run(cfg, export_fn=saved_model.export_model)
  left = sorted(os.listdir(model_dir))
  assert 'ckpt-2_temp' not in left and 'ckpt-1.index' in left
  assert not os.listdir(os.path.join(model_dir, 'saved_model')) \
      if 'saved_model' in left else True
  assert checkpoints.damage(os.path.join(model_dir, 'ckpt-1')) is None
