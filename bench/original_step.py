"""The ORIGINAL SimCLR TF2 release's pretraining step, timed like ours.

Runs google-research/simclr's own ``tf2/`` code (not a copy: imported from
``--original_dir``) in the reference configuration of
``bench/train_step.py``, so that the two can be measured side by side on one
machine in one sitting: ResNet-18, CIFAR stem (``image_size=32``), width 1,
3-layer nonlinear projection head to 128-d, linear probe on stop-gradient
features (``lineareval_while_pretraining``), LARS (learning rate 0.3 per 256
with linear scaling, momentum 0.9, weight decay 1e-6; 10 warm-up steps, then
cosine over 1000, as ours), temperature 0.1, ``global_bn=True``,
``use_blur=False``, 128 pairs (256 images) per step from one fixed random
batch, under ``tf.distribute.MirroredStrategy()`` with one CPU replica and
oneDNN on. The step is the original's: ``single_step`` and
``train_multiple_steps`` are taken from the fetched ``run.py`` (its
``main()``, parsed with ``ast``) and executed as written, with
``steps_per_loop=1``; model, optimizer, schedule, losses, weight decay and
metrics are the original's modules. What differs from a real run.py
training job, all outside the computation of a step: the batch comes from
one fixed in-memory batch (the same numbers as ours) instead of the TFDS
pipeline; no summary writer is set, so the step's ``tf.summary.image``
records nothing (run.py records it on the last step of each loop, i.e. once
per epoch); the checkpoint save and metric logging that run.py does between
loops are left out (metrics are reset between loops, untimed). A step is
timed as run.py's loop makes it: ``train_multiple_steps(iterator)`` then
``global_step.numpy()``, inside ``strategy.scope()``.

Our repository does not include the original's code. Get it first: from
https://github.com/google-research/simclr, folder ``tf2/``, the files
``run.py model.py resnet.py objective.py lars_optimizer.py metrics.py
data.py data_util.py`` into one folder (``run.py`` is imported for its flag
definitions and its step; it imports ``data``, ``metrics`` and
``tensorflow_datasets``). The original's ``lars_optimizer.py`` must be the
revision that subclasses ``tf.keras.optimizers.legacy.Optimizer`` (older
revisions subclass ``tf.keras.optimizers.Optimizer``, which in tf-keras >=
2.11 is the new optimizer without ``_set_hyper``), and ``model.py`` the one
that builds ``LinearLayer``'s Dense in ``build()`` (older revisions create
``Dense(-1)``, which tf-keras rejects), e.g.::

  git clone --depth 1 https://github.com/google-research/simclr /tmp/simclr
  # then --original_dir=/tmp/simclr/tf2 (check the two revisions above)

The original is written for ``tf.keras`` 2.x, so run it with the legacy
tf-keras (``pip install tf_keras``) and nothing of Keras 3::

  TF_USE_LEGACY_KERAS=1 python bench/original_step.py --original_dir=DIR
  TF_USE_LEGACY_KERAS=1 python bench/original_step.py --steps 3 --warmup 1

Prints one JSON object with the fields of ``bench/train_step.py``
(``images_per_sec`` is 256 images over the median step) plus a ``check``
of the step: the losses are finite, the LARS step counter advanced, the
trainable variables moved between the first and the last step.
"""
import argparse
import ast
import importlib
import json
import os
import resource
import statistics
import sys
import tempfile
import textwrap
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')  # Before TensorFlow.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')  # As our run.py does.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import machine  # noqa: E402  (bench/machine.py; imports no TensorFlow)

ORIGINAL_FILES = ('run.py', 'model.py', 'resnet.py', 'objective.py',
                  'lars_optimizer.py', 'metrics.py', 'data.py', 'data_util.py')
ORIGINAL_MODULES = ('run', 'model', 'resnet', 'objective', 'lars_optimizer',
                    'metrics', 'data', 'data_util')

