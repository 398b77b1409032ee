"""Evaluators (issue 13): embedding passes under 1 and 2 replicas, the kNN
monitor against a brute-force reference, the pictures (sprite, neighbour
grid), the Projector files and the cadence rules."""
import dataclasses
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins import projector as tb_projector

import cli
from simclr_tf import data, rundir, train
from simclr_tf.config import (Config, ConfigError, DataConfig, EvalConfig,
                              ModelConfig, TrainConfig)
from simclr_tf.evaluators import (base, embed, factory, images, knn,
                                  knn_monitor, projector)
from simclr_tf.models import build_model

MODEL = ModelConfig(resnet_depth=18, width_multiplier=0.125, image_size=32,
                    proj_out_dim=16, num_classes=3)


@pytest.fixture(scope='module')
def npz_dir(tmp_path_factory):
  return cli.write_tiny_npz(tmp_path_factory.mktemp('npz'))


@pytest.fixture(scope='module')
def model():
  keras_seed = 3
  tf.keras.utils.set_random_seed(keras_seed)
  return build_model(MODEL)


def _cfg(npz_dir, eval_batch=8, **evaluation):
  return Config(data=DataConfig(dataset=f'npz:{npz_dir}'), model=MODEL,
                train=TrainConfig(eval_batch_size=eval_batch),
                evaluation=EvalConfig(**evaluation))


def _all_images(source, split):
  """Every example of ``split`` in order, as the eval pipeline sees it."""
  ds = data.make_dataset(source, split, mode='eval', batch_size=1000,
                         image_size=32)
  batch = next(iter(ds))
  keep = batch['mask'].numpy() > 0
  return batch['image'].numpy()[keep], batch['label'].numpy()[keep]


def _features(model, x):
  return model(tf.constant(x), training=False)['final_avg_pool'].numpy()


