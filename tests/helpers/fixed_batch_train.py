"""SimCLR pretraining for a few steps on one fixed global batch.

Shared by the distributed equivalence tests: ``test_multi_worker.py`` runs
it as a script (one process per worker, plus a single-process reference)
and ``test_mirrored_equivalence.py`` imports ``train_fixed_batch``.

    python tests/helpers/fixed_batch_train.py --out=OUT.npz --num_steps=2 \
        --strategy=multi_worker --seed=1 [any run.py flag]   # TF_CONFIG set

The command line is run.py's: the project's flags -> ``config_from_flags``
-> ``simclr_tf.runtime.setup`` (``--seed``, ``--cpu_devices``) ->
``distribute.build_strategy``. Training uses the product's pieces:
``Task.build_model`` (global BN with >1 replica), ``build_optimizer``
(LARS) with ``WarmupCosine`` (no warmup, so step 1 already moves the
weights), ``steps.make_train_loop`` (NT-Xent over all replicas, the probe,
weight decay). Only the input differs from a run: the real pipeline gives
each worker its own shard and augmentation streams, so its global batch
depends on the number of workers; here replica r of R always receives rows
[r*b, (r+1)*b) of the same ``global_batch`` (b = G / R), every step.

OUT.npz (and the dict ``train_fixed_batch`` returns) holds:
  ``metric/<name>``  float32 [num_steps], each step's replica-averaged value.
  ``step<k>/<i>``    ``model.weights[i]`` after k steps (k = 0: initial).
  ``paths``, ``trainable``  of each ``model.weights[i]``.
  ``local_labels``   [local replicas, b], the labels this process's replicas
                     received, in replica order.
  ``num_replicas``, ``synchronized_bn_layers`` (BN layers that are
  cross-replica), ``local_copy_spread`` (largest difference between this
  process's replica copies of any variable; 0 when they stay in sync).
  ``is_chief``       (script only) ``distribute.is_chief(strategy)``.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def global_batch(size: int, image_size: int, num_classes: int = 10,
                 seed: int = 0) -> dict:
  """Deterministic pretraining batch: two float32 views in [0, 1], labels."""
  rng = np.random.default_rng(seed)
  shape = (size, image_size, image_size, 3)
  return {'view1': rng.uniform(size=shape).astype(np.float32),
          'view2': rng.uniform(size=shape).astype(np.float32),
          'label': (np.arange(size) % num_classes).astype(np.int32)}


def distributed_batches(strategy, batch: dict):
  """Repeats ``batch`` forever; replica r gets rows [r*b, (r+1)*b).

  ``distribute_datasets_from_function`` calls the function once per input
  pipeline (one per worker) and hands that pipeline's consecutive elements
  to its replicas in order, so each pipeline yields one element per local
  replica, in global replica order (pipeline p owns replicas p*L..p*L+L-1).
  """
  import tensorflow as tf
  size = len(batch['label'])

  def dataset_fn(ctx):
    per_replica = ctx.get_per_replica_batch_size(size)
    local = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    start = ctx.input_pipeline_id * local * per_replica
    rows = {k: v[start:start + local * per_replica].reshape(
        (local, per_replica) + v.shape[1:]) for k, v in batch.items()}
    return tf.data.Dataset.from_tensor_slices(rows).repeat()

  return strategy.distribute_datasets_from_function(dataset_fn)


def local_labels(strategy, batch: dict) -> np.ndarray:
  """Labels each local replica receives from ``distributed_batches``."""
  element = next(iter(distributed_batches(strategy, batch)))
  return np.stack([np.asarray(t) for t in
                   strategy.experimental_local_results(element['label'])])


@contextlib.contextmanager
def python_random_seed(seed):
  """Seeds Python's ``random`` (Keras initializers draw their seeds from it)
  for the block and restores its state after; ``None`` does nothing."""
  if seed is None:
    yield
    return
  state = random.getstate()
  random.seed(seed)
  try:
    yield
  finally:
    random.setstate(state)


def train_fixed_batch(cfg, strategy, batch: dict, num_steps: int, *,
                      init_weights=None, init_seed=None) -> dict:
  """Trains ``num_steps`` steps on ``batch`` under ``strategy``.

  Args:
    cfg: a pretraining ``Config``; ``cfg.train.train_batch_size`` must be
      the size of ``batch``.
    strategy: any ``tf.distribute`` strategy.
    batch: ``global_batch(...)``.
    num_steps: training steps (one ``loop`` call each).
    init_weights: optional list of arrays assigned to ``model.weights`` in
      order before training (to start two runs from the same point).
    init_seed: optional seed for the initial weights (``python_random_seed``).

  Returns:
    dict of numpy arrays (module docstring).
  """
  import keras
  import tensorflow as tf

  from simclr_tf import steps, tasks
  from simclr_tf.models import param_sets
  from simclr_tf.optim import WarmupCosine, build_optimizer

  assert cfg.train.train_batch_size == len(batch['label'])
  with python_random_seed(init_seed):
    task = tasks.get(cfg)
    model = task.build_model(strategy)
  if init_weights is not None:
    for variable, value in zip(model.weights, init_weights, strict=True):
      variable.assign(value)
  with strategy.scope():
    schedule = WarmupCosine(
        cfg.optim.learning_rate, cfg.train.train_batch_size,
        total_steps=num_steps, warmup_steps=0,
        scaling=cfg.optim.learning_rate_scaling)
    optimizer = build_optimizer(cfg.optim, schedule, param_sets(model))
    optimizer.build(task.trainable_variables(model))
  loop = steps.make_train_loop(model, optimizer, strategy, task,
                               jit_compile=cfg.runtime.jit)
  iterator = iter(distributed_batches(strategy, batch))
  out, history = {}, []
  for step in range(num_steps + 1):
    out.update({f'step{step}/{i}': v.numpy()
                for i, v in enumerate(model.weights)})
    if step < num_steps:
      history.append(loop(iterator, tf.constant(1, tf.int32)))
  for name in history[0]:
    out[f'metric/{name}'] = np.array([float(m[name]) for m in history],
                                     np.float32)
  out['paths'] = np.array([v.path for v in model.weights])
  out['trainable'] = np.array([v.trainable for v in model.weights])
  out['local_labels'] = local_labels(strategy, batch)
  out['num_replicas'] = np.array(strategy.num_replicas_in_sync)
  layers = model._flatten_layers()  # pylint: disable=protected-access
  out['synchronized_bn_layers'] = np.array(sum(
      isinstance(layer, keras.layers.BatchNormalization) and
      layer.synchronized for layer in layers))
  out['local_copy_spread'] = np.array(max(
      float(np.max(np.abs(np.asarray(c) - np.asarray(copies[0]))))
      for copies in (strategy.experimental_local_results(v)
                     for v in model.weights) for c in copies))
  return out


def num_steps_of(out: dict) -> int:
  return len(out['metric/total_loss'])


def weight_indices(out: dict, moving_variance: bool) -> list:
  """Indices of the BN moving variances, or of every other weight."""
  return [i for i, p in enumerate(out['paths'])
          if str(p).endswith('moving_variance') == moving_variance]


def assert_same_training(want: dict, got: dict, *, metric_tol: tuple,
                         weight_tol: tuple, update_rtol: float) -> dict:
  """Asserts two ``train_fixed_batch`` results describe the same training.

  Same initial weights (bit for bit); every step's metrics within
  ``metric_tol`` and, after every step, every weight except the BN moving
  variances within ``weight_tol`` (``(rtol, atol)`` of
  ``np.testing.assert_allclose``); each step's update of every trainable
  variable within ``update_rtol`` x its largest element plus 2 float32 ulps
  of the weight (a check of the update itself, which can be far smaller
  than the weight); every trainable variable moved at some step (in step 1
  the zero-initialised last BN of each residual block stops the gradient
  to the rest of the block).

  Returns:
    the largest differences seen; ``*_tolerance_used`` is the largest
    |got - want| / (atol + rtol |want|).
  """
  eps = np.finfo(np.float32).eps
  assert len(want['paths']) == len(got['paths'])
  assert num_steps_of(want) == num_steps_of(got)
  seen = {'metrics': 0.0, 'metrics_tolerance_used': 0.0, 'weights': 0.0,
          'weights_tolerance_used': 0.0, 'update_rel': 0.0}

  def check(kind, tol, g, w, what):
    rtol, atol = tol
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)
    diff = np.abs(g - w)
    seen[kind] = max(seen[kind], float(np.max(diff)))
    seen[f'{kind}_tolerance_used'] = max(
        seen[f'{kind}_tolerance_used'],
        float(np.max(diff / (atol + rtol * np.abs(w)))))

  for key in [k for k in want if k.startswith('metric/')]:
    check('metrics', metric_tol, got[key], want[key], key)
  for i in weight_indices(want, moving_variance=False):
    path = str(want['paths'][i])
    np.testing.assert_array_equal(got[f'step0/{i}'], want[f'step0/{i}'],
                                  err_msg=f'initial {path}')
    for step in range(1, num_steps_of(want) + 1):
      before, w, g = (want[f'step{step - 1}/{i}'], want[f'step{step}/{i}'],
                      got[f'step{step}/{i}'])
      check('weights', weight_tol, g, w, f'after step {step}: {path}')
      if not want['trainable'][i]:
        continue
      largest = np.max(np.abs(w - before))
      error = np.abs((g - got[f'step{step - 1}/{i}']) - (w - before))
      assert np.all(error <= update_rtol * largest + 2 * eps * np.abs(w)), (
          f'step {step}: the update of {path} differs by {np.max(error):.3g}'
          f' (largest element of the update {largest:.3g})')
      if largest > 0:
        seen['update_rel'] = max(seen['update_rel'],
                                 float(np.max(error) / largest))
    if want['trainable'][i]:
      moved = want[f'step{num_steps_of(want)}/{i}'] - want[f'step0/{i}']
      assert np.any(moved != 0), f'{path} never moved'
  return seen


def assert_same_moving_variance(want: dict, got: dict, rtol: float,
                                atol: float) -> None:
  """The BN moving variances after the last step agree."""
  last = num_steps_of(want)
  for i in weight_indices(want, moving_variance=True):
    np.testing.assert_allclose(got[f'step{last}/{i}'], want[f'step{last}/{i}'],
                               rtol=rtol, atol=atol,
                               err_msg=str(want['paths'][i]))


def main(argv):
  from absl import flags as absl_flags

  from flags import config_from_flags
  from simclr_tf import distribute, runtime

  del argv
  flag_values = absl_flags.FLAGS
  cfg = config_from_flags(flag_values)
  runtime.setup(cfg)
  strategy = distribute.build_strategy(cfg.runtime)
  batch = global_batch(cfg.train.train_batch_size, cfg.model.image_size,
                       cfg.model.num_classes)
  out = train_fixed_batch(cfg, strategy, batch, flag_values.num_steps)
  out['is_chief'] = np.array(distribute.is_chief(strategy))
  tmp = flag_values.out + '.tmp.npz'
  np.savez(tmp, **out)
  os.replace(tmp, flag_values.out)


if __name__ == '__main__':
  sys.path.insert(0, ROOT)
  import run  # noqa: E402,F401  (defines run.py's flags; oneDNN env first)
  from absl import app  # noqa: E402
  from absl import flags as _absl_flags  # noqa: E402
  _absl_flags.DEFINE_string('out', None, 'Where to write the results (.npz).')
  _absl_flags.DEFINE_integer('num_steps', 2, 'Training steps.')
  _absl_flags.mark_flag_as_required('out')
  app.run(main)
