"""run.py end to end, in subprocesses (fresh TF runtime each, as users run it).

Tiny everything: ResNet-18 at width 0.125, 32 px, a generated npz dataset of
48 train / 20 test images, a few steps.
"""
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import cli  # tests/helpers/cli.py

pytestmark = pytest.mark.slow

TINY = [*cli.TINY, '--keep_hub_module_max=2']
run, ckpt_steps = cli.run, cli.ckpt_steps


@pytest.fixture(scope='module')
def npz_dir(tmp_path_factory):
  return cli.write_tiny_npz(tmp_path_factory.mktemp('npz'))


def result(model_dir):
  with open(os.path.join(model_dir, 'result.json')) as f:
    return json.load(f)


def test_train_then_eval_writes_everything(npz_dir, tmp_path):
  """Also the two-replica run: MirroredStrategy over 2 logical CPUs (the
  eval's 20 examples are not a multiple of the replicas' batch)."""
  model_dir = str(tmp_path / 'm')
  proc = run([f'--dataset=npz:{npz_dir}', f'--model_dir={model_dir}',
              '--train_steps=4', '--checkpoint_steps=2',
              '--strategy=mirrored', '--cpu_devices=2', *TINY])
  assert '2 replica(s)' in proc.stderr
  res = result(model_dir)
  assert res['global_step'] == 4 and res['num_examples'] == 20
  assert 0.0 <= res['top_1'] <= res['top_5'] <= 1.0
  assert os.path.exists(os.path.join(model_dir, 'result_4.json'))
  assert ckpt_steps(model_dir) == [2, 4]
  with open(os.path.join(model_dir, 'config.json')) as f:
    assert json.load(f)['model']['num_classes'] == 3
  assert glob.glob(os.path.join(model_dir, 'train', 'events.*'))
  assert glob.glob(os.path.join(model_dir, 'eval', 'events.*'))
  assert 'step 4/4' in proc.stderr and 'images/s' in proc.stderr
  assert 'contrast_acc' in proc.stderr and 'probe_acc' in proc.stderr
  # The log is what a user needs to read (issue 14): no TensorFlow banner
  # (it came twice), no cuInit error without a GPU, no DT_BOOL error, no
  # saver timings, no 2.4 KB lines of renamed export inputs.
  assert 'Exported SavedModel' in proc.stderr
  for noise in ('InitializeLog', 'oneDNN custom operations', 'cuda drivers',
                'cuInit', 'DT_BOOL', 'Sharding callback',
                'contains input name', 'Writing fingerprint'):
    assert noise not in proc.stderr, noise
  assert max(map(len, proc.stderr.splitlines())) < 400


def test_rerun_resumes_eval_mode_evaluates_and_finetune_warm_starts(
    npz_dir, tmp_path):
  model_dir = str(tmp_path / 'm')
  common = [f'--dataset=npz:{npz_dir}', f'--model_dir={model_dir}',
            '--checkpoint_steps=2', *TINY]
  run([*common, '--train_steps=2', '--mode=train'])
  assert ckpt_steps(model_dir) == [2]
  proc = run([*common, '--train_steps=6', '--mode=train'])
  assert 'Resumed from' in proc.stderr and 'step 3/6' in proc.stderr
  assert ckpt_steps(model_dir) == [2, 4, 6]
  run([*common, '--train_steps=6', '--mode=eval'])
  assert result(model_dir)['global_step'] == 6
  # Fine-tuning warm-starts from that pretraining run's directory.
  ft = str(tmp_path / 'ft')
  finetune = [f'--dataset=npz:{npz_dir}', f'--model_dir={ft}',
              '--train_mode=finetune', f'--checkpoint={model_dir}',
              '--fine_tune_after_block=2', '--zero_init_logits_layer',
              '--train_steps=3', '--learning_rate=0.1', *TINY]
  proc = run(finetune)
  assert 'Warm-started' in proc.stderr
  assert result(ft)['global_step'] == 3
  # Rerunning the finished run neither evaluates nor exports again, and
  # still reports the results (issue 15).
  pb = os.path.join(ft, 'saved_model', '3', 'saved_model.pb')
  written = os.stat(pb).st_mtime_ns
  again = run(finetune)
  assert 'Already trained to step 3 of 3' in again.stderr
  assert 'already evaluated with these settings' in again.stderr
  assert 'Step 3 is already exported' in again.stderr
  assert 'Exported SavedModel' not in again.stderr
  assert os.stat(pb).st_mtime_ns == written
  assert f'top_1 {result(ft)["top_1"]:.4f}' in again.stdout


def test_bad_flag_stops_before_work(tmp_path):
  model_dir = tmp_path / 'm'
  proc = run([f'--model_dir={model_dir}', '--temperature=-1'], check=False)
  assert proc.returncode != 0
  assert '--temperature=-1' in proc.stderr
  assert not model_dir.exists()
