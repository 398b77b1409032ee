"""Crashes: kill -9 and resume, killed exports and checkpoints, NaN losses.

What a crash may leave behind, and what the next run makes of it:

- a training run killed at any point after its first checkpoint and rerun
  with the same command ends with exactly the weights, checkpoints, exports
  and result.json of an uninterrupted run (``--seed`` plus
  ``--deterministic``), because the resumed input stream yields the batches
  the uninterrupted one yields at the same steps;
- an export or a checkpoint killed midway leaves the previous complete one
  newest and loadable, and the next export cleans up the leftovers;
- a non-finite loss stops the run (exit 1) naming the step, before any
  checkpoint or export of that state is written.

Tiny everything (ResNet-18 at width 0.125, 32 px, batch 8, a few steps), as
tests/test_run.py.
"""
import glob
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

import export
from export import saved_model
from simclr_tf import checkpoints, train
from simclr_tf.config import AugmentConfig, DataConfig, ModelConfig
from simclr_tf.data import pipeline, sources
from simclr_tf.models import build_model

import cli  # tests/helpers/cli.py
from stub_model import StubModel  # tests/helpers/stub_model.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TINY = cli.TINY
TINY_MODEL = ModelConfig(resnet_depth=18, width_multiplier=0.125,
                         image_size=32, num_classes=3, proj_out_dim=16)


@pytest.fixture(scope='module')
def npz_dir(tmp_path_factory):
  return cli.write_tiny_npz(tmp_path_factory.mktemp('npz'))


def _env():
  return {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}


_run_py, run, ckpt_steps = cli.run_py_command, cli.run, cli.ckpt_steps


def export_entries(model_dir):
  root = saved_model.export_dir(model_dir)
  return sorted(os.listdir(root)) if os.path.isdir(root) else []


def max_abs_diff(prefix_a, prefix_b):
  """Largest |a - b| over every float variable of two checkpoints; raises
  if they hold different variables or differ in a non-float one."""
  ra, rb = tf.train.load_checkpoint(prefix_a), tf.train.load_checkpoint(
      prefix_b)
  keys = set(ra.get_variable_to_shape_map())
  assert keys == set(rb.get_variable_to_shape_map())
  worst = 0.0
  for key in keys - {'_CHECKPOINTABLE_OBJECT_GRAPH'}:
    a, b = ra.get_tensor(key), rb.get_tensor(key)
    if a.dtype.kind == 'f':
      worst = max(worst, float(np.max(np.abs(a - b), initial=0.0)))
    else:
      assert np.array_equal(a, b), key
  return worst


# -- 1. The resumed input stream is the uninterrupted one (fast). ----------


def _batches(ds, n):
  it = iter(ds)
  return [tf.nest.map_structure(lambda t: t.numpy(), next(it))
          for _ in range(n)]


