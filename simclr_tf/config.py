"""Frozen, validated configuration for every part of simclr_tf.

Each section is a frozen dataclass whose ``__post_init__`` checks its own
fields and raises ``ConfigError`` naming the field, the bad value and what is
allowed. ``Config`` composes the sections and checks rules that span them.
The library takes these objects (or plain arguments); only ``flags/`` reads
the command line.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Optional

from simclr_tf import tasks

RESNET_DEPTHS = (18, 34, 50, 101, 152, 200)
PROJ_HEAD_MODES = ('none', 'linear', 'nonlinear')
OPTIMIZERS = ('lars', 'momentum', 'adam', 'adamw', 'lamb')
LR_SCALINGS = ('linear', 'sqrt')
TRAIN_MODES = tasks.NAMES  # one Task per mode: simclr_tf/tasks/


class ConfigError(ValueError):
  """A configuration value is out of range; the message names field and value."""


def _check(ok: bool, section: str, name: str, value, allowed: str) -> None:
  if not ok:
    raise ConfigError(f'{section}.{name}={value!r} is invalid: {allowed}.')


def _positive(section, name, value):
  _check(value is not None and value > 0, section, name, value, 'must be > 0')


def _one_of(section, name, value, choices):
  _check(value in choices, section, name, value, f'must be one of {list(choices)}')


def _check_finite(section: str, obj) -> None:
  """Every float field of a config section is a finite number (inf and NaN
  pass most range checks and then fail, or silently do nothing, later)."""
  for f in dataclasses.fields(obj):
    value = getattr(obj, f.name)
    if isinstance(value, float) and not math.isfinite(value):
      raise ConfigError(f'{section}.{f.name}={value} is invalid: must be a '
                        'finite number.')


def head_layers(proj_head_mode: str, num_proj_layers: int) -> int:
  """Dense layers of a projection head of that mode ('none': 0, 'linear':
  1, 'nonlinear': ``num_proj_layers``)."""
  return {'none': 0, 'linear': 1, 'nonlinear': num_proj_layers}[
      proj_head_mode]


@dataclass(frozen=True)
class ModelConfig:
  """Encoder (ResNet v1) and heads; SimCLR paper Sec. 2.1 / SimCLRv2 Sec. 2."""
  resnet_depth: int = 18
  width_multiplier: float = 1.0
  image_size: int = 32
  cifar_stem: Optional[bool] = None  # None: CIFAR stem iff image_size <= 32.
  sk_ratio: float = 0.0
  se_ratio: float = 0.0
  batch_norm_decay: float = 0.9
  batch_norm_epsilon: float = 1e-5
  global_bn: bool = False
  proj_head_mode: str = 'nonlinear'
  proj_out_dim: int = 128
  num_proj_layers: int = 3
  ft_proj_selector: int = 0
  num_classes: int = 10
  zero_init_logits_layer: bool = False
  # The original release gives ResNet-18/34's first block group a projection
  # shortcut too (1x1 conv + BN, 64 -> 64); standard ResNets do not.
  group1_projection: bool = False
  # Standardise the pretraining probe's input (parameter-free BatchNorm).
  probe_input_norm: bool = True

  def __post_init__(self):
    s = 'model'
    _one_of(s, 'resnet_depth', self.resnet_depth, RESNET_DEPTHS)
    _positive(s, 'width_multiplier', self.width_multiplier)
    _check(0 <= self.sk_ratio < 1, s, 'sk_ratio', self.sk_ratio,
           'must be in [0, 1) (0 disables selective kernels; 0.0625 as in SimCLRv2)')
    _check(0 <= self.se_ratio < 1, s, 'se_ratio', self.se_ratio,
           'must be in [0, 1) (0 disables squeeze-excitation)')
    _check(0 < self.batch_norm_decay < 1, s, 'batch_norm_decay',
           self.batch_norm_decay, 'must be in (0, 1)')
    _positive(s, 'batch_norm_epsilon', self.batch_norm_epsilon)
    _one_of(s, 'proj_head_mode', self.proj_head_mode, PROJ_HEAD_MODES)
    _positive(s, 'proj_out_dim', self.proj_out_dim)
    _positive(s, 'num_proj_layers', self.num_proj_layers)
    _positive(s, 'num_classes', self.num_classes)
    n = self.num_head_layers
    _check(-n - 1 <= self.ft_proj_selector <= n, s, 'ft_proj_selector',
           self.ft_proj_selector,
           f'must be in [{-n - 1}, {n}] for proj_head_mode='
           f'{self.proj_head_mode!r} with {n} head layer(s) '
           '(0 = encoder output, -1 = last head layer)')
    min_size = 8 if self.uses_cifar_stem else 32
    _check(self.image_size >= min_size, s, 'image_size', self.image_size,
           f'must be >= {min_size} for the '
           f'{"CIFAR" if self.uses_cifar_stem else "ImageNet"} stem '
           '(the encoder downsamples by '
           f'{8 if self.uses_cifar_stem else 32})')

  @property
  def uses_cifar_stem(self) -> bool:
    if self.cifar_stem is None:
      return self.image_size <= 32
    return self.cifar_stem

  @property
  def num_head_layers(self) -> int:
    """Dense layers in the projection head for the chosen mode."""
    return head_layers(self.proj_head_mode, self.num_proj_layers)


@dataclass(frozen=True)
class LossConfig:
  """NT-Xent (SimCLR Sec. 2.1, Eq. 1) and distillation (SimCLRv2 Eq. 2-3:
  softmax temperature; weight of the labels' cross-entropy)."""
  temperature: float = 0.1
  hidden_norm: bool = True
  distill_temperature: float = 1.0
  distill_label_weight: float = 0.0

  def __post_init__(self):
    _positive('loss', 'temperature', self.temperature)
    _positive('loss', 'distill_temperature', self.distill_temperature)
    _check(0.0 <= self.distill_label_weight <= 1.0, 'loss',
           'distill_label_weight', self.distill_label_weight,
           'must be in [0, 1] (0: the teacher alone, 1: the labels alone)')


@dataclass(frozen=True)
class OptimConfig:
  """Optimizer and learning-rate schedule (SimCLR Sec. B.1 / Appendix)."""
  optimizer: str = 'lars'
  learning_rate: float = 0.3
  learning_rate_scaling: str = 'linear'
  warmup_epochs: float = 10.0
  weight_decay: float = 1e-6
  momentum: float = 0.9
  lars_eeta: float = 0.001
  classic_momentum: bool = True
  use_nesterov: bool = False

  def __post_init__(self):
    s = 'optim'
    _one_of(s, 'optimizer', self.optimizer, OPTIMIZERS)
    _positive(s, 'learning_rate', self.learning_rate)
    _one_of(s, 'learning_rate_scaling', self.learning_rate_scaling, LR_SCALINGS)
    _check(self.warmup_epochs >= 0, s, 'warmup_epochs', self.warmup_epochs,
           'must be >= 0')
    _check(self.weight_decay >= 0, s, 'weight_decay', self.weight_decay,
           'must be >= 0')
    _check(0 <= self.momentum < 1, s, 'momentum', self.momentum,
           'must be in [0, 1)')
    _positive(s, 'lars_eeta', self.lars_eeta)


def replace(cfg, **changes):
  """Returns a copy of a frozen config with ``changes`` applied (re-validated)."""
  return dataclasses.replace(cfg, **changes)


@dataclass(frozen=True)
class DataConfig:
  """Where examples come from (see ``simclr_tf.data.sources``).

  ``dataset`` is ``builtin`` (offline generated shapes), a TFDS name,
  ``folder:PATH`` or ``npz:PATH``. Splits accept slicing (``train[:10%]``).
  """
  dataset: str = 'builtin'
  data_dir: Optional[str] = None
  train_split: str = 'train'
  eval_split: str = 'test'
  labeled_split: Optional[str] = None  # distillation with labels
  cache_dataset: bool = False
  skip_corrupt_images: bool = False
  # A dataset fact, not a flag: the class names in label order when the
  # dataset has them (jobs fills it), recorded in config.json, result.json
  # and the export's metadata so that a logits index can be named.
  class_names: Optional[tuple] = None

  def __post_init__(self):
    s = 'data'
    _check(bool(self.dataset), s, 'dataset', self.dataset,
           "must be 'builtin', a TFDS name, 'folder:PATH' or 'npz:PATH'")
    for prefix in ('folder:', 'npz:'):
      _check(self.dataset != prefix, s, 'dataset', self.dataset,
             f'{prefix} needs a path, e.g. {prefix}/data/cifar10')
    for name in ('train_split', 'eval_split'):
      _check(bool(getattr(self, name)), s, name, getattr(self, name),
             "must name a split, e.g. 'train' or 'train[:10%]'")


@dataclass(frozen=True)
class AugmentConfig:
  """SimCLR augmentations (paper Sec. 3 and Appendix A)."""
  color_jitter_strength: float = 1.0
  use_blur: bool = True
  crop_area_min: float = 0.08
  eval_crop_proportion: float = 0.875

  def __post_init__(self):
    s = 'augment'
    _check(self.color_jitter_strength >= 0, s, 'color_jitter_strength',
           self.color_jitter_strength, 'must be >= 0')
    _check(0 < self.crop_area_min <= 1, s, 'crop_area_min', self.crop_area_min,
           'must be in (0, 1]')
    _check(0 < self.eval_crop_proportion <= 1, s, 'eval_crop_proportion',
           self.eval_crop_proportion, 'must be in (0, 1]')


MODES = ('train', 'eval', 'train_then_eval', 'export')
GLOB_CHARACTERS = '*?[]'  # patterns to TensorFlow's file matching
STRATEGIES = ('auto', 'default', 'one_device', 'mirrored', 'multi_worker',
              'tpu')
MIXED_PRECISION = ('auto', 'none', 'bfloat16', 'float16')


@dataclass(frozen=True)
class TrainConfig:
  """The training loop: what to train, how long, checkpoints and summaries.

  Lengths: ``train_steps`` > 0 wins over ``train_epochs``; checkpoints every
  ``checkpoint_steps`` > 0, else every ``checkpoint_epochs``.
  """
  model_dir: str = ''
  train_mode: str = 'pretrain'
  lineareval_while_pretraining: bool = True
  fine_tune_after_block: int = -1
  freeze_encoder: bool = False
  checkpoint: Optional[str] = None  # warm start (model only)
  teacher: Optional[str] = None  # train_mode='distill': the model distilled
  train_batch_size: int = 128
  train_epochs: int = 100
  train_steps: int = 0
  eval_batch_size: int = 256
  eval_steps: int = 0
  checkpoint_epochs: int = 1
  checkpoint_steps: int = 0
  keep_checkpoint_max: int = 5
  keep_hub_module_max: int = 1
  export_every_checkpoint: bool = False
  steps_per_loop: int = 1
  train_summary_steps: int = -1  # -1: summary_every() picks it
  log_every_steps: int = 50
  seed: Optional[int] = None
  eval_watch: bool = False
  eval_timeout_secs: int = 0  # eval_watch: stop after this long without a
                              # new checkpoint (0 = wait forever)

  def __post_init__(self):
    s = 'train'
    _one_of(s, 'train_mode', self.train_mode, TRAIN_MODES)
    _check(-1 <= self.fine_tune_after_block <= 4, s, 'fine_tune_after_block',
           self.fine_tune_after_block, 'must be in [-1, 4]')
    _check(self.train_mode == 'finetune' or self.fine_tune_after_block == -1,
           s, 'fine_tune_after_block', self.fine_tune_after_block,
           "only applies to train_mode='finetune'; use -1 when pretraining")
    _check(not self.freeze_encoder or self.fine_tune_after_block in (-1, 4),
           s, 'fine_tune_after_block', self.fine_tune_after_block,
           'contradicts freeze_encoder=True, which freezes the whole encoder '
           '(the same as 4); drop one of them')
    for name in ('train_batch_size', 'eval_batch_size', 'keep_checkpoint_max',
                 'steps_per_loop', 'log_every_steps'):
      _positive(s, name, getattr(self, name))
    # 0 = no train summaries / keep every export, as the original.
    _check(self.train_summary_steps >= -1, s, 'train_summary_steps',
           self.train_summary_steps, 'must be >= 0, or -1 for about 100 '
           'points per run')
    for name in ('keep_hub_module_max', 'train_epochs',
                 'train_steps', 'eval_steps',
                 'checkpoint_epochs', 'checkpoint_steps', 'eval_timeout_secs'):
      _check(getattr(self, name) >= 0, s, name, getattr(self, name),
             'must be >= 0')
    _check(self.seed is None or 0 <= self.seed < 2 ** 32, s, 'seed',
           self.seed, 'must be in [0, 2**32 - 1] (numpy and Keras seeds)')
    for name in ('model_dir', 'checkpoint', 'teacher'):
      path = getattr(self, name) or ''
      _check(not set(path) & set(GLOB_CHARACTERS), s, name, path,
             "must not contain any of * ? [ ]: TensorFlow's checkpoint "
             'reader and CheckpointManager match checkpoint paths as glob '
             'patterns, so such a run could not resume or delete old '
             'checkpoints; rename the directory')
    _check(self.train_steps > 0 or self.train_epochs > 0, s, 'train_epochs',
           self.train_epochs, 'must be > 0 when train_steps is 0')


EVAL_EVERY_CHECKPOINT = ('auto', 'true', 'false')


@dataclass(frozen=True)
class EvalConfig:
  """What is evaluated during and after training (``simclr_tf.evaluators``).

  ``knn_every_epochs`` 0 turns the kNN monitor off, ``knn_bank_size`` 0
  banks every train example (capped where the features would pass 2 GiB),
  ``projector_examples`` 0 writes no Projector files.
  ``eval_every_checkpoint``: the supervised head's eval at every
  checkpoint; ``auto`` does so when the run has at most
  ``MAX_AUTO_EVAL_CHECKPOINTS`` checkpoints (``simclr_tf.evaluators``).
  """
  knn_every_epochs: float = 1.0
  knn_k: int = 200
  knn_temperature: float = 0.1
  knn_bank_size: int = 0
  projector_examples: int = 2000
  eval_every_checkpoint: str = 'auto'

  def __post_init__(self):
    s = 'evaluation'
    _check(math.isfinite(self.knn_every_epochs) and
           self.knn_every_epochs >= 0, s, 'knn_every_epochs',
           self.knn_every_epochs, 'must be a number >= 0 (0 turns the kNN '
           'monitor off)')
    _positive(s, 'knn_k', self.knn_k)
    _check(math.isfinite(self.knn_temperature) and self.knn_temperature > 0,
           s, 'knn_temperature', self.knn_temperature,
           'must be a number > 0 (0.1 is usual)')
    for name in ('knn_bank_size', 'projector_examples'):
      _check(getattr(self, name) >= 0, s, name, getattr(self, name),
             'must be >= 0')
    _one_of(s, 'eval_every_checkpoint', self.eval_every_checkpoint,
            EVAL_EVERY_CHECKPOINT)


@dataclass(frozen=True)
class RuntimeConfig:
  """Devices, distribution and speed switches."""
  strategy: str = 'auto'
  master: Optional[str] = None
  tpu_name: Optional[str] = None
  tpu_zone: Optional[str] = None
  gcp_project: Optional[str] = None
  jit: bool = False
  mixed_precision: str = 'auto'
  # Why the run computes in mixed_precision (runtime.resolve_precision);
  # None until decided.
  precision_decision: Optional[str] = None
  deterministic: bool = False
  cpu_devices: int = 0
  worker_timeout_secs: int = 300

  def __post_init__(self):
    _one_of('runtime', 'strategy', self.strategy, STRATEGIES)
    _check(self.worker_timeout_secs >= 0, 'runtime', 'worker_timeout_secs',
           self.worker_timeout_secs, 'must be >= 0 (0 waits for the workers '
           'without a limit)')
    _check(self.cpu_devices >= 0, 'runtime', 'cpu_devices', self.cpu_devices,
           'must be >= 0 (0 leaves the CPU as one device)')
    _one_of('runtime', 'mixed_precision', self.mixed_precision,
            MIXED_PRECISION)


@dataclass(frozen=True)
class Config:
  """Everything one run needs; built by ``flags.config_from_flags``."""
  mode: str = 'train_then_eval'
  eval_name: Optional[str] = None
  data: DataConfig = field(default_factory=DataConfig)
  augment: AugmentConfig = field(default_factory=AugmentConfig)
  model: ModelConfig = field(default_factory=ModelConfig)
  loss: LossConfig = field(default_factory=LossConfig)
  optim: OptimConfig = field(default_factory=OptimConfig)
  train: TrainConfig = field(default_factory=TrainConfig)
  evaluation: EvalConfig = field(default_factory=EvalConfig)
  runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
  # Flags the user set (command line or flagfile). Architecture fields not
  # among them are taken from the checkpoint a run loads. None (a library
  # caller's Config): every field is as given.
  given_flags: Optional[tuple] = None

  def __post_init__(self):
    _one_of('config', 'mode', self.mode, MODES)
    _check(self.eval_name is None or bool(
        re.fullmatch(r'[A-Za-z0-9_.-]+', self.eval_name)) and
           self.eval_name not in ('.', '..'), 'config', 'eval_name',
           self.eval_name, 'must be a plain name (letters, digits, _ . -): '
           'it names the folder eval_<name> inside model_dir')
    for section in SECTIONS:
      _check_finite(section, getattr(self, section))
    distill = self.train.train_mode == 'distill'
    _check(distill or not self.train.teacher, 'train', 'teacher',
           self.train.teacher, "only applies to train_mode='distill'")
    _check(not distill or self.loss.distill_label_weight == 0 or
           bool(self.data.labeled_split), 'loss', 'distill_label_weight',
           self.loss.distill_label_weight,
           'needs labeled_split=SPLIT, the labeled examples (e.g. '
           "'train[:10%]'), or 0 to distill from the teacher alone")

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


# The Config fields that are sections (dataclasses of settings).
SECTIONS = ('data', 'augment', 'model', 'loss', 'optim', 'train',
            'evaluation', 'runtime')
