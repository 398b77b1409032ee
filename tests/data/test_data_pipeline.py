"""Pipelines: element contract, seeds, distribution, exact-once evaluation."""
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.config import AugmentConfig, DataConfig
from simclr_tf.data import pipeline
from simclr_tf.data import sources

CFG = AugmentConfig(color_jitter_strength=0.5, use_blur=True)


@pytest.fixture
def npz_source(npz_root):
  return sources.get_source(DataConfig(dataset=f'npz:{npz_root}'))


def _first(ds, n=1):
  it = iter(ds)
  return [next(it) for _ in range(n)]


def test_pretrain_contract(npz_source):
  ds = pipeline.make_dataset(npz_source, 'train', mode='pretrain',
                             batch_size=8, image_size=32, augment_cfg=CFG,
                             seed=0)
  assert set(ds.element_spec) == {'view1', 'view2', 'label'}
  batch = _first(ds)[0]
  for key in ('view1', 'view2'):
    assert batch[key].shape == (8, 32, 32, 3)
    assert batch[key].dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(batch[key]))
    assert float(tf.reduce_max(batch[key])) <= 1.0
  assert batch['label'].dtype == tf.int32 and batch['label'].shape == (8,)
  assert float(tf.reduce_mean(tf.abs(batch['view1'] - batch['view2']))) > 0.05


def test_finetune_contract_and_resize(npz_source):
  ds = pipeline.make_dataset(npz_source, 'train[:50%]', mode='finetune',
                             batch_size=8, image_size=24, augment_cfg=CFG,
                             seed=0, cache=True, jit_compile=False)
  batches = _first(ds, 8)  # 64 > 50 examples: repeats, drops remainders.
  assert set(batches[0]) == {'image', 'label'}
  assert all(b['image'].shape == (8, 24, 24, 3) for b in batches)


def test_per_image_route_has_same_statistics(npz_source, monkeypatch):
  def stats():
    ds = pipeline.make_dataset(npz_source, 'train', mode='pretrain',
                               batch_size=25, image_size=32, augment_cfg=CFG,
                               seed=3, jit_compile=False)
    views = np.concatenate([b['view1'] for b in _first(ds, 8)])
    return views.mean(), views.std(), np.abs(np.diff(views, axis=2)).mean()
  batched = stats()
  monkeypatch.setattr(pipeline, 'BATCH_CROP_MAX_SIDE', 0)  # Per image.
  per_image = stats()
  np.testing.assert_allclose(batched, per_image, rtol=0.1)


def test_eval_contract_pads_and_keeps_order(npz_source, npz_root):
  ds = pipeline.make_dataset(npz_source, 'test', mode='eval', batch_size=8,
                             image_size=32, augment_cfg=CFG)
  batches = list(ds)
  assert len(batches) == pipeline.eval_steps(37, 8) == 5
  images = np.concatenate([b['image'] for b in batches])
  mask = np.concatenate([b['mask'] for b in batches])
  labels = np.concatenate([b['label'] for b in batches])
  assert batches[0]['mask'].dtype == tf.float32
  np.testing.assert_array_equal(mask, [1.0] * 37 + [0.0] * 3)
  with np.load(f'{npz_root}/test.npz') as z:
    np.testing.assert_allclose(images[:37], z['images'] / 255.0, atol=1e-6)
    np.testing.assert_array_equal(labels[:37], z['labels'])
  assert (images[37:] == 0).all() and (labels[37:] == 0).all()


def test_eval_centre_crops_large_images(npz_source):
  ds = pipeline.make_dataset(npz_source, 'test', mode='eval', batch_size=8,
                             image_size=40)
  assert next(iter(ds))['image'].shape == (8, 40, 40, 3)


def test_seed_makes_pipeline_reproducible(npz_source):
  def views(seed, jit_compile=True):
    ds = pipeline.make_dataset(npz_source, 'train', mode='pretrain',
                               batch_size=8, image_size=32, augment_cfg=CFG,
                               seed=seed, jit_compile=jit_compile)
    return np.concatenate([b['view1'] for b in _first(ds, 3)])
  a, b, c = views(1), views(1), views(2)
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 0.1
  assert np.abs(views(None) - views(None)).max() > 0.1
  # Same random numbers with and without XLA.
  np.testing.assert_allclose(views(1, jit_compile=False), a, atol=1e-4)


def test_two_input_pipelines_each_evaluate_their_share(npz_source):
  seen = []
  for i in range(2):
    ctx = tf.distribute.InputContext(2, i, 2)
    for batch in pipeline.make_dataset(npz_source, 'test', mode='eval',
                                       batch_size=4, image_size=32,
                                       input_context=ctx):
      keep = batch['mask'].numpy() == 1
      seen += batch['image'].numpy()[keep, 0, 0, 0].tolist()
  assert sorted(round(v * 255) for v in seen) == list(range(37))


def _local(strategy, value):
  return [t.numpy() for t in strategy.experimental_local_results(value)]


def test_distributed_pretrain_per_replica_batch(two_replicas,
                                                builtin_data_dir):
  source = sources.get_source(DataConfig(data_dir=builtin_data_dir))
  dist = pipeline.build_dataset(two_replicas, source, 'train[:1%]',
                                mode='pretrain', global_batch_size=16,
                                image_size=32, augment_cfg=CFG, seed=0)
  batch = next(iter(dist))
  for key, shape in (('view1', (8, 32, 32, 3)), ('view2', (8, 32, 32, 3)),
                     ('label', (8,))):
    parts = _local(two_replicas, batch[key])
    assert len(parts) == 2 and all(p.shape == shape for p in parts)


def test_distributed_eval_counts_every_example_once(two_replicas,
                                                    npz_source):
  dist = pipeline.build_dataset(two_replicas, npz_source, 'test',
                                mode='eval', global_batch_size=8,
                                image_size=32)
  steps, masks, labels = 0, [], []
  for batch in dist:
    steps += 1
    for mask, label in zip(_local(two_replicas, batch['mask']),
                           _local(two_replicas, batch['label'])):
      assert mask.shape == (4,)
      masks.append(mask)
      labels += label[mask == 1].tolist()
  assert steps == pipeline.eval_steps(37, 8) == 5
  assert np.concatenate(masks).sum() == 37
  assert Counter(labels) == Counter(np.arange(37) % 10)


def test_global_batch_must_divide_by_replicas(two_replicas, npz_source):
  with pytest.raises(ValueError, match=r'Global batch size 7 .* replicas 2'):
    pipeline.build_dataset(two_replicas, npz_source, 'train', mode='pretrain',
                           global_batch_size=7, image_size=32)


def test_argument_errors(npz_source):
  with pytest.raises(ValueError, match="mode='train' is invalid"):
    pipeline.make_dataset(npz_source, 'train', mode='train', batch_size=8,
                          image_size=32)
  with pytest.raises(ValueError, match='batch_size=0 is invalid'):
    pipeline.make_dataset(npz_source, 'train', mode='eval', batch_size=0,
                          image_size=32)
  strategy = tf.distribute.get_strategy()
  with pytest.raises(ValueError, match='has no examples'):
    pipeline.build_dataset(strategy, npz_source, 'train[5:5]', mode='eval',
                           global_batch_size=8, image_size=32)
  with pytest.raises(ValueError, match='available splits'):
    pipeline.build_dataset(strategy, npz_source, 'validation', mode='eval',
                           global_batch_size=8, image_size=32)


def test_eval_steps():
  assert pipeline.eval_steps(10000, 256) == 40
  assert pipeline.eval_steps(10000, 1000) == 10
  assert pipeline.eval_steps(1, 8) == 1
