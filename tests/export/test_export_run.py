"""run.py writes exports (end of training, --mode=export) and warm-starts
from them; in subprocesses, as users run it (tiny model, 32 px npz data)."""
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import cli

pytestmark = pytest.mark.slow

TINY = cli.TINY + ['--mode=train']


def _npz_dataset(root):
  return cli.write_tiny_npz(root, sizes=(24, 8))


def _run(args):
  return cli.run(args, timeout=300)


def _versions(model_dir):
  return sorted(os.listdir(os.path.join(model_dir, 'saved_model')))


def test_train_exports_and_finetune_warm_starts_from_export(tmp_path):
  data = str(tmp_path / 'data')
  os.makedirs(data)
  _npz_dataset(data)
  pre, ft = str(tmp_path / 'pre'), str(tmp_path / 'ft')
  common = [f'--dataset=npz:{data}', *TINY]
  _run([*common, f'--model_dir={pre}', '--train_steps=2',
        '--checkpoint_steps=1', '--keep_hub_module_max=2'])
  assert _versions(pre) == ['2']  # end of training

  _run([*common, f'--model_dir={pre}', '--train_steps=2',
        f'--checkpoint={os.path.join(pre, "ckpt-1")}', '--mode=export',
        '--keep_hub_module_max=2'])
  assert _versions(pre) == ['1', '2']  # a given checkpoint, newest kept

  export = os.path.join(pre, 'saved_model', '2')
  # fine_tune_after_block=4 freezes the whole encoder (BN included), so the
  # fine-tuned export's features equal the pretraining export's only if the
  # warm start restored them.
  proc = _run([*common, f'--model_dir={ft}', '--train_mode=finetune',
               f'--checkpoint={export}', '--fine_tune_after_block=4',
               '--zero_init_logits_layer', '--train_steps=1',
               '--learning_rate=0.1'])
  assert 'Warm-started' in proc.stderr
  assert _versions(ft) == ['1']
  images = tf.random.stateless_uniform([4, 32, 32, 3], [0, 1])
  before = tf.saved_model.load(export)(images)['default']
  after = tf.saved_model.load(os.path.join(ft, 'saved_model', '1'))(images)
  np.testing.assert_allclose(after['default'], before, atol=1e-5)
  assert after['logits_sup'].shape == (4, 3)
