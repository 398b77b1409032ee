"""Versioned exports: layout, keep-max, atomic writes, the loaded contract."""
import json
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import export
from export import saved_model as sm
from export.module import OUTPUT_KEYS


def _versions(model_dir):
  return export.list_versions(export.export_dir(model_dir))


def _entries(model_dir):
  return sorted(os.listdir(export.export_dir(model_dir)))


def test_layout_and_metadata(tiny_export):
  assert os.path.basename(tiny_export) == '5'
  assert os.path.basename(os.path.dirname(tiny_export)) == 'saved_model'
  assert os.listdir(os.path.dirname(tiny_export)) == ['5']
  with open(os.path.join(tiny_export, sm.METADATA_FILE)) as f:
    meta = json.load(f)
  assert meta['global_step'] == 5 and meta['image_size'] == 32
  assert meta['eval_crop_proportion'] == 1.0  # no crop at <= 32 px
  assert set(meta['outputs']) == set(OUTPUT_KEYS)
  assert meta['config']['model']['num_classes'] == 3


def test_loaded_call_matches_model(tiny_model, loaded_export, images):
  want = tiny_model(images, training=False)
  got = loaded_export(images, training=False)
  assert set(got) == set(OUTPUT_KEYS)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
  np.testing.assert_array_equal(got['default'], got['final_avg_pool'])
  served = loaded_export.signatures['serving_default'](images=images)
  np.testing.assert_allclose(served['logits_sup'], want['logits_sup'],
                             atol=1e-5)


def test_any_batch_and_larger_images(loaded_export):
  for shape in ([1, 32, 32, 3], [3, 48, 40, 3]):
    out = loaded_export(tf.random.uniform(shape), training=False)
    assert out['default'].shape == (shape[0], 64)
    assert out['proj_head_output'].shape == (shape[0], 16)


def test_hub_attributes(tiny_model, loaded_export, tiny_cfg):
  assert len(loaded_export.variables) == len(tiny_model.variables)
  assert len(loaded_export.trainable_variables) == len(
      tiny_model.trainable_variables)
  # LARS (the default) decays only the supervised head explicitly.
  (reg,) = loaded_export.regularization_losses
  kernel = tiny_model.supervised_head.linear.dense.kernel
  want = tiny_cfg.optim.weight_decay * tf.nn.l2_loss(kernel)
  np.testing.assert_allclose(reg(), want, rtol=1e-5)


def test_keep_max_deletes_oldest(stub_model, tmp_path):
  model_dir = str(tmp_path)
  for step in (1, 2, 3):
    export.export_model(stub_model, model_dir, step, image_size=8,
                        keep_max=2)
  assert _versions(model_dir) == [2, 3]
  export.export_model(stub_model, model_dir, 4, image_size=8, keep_max=0)
  assert _versions(model_dir) == [2, 3, 4]
  # An older step re-exported is kept even though it is not among the newest.
  export.export_model(stub_model, model_dir, 1, image_size=8, keep_max=1)
  assert _versions(model_dir) == [1, 4]
  assert _entries(model_dir) == ['1', '4']


def test_reexport_same_step_replaces(stub_model, tmp_path):
  model_dir = str(tmp_path)
  path = export.export_model(stub_model, model_dir, 7, image_size=8)
  kernel = stub_model.dense.kernel
  kernel.assign(tf.ones_like(kernel))
  assert export.export_model(stub_model, model_dir, 7, image_size=8) == path
  assert _entries(model_dir) == ['7']
  out = tf.saved_model.load(path)(tf.ones([1, 8, 8, 3]))
  np.testing.assert_allclose(out['proj_head_output'], [[3.0] * 4])


def test_failed_export_leaves_previous_newest(stub_model, tmp_path,
                                              monkeypatch):
  model_dir = str(tmp_path)
  export.export_model(stub_model, model_dir, 10, image_size=8)
  real_save = tf.saved_model.save

  def save_then_fail(obj, path, **kwargs):
    real_save(obj, path, **kwargs)
    os.remove(os.path.join(path, 'saved_model.pb'))  # half-written
    raise OSError('disk full (simulated)')

  monkeypatch.setattr(tf.saved_model, 'save', save_then_fail)
  with pytest.raises(OSError, match='simulated'):
    export.export_model(stub_model, model_dir, 20, image_size=8)
  assert _entries(model_dir) == ['10']
  assert export.latest_export(model_dir).endswith(os.sep + '10')


def test_incomplete_write_is_refused(stub_model, tmp_path, monkeypatch):
  model_dir = str(tmp_path)
  real_save = tf.saved_model.save

  def save_without_variables(obj, path, **kwargs):
    real_save(obj, path, **kwargs)
    tf.io.gfile.rmtree(os.path.join(path, 'variables'))

  monkeypatch.setattr(tf.saved_model, 'save', save_without_variables)
  with pytest.raises(export.ExportError, match='incomplete'):
    export.export_model(stub_model, model_dir, 3, image_size=8)
  assert _entries(model_dir) == []


@pytest.mark.parametrize('kwargs,match', [
    (dict(step=-1, image_size=8), 'step=-1'),
    (dict(step='3', image_size=8), "step='3'"),
    (dict(step=1, image_size=8, keep_max=-2), 'keep_max=-2'),
    (dict(step=1), 'image_size=None'),
])
def test_bad_arguments_are_named(stub_model, tmp_path, kwargs, match):
  step = kwargs.pop('step')
  with pytest.raises(export.ExportError, match=match):
    export.export_model(stub_model, str(tmp_path), step, **kwargs)
  assert not os.path.exists(export.export_dir(str(tmp_path)))


def test_saved_model_cli_lists_signatures(tiny_export):
  proc = subprocess.run(['saved_model_cli', 'show', '--all', '--dir',
                         tiny_export], capture_output=True, text=True,
                        timeout=120, check=True)
  out = proc.stdout
  for name in ('serving_default', 'image_bytes', 'tf_example'):
    assert f"signature_def['{name}']" in out
  assert 'shape: (-1, -1, -1, 3)' in out  # images
  assert "inputs['image_bytes'] tensor_info:" in out
  assert "inputs['examples'] tensor_info:" in out
  assert out.count('DT_STRING') >= 2 and 'shape: (-1)' in out
  assert "outputs['default'] tensor_info:" in out
  assert 'shape: (-1, 64)' in out and 'shape: (-1, 3)' in out


def test_skip_existing_keeps_a_complete_export_of_the_step(stub_model,
                                                           tmp_path):
  model_dir = str(tmp_path)
  path = export.export_model(stub_model, model_dir, 3, image_size=8)
  pb = os.path.join(path, 'saved_model.pb')
  written = os.stat(pb).st_mtime_ns
  assert sm.existing_version(model_dir, 3) == path
  assert sm.existing_version(model_dir, 4) is None
  again = export.export_model(stub_model, model_dir, 3, image_size=8,
                              skip_existing=True)
  assert again == path and os.stat(pb).st_mtime_ns == written
  # Without it the step is rewritten (--mode=export).
  export.export_model(stub_model, model_dir, 3, image_size=8)
  assert os.stat(pb).st_mtime_ns != written
  # An export of another format (an older release's) is rewritten too.
  meta = os.path.join(path, sm.METADATA_FILE)
  with open(meta) as f:
    old = {**json.load(f), 'format': 'simclr_tf export v0'}
  with open(meta, 'w') as f:
    json.dump(old, f)
  assert sm.existing_version(model_dir, 3) is None
  export.export_model(stub_model, model_dir, 3, image_size=8,
                      skip_existing=True)
  assert sm.existing_version(model_dir, 3) == path
