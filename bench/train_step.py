"""Pretraining step throughput against the machine's measured matmul peak.

The configuration of the performance issue: SimCLR pretraining of ResNet-18
(CIFAR stem, 32 px, width 1) with the 3-layer projection head and the linear
probe, LARS, 128 pairs (256 images) per step from one fixed in-memory batch,
through the same ``steps.make_train_loop`` that ``run.py`` uses. It reports
the median step time after warm-up as images/s (one image = one augmented
view), the first step (trace + compile + run), peak RSS, the FLOPs of a step
(TF's profiler on the forward graph, x3 for forward + backward), the fp32
matmul peak measured in the same process and the fraction of it reached.

  python bench/train_step.py                  # the reference configuration
  python bench/train_step.py --width 0.25     # one variant
  python bench/train_step.py --precision      # float32 and auto side by side
  python bench/train_step.py --all            # reference + variants, one JSON

``--mixed_precision`` takes run.py's values; ``auto`` (as run.py's default)
is decided from this machine's devices (``simclr_tf.precision``), and the
JSON gives the decision and the facts it came from. The reference runs in
float32 (``none``), the fraction of peak is against the fp32 matmul peak.

Prints one JSON object.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # As run.py does.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

import machine  # noqa: E402  (bench/machine.py)

from simclr_tf import config, precision, steps, tasks  # noqa: E402
from simclr_tf.models import param_sets  # noqa: E402
from simclr_tf.optim import WarmupCosine, build_optimizer  # noqa: E402

VARIANTS = {
    'reference': [],
    'width_0.25': ['--width', '0.25'],
    'sk': ['--sk_ratio', '0.0625'],
    'mixed_bfloat16': ['--mixed_precision', 'bfloat16'],
    'mixed_float16': ['--mixed_precision', 'float16'],
}
PRECISIONS = {'float32': ['--mixed_precision', 'none'],
              'auto': ['--mixed_precision', 'auto']}


def make_config(args) -> config.Config:
  return config.Config(
      model=config.ModelConfig(resnet_depth=args.depth,
                               width_multiplier=args.width, image_size=32,
                               cifar_stem=True, sk_ratio=args.sk_ratio),
      optim=config.OptimConfig(optimizer='lars', learning_rate=0.3,
                               weight_decay=1e-6),
      train=config.TrainConfig(train_batch_size=args.batch,
                               lineareval_while_pretraining=True),
      runtime=config.RuntimeConfig(jit=args.jit,
                                   mixed_precision=args.mixed_precision))


def fixed_batch(batch, image_size):
  views, labels = machine.fixed_views(batch, image_size)
  return {'view1': views[0], 'view2': views[1], 'label': labels}


def decide_precision(requested):
  """``requested`` resolved as run.py resolves it; the device facts."""
  facts = precision.device_facts(trains_on_tpu=False)
  return precision.decide(requested, facts), facts


def device_fields(decision, facts) -> dict:
  bf16 = sorted(f for f in precision.BF16_CPU_FLAGS if f in facts.cpu_flags)
  return {'precision_decision': decision.reason,
          'policy': decision.policy,
          'cpu_bf16_flags': bf16,
          'gpu_compute_capabilities': [list(c) for c in
                                       facts.gpu_capabilities]}


def measure(args) -> dict:
  """Builds the reference step and times it; returns the JSON fields."""
  decision, facts = decide_precision(args.mixed_precision)
  args.mixed_precision = decision.precision
  keras.mixed_precision.set_global_policy(decision.policy)
  peak = machine.matmul_peak()
  cfg = make_config(args)
  strategy = tf.distribute.get_strategy()
  task = tasks.get(cfg)
  model = task.build_model(strategy)
  flops = 3 * machine.forward_flops(
      lambda x: model(x, training=True)['proj_head_output'], 32)
  schedule = WarmupCosine(0.3, args.batch, total_steps=1000, warmup_steps=10)
  optimizer = build_optimizer(cfg.optim, schedule, param_sets(model),
                              loss_scale=args.mixed_precision == 'float16')
  optimizer.build(task.trainable_variables(model))
  loop = steps.make_train_loop(model, optimizer, strategy, task,
                               jit_compile=args.jit)
  data = tf.data.Dataset.from_tensors(fixed_batch(args.batch, 32)).repeat()
  iterator = iter(strategy.experimental_distribute_dataset(data))
  one = tf.constant(1)

  start = time.perf_counter()
  first = loop(iterator, one)
  first_loss = float(first['contrast_loss'])
  first_step = time.perf_counter() - start
  for _ in range(args.warmup):
    loop(iterator, one)['total_loss'].numpy()
  times = []
  for _ in range(args.steps):
    start = time.perf_counter()
    loop(iterator, one)['total_loss'].numpy()
    times.append(time.perf_counter() - start)
  step = statistics.median(times)
  images = 2 * args.batch
  rate = images / step
  return {
      'images_per_sec': round(rate, 2),
      'step_sec_median': round(step, 3),
      'step_sec_min': round(min(times), 3),
      'step_sec_max': round(max(times), 3),
      'first_step_sec': round(first_step, 1),
      'first_contrast_loss': round(first_loss, 4),
      'peak_rss_gib': round(resource.getrusage(resource.RUSAGE_SELF)
                            .ru_maxrss / 2 ** 20, 2),
      'gflop_per_image': round(flops / 1e9, 3),
      'achieved_gflops': round(rate * flops / 1e9, 1),
      'matmul_peak_gflops': round(peak, 1),
      'fraction_of_peak': round(rate * flops / 1e9 / peak, 3),
      'bound_images_per_sec': round(peak * 1e9 / flops, 1),
      'depth': args.depth, 'width': args.width, 'sk_ratio': args.sk_ratio,
      'mixed_precision': args.mixed_precision, 'jit': args.jit,
      'pairs_per_step': args.batch, 'images_per_step': images,
      'image_size': 32, 'steps': args.steps, 'warmup_steps': args.warmup,
      **device_fields(decision, facts),
  }


def run_variants(args, variants) -> dict:
  """Each variant in its own process (the precision policy is global),
  one after the other."""
  results = {}
  for name, extra in variants.items():
    cmd = [sys.executable, __file__, '--steps', str(args.steps),
           '--warmup', str(args.warmup), '--width', str(args.width),
           '--depth', str(args.depth), '--batch', str(args.batch)] + extra
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    results[name] = json.loads(out.stdout.strip().splitlines()[-1])
  return results


def run_all(args) -> dict:
  return {'benchmark': 'train_step_variants',
          'variants': run_variants(args, {**VARIANTS, 'auto': PRECISIONS[
              'auto']}), **machine.fields()}


def run_precisions(args) -> dict:
  """float32 and the auto policy side by side, with the speed-up."""
  results = run_variants(args, PRECISIONS)
  decision, facts = decide_precision('auto')
  return {'benchmark': 'train_step_precision', 'variants': results,
          'auto_speedup': round(results['auto']['images_per_sec'] /
                                results['float32']['images_per_sec'], 3),
          **device_fields(decision, facts), **machine.fields()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--depth', type=int, default=18)
  parser.add_argument('--width', type=float, default=1.0)
  parser.add_argument('--sk_ratio', type=float, default=0.0)
  parser.add_argument('--batch', type=int, default=128, help='pairs per step')
  parser.add_argument('--mixed_precision', default='none',
                      choices=config.MIXED_PRECISION)
  parser.add_argument('--jit', action='store_true')
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--all', action='store_true',
                      help='the reference and every variant, each in its '
                           'own process')
  parser.add_argument('--precision', action='store_true',
                      help='float32 and --mixed_precision=auto, each in its '
                           'own process, side by side')
  args = parser.parse_args()
  if args.precision:
    print(json.dumps(run_precisions(args)))
    return
  if args.all:
    print(json.dumps(run_all(args)))
    return
  print(json.dumps({'benchmark': 'train_step', **measure(args),
                    **machine.fields()}))


if __name__ == '__main__':
  main()
