"""Cost of a kNN evaluation (the kNN monitor, Wu et al. 2018): features of a
bank (CIFAR-10 train, 50,000) and of queries (test, 10,000) from a
ResNet-18 (CIFAR stem) at ``--width`` in inference mode, eval preprocessing,
then ``simclr_tf.evaluators.knn.knn_accuracy`` (k 200, temperature 0.1).
The weights are random: the accuracy printed is not a result, the times
are. Prints one JSON object. Usage::

  python bench/knn.py [--data ../shared/data/cifar10] [--width 0.25]
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

from simclr_tf import data  # noqa: E402
from simclr_tf.config import DataConfig, ModelConfig  # noqa: E402
from simclr_tf.evaluators import knn  # noqa: E402
from simclr_tf.models import build_model  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def features(model, source, split, batch):
  """``final_avg_pool`` of every example of ``split`` (padding dropped)."""
  dataset = data.make_dataset(source, split, mode='eval', batch_size=batch,
                              image_size=32)
  embed = tf.function(lambda x: model(x, training=False)['final_avg_pool'])
  feats, labels = [], []
  for b in dataset:
    keep = b['mask'] > 0
    feats.append(tf.boolean_mask(embed(b['image']), keep))
    labels.append(tf.boolean_mask(b['label'], keep))
  return tf.concat(feats, 0), tf.concat(labels, 0)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument('--data', default=os.path.join(
      HERE, '..', '..', 'shared', 'data', 'cifar10'))
  parser.add_argument('--width', type=float, default=0.25)
  parser.add_argument('--batch', type=int, default=500)
  args = parser.parse_args()
  source = data.get_source(DataConfig(dataset=f'npz:{args.data}'))
  model = build_model(ModelConfig(resnet_depth=18, width_multiplier=args.width,
                                  image_size=32,
                                  num_classes=source.num_classes))
  start = time.perf_counter()
  bank, bank_labels = features(model, source, 'train', args.batch)
  bank_s = time.perf_counter() - start
  start = time.perf_counter()
  queries, query_labels = features(model, source, 'test', args.batch)
  queries_s = time.perf_counter() - start
  start = time.perf_counter()
  acc = knn.knn_accuracy(queries, query_labels, bank, bank_labels,
                         num_classes=source.num_classes, k=200,
                         temperature=0.1)
  float(acc['knn_top1'])
  knn_s = time.perf_counter() - start
  print(json.dumps({
      'bank': int(bank.shape[0]), 'queries': int(queries.shape[0]),
      'feature_dim': int(bank.shape[1]), 'width': args.width,
      'bank_features_s': round(bank_s, 2),
      'query_features_s': round(queries_s, 2), 'knn_s': round(knn_s, 2),
      'total_s': round(bank_s + queries_s + knn_s, 2),
      'knn_top1_random_weights': round(float(acc['knn_top1']), 4),
      'cpu': machine.cpu_model(), 'cores': os.cpu_count(),
      'tensorflow': tf.__version__}))


if __name__ == '__main__':
  main()
