"""Export cost: time to export and to load an export, and its size on disk.

For ResNet-50 1x at 224 px (ImageNet stem, 1000 classes) and ResNet-18 1x
at 32 px (CIFAR stem, 10 classes), each with the SimCLR projection head
(3 layers, 128-d) and a supervised head. ``export_s`` is
``export.export_model`` (trace both call modes and the three signatures,
write, rename into place); ``load_s`` is ``tf.saved_model.load``;
``first_call_s`` one inference call on a batch of 8 after loading. Prints
one JSON object. Usage::

  python bench/export.py [--models r50_224,r18_32] [--repeats 1]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

os.environ['TF_ENABLE_ONEDNN_OPTS'] = '1'  # Before TensorFlow is imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))

import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (bench/machine.py)

from export import export_model  # noqa: E402
from simclr_tf.config import Config, ModelConfig  # noqa: E402
from simclr_tf.models import build_model, count_params  # noqa: E402

MODELS = {
    'r50_224': ModelConfig(resnet_depth=50, width_multiplier=1.0,
                           image_size=224, num_classes=1000),
    'r18_32': ModelConfig(resnet_depth=18, width_multiplier=1.0,
                          image_size=32, num_classes=10),
}


def _dir_bytes(path):
  return sum(os.path.getsize(os.path.join(d, f))
             for d, _, files in os.walk(path) for f in files)


def bench_one(cfg: ModelConfig, repeats: int) -> dict:
  """Export/load timings (best of ``repeats``) and sizes for one model."""
  start = time.perf_counter()
  model = build_model(cfg)
  build_s = time.perf_counter() - start
  run_cfg = Config(model=cfg)
  export_s, load_s, call_s = [], [], []
  with tempfile.TemporaryDirectory(prefix='bench_export_') as model_dir:
    for step in range(1, repeats + 1):
      start = time.perf_counter()
      path = export_model(model, model_dir, step, run_cfg, keep_max=1)
      export_s.append(time.perf_counter() - start)
      start = time.perf_counter()
      loaded = tf.saved_model.load(path)
      load_s.append(time.perf_counter() - start)
      images = tf.random.uniform([8, cfg.image_size, cfg.image_size, 3])
      start = time.perf_counter()
      loaded(images, training=False)['default'].numpy()
      call_s.append(time.perf_counter() - start)
    size = _dir_bytes(path)
    variables = _dir_bytes(os.path.join(path, 'variables'))
    shutil.rmtree(path, ignore_errors=True)
  return {'params': count_params(model.variables),
          'build_s': round(build_s, 2), 'export_s': round(min(export_s), 2),
          'load_s': round(min(load_s), 2),
          'first_call_s': round(min(call_s), 2),
          'size_mb': round(size / 2**20, 1),
          'variables_mb': round(variables / 2**20, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--models', default=','.join(MODELS))
  parser.add_argument('--repeats', type=int, default=1)
  args = parser.parse_args()
  names = args.models.split(',')
  unknown = [n for n in names if n not in MODELS]
  if unknown:
    parser.error(f'--models: unknown {unknown}; choose from {list(MODELS)}')
  result = {'benchmark': 'export', 'tf': tf.__version__,
            'cpu': machine.cpu_model(), 'cores': os.cpu_count(),
            'onednn': os.environ['TF_ENABLE_ONEDNN_OPTS']}
  for name in names:
    result[name] = bench_one(MODELS[name], args.repeats)
  print(json.dumps(result))


if __name__ == '__main__':
  main()