# The reference configuration of bench/train_step.py, as the original's flags.
NUM_CLASSES = 10
PAIRS = 128
TOTAL_STEPS = 1000      # our bench: WarmupCosine(..., total_steps=1000,
WARMUP_STEPS = 10       #                          warmup_steps=10)
# The original derives warm-up steps from epochs and a dataset size:
# round(warmup_epochs * num_examples // train_batch_size) = 1 * 1280 // 128.
NUM_TRAIN_EXAMPLES = WARMUP_STEPS * PAIRS
ORIGINAL_FLAGS = {
    'train_mode': 'pretrain',
    'lineareval_while_pretraining': True,
    'resnet_depth': 18,
    'width_multiplier': 1,
    'image_size': 32,           # <= 32: the CIFAR stem
    'sk_ratio': 0.0,
    'se_ratio': 0.0,
    'proj_head_mode': 'nonlinear',
    'num_proj_layers': 3,
    'proj_out_dim': 128,
    'ft_proj_selector': 0,
    'global_bn': True,
    'batch_norm_decay': 0.9,
    'use_blur': False,
    'fine_tune_after_block': -1,
    'optimizer': 'lars',
    'learning_rate': 0.3,
    'learning_rate_scaling': 'linear',
    'weight_decay': 1e-6,
    'momentum': 0.9,
    'temperature': 0.1,
    'hidden_norm': True,
    'train_batch_size': PAIRS,
    'train_steps': TOTAL_STEPS,
    'warmup_epochs': 1.0,
    'use_tpu': False,
}


def import_original(original_dir):
  """Imports the original's modules from original_dir (first on sys.path)."""
  original_dir = os.path.abspath(original_dir)
  missing = [f for f in ORIGINAL_FILES
             if not os.path.isfile(os.path.join(original_dir, f))]
  if missing:
    sys.exit(f'{original_dir} lacks the original files {missing}; see this '
             "script's docstring for how to fetch them.")
  clash = [m for m in ORIGINAL_MODULES if m in sys.modules]
  if clash:
    sys.exit(f'modules {clash} were imported before the original ones.')
  sys.path.insert(0, original_dir)
  importlib.import_module('run')  # defines the original's absl flags
  mods = {name: sys.modules[name] for name in ORIGINAL_MODULES}
  for name, mod in mods.items():
    where = os.path.dirname(os.path.abspath(mod.__file__))
    if where != original_dir:
      sys.exit(f'module {name} came from {where}, not {original_dir}.')
  return mods


def original_step_source(run_path):
  """``single_step`` and ``train_multiple_steps`` from the original run.py's
  ``main()``, as source text; checks the latter is decorated @tf.function."""
  with open(run_path) as f:
    text = f.read()
  tree = ast.parse(text)
  main = next(n for n in tree.body
              if isinstance(n, ast.FunctionDef) and n.name == 'main')
  found = {}
  for node in ast.walk(main):
    if isinstance(node, ast.FunctionDef) and node.name in (
        'single_step', 'train_multiple_steps'):
      found[node.name] = node
  if set(found) != {'single_step', 'train_multiple_steps'}:
    sys.exit(f'{run_path}: main() lacks single_step/train_multiple_steps.')
  decorators = [ast.unparse(d)
                for d in found['train_multiple_steps'].decorator_list]
  if decorators != ['tf.function']:
    sys.exit(f'{run_path}: train_multiple_steps is decorated {decorators}, '
             'expected [tf.function].')
  return {name: textwrap.dedent(ast.get_source_segment(text, node))
          for name, node in found.items()}



def load_original_step(run_path, workdir, closure, strategy):
  """Writes the original's ``single_step`` and ``@tf.function
  train_multiple_steps`` (verbatim, dedented) into WORKDIR/
  original_run_step.py and imports it with ``closure`` as its globals;
  ``train_multiple_steps`` is created under ``strategy.scope()`` as in
  run.py."""
  import importlib.util
  source = original_step_source(run_path)
  path = os.path.join(workdir, 'original_run_step.py')
  with open(path, 'w') as f:
    f.write(f'# single_step and train_multiple_steps of {run_path} main().\n'
            '# Their free names are set by bench/original_step.py.\n'
            'import tensorflow.compat.v2 as tf\n\n\n'
            + source['single_step'] + '\n\n@tf.function\n'
            + source['train_multiple_steps'] + '\n')
  spec = importlib.util.spec_from_file_location('original_run_step', path)
  module = importlib.util.module_from_spec(spec)
  module.__dict__.update(closure)
  with strategy.scope():
    spec.loader.exec_module(module)
  return module

def fixed_batch(batch, image_size):
  """bench/train_step.py's fixed batch, in the original's input layout:
  ``concat([view1, view2], -1)`` [B, H, W, 6] and one-hot labels."""
  import numpy as np
  views, labels = machine.fixed_views(batch, image_size, NUM_CLASSES)
  images = np.concatenate([views[0], views[1]], axis=-1)
  return images, np.eye(NUM_CLASSES, dtype=np.float32)[labels]


