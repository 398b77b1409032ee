"""Frozen, validated configuration for every part of simclr_tf.

Each section is a frozen dataclass whose ``__post_init__`` checks its own
fields and raises ``ConfigError`` naming the field, the bad value and what is
allowed. ``Config`` composes the sections and checks rules that span them.
The library takes these objects (or plain arguments); only ``flags/`` reads
the command line.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

RESNET_DEPTHS = (18, 34, 50, 101, 152, 200)
PROJ_HEAD_MODES = ('none', 'linear', 'nonlinear')
OPTIMIZERS = ('lars', 'momentum', 'adam', 'adamw', 'lamb')
LR_SCALINGS = ('linear', 'sqrt')
TRAIN_MODES = ('pretrain', 'finetune')


class ConfigError(ValueError):
  """A configuration value is out of range; the message names field and value."""


def _check(ok: bool, section: str, name: str, value, allowed: str) -> None:
  if not ok:
    raise ConfigError(f'{section}.{name}={value!r} is invalid: {allowed}.')


def _positive(section, name, value):
  _check(value is not None and value > 0, section, name, value, 'must be > 0')


def _one_of(section, name, value, choices):
  _check(value in choices, section, name, value, f'must be one of {list(choices)}')


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
    return {'none': 0, 'linear': 1, 'nonlinear': self.num_proj_layers}[
        self.proj_head_mode]


@dataclass(frozen=True)
class LossConfig:
  """NT-Xent (SimCLR Sec. 2.1, Eq. 1)."""
  temperature: float = 0.1
  hidden_norm: bool = True

  def __post_init__(self):
    _positive('loss', 'temperature', self.temperature)


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
  cache_dataset: bool = False
  skip_corrupt_images: bool = False

  def __post_init__(self):
    s = 'data'
    _check(bool(self.dataset), s, 'dataset', self.dataset,
           "must be 'builtin', a TFDS name, 'folder:PATH' or 'npz:PATH'")
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
