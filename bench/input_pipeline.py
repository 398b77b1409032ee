"""Input pipeline throughput: SimCLR pretraining views per second.

Measures ``simclr_tf.data.pipeline.make_dataset(mode='pretrain')`` on the
CIFAR-10 npz copy (``../shared/data/cifar10``) at 32 px: random resized
crop, flip, colour jitter strength 0.5 (p = 0.8) and grayscale (p = 0.2), no
blur, two views, batch 128 (CIFAR recipe of SimCLR Appendix B.9). Prints one
JSON object. Usage::

  python bench/input_pipeline.py [--steps 300] [--warmup 30] [--no-jit]
"""
import argparse
import json
import os
import sys
import time

os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1'  # Before TensorFlow is imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (bench/machine.py)

from simclr_tf import config  # noqa: E402
from simclr_tf.data import pipeline  # noqa: E402
from simclr_tf.data import sources  # noqa: E402

DATA = os.path.normpath(os.path.join(os.path.dirname(__file__), '..', '..',
                                     'shared', 'data', 'cifar10'))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default=DATA)
  parser.add_argument('--batch', type=int, default=128)
  parser.add_argument('--steps', type=int, default=300)
  parser.add_argument('--warmup', type=int, default=30)
  parser.add_argument('--no-jit', action='store_true')
  args = parser.parse_args()

  start = time.perf_counter()
  source = sources.get_source(config.DataConfig(dataset=f'npz:{args.data}'))
  augment_cfg = config.AugmentConfig(color_jitter_strength=0.5,
                                     use_blur=False)
  ds = pipeline.make_dataset(source, 'train', mode='pretrain',
                             batch_size=args.batch, image_size=32,
                             augment_cfg=augment_cfg, seed=0,
                             jit_compile=not args.no_jit)
  it = iter(ds)
  for _ in range(args.warmup):
    batch = next(it)
  startup = time.perf_counter() - start
  load_before = os.getloadavg()[0]
  cpu_start, start = time.process_time(), time.perf_counter()
  for _ in range(args.steps):
    batch = next(it)
  elapsed = time.perf_counter() - start
  cpu = time.process_time() - cpu_start
  views = 2 * args.batch * args.steps
  print(json.dumps({
      'benchmark': 'input_pipeline_pretrain',
      'views_per_sec': round(views / elapsed, 1),
      'images_per_sec': round(views / 2 / elapsed, 1),
      # CPU seconds of this process: on a shared machine, views_per_sec
      # drops with other load while this stays put.
      'views_per_cpu_sec': round(views / cpu, 1),
      'cpu_utilisation': round(cpu / elapsed, 2),
      'batch_size': args.batch, 'image_size': 32, 'views': 2,
      'augment': 'crop+flip+color_jitter(s=0.5,p=0.8)+gray(p=0.2), no blur',
      'jit_compile': not args.no_jit,
      'steps': args.steps, 'warmup_steps': args.warmup,
      'startup_sec': round(startup, 1),
      'view_shape': list(batch['view1'].shape),
      'nproc': os.cpu_count(), 'cpu_model': machine.cpu_model(),
      'loadavg_1min_before': round(load_before, 2),
      'loadavg_1min_after': round(os.getloadavg()[0], 2),
      'tensorflow': tf.__version__,
  }))


if __name__ == '__main__':
  main()