@pytest.mark.parametrize('replicas', [1, 2])
def test_embed_counts_each_example_once_with_nearest(
    npz_dir, model, replicas, two_replicas):
  """Features and labels of a 20-example split (not a batch multiple)
  gathered from 1 or 2 replicas: each example once, the features the
  model gives; the per-probe nearest equal a brute-force search."""
  strategy = two_replicas if replicas == 2 else tf.distribute.get_strategy()
  source = data.get_source(DataConfig(dataset=f'npz:{npz_dir}'))
  x, y = _all_images(source, 'test')
  want = _features(model, x)
  dataset = data.build_dataset(strategy, source, 'test', mode='eval',
                               global_batch_size=8, image_size=32)
  probes = tf.math.l2_normalize(want[[0, 5]], -1).numpy()
  step = embed.make_embed_step(model, strategy, with_probes=True, nearest=3,
                               thumb_side=8)
  out = embed.embed(step, dataset, data.eval_steps(20, 8), probes=probes,
                    nearest=3)
  assert out.features.shape == (20, want.shape[1])
  assert out.thumbs.shape == (20, 8, 8, 3)
  # Order differs across replicas: match rows by their features.
  order = [int(np.argmin(np.abs(want - f).sum(1))) for f in out.features]
  assert sorted(order) == list(range(20))
  np.testing.assert_allclose(out.features, want[order], rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_array_equal(out.labels, y[order])
  sim = probes @ (want / np.linalg.norm(want, axis=1, keepdims=True)).T
  near_sim, near_labels, near_thumbs = out.nearest
  top = np.argsort(-sim, axis=1, kind='stable')[:, :3]
  np.testing.assert_allclose(near_sim, np.take_along_axis(sim, top, 1),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_array_equal(near_labels, y[top])
  assert near_thumbs.shape == (2, 3, 8, 8, 3)
  # The probe's own example is its most similar one.
  assert near_sim[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_embed_limit_keeps_the_first_examples(npz_dir, model):
  source = data.get_source(DataConfig(dataset=f'npz:{npz_dir}'))
  strategy = tf.distribute.get_strategy()
  dataset = data.build_dataset(strategy, source, 'train', mode='eval',
                               global_batch_size=8, image_size=32)
  steps = embed.pass_steps(48, 8, limit=10)
  assert steps == 3
  out = embed.embed(embed.make_embed_step(model, strategy), dataset, steps,
                    limit=10)
  assert out.features.shape[0] == 10
  assert embed.pass_steps(48, 8) == 6 and embed.pass_steps(48, 8, 100) == 6


def _reference_knn(model, source, k, temperature, bank_limit=None):
  xb, yb = _all_images(source, 'train')
  xq, yq = _all_images(source, 'test')
  bank, queries = _features(model, xb), _features(model, xq)
  if bank_limit:
    bank, yb = bank[:bank_limit], yb[:bank_limit]
  scores = knn.knn_scores(queries, bank, yb, num_classes=3, k=k,
                          temperature=temperature).numpy()
  return float(np.mean(np.argmax(scores, 1) == yq))


def test_knn_eval_matches_reference_and_draws_the_grid(npz_dir, model):
  cfg = _cfg(npz_dir, knn_k=20, knn_temperature=0.01)
  source = data.get_source(cfg.data)
  evaluator = knn_monitor.KnnEval(cfg, tf.distribute.get_strategy(), source)
  report = evaluator.run(model, 0)
  want = _reference_knn(model, source, 20, 0.01)
  # The settings matter here: the default k or temperature would differ.
  assert want != _reference_knn(model, source, 200, 0.01)
  assert want != _reference_knn(model, source, 20, 0.1)
  assert report.scalars['knn_top1'] == pytest.approx(want, abs=1e-6)
  assert report.scalars['knn_num_examples'] == 20
  assert report.scalars['knn_bank_examples'] == 48
  grid = report.images['neighbours']
  # 8 query rows, 1 + 8 cells of 64 (32 px enlarged) + 2 * 2 px.
  assert grid.dtype == np.uint8
  assert grid.shape == (8 * 68, 9 * 68 + 6, 3)
  # A second run (same model) reuses the traced steps and agrees.
  assert evaluator.run(model, 1).scalars == report.scalars


def test_knn_eval_bank_size_caps_the_bank(npz_dir, model):
  cfg = _cfg(npz_dir, knn_k=5, knn_bank_size=12)
  source = data.get_source(cfg.data)
  report = knn_monitor.KnnEval(cfg, tf.distribute.get_strategy(),
                               source).run(model, 0)
  assert report.scalars['knn_bank_examples'] == 12
  assert report.scalars['knn_top1'] == pytest.approx(
      _reference_knn(model, source, 5, 0.1, bank_limit=12), abs=1e-6)


def test_default_bank_size_rule():
  assert knn_monitor.default_bank_size(50_000, 128) == 50_000
  # 2 GiB of float32 features of 2048 dims: 262,144 examples.
  assert knn_monitor.default_bank_size(1_281_167, 2048) == 262_144


def test_grid_indices_show_every_class_first():
  assert knn_monitor.grid_indices([0, 0, 1, 0, 2, 1], 4) == [0, 2, 4, 1]
  assert knn_monitor.grid_indices([5, 5], 8) == [0, 1]


def test_sprite_layout():
  thumbs = np.stack([np.full((2, 2, 3), 10 * (i + 1), np.uint8)
                     for i in range(5)])
  s = images.sprite(thumbs)
  assert s.shape == (6, 6, 3)  # ceil(sqrt(5)) = 3 per row
  for i in range(5):
    row, col = divmod(i, 3)
    assert (s[2 * row:2 * row + 2, 2 * col:2 * col + 2] == 10 * (i + 1)).all()
  assert (s[4:, 2:] == 0).all()
  assert images.sprite_thumb_side(2000, 32) == 32
  assert images.sprite_thumb_side(2000, 224) == 64
  assert images.sprite_thumb_side(100_000, 224) == 8192 // 317


def test_neighbour_grid_frames_by_label():
  q = np.zeros((2, 4, 4, 3), np.uint8)
  near = np.full((2, 3, 4, 4, 3), 100, np.uint8)
  labels = np.array([[1, 0, 1], [2, 2, 2]])
  grid = images.neighbour_grid(q, np.array([1, 2]), near, labels, border=1,
                               gap=2)
  assert grid.shape == (2 * 6, 4 * 6 + 2, 3)
  cell = lambda r, c: grid[6 * r, 6 * (c + 1) + 2]  # noqa: E731
  assert tuple(cell(0, 0)) == images.GREEN
  assert tuple(cell(0, 1)) == images.RED
  assert all(tuple(cell(1, c)) == images.GREEN for c in range(3))
  assert (grid[1:5, 1:5] == 0).all()  # the query itself


def _embeddings(n, dim=4, side=2, names=('a', 'b', 'c')):
  rng = np.random.default_rng(0)
  thumbs = rng.integers(0, 255, (n, side, side, 3), dtype=np.uint8)
  return projector.Embeddings(
      rng.normal(size=(n, dim)).astype(np.float32), np.arange(n) % 3, names,
      images.sprite(thumbs), side)


def test_projector_files(tmp_path):
  cfg = Config(train=TrainConfig(model_dir=str(tmp_path)))
  run = rundir.RunDir(cfg)
  for step in range(1, 8):
    run.write_projector(step, _embeddings(5 + step))
  config = tb_projector.ProjectorConfig()
  text_format.Parse((tmp_path / 'eval' / 'projector_config.pbtxt')
                    .read_text(), config)
  # The newest PROJECTOR_KEEP steps stay, older ones are deleted.
  assert [e.tensor_name for e in config.embeddings] == [
      f'final_avg_pool (step {s})' for s in range(3, 8)]
  assert sorted(os.listdir(tmp_path / 'eval' / 'projector')) == [
      str(s) for s in range(3, 8)]
  for e, step in zip(config.embeddings, range(3, 8)):
    n = 5 + step
    assert list(e.tensor_shape) == [n, 4]
    rows = (tmp_path / 'eval' / e.tensor_path).read_text().splitlines()
    assert len(rows) == n and all(len(r.split('\t')) == 4 for r in rows)
    meta = (tmp_path / 'eval' / e.metadata_path).read_text().splitlines()
    assert meta[0] == 'label\tclass'
    assert meta[1:4] == ['0\ta', '1\tb', '2\tc'] and len(meta) == n + 1
    sprite = tf.io.decode_png((tmp_path / 'eval' / e.sprite.image_path)
                              .read_bytes()).numpy()
    side = 2 * math.ceil(math.sqrt(n))
    assert sprite.shape == (side, side, 3)
    assert list(e.sprite.single_image_dim) == [2, 2]


def test_projector_eval_embeds_up_to_the_limit(npz_dir, model):
  cfg = _cfg(npz_dir, projector_examples=13)
  source = data.get_source(cfg.data)
  report = projector.ProjectorEval(cfg, tf.distribute.get_strategy(),
                                   source).run(model, 0)
  e = report.projector
  assert e.vectors.shape == (13, 64) and e.labels.shape == (13,)
  assert e.sprite.shape == (4 * 32, 4 * 32, 3) and e.thumb_side == 32
  assert report.scalars == {}


def test_cadence_rules(npz_dir):
  plan = train.TrainPlan(num_examples=1000, total_steps=80,
                         checkpoint_every=8, warmup_steps=0,
                         steps_per_epoch=8.0)
  cfg = _cfg(npz_dir, knn_every_epochs=0.5)
  assert factory.eval_every_checkpoint(cfg, plan)
  assert factory.knn_every_steps(cfg, plan) == 4
  many = dataclasses.replace(plan, total_steps=8 * 1001)
  assert not factory.eval_every_checkpoint(cfg, many)
  forced = _cfg(npz_dir, eval_every_checkpoint='true')
  assert factory.eval_every_checkpoint(forced, many)
  assert train.summary_every(-1, 50) == 1
  assert train.summary_every(-1, 313) == 3
  assert train.summary_every(-1, 100_000) == 100
  assert train.summary_every(0, 313) == 0
  evaluator = knn_monitor.KnnEval(cfg, None, data.get_source(cfg.data), 4)
  due = [s for s in range(1, 13) if evaluator.due(max(0, s - 3), s, False)]
  assert due == [4, 5, 6, 8, 9, 10, 12]
  assert evaluator.next_stop(5) == 8


@pytest.mark.parametrize('field,value', [
    ('knn_k', 0), ('knn_temperature', 0.0), ('knn_temperature', math.inf),
    ('knn_every_epochs', -1.0), ('knn_every_epochs', math.nan),
    ('knn_bank_size', -1), ('projector_examples', -5),
    ('eval_every_checkpoint', 'sometimes')])
def test_eval_config_refuses(field, value):
  with pytest.raises(ConfigError, match=rf'evaluation\.{field}='):
    EvalConfig(**{field: value})


class _Counting(base.Evaluator):
  """Counts its runs; reports ``top_1`` = the run number."""
  name = 'counting'

  def __init__(self, cfg):
    self.cfg, self.runs = cfg, 0

  def run(self, model, step):
    self.runs += 1
    return base.Report(scalars={'top_1': float(self.runs)})


def test_a_finished_runs_rerun_skips_what_it_evaluated(tmp_path):
  cfg = Config(train=TrainConfig(model_dir=str(tmp_path)))
  run_dir = rundir.RunDir(cfg)
  first = _Counting(cfg)
  assert base.run_due([first], None, 4, run_dir, previous_step=4,
                      final=True, skip_recorded=True) == {'top_1': 1.0}
  # The rerun: recorded with the same settings -> not run, same scalars.
  again = _Counting(cfg)
  assert base.run_due([again], None, 4, run_dir, previous_step=4,
                      final=True, skip_recorded=True) == {'top_1': 1.0}
  assert again.runs == 0
  # Asked (--mode=eval: skip_recorded False), or another step: runs.
  assert base.run_due([again], None, 4, run_dir, previous_step=4,
                      final=True) == {'top_1': 1.0} and again.runs == 1
  base.run_due([again], None, 6, run_dir, previous_step=6, final=True,
               skip_recorded=True)
  assert again.runs == 2
  # Other evaluation settings (another k, another eval split): runs.
  for changed in (dataclasses.replace(cfg, evaluation=EvalConfig(knn_k=7)),
                  dataclasses.replace(cfg, data=dataclasses.replace(
                      cfg.data, eval_split='validation'))):
    newest = _Counting(changed)
    base.run_due([newest], None, 4, run_dir, previous_step=4, final=True,
                 skip_recorded=True)
    assert newest.runs == 1
  # Another --eval_name keeps its own record.
  named = rundir.RunDir(dataclasses.replace(cfg, eval_name='x'))
  other = _Counting(cfg)
  base.run_due([other], None, 4, named, previous_step=4, final=True,
               skip_recorded=True)
  assert other.runs == 1
  with open(run_dir.evaluated_file) as f:  # the newest evaluation's
    assert json.load(f)['4']['counting'] == {
        'key': newest.settings_key(), 'scalars': {'top_1': 1.0}}
