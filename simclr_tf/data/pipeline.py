"""Sources -> batched, augmented, distributed tf.data pipelines.

Element contract (per replica, b = global batch / replicas, S = image_size,
images float32 in [0, 1], NHWC; SimCLR Sec. 2.1 and Appendix A):

  pretrain  {'view1': [b, S, S, 3], 'view2': [b, S, S, 3], 'label': int32 [b]}
            two independent augmentations (crop, flip, colour distortion,
            blur if ``use_blur``) of the same b images.
  finetune  {'image': [b, S, S, 3], 'label': int32 [b]}: crop and flip only.
  eval      {'image': [b, S, S, 3], 'label': int32 [b], 'mask': float32 [b]}:
            centre crop of ``eval_crop_proportion`` (no crop when S <= 32),
            bicubic resize. The split is padded with ``mask == 0`` examples
            (zero image, label 0) to ``eval_steps(n, global_batch)`` global
            batches, so every example is seen exactly once across replicas.

Training datasets (pretrain, finetune) shuffle files and examples (buffer
50 x b when S <= 32, else 10 x b), repeat forever and drop remainders.
When the source has a fixed image shape of at most ``BATCH_CROP_MAX_SIDE``
pixels, augmentation runs after batching on whole batches (XLA-compiled,
each example with its own random parameters); otherwise each image is
cropped and resized before batching and colour and blur run on the batch.
Both routes draw from the same distributions (tests compare them).
``cache=True`` caches the decoded uint8 examples before shuffling and
augmentation.

Randomness: with ``seed`` (int) the dataset is reproducible; each input
pipeline derives its own streams from (seed, pipeline id). Epoch ``e`` reads
the shard in an order drawn from (seed, e) alone, and the augmentation of
the ``i``-th element from (seed, i) alone (stateless ops), so the stream
started at ``start_step`` (a run resumed from a checkpoint) yields exactly
what an uninterrupted stream yields from that step on. Getting there costs
reading (not augmenting) the examples of the current epoch that come before
the resume point: whole epochs are skipped for free. The position is exact
when every epoch yields ``shard_sizes`` examples (not when image folders
skip corrupt files). With ``seed=None`` every run differs and a resumed
stream starts afresh.
"""
from __future__ import annotations

import functools
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from simclr_tf import config as config_lib
from simclr_tf.data import augment
from simclr_tf.data import sources

MODES = ('pretrain', 'finetune', 'eval')
# Fixed-size images up to this side are cropped on whole batches (resampling
# matrices, cost ~ side^2 per output row); larger ones image by image.
BATCH_CROP_MAX_SIDE = 64


def eval_steps(num_examples: int, global_batch_size: int) -> int:
  """Global batches that cover ``num_examples`` once (last one padded)."""
  return max(1, math.ceil(num_examples / global_batch_size))


def per_replica_batch_size(global_batch_size: int, num_replicas: int) -> int:
  """``global_batch_size / num_replicas``, or a ValueError naming both."""
  if global_batch_size <= 0 or global_batch_size % num_replicas:
    raise ValueError(
        f'Global batch size {global_batch_size} is not a positive multiple '
        f'of the number of replicas {num_replicas}; use a multiple of '
        f'{num_replicas}.')
  return global_batch_size // num_replicas


def _derive_seed(seed: Optional[int], *salt: int) -> Optional[int]:
  """A distinct deterministic seed per (seed, salt...), None stays None."""
  if seed is None:
    return None
  return int(np.random.SeedSequence([seed, *salt]).generate_state(1)[0])


def _seed_stream(seed: Optional[int], start: int = 0) -> tf.data.Dataset:
  """Infinite dataset of int64 ``[2]`` stateless seeds ``(seed, i)`` for
  elements ``i = start, start + 1, ...``: element i's randomness does not
  depend on where iteration began. ``seed=None``: a random one."""
  if seed is None:
    seed = int(np.random.SeedSequence().generate_state(1)[0])
  return tf.data.Dataset.counter(start).map(
      lambda i: tf.stack([tf.constant(seed, tf.int64), i]))


def _epoch_seed(seed: int, epoch: tf.Tensor) -> tf.Tensor:
  """int64 scalar seed for ``epoch`` drawn from (seed, epoch) alone."""
  return tf.random.stateless_uniform(
      [], seed=tf.stack([tf.constant(seed, tf.int64), epoch]), minval=None,
      maxval=None, dtype=tf.int64)


