"""Which compute precision a run uses: ``--mixed_precision``'s ``auto``.

``auto`` (the default) computes in bfloat16 where the device that trains
has bfloat16 arithmetic and in float32 elsewhere:

* a TPU: bfloat16;
* GPUs: bfloat16 when every one has compute capability >= 8.0 (Ampere and
  newer), else float32;
* the CPU (no GPU, no TPU): bfloat16 on x86 with ``avx512_bf16`` or
  ``amx_bf16`` (oneDNN runs bfloat16 convolutions and matmuls on those
  units), else float32. Without them bfloat16 is emulated and slow (16x
  slower than float32 on an AVX2 CPU, measured).

float16 is never chosen by ``auto`` (it needs loss scaling); ``none``,
``bfloat16`` and ``float16`` force a policy. Under a mixed policy the
variables, the loss, its softmax and the BatchNorm statistics stay float32.

``decide(requested, facts)`` is the rule, pure and testable with any
``DeviceFacts``; ``device_facts`` reads them off this machine.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Optional

BF16_CPU_FLAGS = ('avx512_bf16', 'amx_bf16')
MIN_BF16_GPU = (8, 0)  # compute capability
POLICIES = {'none': 'float32', 'bfloat16': 'mixed_bfloat16',
            'float16': 'mixed_float16'}


@dataclasses.dataclass(frozen=True)
class DeviceFacts:
  """What the precision choice depends on.

  Attributes:
    tpu: the run trains on a TPU.
    gpu_capabilities: (major, minor) compute capability of each GPU.
    cpu_flags: the CPU's feature flags (``/proc/cpuinfo``), lower case.
  """
  tpu: bool = False
  gpu_capabilities: tuple = ()
  cpu_flags: frozenset = frozenset()

  def describe(self) -> str:
    """The device the decision is about, in words."""
    if self.tpu:
      return 'a TPU'
    if self.gpu_capabilities:
      caps = ', '.join(f'{a}.{b}' for a, b in self.gpu_capabilities)
      return f'{len(self.gpu_capabilities)} GPU(s) of compute capability {caps}'
    found = [f for f in BF16_CPU_FLAGS if f in self.cpu_flags]
    return ('the CPU, with ' + ' and '.join(found) if found else
            'the CPU, without ' + ' or '.join(BF16_CPU_FLAGS))


@dataclasses.dataclass(frozen=True)
class Decision:
  """The precision a run computes in and why.

  Attributes:
    precision: ``none`` (float32), ``bfloat16`` or ``float16``, as the flag.
    reason: one line, e.g. ``auto: the CPU, with avx512_bf16 and amx_bf16``.
  """
  precision: str
  reason: str

  @property
  def policy(self) -> str:
    """The Keras dtype policy name."""
    return POLICIES[self.precision]


def has_bf16(facts: DeviceFacts) -> bool:
  """Whether the training device has bfloat16 arithmetic."""
  if facts.tpu:
    return True
  if facts.gpu_capabilities:
    return all(tuple(c) >= MIN_BF16_GPU for c in facts.gpu_capabilities)
  return any(f in facts.cpu_flags for f in BF16_CPU_FLAGS)


def decide(requested: str, facts: Optional[DeviceFacts]) -> Decision:
  """``requested`` (the flag's value) resolved against ``facts``."""
  if requested != 'auto':
    return Decision(requested, f'--mixed_precision={requested}')
  chosen = 'bfloat16' if has_bf16(facts) else 'none'
  return Decision(chosen, f'auto: {facts.describe()}')


def cpu_flags(path: str = '/proc/cpuinfo') -> frozenset:
  """The first CPU's feature flags (x86 ``flags``, Arm ``Features``);
  empty where the file is missing (not Linux)."""
  try:
    with open(path) as f:
      for line in f:
        key, _, value = line.partition(':')
        if key.strip() in ('flags', 'Features'):
          return frozenset(value.lower().split())
  except OSError:
    pass
  return frozenset()


def device_facts(*, trains_on_tpu: bool) -> DeviceFacts:
  """The facts of this machine. ``trains_on_tpu``: the run's strategy is a
  TPU one (``distribute.strategy_name``)."""
  import tensorflow as tf  # Only here: the rule above needs no TensorFlow.
  if trains_on_tpu:
    return DeviceFacts(tpu=True)
  caps = []
  for gpu in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(gpu)
    caps.append(tuple(details.get('compute_capability') or (0, 0)))
  return DeviceFacts(gpu_capabilities=tuple(caps), cpu_flags=cpu_flags())


@contextlib.contextmanager
def float32_compute(model):
  """Within the block every layer of ``model`` computes in float32 (its
  variables are float32 already); the policies are restored after. An
  export is traced in it, so it runs at full precision on any machine,
  whatever the run trained in (bfloat16 on a CPU without bfloat16 units
  is many times slower)."""
  layers = list(model._flatten_layers(include_self=True, recursive=True))  # pylint: disable=protected-access
  saved = [layer.dtype_policy for layer in layers]
  try:
    for layer in layers:
      if layer.dtype_policy.name != 'float32':
        layer.dtype_policy = 'float32'
    yield model
  finally:
    for layer, policy in zip(layers, saved):
      if layer.dtype_policy is not policy:
        layer.dtype_policy = policy
