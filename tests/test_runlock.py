"""One training run per --model_dir (issue 14): a second run is refused
naming the first; a killed run leaves no stale lock; a refused or failed
run leaves no directory it created."""
import os
import signal
import subprocess
import sys
import time

import pytest

import cli
from simclr_tf import jobs, runlock
from simclr_tf.config import Config, DataConfig, ModelConfig, TrainConfig


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
  d = str(tmp_path / 'run')
  with runlock.hold(d):
    with pytest.raises(runlock.RunLockedError,
                       match=rf'--model_dir={d} is in use by another '
                       rf'training run \(pid {os.getpid()} on '):
      with runlock.hold(d):
        pass
    with runlock.hold(d, enabled=False):  # a non-chief worker
      pass
  with runlock.hold(d):  # released at the end of the block
    pass
  assert os.listdir(d) == [runlock.LOCK_NAME]


def test_a_refused_run_leaves_model_dir_as_it_found_it(tmp_path):
  new, existing = str(tmp_path / 'new'), str(tmp_path / 'existing')
  locked_before = str(tmp_path / 'locked_before')
  os.makedirs(existing)
  with runlock.hold(locked_before):
    pass
  with open(os.path.join(locked_before, runlock.LOCK_NAME), 'rb') as f:
    earlier = f.read()
  for d in (new, existing, locked_before):
    with pytest.raises(ValueError, match='later check'):
      with runlock.hold(d):
        raise ValueError('a later check failed')
  assert not os.path.exists(new) and os.listdir(existing) == []
  with open(os.path.join(locked_before, runlock.LOCK_NAME), 'rb') as f:
    assert f.read() == earlier


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
  d = str(tmp_path / 'run')
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import sys, time\n'
       'from simclr_tf import runlock\n'
       'with runlock.hold(sys.argv[1]):\n'
       '  print("held", flush=True); time.sleep(600)\n', d],
      cwd=cli.ROOT, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(runlock.RunLockedError,
                       match=rf'pid {holder.pid} on .* python.* -c'):
      with runlock.hold(d):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  deadline = time.time() + 10  # the OS drops a dead process's locks
  while True:
    try:
      with runlock.hold(d):
        break
    except runlock.RunLockedError:
      if time.time() > deadline:
        raise
      time.sleep(0.1)


def test_training_takes_the_lock(tmp_path):
  """jobs.run refuses a training run while another holds --model_dir."""
  npz = cli.write_tiny_npz(tmp_path)
  model_dir = str(tmp_path / 'run')
  cfg = Config(data=DataConfig(dataset=f'npz:{npz}'), mode='train',
               model=ModelConfig(resnet_depth=18, width_multiplier=0.125,
                                 image_size=32, proj_out_dim=16),
               train=TrainConfig(model_dir=model_dir, train_steps=1,
                                 train_batch_size=8))
  with runlock.hold(model_dir):
    with pytest.raises(runlock.RunLockedError, match='is in use'):
      jobs.run(cfg)
    assert os.listdir(model_dir) == [runlock.LOCK_NAME]  # nothing written