def _assert_same_batches(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert set(g) == set(w)
    for key in g:
      np.testing.assert_array_equal(g[key], w[key], err_msg=key)


@pytest.mark.parametrize('per_image,cache', [(False, False), (True, True)])
def test_stream_started_at_a_step_is_the_uninterrupted_one(
    npz_dir, monkeypatch, per_image, cache):
  """48 examples, batch 8: 6 steps an epoch. Starting at step 0, 4 (inside
  epoch 0) and 9 (inside epoch 1) gives the uninterrupted stream's batches
  from that step, for the batch and per-image crop routes, with and without
  the cache, and with two replicas per input pipeline (two elements a
  step)."""
  if per_image:
    monkeypatch.setattr(pipeline, 'BATCH_CROP_MAX_SIDE', 0)
  source = sources.get_source(DataConfig(dataset=f'npz:{npz_dir}'))
  cfg = AugmentConfig(use_blur=True)

  def stream(start_step, input_context=None):
    return pipeline.make_dataset(
        source, 'train', mode='pretrain', batch_size=8, image_size=32,
        augment_cfg=cfg, seed=7, cache=cache, jit_compile=False,
        input_context=input_context, start_step=start_step)

  tf.random.set_seed(0)  # run.py --seed=0 does this (it once broke epochs)
  whole = _batches(stream(0), 13)
  for start in (4, 9):
    _assert_same_batches(_batches(stream(start), 13 - start), whole[start:])
  two_replicas = tf.distribute.InputContext(num_input_pipelines=1,
                                            input_pipeline_id=0,
                                            num_replicas_in_sync=2)
  _assert_same_batches(_batches(stream(3, two_replicas), 4), whole[6:10])
  # Every example once per epoch, in a new order each epoch.
  epochs = [np.concatenate([b['label'] for b in whole[e * 6:e * 6 + 6]])
            for e in (0, 1)]
  assert all(np.bincount(labels).tolist() == [16] * 3 for labels in epochs)
  assert not np.array_equal(epochs[0], epochs[1])


def test_stream_started_at_a_step_reads_tfds_like_the_uninterrupted_one(
    tmp_path):
  """The same with a real (tiny, locally prepared) TFDS dataset: its files
  are shuffled per epoch from a seed tensor inside the epoch function."""
  tfds = pytest.importorskip('tensorflow_datasets')

  class TinyCrashImages(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, supervised_keys=('image', 'label'),
          features=tfds.features.FeaturesDict({
              'image': tfds.features.Image(shape=(8, 8, 3)),
              'label': tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      return {'train': self._generate_examples(20)}

    def _generate_examples(self, n):
      rng = np.random.default_rng(0)
      for i in range(n):
        yield i, {'image': rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                  'label': i % 3}

  data_dir = str(tmp_path)
  TinyCrashImages(data_dir=data_dir).download_and_prepare()
  source = sources.TfdsSource('tiny_crash_images', data_dir=data_dir)

  def stream(start_step):
    return pipeline.make_dataset(source, 'train', mode='pretrain',
                                 batch_size=4, image_size=8, seed=1,
                                 jit_compile=False, start_step=start_step)

  whole = _batches(stream(0), 12)  # 5 steps an epoch
  _assert_same_batches(_batches(stream(7), 5), whole[7:])


# -- 2. kill -9 during training, rerun: the uninterrupted result. ----------


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(npz_dir, tmp_path):
  """A run killed after its first checkpoint and rerun with the same
  command writes each remaining checkpoint and export once and ends bit for
  bit where an uninterrupted run ends: every checkpoint (weights, LARS
  slots, step), every export and result.json equal."""
  ref_dir, dir_ = str(tmp_path / 'uninterrupted'), str(tmp_path / 'killed')
  total = 4

  def args(model_dir):
    return [f'--dataset=npz:{npz_dir}', f'--model_dir={model_dir}',
            f'--train_steps={total}', '--checkpoint_steps=2',
            '--keep_checkpoint_max=50', '--export_every_checkpoint',
            '--keep_hub_module_max=0', '--seed=3', '--deterministic', *TINY]

  # The reference runs alongside the run to be killed (2 cores, shared).
  ref = subprocess.Popen(_run_py(args(ref_dir)), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
  victim = subprocess.Popen(_run_py(args(dir_)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT)
  state = os.path.join(dir_, 'checkpoint')  # written once ckpt-2 is whole
  deadline = time.time() + 400
  while (not os.path.exists(state) and victim.poll() is None and
         time.time() < deadline):
    time.sleep(0.05)
  victim.send_signal(signal.SIGKILL)
  assert victim.wait(60) == -signal.SIGKILL, 'finished before the kill'
  resumed_from = checkpoints.step_of(checkpoints.latest(dir_))
  assert 2 <= resumed_from < total
  assert not os.path.exists(os.path.join(dir_, 'result.json'))

  proc = run(args(dir_))
  assert ref.wait(600) == 0
  assert f'at step {resumed_from}.' in proc.stderr  # 'Resumed from ... at'
  # The rerun writes each later checkpoint and export exactly once.
  later = list(range(resumed_from + 2, total + 1, 2))
  assert [int(s) for s in re.findall(r'Saved checkpoint \S*ckpt-(\d+)',
                                     proc.stderr)] == later
  assert [int(s) for s in re.findall(
      r'Exported SavedModel to \S*saved_model\W(\d+)', proc.stderr)] == later

  for model_dir in (ref_dir, dir_):
    assert ckpt_steps(model_dir) == [2, 4]
    assert export_entries(model_dir) == ['2', '4']  # and no leftovers
  for step in (2, 4):
    prefix = f'ckpt-{step}'
    assert max_abs_diff(os.path.join(ref_dir, prefix),
                        os.path.join(dir_, prefix)) == 0.0
    variables = os.path.join('saved_model', str(step), 'variables',
                             'variables')
    assert max_abs_diff(os.path.join(ref_dir, variables),
                        os.path.join(dir_, variables)) == 0.0
  with open(os.path.join(ref_dir, 'result.json')) as f:
    want = json.load(f)
  with open(os.path.join(dir_, 'result.json')) as f:
    assert json.load(f) == want
  assert want['global_step'] == total


# -- 3. Killed exports: the previous version stays newest; cleaned up. ------


# Exports steps 10 and 20, then dies by SIGKILL (no cleanup can run) in the
# middle of exporting step 30 ('save': inside tf.saved_model.save, which has
# written part of .tmp-30-*) or of re-exporting step 20 ('rename': after
# 20/ was moved aside to .old-20-*, before .tmp-20-* was renamed to 20/).
_KILLED_EXPORT = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {tests!r})
    import tensorflow as tf
    from export import saved_model
    from stub_model import StubModel

    model_dir, where = sys.argv[1:]
    model = StubModel()
    model(tf.zeros([1, 8, 8, 3]))
    for step in (10, 20):
      saved_model.export_model(model, model_dir, step, image_size=8)

    def kill():
      os.kill(os.getpid(), signal.SIGKILL)

    if where == 'save':
      real_save = tf.saved_model.save
      def save_then_die(obj, path, **kwargs):
        real_save(obj, path, **kwargs)
        os.remove(os.path.join(path, 'saved_model.pb'))  # half written
        kill()
      tf.saved_model.save = save_then_die
      saved_model.export_model(model, model_dir, 30, image_size=8)
    else:
      real_rename = tf.io.gfile.rename
      def rename_then_die(src, dst, overwrite=False):
        real_rename(src, dst, overwrite)
        if '.old-' in dst:
          kill()
      tf.io.gfile.rename = rename_then_die
      saved_model.export_model(model, model_dir, 20, image_size=8)
    ''')


def _loads(path):
  out = tf.saved_model.load(path)(tf.ones([1, 8, 8, 3]))
  return out['proj_head_output'].shape == (1, 4)


@pytest.mark.slow
def test_killed_export_leaves_previous_newest_and_is_cleaned_up(tmp_path):
  script = _KILLED_EXPORT.format(root=ROOT,
                                 tests=os.path.join(ROOT, 'tests', 'helpers'))
  dirs = {w: str(tmp_path / w) for w in ('save', 'rename')}
  procs = {w: subprocess.Popen([sys.executable, '-c', script, d, w],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=_env(), cwd=ROOT)
           for w, d in dirs.items()}
  for w, proc in procs.items():
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-3000:]

  model = StubModel()
  model(tf.zeros([1, 8, 8, 3]))
  # Killed while writing 30: 20 is newest; the .tmp directory is no version.
  model_dir = dirs['save']
  root = saved_model.export_dir(model_dir)
  leftovers = [n for n in export_entries(model_dir) if n.startswith('.tmp-')]
  assert len(leftovers) == 1 and leftovers[0].startswith('.tmp-30-')
  assert export.list_versions(root) == [10, 20]
  assert export.latest_export(model_dir) == os.path.join(root, '20')
  assert checkpoints.resolve(root) == os.path.join(root, '20', 'variables',
                                                   'variables')
  assert _loads(export.latest_export(model_dir))
  # keep-max counts versions only, never the leftover.
  assert export.prune_versions(root, 1) == [10]
  export.export_model(model, model_dir, 30, image_size=8)
  assert export_entries(model_dir) == ['20', '30']

  # Killed between the two renames of re-exporting 20: 20 is missing for now
  # (10 is newest); the next export puts the complete old 20 back.
  model_dir = dirs['rename']
  root = saved_model.export_dir(model_dir)
  entries = export_entries(model_dir)
  assert '20' not in entries
  assert sorted(n[:8] for n in entries if n.startswith('.')) == [
      '.old-20-', '.tmp-20-']
  assert export.latest_export(model_dir) == os.path.join(root, '10')
  assert _loads(export.latest_export(model_dir))
  export.export_model(model, model_dir, 40, image_size=8)
  assert export_entries(model_dir) == ['10', '20', '40']
  assert _loads(os.path.join(root, '20'))


def test_cleanup_spares_live_and_foreign_exports(tmp_path):
  """Only leftovers of dead processes of this host are removed: a live
  exporter's directory (here: this process's) and other hosts' stay."""
  root = str(tmp_path)
  live = f'.tmp-5-{saved_model.socket.gethostname()}-{os.getpid()}'
  foreign = '.tmp-5-another-host-1'
  for name in (live, foreign, '7'):
    os.makedirs(os.path.join(root, name))
  assert saved_model.clean_leftovers(root) == []
  assert sorted(os.listdir(root)) == sorted([live, foreign, '7'])
  assert export.list_versions(root) == [7]


# -- 4. Killed checkpoint saves: the previous checkpoint stays newest. ------


class _Killed(BaseException):
  """Stands for SIGKILL: nothing catches it, no cleanup code runs."""


def _model_and_optimizer(value):
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  optimizer = keras.optimizers.SGD(0.1)
  optimizer.build(model.trainable_variables)
  for v in model.trainable_variables:
    v.assign(tf.fill(v.shape, value))
  optimizer.iterations.assign(int(value))
  return model, optimizer


def test_checkpoint_killed_before_it_is_recorded_is_never_picked(
    tmp_path, monkeypatch):
  """tf.train.CheckpointManager writes ckpt-N.data/.index, then names it in
  the 'checkpoint' state file (atomically). A kill in between, or while the
  data is written, leaves ckpt-(N-1) the newest: latest/resolve pick it,
  it restores, and the rerun's save of step N replaces the debris."""
  model_dir = str(tmp_path)
  model, optimizer = _model_and_optimizer(1.0)
  manager = checkpoints.make_manager(model, optimizer, model_dir, 5)
  manager.save(checkpoint_number=1)
  prefix1 = os.path.join(model_dir, 'ckpt-1')

  def die(*args, **kwargs):
    raise _Killed()

  monkeypatch.setattr(checkpoint_management,
                      'update_checkpoint_state_internal', die)
  for v in model.trainable_variables:
    v.assign(tf.fill(v.shape, 2.0))
  optimizer.iterations.assign(2)
  with pytest.raises(_Killed):
    manager.save(checkpoint_number=2)
  monkeypatch.undo()
  assert os.path.exists(os.path.join(model_dir, 'ckpt-2.index'))
  # And a save killed while writing step 3's data (no index yet).
  with open(os.path.join(model_dir, 'ckpt-3.data-00000-of-00001'), 'wb') as f:
    f.write(b'\0' * 100)
  os.makedirs(os.path.join(model_dir, 'ckpt-3_temp'))

  assert checkpoints.latest(model_dir) == prefix1
  assert checkpoints.resolve(model_dir) == prefix1
  assert checkpoints.step_of(prefix1) == 1
  # A rerun: fresh objects, a fresh manager, restore, train on, save.
  model, optimizer = _model_and_optimizer(0.0)
  manager = checkpoints.make_manager(model, optimizer, model_dir, 5)
  assert manager.latest_checkpoint == prefix1
  manager.checkpoint.restore(manager.latest_checkpoint).assert_consumed()
  assert int(optimizer.iterations) == 1
  assert all(np.all(v.numpy() == 1.0) for v in model.trainable_variables)
  optimizer.iterations.assign(2)
  manager.save(checkpoint_number=2)
  assert checkpoints.latest(model_dir) == os.path.join(model_dir, 'ckpt-2')
  assert checkpoints.step_of(checkpoints.latest(model_dir)) == 2


# -- 5. Non-finite loss: stop, name the step, keep the last good state. -----


@pytest.mark.slow
def test_nan_loss_stops_with_the_step_and_keeps_last_good_checkpoint(
    npz_dir, tmp_path):
  """--learning_rate=1e30: LARS scales each update to 1e27 x the weight
  norm, so the loss overflows a step or two later. The run exits 1 naming
  the step; the checkpoints and exports before it are there and finite,
  none of the non-finite state; only good steps were evaluated (at their
  checkpoints), none after."""
  model_dir = str(tmp_path / 'm')
  proc = run([f'--dataset=npz:{npz_dir}', f'--model_dir={model_dir}',
              '--train_steps=5', '--checkpoint_steps=1',
              '--learning_rate=1e30', '--export_every_checkpoint',
              '--keep_hub_module_max=0', '--seed=1', *TINY], check=False)
  assert proc.returncode == 1, proc.stderr[-3000:]
  found = re.search(r'error: Non-finite loss at step (\d+)', proc.stderr)
  assert found, proc.stderr[-3000:]
  bad = int(found.group(1))
  assert 2 <= bad <= 5  # step 1's loss is computed before any update
  good = list(range(1, bad))
  last = os.path.join(model_dir, f'ckpt-{bad - 1}')
  assert f'the last good checkpoint is {last}' in proc.stderr
  assert ckpt_steps(model_dir) == good
  assert export_entries(model_dir) == [str(s) for s in good]
  evaluated = sorted(int(p.rsplit('_', 1)[1][:-5]) for p in glob.glob(
      os.path.join(model_dir, 'result_*.json')))
  assert evaluated == good

  assert checkpoints.latest(model_dir) == last
  assert checkpoints.step_of(last) == bad - 1
  model = build_model(TINY_MODEL)
  checkpoints.check_compatible(last, model)
  tf.train.Checkpoint(model=model).restore(last).expect_partial(
  ).assert_existing_objects_matched()
  assert all(np.all(np.isfinite(v.numpy())) for v in model.variables)


def _bare_trainer(weights, saved):
  """A Trainer with only what _save and _check_finite use."""
  trainer = object.__new__(train.Trainer)
  trainer.model = types.SimpleNamespace(
      trainable_variables=[tf.Variable(w) for w in weights])
  trainer.manager = types.SimpleNamespace(
      latest_checkpoint='/run/ckpt-6',
      save=lambda checkpoint_number: saved.append(checkpoint_number))
  trainer.on_checkpoint = lambda t, step: saved.append(f'export {step}')
  return trainer


def test_non_finite_weights_are_never_saved_or_exported():
  """An overflowing update can leave NaN/Inf weights behind a finite loss;
  the checkpoint (and export) of that step is refused."""
  saved = []
  _bare_trainer([[1.0, 2.0]], saved)._save(6)
  assert saved == ['export 6', 6]
  saved.clear()
  trainer = _bare_trainer([[1.0, 2.0], [np.inf, 0.0]], saved)
  with pytest.raises(train.TrainingError,
                     match=r'Non-finite weights after step 8\. .*ckpt-6'):
    trainer._save(8)
  assert saved == []
  with pytest.raises(train.TrainingError,
                     match=r'at step 7: .*total_loss'):
    trainer._check_finite({'total_loss': [1.0, 1.0, float('nan'), 1.0],
                           'x': [1.0] * 4}, 8)
  trainer.manager.latest_checkpoint = None
  with pytest.raises(train.TrainingError, match='no checkpoint was saved'):
    trainer._check_finite({'total_loss': [float('inf')]}, 1)
