"""LARS under MirroredStrategy: 2 replicas == 1 device on the global batch."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.optim import LARS

BATCH, DIM, OUT = 8, 5, 3


def _variables():
  """kernel (adapted), bias, BN-like scale and supervised head (excluded)."""
  rng = np.random.default_rng(0)
  out = []
  for scope, name, shape in (('dense', 'kernel', (DIM, OUT)),
                             ('dense', 'bias', (OUT,)),
                             ('batch_normalization', 'gamma', (OUT,)),
                             ('head_supervised', 'kernel', (OUT, 2))):
    with keras.name_scope(scope):
      value = rng.normal(size=shape).astype(np.float32)
      out.append(keras.Variable(value, name=name))
  return out


def _loss(variables, x, y, global_batch):
  """Sum of per-example squared errors / global batch (global mean)."""
  kernel, bias, gamma, head = variables
  h = tf.nn.relu((tf.matmul(x, kernel) + bias) * gamma)
  err = tf.reduce_sum(tf.square(tf.matmul(h, head) - y), axis=1)
  return tf.reduce_sum(err) / global_batch


def _data():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(BATCH, DIM)).astype(np.float32)
  y = rng.normal(size=(BATCH, 2)).astype(np.float32)
  return tf.constant(x), tf.constant(y)


def _make_opt(classic, variables):
  return LARS(0.5, momentum=0.9, weight_decay=0.01, eeta=0.01,
              classic_momentum=classic,
              exclude_from_weight_decay=variables[1:])


def _single_device(classic, steps):
  variables = _variables()
  opt = _make_opt(classic, variables)
  opt.build(variables)
  x, y = _data()

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = _loss(variables, x, y, BATCH)
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

  for _ in range(steps):
    step()
  return [v.numpy() for v in variables]


def _two_replicas(strategy, classic, steps):
  with strategy.scope():
    variables = _variables()
    opt = _make_opt(classic, variables)
    opt.build(variables)
  x, y = _data()
  half = BATCH // strategy.num_replicas_in_sync
  shard = lambda t: strategy.experimental_distribute_values_from_function(
      lambda ctx: t[ctx.replica_id_in_sync_group * half:][:half])
  xs, ys = shard(x), shard(y)

  def replica_step(xr, yr):
    with tf.GradientTape() as tape:
      loss = _loss(variables, xr, yr, BATCH)  # local sum / global batch.
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))

  @tf.function
  def step():
    strategy.run(replica_step, args=(xs, ys))

  for _ in range(steps):
    step()
  return [v.numpy() for v in variables]


@pytest.mark.parametrize('classic', [True, False])
def test_two_replicas_match_one_device(two_replicas, classic):
  want = _single_device(classic, steps=2)
  got = _two_replicas(two_replicas, classic, steps=2)
  initial = [v.numpy() for v in _variables()]
  for g, w, init in zip(got, want, initial):
    assert not np.allclose(w, init)  # every variable actually moved.
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