def measure(args, workdir) -> dict:
  import numpy as np
  import tensorflow as tf
  from absl import flags, logging

  if not (tf.keras.Model.__module__.startswith('tf_keras')):
    sys.exit('tf.keras is not tf-keras: run with TF_USE_LEGACY_KERAS=1 and '
             'tf_keras installed.')
  mods = import_original(args.original_dir)
  model_lib, obj_lib, metrics = mods['model'], mods['objective'], mods['metrics']
  if not issubclass(mods['lars_optimizer'].LARSOptimizer,
                    tf.keras.optimizers.legacy.Optimizer):
    sys.exit("the original's lars_optimizer.py subclasses the new tf-keras "
             'optimizer (no _set_hyper); use the revision that subclasses '
             'tf.keras.optimizers.legacy.Optimizer (see the docstring).')
  FLAGS = flags.FLAGS
  FLAGS([sys.argv[0]])  # parse nothing: the original's defaults, then ours
  for name, value in ORIGINAL_FLAGS.items():
    setattr(FLAGS, name, value)
  logging.set_verbosity(logging.WARNING)
  # As the original run.py's __main__ does.
  tf.config.set_soft_device_placement(True)

  peak = machine.matmul_peak()

  # From here on as the original run.py's main() (use_tpu=False, mode=train).
  strategy = tf.distribute.MirroredStrategy()
  if strategy.num_replicas_in_sync != 1:
    sys.exit(f'{strategy.num_replicas_in_sync} replicas; expected 1 (CPU).')
  with strategy.scope():
    try:
      model = model_lib.Model(NUM_CLASSES)
    except ValueError as e:
      if 'units' not in str(e):
        raise
      sys.exit(f"the original's model.py creates Dense(-1) ({e}); use the "
               "revision that builds LinearLayer's Dense in build() (see "
               'the docstring).')
  with strategy.scope():
    images, labels = fixed_batch(FLAGS.train_batch_size, FLAGS.image_size)

    def input_fn(input_context):
      del input_context
      return tf.data.Dataset.from_tensors((images, labels)).repeat()
    ds = strategy.distribute_datasets_from_function(input_fn)
    learning_rate = model_lib.WarmUpAndCosineDecay(FLAGS.learning_rate,
                                                   NUM_TRAIN_EXAMPLES)
    optimizer = model_lib.build_optimizer(learning_rate)
    all_metrics = []
    weight_decay_metric = tf.keras.metrics.Mean('train/weight_decay')
    total_loss_metric = tf.keras.metrics.Mean('train/total_loss')
    all_metrics.extend([weight_decay_metric, total_loss_metric])
    contrast_loss_metric = tf.keras.metrics.Mean('train/contrast_loss')
    contrast_acc_metric = tf.keras.metrics.Mean('train/contrast_acc')
    contrast_entropy_metric = tf.keras.metrics.Mean('train/contrast_entropy')
    all_metrics.extend([contrast_loss_metric, contrast_acc_metric,
                        contrast_entropy_metric])
    supervised_loss_metric = tf.keras.metrics.Mean('train/supervised_loss')
    supervised_acc_metric = tf.keras.metrics.Mean('train/supervised_acc')
    all_metrics.extend([supervised_loss_metric, supervised_acc_metric])

  steps_per_loop = 1
  # The original's step from its own source text, written to a module file
  # (AutoGraph converts only functions whose source it can read), with the
  # names its closure has in main() as the module's globals.
  step_module = load_original_step(
      os.path.join(args.original_dir, 'run.py'), workdir, dict(
          tf=tf, logging=logging, FLAGS=FLAGS, model_lib=model_lib,
          obj_lib=obj_lib, metrics=metrics, model=model, optimizer=optimizer,
          strategy=strategy, steps_per_loop=steps_per_loop,
          weight_decay_metric=weight_decay_metric,
          total_loss_metric=total_loss_metric,
          contrast_loss_metric=contrast_loss_metric,
          contrast_acc_metric=contrast_acc_metric,
          contrast_entropy_metric=contrast_entropy_metric,
          supervised_loss_metric=supervised_loss_metric,
          supervised_acc_metric=supervised_acc_metric), strategy)
  train_multiple_steps = step_module.train_multiple_steps

  global_step = optimizer.iterations
  iterator = iter(ds)

  def one_loop():
    """One call as the original's training loop makes it (no summary writer
    is set, so its tf.summary.image records nothing), then the
    ``global_step.numpy()`` that follows it there."""
    train_multiple_steps(iterator)
    return int(global_step.numpy())

  def read_and_reset():
    values = {m.name: float(m.result().numpy()) for m in all_metrics}
    for m in all_metrics:
      m.reset_states()
    return values

  # The original calls train_multiple_steps inside strategy.scope().
  with strategy.scope():
    start = time.perf_counter()
    one_loop()
    first_step = time.perf_counter() - start
    first = read_and_reset()
    # The trainable variables after the first step (the warm-up rate of step
    # 0 is 0, here as in ours); they must move by the end.
    before = [v.numpy().copy() for v in model.trainable_variables]
    for _ in range(args.warmup):
      one_loop()
    read_and_reset()
    times = []
    for _ in range(args.steps):
      start = time.perf_counter()
      one_loop()
      times.append(time.perf_counter() - start)
    last = read_and_reset()
  after = [v.numpy() for v in model.trainable_variables]
  moved = [not np.array_equal(b, a) for b, a in zip(before, after)]
  # Relative change ||after - before|| / ||before|| of the variables that
  # were not zero after the first step (the zero-initialised last BN gamma of
  # each residual block is, until it has moved).
  rel = [float(np.linalg.norm(a - b) / np.linalg.norm(b))
         for b, a in zip(before, after) if np.linalg.norm(b) > 0]
  slots = [optimizer.get_slot(v, 'Momentum') for v in model.trainable_variables]
  nonzero_slots = sum(bool(np.any(s.numpy() != 0)) for s in slots)
  # To the projection output, as bench/train_step.py counts ours.
  flops = 3 * machine.forward_flops(lambda x: model(x, training=True)[0],
                                    FLAGS.image_size)

  step = statistics.median(times)
  images_per_step = 2 * FLAGS.train_batch_size
  rate = images_per_step / step
  losses = [first['train/contrast_loss'], first['train/total_loss'],
            last['train/contrast_loss'], last['train/total_loss']]
  return {
      'images_per_sec': round(rate, 2),
      'step_sec_median': round(step, 3),
      'step_sec_min': round(min(times), 3),
      'step_sec_max': round(max(times), 3),
      'first_step_sec': round(first_step, 1),
      'first_contrast_loss': round(first['train/contrast_loss'], 4),
      'peak_rss_gib': round(resource.getrusage(resource.RUSAGE_SELF)
                            .ru_maxrss / 2 ** 20, 2),
      'gflop_per_image': round(flops / 1e9, 3),
      'achieved_gflops': round(rate * flops / 1e9, 1),
      'matmul_peak_gflops': round(peak, 1),
      'fraction_of_peak': round(rate * flops / 1e9 / peak, 3),
      'bound_images_per_sec': round(peak * 1e9 / flops, 1),
      'depth': FLAGS.resnet_depth, 'width': FLAGS.width_multiplier,
      'sk_ratio': FLAGS.sk_ratio, 'mixed_precision': 'none', 'jit': False,
      'pairs_per_step': FLAGS.train_batch_size,
      'images_per_step': images_per_step,
      'image_size': FLAGS.image_size, 'steps': args.steps,
      'warmup_steps': args.warmup,
      'check': {
          'first_metrics': {k: float('%.6g' % v) for k, v in first.items()},
          'last_metrics': {k: float('%.6g' % v) for k, v in last.items()},
          'losses_finite': all(np.isfinite(x) for x in losses),
          'global_step': int(global_step.numpy()),
          'expected_global_step': 1 + args.warmup + args.steps,
          'trainable_variables': len(after),
          'trainable_variables_moved': int(sum(moved)),
          'median_relative_change': float('%.4g' % statistics.median(rel)),
          'momentum_slots_nonzero': int(nonzero_slots),
          'num_replicas': strategy.num_replicas_in_sync,
          'keras': tf.keras.Model.__module__.split('.')[0],
          'keras3_imported': 'keras' in sys.modules,
      },
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--original_dir', default='/tmp/orig/tf2',
                      help="folder with the original release's tf2/ files")
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--warmup', type=int, default=3)
  args = parser.parse_args()
  if args.steps < 1 or args.warmup < 0:
    parser.error('--steps must be >= 1 and --warmup >= 0')
  with tempfile.TemporaryDirectory(prefix='original_step_') as workdir:
    result = measure(args, workdir)
  print(json.dumps({'benchmark': 'original_train_step',
                    'original_dir': os.path.abspath(args.original_dir),
                    **result, **machine.fields(
                        legacy_keras=os.environ.get('TF_USE_LEGACY_KERAS'))}))


if __name__ == '__main__':
  main()
