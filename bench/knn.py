"""Cost of the kNN monitor against an epoch of pretraining, side by side.

The kNN evaluation is the one training runs (``KnnEval.run``: features of
the CIFAR-10 train split as the bank (50,000) and of the test split as
queries (10,000), eval preprocessing, k 200, temperature 0.1, the
neighbour grid), on ResNet-18 (CIFAR stem) at ``--width`` with random
weights: the accuracy printed is not a result, the times are. The epoch is
pretraining as ``flags/presets/cifar10_cpu.cfg`` runs it (batch 256, the
real input pipeline and ``steps.make_train_loop``): the median of
``--steps`` steps after warm-up, times the steps of an epoch. The kNN's
first run (tracing) and a second one are timed separately. Prints one JSON
object. Usage::

  python bench/knn.py [--data ../shared/data/cifar10] [--width 0.25]
"""
import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # As run.py does.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (bench/machine.py)

from simclr_tf import config, data, steps, tasks  # noqa: E402
from simclr_tf.evaluators import knn_monitor  # noqa: E402
from simclr_tf.models import param_sets  # noqa: E402
from simclr_tf.optim import WarmupCosine, build_optimizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def make_config(args) -> config.Config:
  return config.Config(
      data=config.DataConfig(dataset=f'npz:{args.data}', train_split='train',
                             eval_split='test'),
      augment=config.AugmentConfig(color_jitter_strength=0.5, use_blur=False),
      model=config.ModelConfig(resnet_depth=18, width_multiplier=args.width,
                               image_size=32, cifar_stem=True,
                               num_classes=10),
      optim=config.OptimConfig(optimizer='lars', learning_rate=1.0,
                               learning_rate_scaling='linear',
                               weight_decay=1e-4),
      loss=config.LossConfig(temperature=0.5),
      train=config.TrainConfig(train_batch_size=args.batch,
                               eval_batch_size=args.eval_batch, seed=0),
      evaluation=config.EvalConfig(knn_k=200, knn_temperature=0.1,
                                   knn_bank_size=args.bank_size))


def time_epoch(cfg, strategy, source, task, model, num_steps, warmup):
  """Seconds of one pretraining epoch: median step time x steps/epoch."""
  schedule = WarmupCosine(1.0, cfg.train.train_batch_size, total_steps=1000,
                          warmup_steps=0, scaling='linear')
  optimizer = build_optimizer(cfg.optim, schedule, param_sets(model))
  optimizer.build(task.trainable_variables(model))
  loop = steps.make_train_loop(model, optimizer, strategy, task)
  iterator = iter(task.dataset(strategy, source, 'train', 0))
  one = tf.constant(1)
  for _ in range(warmup):
    loop(iterator, one)['total_loss'].numpy()
  times = []
  for _ in range(num_steps):
    start = time.perf_counter()
    loop(iterator, one)['total_loss'].numpy()
    times.append(time.perf_counter() - start)
  step = statistics.median(times)
  per_epoch = source.num_examples('train') / cfg.train.train_batch_size
  return step * per_epoch, step


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data', default=os.path.join(
      HERE, '..', '..', 'shared', 'data', 'cifar10'))
  parser.add_argument('--width', type=float, default=0.25)
  parser.add_argument('--batch', type=int, default=256)
  parser.add_argument('--eval_batch', type=int, default=500)
  parser.add_argument('--bank_size', type=int, default=0,
                      help='--knn_bank_size (0: the whole train split)')
  parser.add_argument('--steps', type=int, default=15)
  parser.add_argument('--warmup', type=int, default=5)
  args = parser.parse_args()
  cfg = make_config(args)
  strategy = tf.distribute.get_strategy()
  source = data.get_source(cfg.data)
  task = tasks.get(cfg)
  model = task.build_model(strategy)
  evaluator = knn_monitor.KnnEval(cfg, strategy, source)
  runs = []
  for _ in range(2):
    start = time.perf_counter()
    report = evaluator.run(model, 0)
    runs.append(time.perf_counter() - start)
  epoch, step = time_epoch(cfg, strategy, source, task, model, args.steps,
                           args.warmup)
  print(json.dumps({
      'bank': report.scalars['knn_bank_examples'],
      'queries': report.scalars['knn_num_examples'], 'width': args.width,
      'knn_first_s': round(runs[0], 2), 'knn_s': round(runs[1], 2),
      'pretrain_step_s': round(step, 3),
      'pretrain_images_per_s': round(2 * args.batch / step, 1),
      'pretrain_epoch_s': round(epoch, 1),
      'knn_fraction_of_epoch': round(runs[1] / epoch, 3),
      'knn_top1_random_weights': round(report.scalars['knn_top1'], 4),
      'cpu': machine.cpu_model(), 'cores': os.cpu_count(),
      'tensorflow': tf.__version__}))


if __name__ == '__main__':
  main()