def _examples(source, split, input_context, seeds, buffer_size, cache,
              start):
  """This pipeline's shuffled examples, epoch after epoch, from example
  ``start`` of that stream on (module docstring: Randomness).

  Args:
    seeds: ``(file order seed, shuffle buffer seed)``, ints or None.
  """
  file_seed, shuffle_seed = seeds
  if shuffle_seed is None:  # Unseeded: every order differs, position moot.
    ds = source.dataset(split, input_context, shuffle_files=True)
    return (ds.cache() if cache else ds).shuffle(buffer_size).repeat()
  num_pipelines, pipeline_id = sources.shard_of(input_context)
  size = source.shard_sizes(split, num_pipelines)[pipeline_id]
  if size == 0:
    raise ValueError(f'Input pipeline {pipeline_id} of {num_pipelines} has '
                     f'no examples of {split!r}; use fewer input pipelines '
                     'or a larger split.')
  epoch, offset = divmod(start, size)
  # Built once here, eagerly, so that a source loading lazily (ArraySource
  # converts its arrays on first use) does not do so in flat_map's graph.
  # The cache holds the first pass's order (files shuffled once).
  first = source.dataset(split, input_context, shuffle_files=True,
                         seed=file_seed)
  cached = first.cache() if cache else None

  @tf.autograph.experimental.do_not_convert  # TFDS's wrapt decorators
  def one_epoch(e):
    # Dataset.shuffle pairs a tensor seed with the graph-level seed, and
    # when that is 0 (tf.random.set_seed(0), --seed=0) TF tests the tensor
    # as a Python bool and fails. The epoch seeds alone decide the order,
    # so this function's graph gets a fixed graph-level seed of its own.
    tf.compat.v1.get_default_graph().seed = 1
    ds = cached if cache else source.dataset(
        split, input_context, shuffle_files=True,
        seed=_epoch_seed(file_seed, e))
    return ds.shuffle(buffer_size, seed=_epoch_seed(shuffle_seed, e))

  ds = tf.data.Dataset.counter(epoch).flat_map(one_epoch)
  return ds.skip(offset) if offset else ds


def _check_args(mode, batch_size, image_size):
  if mode not in MODES:
    raise ValueError(f'mode={mode!r} is invalid: use one of {list(MODES)}.')
  for name, value in (('batch_size', batch_size), ('image_size', image_size)):
    if not isinstance(value, (int, np.integer)) or value <= 0:
      raise ValueError(f'{name}={value!r} is invalid: must be an int > 0.')


