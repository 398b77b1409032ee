"""Dataset sources: one interface over TFDS, image folders, npz files and the
built-in offline dataset.

Every source yields ``(image, label)`` examples: ``image`` uint8 ``[H, W, 3]``
(grayscale is repeated to 3 channels), ``label`` int32 ``[]``. Augmentation
and batching happen later (``simclr_tf.data.pipeline``).

``get_source(data_cfg)`` picks the source from ``DataConfig.dataset``:

  ``builtin``       offline generated shapes (``simclr_tf.data.builtin``)
  ``npz:PATH``      ``PATH/<split>.npz`` or ``PATH/<split>-<k>.npz``
  ``folder:PATH``   ``PATH/<split>/<class>/**/<image>`` (``data.folder``)
  anything else     a TFDS name (``cifar10``, ``imagenet2012_subset/1pct``)
"""
from __future__ import annotations

import abc
import difflib
from typing import Optional

import numpy as np
import tensorflow as tf

from simclr_tf.data import splits as splits_lib


class Source(abc.ABC):
  """A labelled image dataset with named splits.

  Attributes:
    name: what ``DataConfig.dataset`` said.
    num_classes: number of labels; labels are in ``[0, num_classes)``.
    class_names: tuple of class names in label order, or None if unknown.
    image_shape: ``(H, W, 3)`` when every image has that shape, else None
      (then the pipeline crops each image before batching).
  """
  name: str
  num_classes: int
  class_names: Optional[tuple] = None
  image_shape: Optional[tuple] = None

  @abc.abstractmethod
  def num_examples(self, split: str) -> int:
    """Number of examples in ``split`` (slicing applied), for all pipelines."""

  @abc.abstractmethod
  def dataset(self, split: str, input_context=None, shuffle_files=False,
              seed=None) -> tf.data.Dataset:
    """Examples ``(uint8 [H, W, 3], int32 [])`` of this input pipeline's shard.

    Args:
      split: split name with optional slicing, e.g. ``'train[:10%]'``.
      input_context: a ``tf.distribute.InputContext``; the split is divided
        into ``num_input_pipelines`` disjoint shards of near-equal size and
        shard ``input_pipeline_id`` is returned. None: the whole split.
      shuffle_files: shuffle the read order (every epoch anew). Sources held
        in memory permute all examples; file-based ones permute files.
      seed: int or None; with a seed the order is reproducible.
    """

  def check_split(self, split: str) -> None:
    """Raises ValueError if ``split`` does not exist or holds no example.

    Cheap (no image is decoded); a run calls it for every split it will
    read before it writes anything. Sources may check more (image folders
    read each file's header).
    """
    if self.num_examples(split) == 0:
      raise ValueError(f'split {split!r} of {self.name!r} has no examples; '
                       'widen the slice or pick another split.')

  def shard_sizes(self, split: str, num_shards: int) -> list:
    """Examples in each of ``num_shards`` shards (round-robin by index)."""
    n = self.num_examples(split)
    return [len(range(i, n, num_shards)) for i in range(num_shards)]


def shard_of(input_context) -> tuple[int, int]:
  """``(num_input_pipelines, input_pipeline_id)`` of a context or None."""
  if input_context is None:
    return 1, 0
  return input_context.num_input_pipelines, input_context.input_pipeline_id


def ensure_rgb(image: tf.Tensor) -> tf.Tensor:
  """``[H, W, C]`` with C in {1, 3} -> ``[H, W, 3]`` (grayscale repeated)."""
  if image.shape[-1] == 1:
    return tf.image.grayscale_to_rgb(image)
  return image


