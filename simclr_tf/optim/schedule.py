"""SimCLR learning-rate schedule (Appendix B.1): scaled warmup, then cosine.

The base rate is scaled with the batch size B (``linear``: lr * B / 256, the
paper's 0.3 x B/256 for LARS; ``sqrt``: lr * sqrt(B), better for small batches
and long runs, Appendix B.1), warmed up linearly over ``warmup_steps`` and
then decayed with a cosine schedule without restarts to 0 at ``total_steps``.
"""
from __future__ import annotations

import math

import keras
from keras import ops

SCALINGS = ('linear', 'sqrt')


def scaled_learning_rate(base_learning_rate: float, batch_size: int,
                         scaling: str = 'linear') -> float:
  """Base rate scaled by the global batch size (SimCLR Appendix B.1).

  Returns ``base * batch_size / 256`` for ``linear``, ``base * sqrt(batch)``
  for ``sqrt``.
  """
  _positive('base_learning_rate', base_learning_rate)
  _positive('batch_size', batch_size)
  if scaling == 'linear':
    return base_learning_rate * batch_size / 256.
  if scaling == 'sqrt':
    return base_learning_rate * math.sqrt(batch_size)
  raise ValueError(f'learning-rate scaling={scaling!r} is invalid: must be '
                   f'one of {list(SCALINGS)}.')


def warmup_steps_for(warmup_epochs: float, num_examples: int,
                     batch_size: int) -> int:
  """Warmup length in steps, rounded as the SimCLR release does.

  ``int(round(warmup_epochs * num_examples // batch_size))`` (floor division
  first, so partial final batches do not count).
  """
  if warmup_epochs < 0:
    raise ValueError(
        f'warmup_epochs={warmup_epochs!r} is invalid: must be >= 0.')
  _positive('num_examples', num_examples)
  _positive('batch_size', batch_size)
  return int(round(warmup_epochs * num_examples // batch_size))


@keras.saving.register_keras_serializable(package='simclr_tf')
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup to the scaled rate, then cosine decay to 0.

  lr(step) = scaled * step / warmup_steps                    if step < warmup
           = scaled * 0.5 * (1 + cos(pi * p)),  p = min(1, (step - warmup)
                                                 / (total - warmup))  else
  where scaled = ``scaled_learning_rate(base, batch_size, scaling)``. With
  ``warmup_steps == 0`` the warmup is skipped; after ``total_steps`` the rate
  stays 0.

  Args:
    base_learning_rate: > 0 (0.3 for LARS with linear scaling in the paper).
    batch_size: global batch size, > 0.
    total_steps: training steps, > 0 and >= ``warmup_steps``.
    warmup_steps: >= 0.
    scaling: 'linear' or 'sqrt'.
    name: optional name.
  """

  def __init__(self, base_learning_rate: float, batch_size: int,
               total_steps: int, warmup_steps: int = 0,
               scaling: str = 'linear', name: str = 'WarmupCosine'):
    super().__init__()
    self.scaled_rate = scaled_learning_rate(base_learning_rate, batch_size,
                                            scaling)
    _positive('total_steps', total_steps)
    if warmup_steps < 0:
      raise ValueError(
          f'warmup_steps={warmup_steps!r} is invalid: must be >= 0.')
    if total_steps < warmup_steps:
      raise ValueError(f'total_steps={total_steps!r} is invalid: must be >= '
                       f'warmup_steps={warmup_steps!r}.')
    self.base_learning_rate = float(base_learning_rate)
    self.batch_size = int(batch_size)
    self.total_steps = int(total_steps)
    self.warmup_steps = int(warmup_steps)
    self.scaling = scaling
    self.name = name

  def __call__(self, step):
    """step: integer or float scalar (e.g. ``optimizer.iterations``) -> f32."""
    step = ops.cast(step, 'float32')
    scaled = ops.cast(self.scaled_rate, 'float32')
    warmup = float(self.warmup_steps)
    decay_steps = float(max(self.total_steps - self.warmup_steps, 1))
    progress = ops.clip((step - warmup) / decay_steps, 0., 1.)
    # 0.5 * (1 + cos(pi p)) == cos(pi p / 2)^2; the latter keeps float32
    # precision near the end of training where 1 + cos(.) cancels.
    cosine = scaled * ops.square(ops.cos(0.5 * math.pi * progress))
    if self.warmup_steps == 0:
      return cosine
    warming = scaled * step / warmup
    return ops.where(step < warmup, warming, cosine)

  def get_config(self):
    return {
        'base_learning_rate': self.base_learning_rate,
        'batch_size': self.batch_size,
        'total_steps': self.total_steps,
        'warmup_steps': self.warmup_steps,
        'scaling': self.scaling,
        'name': self.name,
    }


def _positive(name, value):
  if value is None or value <= 0:
    raise ValueError(f'{name}={value!r} is invalid: must be > 0.')
