"""How much memory a training step needs: arithmetic, no TensorFlow.

``preflight`` refuses a run whose estimate exceeds the machine's memory
before anything starts (``--image_size=2000`` used to run ~50 s, then fail
inside the augmentation with a ResourceExhaustedError, or crash).

The estimate counts, per augmented view, the float32 feature maps a step
keeps for its backward pass (``activations_per_view``: each conv's output,
BN and ReLU outputs, padded inputs of strided convs, shortcuts), then adds
the input pipeline's float batches, weights with gradients and two
optimizer slots, and a fixed runtime share. Measured peak RSS of ResNet-18,
34 and 50 at widths 0.25-0.5, 64-384 px, 32-256 views (TensorFlow 2.21,
oneDNN, 2-core EPYC): the activation term is 1.02-1.07x the count, and a
whole run.py 2-19% below the estimate. Selective kernels are not counted.

``channels`` is the encoder's width rule (``models.resnet`` uses it).
"""
from __future__ import annotations

import math
from typing import Optional

# depth -> (bottleneck blocks, blocks per group)
BLOCKS = {18: (False, (2, 2, 2, 2)), 34: (False, (3, 4, 6, 3)),
          50: (True, (3, 4, 6, 3)), 101: (True, (3, 4, 23, 3)),
          152: (True, (3, 8, 36, 3)), 200: (True, (3, 24, 36, 3))}
FIXED_BYTES = 1.5 * 2**30  # runtime, evaluation and kNN at small sizes
ACTIVATION_FACTOR = 1.07   # measured / counted, the largest seen
PIPELINE_BATCHES = 4       # float32 view batches alive in the input pipeline


def channels(base: int, width_multiplier: float) -> int:
  """Channels of a layer of ``base`` channels at ``width_multiplier``."""
  return max(1, int(base * width_multiplier))


def _count(depth, width, image_size, cifar_stem):
  """(activations per view, parameters) of the encoder."""
  if depth not in BLOCKS:
    raise ValueError(f'resnet_depth={depth}: expected one of {list(BLOCKS)}')
  bottleneck, groups = BLOCKS[depth]
  stem = channels(64, width)
  params = (3 if cifar_stem else 7) ** 2 * 3 * stem
  if cifar_stem:
    size = image_size
    acts = size * size * (3 + 2 * stem)
  else:
    size = math.ceil(image_size / 2)
    acts = (image_size + 6) ** 2 * 3 + 2 * size * size * stem
    size = math.ceil(size / 2)
    acts += size * size * stem  # max-pool
  cin, expand = stem, (4 if bottleneck else 1)
  for g, blocks in enumerate(groups):
    f = channels(64 * 2**g, width)
    for b in range(blocks):
      stride = 2 if g > 0 and b == 0 else 1
      out = math.ceil(size / stride)
      if stride > 1:
        acts += (size + 2) ** 2 * (f if bottleneck else cin)
      if bottleneck:
        acts += 2 * size * size * f + 2 * out * out * 5 * f
        params += cin * f + 9 * f * f + 4 * f * f
      else:
        acts += 4 * out * out * f
        params += 9 * cin * f + 9 * f * f
      acts += out * out * f * expand  # sum and ReLU
      if b == 0 and (stride > 1 or cin != f * expand):
        acts += 2 * out * out * f * expand
        params += cin * f * expand
      size, cin = out, f * expand
  return acts, params


def training_bytes(depth: int, width_multiplier: float, image_size: int,
                   batch: int, views: int, cifar_stem: bool) -> float:
  """Estimated peak memory of training ``batch`` examples of ``views``
  views each in one process (float32)."""
  acts, params = _count(depth, width_multiplier, image_size, cifar_stem)
  n = batch * views
  return (FIXED_BYTES + ACTIVATION_FACTOR * 4 * n * acts +
          PIPELINE_BATCHES * 4 * n * image_size**2 * 3 + 16 * params)


def memory_total() -> Optional[int]:
  """The machine's memory in bytes (``/proc/meminfo``), or None."""
  try:
    with open('/proc/meminfo', encoding='ascii') as f:
      for line in f:
        if line.startswith('MemTotal:'):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def refusal(depth, width_multiplier, image_size, batch, views, cifar_stem,
            total) -> Optional[str]:
  """Why a step cannot fit in ``total`` bytes, with the largest batch and
  image size that would; None when it fits."""
  def need(b=batch, s=image_size):
    return training_bytes(depth, width_multiplier, s, b, views,
                          cifar_stem if s == image_size else s <= 32)

  if need() <= total:
    return None
  max_batch = batch
  while max_batch > 0 and need(b=max_batch) > total:
    max_batch //= 2
  max_size = image_size
  while max_size > 32 and need(s=max_size) > total:
    max_size = int(max_size * 0.9)
  lower = [f'--train_batch_size (to {max_batch} or less)'] if max_batch else []
  if need(s=max_size) <= total:
    lower.append(f'--image_size (to {max_size} or less)')
  lower.append('--width_multiplier or --resnet_depth')
  return (f'a training step needs about {need() / 2**30:.1f} GiB of memory '
          f'({batch * views} augmented views of {image_size}x{image_size} and'
          f' their activations), more than this machine has '
          f'({total / 2**30:.1f} GiB). Lower ' + ', or '.join(lower) + '.')