def make_dataset(source: sources.Source, split: str, *, mode: str,
                 batch_size: int, image_size: int,
                 augment_cfg: Optional[config_lib.AugmentConfig] = None,
                 seed: Optional[int] = None, cache: bool = False,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 jit_compile: bool = True,
                 start_step: int = 0) -> tf.data.Dataset:
  """One input pipeline's dataset of per-replica batches (module docstring).

  Args:
    source: a ``Source`` (``get_source(data_cfg)``).
    split: split with optional slicing, e.g. ``'train[:10%]'``.
    mode: ``'pretrain'``, ``'finetune'`` or ``'eval'``.
    batch_size: examples per element (the per-replica batch b).
    image_size: output side S.
    augment_cfg: ``AugmentConfig``; default ``AugmentConfig()``.
    seed: int for a reproducible pipeline, None for a random one.
    cache: cache decoded uint8 examples in memory
      (``DataConfig.cache_dataset``).
    input_context: ``tf.distribute.InputContext``: read this pipeline's shard;
      eval pads to ``num_replicas_in_sync / num_input_pipelines`` replicas'
      share of the global batches. None: the whole split, one replica.
    jit_compile: XLA-compile batch augmentation: about 3-5x faster on CPU
      for a one-off compile of ~4 s per process and setting.
    start_step: training modes: start the stream where an uninterrupted one
      is after ``start_step`` global steps (each step takes one element per
      replica this pipeline feeds), e.g. the step a run resumes from.
  """
  _check_args(mode, batch_size, image_size)
  cfg = augment_cfg or config_lib.AugmentConfig()
  if mode == 'eval':
    return _eval_dataset(source, split, batch_size, image_size, cfg, cache,
                         input_context)
  num_pipelines, _ = sources.shard_of(input_context)
  replicas = input_context.num_replicas_in_sync if input_context else 1
  start_element = start_step * max(1, replicas // num_pipelines)
  return _train_dataset(source, split, mode, batch_size, image_size, cfg,
                        seed, cache, input_context, jit_compile,
                        start_element)


def _train_dataset(source, split, mode, batch_size, image_size, cfg, seed,
                   cache, input_context, jit_compile, start_element):
  """Shuffled, repeated, augmented batches from batch ``start_element`` on
  (module docstring)."""
  _, pipeline_id = sources.shard_of(input_context)
  seeds = [_derive_seed(seed, pipeline_id, k) for k in range(4)]
  multiplier = 50 if image_size <= 32 else 10
  start_example = start_element * batch_size
  ds = _examples(source, split, input_context, seeds[:2],
                 batch_size * multiplier, cache, start_example)
  views = 2 if mode == 'pretrain' else 1
  batch_crop = (source.image_shape is not None
                and max(source.image_shape[:2]) <= BATCH_CROP_MAX_SIDE)
  distort = _distort_fn(cfg, image_size, views, color=mode == 'pretrain',
                        blur=mode == 'pretrain' and cfg.use_blur,
                        crop=batch_crop, jit_compile=jit_compile)
  if not batch_crop:  # Large or varying sizes: crop each image first.
    ds = tf.data.Dataset.zip(ds, _seed_stream(seeds[2], start_example)).map(
        lambda xy, s: (_crop_views(xy[0], s, cfg, image_size, views), xy[1]),
        num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.batch(batch_size, drop_remainder=True)
  ds = tf.data.Dataset.zip(ds, _seed_stream(seeds[3], start_element)).map(
      lambda xy, s: _as_dict(distort(xy[0], s), xy[1]),
      num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def _crop_views(image, seed, cfg, image_size, views):
  """Per-image random resized crops: uint8 ``[H, W, 3]`` -> ``views`` float
  ``[S, S, 3]`` (each with its own box and flip)."""
  seeds = tf.random.experimental.stateless_split(seed, views, 'philox')
  return tuple(
      augment.random_resized_crop(image, s, image_size, cfg.crop_area_min)
      for s in tf.unstack(seeds))


@functools.lru_cache(maxsize=None)
def _distort_fn(cfg, image_size, views, color, blur, crop, jit_compile):
  """One ``tf.function`` per setting, so pipelines rebuilt in a process
  (train, then eval, then train again) reuse its XLA compilation."""
  return tf.function(
      lambda x, s: _distort_views(x, s, cfg, image_size, views, color, blur,
                                  crop),
      jit_compile=jit_compile, autograph=False)


def _distort_views(images, seed, cfg, image_size, views, color, blur, crop):
  """Batch augmentation (SimCLR Appendix A) -> tuple of ``views`` float32
  ``[b, S, S, 3]`` in [0, 1].

  The views are stacked into one batch of ``views * b`` images (each with
  its own random parameters), which halves the work of tracing and XLA.

  Args:
    images: uint8 ``[b, H, W, 3]`` when ``crop`` (crop and flip here, on the
      batch), else a tuple of ``views`` already cropped float batches.
  """
  s_crop, s_color, s_blur = tf.unstack(
      tf.random.experimental.stateless_split(seed, 3, 'philox'))
  if crop:
    x = augment.to_float(tf.concat([images] * views, axis=0))
    x = augment.random_resized_crop_batch(x, s_crop, image_size,
                                          cfg.crop_area_min)
  else:
    x = tf.concat(images, axis=0)
  if color:
    x = augment.color_distortion(x, s_color, cfg.color_jitter_strength)
  if blur:
    x = augment.random_blur(x, s_blur)
  return tuple(tf.split(tf.clip_by_value(x, 0.0, 1.0), views, axis=0))


def _as_dict(views, labels):
  if len(views) == 2:
    return {'view1': views[0], 'view2': views[1], 'label': labels}
  return {'image': views[0], 'label': labels}


def _eval_dataset(source, split, batch_size, image_size, cfg, cache,
                  input_context):
  """Centre-cropped images, padded with masked examples (module docstring)."""
  num_pipelines, pipeline_id = sources.shard_of(input_context)
  replicas = input_context.num_replicas_in_sync if input_context else 1
  if replicas % num_pipelines:
    raise ValueError(f'{replicas} replicas cannot be split evenly over '
                     f'{num_pipelines} input pipelines for evaluation.')
  steps = eval_steps(source.num_examples(split), batch_size * replicas)
  quota = steps * batch_size * replicas // num_pipelines
  shard_size = source.shard_sizes(split, num_pipelines)[pipeline_id]
  if shard_size > quota:
    raise ValueError(f'Input pipeline {pipeline_id} holds {shard_size} '
                     f'examples of {split!r} but only {quota} fit in {steps} '
                     'evaluation steps; shards are uneven.')
  ds = source.dataset(split, input_context, shuffle_files=False)
  if cache:
    ds = ds.cache()
  crop = cfg.eval_crop_proportion if image_size > 32 else 1.0
  same_size = source.image_shape == (image_size, image_size, 3)

  def preprocess(image, label):
    if same_size and crop == 1.0:
      image = augment.to_float(image)
    else:
      image = augment.center_crop_and_resize(image, image_size, crop)
    image = tf.ensure_shape(image, [image_size, image_size, 3])
    return {'image': image, 'label': label, 'mask': tf.constant(1.0)}

  padding = tf.data.Dataset.from_tensors({
      'image': tf.zeros([image_size, image_size, 3]),
      'label': tf.constant(0, tf.int32), 'mask': tf.constant(0.0)}).repeat()
  ds = ds.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE)
  ds = ds.concatenate(padding).take(quota).batch(batch_size)
  # Without autotuning (parallelism = the cores): deleting an iterator
  # that has not reached the end (every evaluation stops after its steps)
  # otherwise stalls ~5 s waiting for the autotuner, measured here.
  options = tf.data.Options()
  options.autotune.enabled = False
  return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _check_stream(strategy, source, split, mode, global_batch_size,
                  image_size):
  per_replica = per_replica_batch_size(global_batch_size,
                                       strategy.num_replicas_in_sync)
  _check_args(mode, per_replica, image_size)
  if source.num_examples(split) == 0:
    raise ValueError(f'Split {split!r} of {source.name!r} has no examples; '
                     'widen the slice or pick another split.')


def build_dataset(strategy: tf.distribute.Strategy, source: sources.Source,
                  split: str, *, mode: str, global_batch_size: int,
                  image_size: int,
                  augment_cfg: Optional[config_lib.AugmentConfig] = None,
                  seed: Optional[int] = None, cache: bool = False,
                  jit_compile: bool = True, start_step: int = 0):
  """Distributed dataset: ``strategy.distribute_datasets_from_function``
  over ``make_dataset`` with per-replica batch = global / replicas.

  Validates the batch size, mode, image size and split (reading no images)
  before building anything. For ``eval``, iterate exactly
  ``eval_steps(source.num_examples(split), global_batch_size)`` steps (the
  dataset ends there) and weight by ``mask``. ``start_step``: see
  ``make_dataset``.

  Raises:
    ValueError: global batch not divisible by replicas, unknown mode or
      split, or an empty split.
  """
  _check_stream(strategy, source, split, mode, global_batch_size,
                image_size)

  def dataset_fn(input_context):
    return make_dataset(
        source, split, mode=mode,
        batch_size=input_context.get_per_replica_batch_size(global_batch_size),
        image_size=image_size, augment_cfg=augment_cfg, seed=seed,
        cache=cache, input_context=input_context, jit_compile=jit_compile,
        start_step=start_step)

  return strategy.distribute_datasets_from_function(dataset_fn)


def build_zipped_dataset(strategy: tf.distribute.Strategy,
                         source: sources.Source, streams: dict, *,
                         global_batch_size: int, image_size: int,
                         augment_cfg: Optional[config_lib.AugmentConfig] = None,
                         cache: bool = False, jit_compile: bool = True,
                         start_step: int = 0):
  """Several training streams that advance together, e.g. unlabeled and
  labeled images in distillation: a distributed dataset whose per-replica
  element is ``{name: element of make_dataset(split, mode, seed)}`` for
  ``streams = {name: (split, mode, seed)}``. Each stream starts at
  ``start_step`` as ``make_dataset`` does, so resumes are exact (give the
  streams different seeds, or they share augmentation parameters).
  """
  for split, mode, _ in streams.values():
    _check_stream(strategy, source, split, mode, global_batch_size,
                  image_size)

  def dataset_fn(input_context):
    batch = input_context.get_per_replica_batch_size(global_batch_size)
    return tf.data.Dataset.zip({
        name: make_dataset(
            source, split, mode=mode, batch_size=batch,
            image_size=image_size, augment_cfg=augment_cfg, seed=seed,
            cache=cache, input_context=input_context,
            jit_compile=jit_compile, start_step=start_step)
        for name, (split, mode, seed) in streams.items()})

  return strategy.distribute_datasets_from_function(dataset_fn)
