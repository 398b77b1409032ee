"""NT-Xent forward + backward time and its share of a pretraining step.

Times ``simclr_tf.losses.nt_xent`` (temperature 0.1, 128-d projections,
L2-normalised) plus the gradient with respect to both views at global
batches of 256, 1024 and 4096 pairs (logits [N, 2N] per direction), on one
replica. The step it is compared with is the reference step of
``bench/train_step.py`` (ResNet-18, CIFAR stem, width 1, 128 pairs),
measured in the same run; for larger batches the rest of the step is
assumed to grow linearly with the batch (``projected_share_of_step``).

  python bench/loss.py [--batches 256 1024 4096] [--no-step]

Prints one JSON object.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # As run.py does.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (bench/machine.py)
import train_step  # noqa: E402  (bench/train_step.py)

from simclr_tf import losses  # noqa: E402


def _rss_gib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def time_loss(batch: int, dim: int, reps: int) -> dict:
  """Median seconds of NT-Xent forward + backward at ``batch`` pairs."""
  z1 = tf.random.normal([batch, dim], seed=1)
  z2 = tf.random.normal([batch, dim], seed=2)

  @tf.function
  def fwd_bwd(a, b):
    with tf.GradientTape() as tape:
      tape.watch([a, b])
      loss = losses.nt_xent(a, b, temperature=0.1).loss
    ga, gb = tape.gradient(loss, [a, b])
    return loss, tf.reduce_sum(ga) + tf.reduce_sum(gb)

  rss_before = _rss_gib()
  [t.numpy() for t in fwd_bwd(z1, z2)]
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    [t.numpy() for t in fwd_bwd(z1, z2)]
    times.append(time.perf_counter() - start)
  return {'seconds_median': round(statistics.median(times), 5),
          'seconds_min': round(min(times), 5),
          'logits_per_direction': [batch, 2 * batch],
          'peak_rss_gib_after': round(_rss_gib(), 2),
          'peak_rss_growth_gib': round(_rss_gib() - rss_before, 2)}


def reference_step_sec(steps: int) -> float:
  """Median seconds of ``bench/train_step.py``'s reference step."""
  args = argparse.Namespace(depth=18, width=1.0, sk_ratio=0.0, batch=128,
                            jit=False, mixed_precision='none', steps=steps,
                            warmup=1)
  return train_step.measure(args)['step_sec_median']


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batches', type=int, nargs='+',
                      default=[256, 1024, 4096], help='global pairs')
  parser.add_argument('--dim', type=int, default=128)
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--step_steps', type=int, default=3)
  parser.add_argument('--no-step', action='store_true',
                      help='skip the reference step (no shares reported)')
  args = parser.parse_args()

  results = {str(b): time_loss(b, args.dim, args.reps)
             for b in [128] + args.batches}
  out = {'benchmark': 'nt_xent', 'dim': args.dim, 'temperature': 0.1,
         'replicas': 1, 'loss': results}
  if not args.no_step:
    step = reference_step_sec(args.step_steps)
    out['reference_step_sec'] = step
    out['reference_step_pairs'] = 128
    for b, r in results.items():
      r['projected_share_of_step'] = round(
          r['seconds_median'] / (step * int(b) / 128), 4)
  print(json.dumps({**out, 'nproc': os.cpu_count(),
                    'cpu_model': machine.cpu_model(),
                    'tensorflow': tf.__version__,
                    'loadavg_1min': round(os.getloadavg()[0], 2)}))


if __name__ == '__main__':
  main()
