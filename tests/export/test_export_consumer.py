"""An export used from a project without simclr_tf (fresh subprocess).

One subprocess (``consumer_script.py``, run with ``python -I`` and only
``keras_layer.py`` copied beside it) covers: plain ``tf.saved_model.load``
(outputs, BN modes, a fine-tuning step with the consumer's optimizer), the
Keras 3 ``SimCLRLayer`` under ``fit`` frozen and fine-tuned, and
``tensorflow_hub.KerasLayer`` (tf_keras) frozen and trainable.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope='module')
def consumer(tiny_model, tiny_export, tmp_path_factory):
  """The consumer script's findings (dict per section)."""
  tmp = tmp_path_factory.mktemp('consumer')
  layer_dir = tmp / 'layer'
  layer_dir.mkdir()
  shutil.copy(os.path.join(ROOT, 'export', 'keras_layer.py'), layer_dir)
  rng = np.random.default_rng(0)
  images = rng.uniform(0, 1, (8, 32, 32, 3)).astype(np.float32)
  want = tiny_model(images, training=False)
  np.savez(tmp / 'data.npz', images=images, labels=np.arange(8) % 3,
           **{f'want_{k}': v.numpy() for k, v in want.items()})
  out = tmp / 'out.json'
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  env['TF_CPP_MIN_LOG_LEVEL'] = '2'
  proc = subprocess.run(
      [sys.executable, '-I', os.path.join(HERE, 'consumer_script.py'),
       tiny_export, str(tmp / 'data.npz'), str(layer_dir), str(out)],
      capture_output=True, text=True, timeout=300, cwd=str(tmp), env=env)
  assert proc.returncode == 0, proc.stderr[-4000:]
  with open(out) as f:
    return json.load(f)


def _section(consumer, name):
  result = consumer[name]
  assert 'error' not in result, result.get('error')
  return result


def test_runs_without_simclr_tf(consumer):
  assert consumer['simclr_tf_importable'] is False
  assert _section(consumer, 'keras3_layer')['simclr_tf_imported'] is False


def test_outputs_equal_in_memory_model(consumer):
  res = _section(consumer, 'plain_tf')
  assert 'default' in res['keys'] and 'logits_sup' in res['keys']
  assert len(res['max_abs_diff']) == 10  # every model output was compared
  assert max(res['max_abs_diff'].values()) < 1e-5, res['max_abs_diff']


def test_bn_statistics_move_only_in_training(consumer):
  res = _section(consumer, 'plain_tf')
  assert res['changed_by_eval_call'] == 0
  assert res['stats_changed_by_train_call'] == res['num_statistics'] > 0
  assert res['trainable_changed_by_train_call'] == 0


def test_consumer_fine_tuning_step(consumer):
  res = _section(consumer, 'plain_tf')
  assert res['num_regularization_losses'] == 1
  assert res['stem_kernel_changed']  # the encoder's first conv
  assert res['weights_changed_by_step'] == res['nonzero_gradients'] > 10
  assert res['loss_after'] < res['loss_before']


def test_keras3_layer_fit_frozen_and_trainable(consumer):
  res = _section(consumer, 'keras3_layer')
  frozen, tuned = res['frozen'], res['trainable']
  assert frozen['trainable_weights'] == 0 and frozen['changed'] == 0
  assert tuned['trainable_weights'] > 0
  assert tuned['changed'] >= tuned['trainable_weights']  # + BN statistics
  assert tuned['model_losses'] == 1  # the export's regularization loss
  assert np.isfinite([frozen['loss'], tuned['loss']]).all()


def test_hub_keras_layer_fit_frozen_and_trainable(consumer):
  res = _section(consumer, 'hub_keras_layer')
  if 'skipped' in res:
    pytest.skip(f"tensorflow_hub/tf_keras missing ({res['skipped']}): "
                'pip install -r requirements-test.txt')
  assert res['frozen']['trainable_weights'] == 0
  assert res['frozen']['changed'] == 0
  assert res['trainable']['trainable_weights'] > 0
  assert res['trainable']['changed'] > res['trainable']['trainable_weights']
