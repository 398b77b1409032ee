"""Shared pieces of the tests that run ``python run.py`` in a subprocess."""
import glob
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# ResNet-18 at width 0.125, 32 px, batch 8, one step per loop.
TINY = ['--resnet_depth=18', '--width_multiplier=0.125', '--image_size=32',
        '--train_batch_size=8', '--eval_batch_size=8', '--proj_out_dim=16',
        '--log_every_steps=1', '--warmup_epochs=0', '--use_blur=false',
        '--steps_per_loop=1']


def write_tiny_npz(root, sizes=(48, 20)) -> str:
  """3-class npz dataset in ``root``: train and test of ``sizes`` (by
  default 48 = 6 batches of 8, and 20, not a batch multiple); classes
  differ in brightness."""
  rng = np.random.default_rng(0)
  for split, n in zip(('train', 'test'), sizes):
    labels = np.arange(n) % 3
    images = (rng.uniform(0, 60, (n, 32, 32, 3)) +
              labels[:, None, None, None] * 60).astype(np.uint8)
    np.savez(os.path.join(root, f'{split}.npz'), images=images,
             labels=labels)
  return str(root)


def run_py_command(args) -> list:
  return [sys.executable, os.path.join(ROOT, 'run.py'), *args]


def run(args, timeout=600, check=True):
  """``python run.py ARGS``; raises with its stderr tail unless it exits 0
  (or ``check`` is false)."""
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
  proc = subprocess.run(run_py_command(args), capture_output=True, text=True,
                        timeout=timeout, env=env, cwd=ROOT)
  if check and proc.returncode != 0:
    raise AssertionError(f'run.py {args} exited {proc.returncode}:\n'
                         f'{proc.stderr[-4000:]}')
  return proc


def ckpt_steps(model_dir) -> list:
  """Sorted steps of the ``ckpt-N`` checkpoints in ``model_dir``."""
  return sorted(int(p.rsplit('-', 1)[1].split('.')[0])
                for p in glob.glob(os.path.join(model_dir, 'ckpt-*.index')))