class ArraySource(Source):
  """A source whose splits are numpy arrays held in memory.

  Canonical order (for slicing and sharding) is the array order. Subclasses
  implement ``_split_names``, ``_count`` (cheap) and ``_load``.
  """

  def __init__(self):
    self._tensors = {}

  @abc.abstractmethod
  def _split_names(self) -> list:
    """Names of the available splits."""

  @abc.abstractmethod
  def _count(self, name: str) -> int:
    """Number of examples of split ``name`` without loading images."""

  @abc.abstractmethod
  def _load(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 [N, H, W, 3], int [N])`` of split ``name``, validated."""

  def _parse(self, split: str) -> splits_lib.SplitSlice:
    sl = splits_lib.parse_split(split)
    names = self._split_names()
    if sl.name not in names:
      raise ValueError(f'split {split!r} does not exist in dataset '
                       f'{self.name!r}: available splits are {sorted(names)}.')
    return sl

  def num_examples(self, split):
    sl = self._parse(split)
    begin, end = sl.indices(self._count(sl.name))
    return end - begin

  def _split_tensors(self, name):
    if name not in self._tensors:
      images, labels = self._load(name)
      self._tensors[name] = (tf.convert_to_tensor(images),
                             tf.convert_to_tensor(labels.astype(np.int32)))
    return self._tensors[name]

  def dataset(self, split, input_context=None, shuffle_files=False, seed=None):
    sl = self._parse(split)
    begin, end = sl.indices(self._count(sl.name))
    images, labels = self._split_tensors(sl.name)
    num_shards, shard_id = shard_of(input_context)
    index = tf.data.Dataset.range(begin + shard_id, end, num_shards)
    if shuffle_files:
      size = max(1, len(range(begin + shard_id, end, num_shards)))
      index = index.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    # Gathering 256 indices at a time then unbatching costs ~6x less CPU
    # than one gather per example; the order is the same.
    return index.batch(256).map(
        lambda i: (tf.gather(images, i), tf.gather(labels, i)),
        num_parallel_calls=tf.data.AUTOTUNE).unbatch()


class TfdsSource(Source):
  """A TensorFlow Datasets dataset, read from ``data_dir`` (never downloaded).

  Canonical order and slicing are TFDS's own (``tfds.core.ReadInstruction``);
  input pipelines read ``tfds.even_splits(split, n)`` so shards differ in
  size by at most one example.
  """

  def __init__(self, name: str, data_dir: Optional[str] = None):
    import tensorflow_datasets as tfds  # Heavy import; only when needed.
    self._tfds = tfds
    self.name = name
    self._builder = _tfds_builder(tfds, name, data_dir)
    info = self._builder.info
    if not info.supervised_keys:
      raise ValueError(f'TFDS dataset {name!r} has no (image, label) '
                       'supervised keys; use a labelled image dataset.')
    self._image_key, self._label_key = info.supervised_keys[:2]
    label = info.features[self._label_key]
    self.num_classes = label.num_classes
    self.class_names = tuple(label.names) if label.names else None
    shape = tuple(info.features[self._image_key].shape)
    self.image_shape = (shape[:2] + (3,)) if None not in shape else None

  def num_examples(self, split):
    try:
      return self._builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError) as e:
      raise ValueError(
          f'Split {split!r} is not available in TFDS dataset {self.name!r} '
          f'(available: {sorted(self._builder.info.splits)}; slicing as in '
          f"'train[:10%]'): {e}") from None

  def shard_sizes(self, split, num_shards):
    subsplits = self._tfds.even_splits(split, n=num_shards)
    return [self.num_examples(s) for s in subsplits]

  def dataset(self, split, input_context=None, shuffle_files=False, seed=None):
    num_shards, shard_id = shard_of(input_context)
    if num_shards > 1:
      split = self._tfds.even_splits(split, n=num_shards)[shard_id]
    read_config = self._tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    ds = self._builder.as_dataset(split=split, shuffle_files=shuffle_files,
                                  as_supervised=True, read_config=read_config)
    return ds.map(lambda x, y: (ensure_rgb(x), tf.cast(y, tf.int32)),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _tfds_builder(tfds, name, data_dir):
  """Returns a prepared builder or raises naming the fix."""
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # DatasetNotFoundError and friends.
    close = difflib.get_close_matches(name, tfds.list_builders(), n=3)
    hint = f' Did you mean {close}?' if close else ''
    raise ValueError(
        f'unknown dataset {name!r}: it is not "builtin", "npz:PATH", '
        f'"folder:PATH" or a TFDS dataset name ({type(e).__name__}).{hint}'
        ) from None
  if not builder.is_prepared():
    raise ValueError(
        f'TFDS dataset {name!r} is not prepared in data_dir='
        f'{str(builder.data_dir_root)!r} and simclr_tf never downloads. Run '
        f'`tfds build {name} --data_dir=DIR` where there is network and '
        'pass --data_dir=DIR, or use "npz:PATH", '
        '"folder:PATH" or "builtin".')
  return builder


def get_source(data_cfg) -> Source:
  """The ``Source`` named by ``data_cfg.dataset`` (a ``DataConfig``).

  Raises:
    ValueError: unknown name, missing path or unprepared TFDS data; raised
      before any example is read.
  """
  name = data_cfg.dataset
  if name == 'builtin':
    from simclr_tf.data import builtin
    return builtin.BuiltinSource(data_cfg.data_dir)
  if name.startswith('npz:'):
    from simclr_tf.data import npz
    return npz.NpzSource(name[len('npz:'):])
  if name.startswith('folder:'):
    from simclr_tf.data import folder
    return folder.FolderSource(name[len('folder:'):],
                               skip_corrupt=data_cfg.skip_corrupt_images)
  if ':' in name.split('/')[0]:
    raise ValueError(f'dataset {name!r} has an unknown prefix: use '
                     '"npz:PATH", "folder:PATH", "builtin" or a TFDS name.')
  return TfdsSource(name, data_cfg.data_dir)
