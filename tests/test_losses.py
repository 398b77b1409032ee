"""Tests for simclr_tf.losses against numpy references from the paper."""
import math

import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import losses


# ----------------------------------------------------------------------------
# numpy references
# ----------------------------------------------------------------------------

def np_paper_nt_xent(z1, z2, temperature, normalize=True):
  """SimCLR Eq. 1 averaged over all 2N anchors (the paper's scale).

  l(i, j) = -log exp(s_ij / T) / sum_{k != i} exp(s_ik / T), with
  s = cosine similarity, over the 2N stacked views; j is i's other view.
  """
  z = np.concatenate([z1, z2], 0).astype(np.float64)
  if normalize:
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n2 = z.shape[0]
  n = n2 // 2
  total = 0.0
  for i in range(n2):
    j = (i + n) % n2
    s = z @ z[i] / temperature
    denom = sum(math.exp(s[k]) for k in range(n2) if k != i)
    total += -(s[j] - math.log(denom))
  return total / n2


def np_log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _rand(rng, *shape):
  return rng.standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------
# nt_xent values
# ----------------------------------------------------------------------------

@pytest.mark.parametrize('n,d,temperature', [
    (1, 3, 0.5), (2, 4, 0.1), (5, 8, 0.2), (8, 16, 0.05), (16, 7, 1.0)])
def test_nt_xent_matches_paper_eq1_times_two(n, d, temperature):
  rng = np.random.default_rng(n * 100 + d)
  z1, z2 = _rand(rng, n, d), _rand(rng, n, d)
  out = losses.nt_xent(z1, z2, temperature=temperature)
  expected = 2 * np_paper_nt_xent(z1, z2, temperature)
  assert out.loss.dtype == tf.float32 and out.loss.shape == ()
  np.testing.assert_allclose(out.loss.numpy(), expected, rtol=1e-5, atol=1e-5)
  assert out.per_example_loss.shape == (n,)
  assert out.logits_ab.shape == (n, n)
  np.testing.assert_array_equal(out.labels.numpy(), np.arange(n))


def test_nt_xent_hidden_norm_false_matches_unnormalised_reference():
  rng = np.random.default_rng(1)
  z1, z2 = 0.3 * _rand(rng, 6, 5), 0.3 * _rand(rng, 6, 5)
  out = losses.nt_xent(z1, z2, temperature=0.5, hidden_norm=False)
  expected = 2 * np_paper_nt_xent(z1, z2, 0.5, normalize=False)
  np.testing.assert_allclose(out.loss.numpy(), expected, rtol=1e-5, atol=1e-5)
  normed = losses.nt_xent(z1, z2, temperature=0.5, hidden_norm=True)
  assert abs(float(normed.loss) - float(out.loss)) > 1e-3


def test_nt_xent_is_symmetric_in_views():
  rng = np.random.default_rng(2)
  z1, z2 = _rand(rng, 7, 9), _rand(rng, 7, 9)
  a = losses.nt_xent(z1, z2, temperature=0.2).loss
  b = losses.nt_xent(z2, z1, temperature=0.2).loss
  np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)


@pytest.mark.parametrize('n,d,temperature', [(1, 1, 0.1), (4, 4, 0.1),
                                             (3, 8, 0.5)])
def test_nt_xent_closed_form_aligned_orthogonal(n, d, temperature):
  z = np.eye(d, dtype=np.float32)[:n] * 3.0  # scale is removed by hidden_norm
  out = losses.nt_xent(z, z, temperature=temperature)
  pos = 1.0 / temperature
  per_direction = -math.log(math.exp(pos) / (math.exp(pos) + 2 * n - 2))
  np.testing.assert_allclose(out.loss.numpy(), 2 * per_direction, rtol=1e-5,
                             atol=1e-6)
  acc, entropy = losses.contrastive_metrics(out)
  assert float(acc) == 1.0
  expected_p = np.exp(np_log_softmax(np.eye(n) / temperature))
  expected_h = -(expected_p * np.log(expected_p)).sum(-1).mean()
  np.testing.assert_allclose(entropy.numpy(), expected_h, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('dtype', [tf.float16, tf.bfloat16])
def test_nt_xent_low_precision_inputs_give_float32_loss(dtype):
  rng = np.random.default_rng(3)
  z1, z2 = _rand(rng, 4, 8), _rand(rng, 4, 8)
  z1_lp, z2_lp = tf.cast(z1, dtype), tf.cast(z2, dtype)
  out = losses.nt_xent(z1_lp, z2_lp, temperature=0.1)
  assert out.loss.dtype == tf.float32
  assert out.logits_ab.dtype == tf.float32
  # The rounded inputs, computed in float64, are the reference.
  ref = 2 * np_paper_nt_xent(tf.cast(z1_lp, tf.float32).numpy(),
                             tf.cast(z2_lp, tf.float32).numpy(), 0.1)
  np.testing.assert_allclose(out.loss.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_nt_xent_in_tf_function_with_unknown_batch_and_tensor_temperature():
  rng = np.random.default_rng(4)
  spec = tf.TensorSpec([None, 6], tf.float32)

  @tf.function(input_signature=[spec, spec, tf.TensorSpec([], tf.float32)])
  def f(a, b, t):
    out = losses.nt_xent(a, b, temperature=t)
    return out.loss, losses.contrastive_metrics(out)

  for n in (3, 5):
    z1, z2 = _rand(rng, n, 6), _rand(rng, n, 6)
    loss, _ = f(z1, z2, tf.constant(0.3))
    np.testing.assert_allclose(loss.numpy(), 2 * np_paper_nt_xent(z1, z2, 0.3),
                               rtol=1e-5, atol=1e-5)
    eager = losses.nt_xent(z1, z2, temperature=0.3).loss
    np.testing.assert_allclose(loss.numpy(), eager.numpy(), rtol=1e-6)


def test_nt_xent_rejects_bad_arguments():
  z = tf.zeros([4, 3])
  with pytest.raises(ValueError, match='temperature=0'):
    losses.nt_xent(z, z, temperature=0)
  with pytest.raises(ValueError, match='z1 has shape'):
    losses.nt_xent(tf.zeros([4]), tf.zeros([4]), temperature=0.1)
  with pytest.raises(ValueError, match='differ'):
    losses.nt_xent(z, tf.zeros([4, 5]), temperature=0.1)


# ----------------------------------------------------------------------------
# metrics
# ----------------------------------------------------------------------------

def test_contrastive_metrics_against_numpy_and_bounds():
  rng = np.random.default_rng(5)
  z1, z2 = _rand(rng, 10, 4), _rand(rng, 10, 4)
  out = losses.nt_xent(z1, z2, temperature=0.5)
  acc, entropy = losses.contrastive_metrics(out)
  logits = out.logits_ab.numpy()
  np.testing.assert_allclose(
      acc.numpy(), np.mean(logits.argmax(-1) == np.arange(10)), rtol=1e-6)
  p = np.exp(np_log_softmax(logits.astype(np.float64)))
  np.testing.assert_allclose(entropy.numpy(),
                             -(p * np.log(p)).sum(-1).mean(), rtol=1e-5)
  assert 0.0 <= float(entropy) <= math.log(10) + 1e-6
  # Uniform logits reach the upper bound log(G).
  flat = losses.ContrastiveOutput(tf.constant(0.), tf.zeros([3]),
                                  tf.zeros([3, 8]), tf.range(3))
  np.testing.assert_allclose(losses.contrastive_metrics(flat)[1].numpy(),
                             math.log(8), rtol=1e-6)


# ----------------------------------------------------------------------------
# 1 replica vs 2 replicas on the same global batch
# ----------------------------------------------------------------------------

N_GLOBAL, D_IN, D_OUT, TEMP = 8, 5, 16, 0.2


def _single_device(x1, x2, w0):
  w = tf.Variable(w0)
  with tf.GradientTape() as tape:
    out = losses.nt_xent(x1 @ w, x2 @ w, temperature=TEMP)
  return out.loss.numpy(), tape.gradient(out.loss, w).numpy()


def _two_replicas(strategy, x1, x2, w0):
  with strategy.scope():
    w = tf.Variable(w0)
  half = N_GLOBAL // strategy.num_replicas_in_sync

  def split(ctx):
    rows = slice(ctx.replica_id_in_sync_group * half,
                 (ctx.replica_id_in_sync_group + 1) * half)
    return tf.constant(x1[rows]), tf.constant(x2[rows])

  inputs = strategy.experimental_distribute_values_from_function(split)

  @tf.function
  def step(batch):
    def replica_fn(a, b):
      with tf.GradientTape() as tape:
        out = losses.nt_xent(a @ w, b @ w, temperature=TEMP)
        scaled = out.loss / strategy.num_replicas_in_sync
      return out.loss, tape.gradient(scaled, w), out.labels, out.logits_ab
    return strategy.run(replica_fn, args=batch)

  loss, grad, labels, logits = step(inputs)
  mean_loss = strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
  sum_grad = strategy.reduce(tf.distribute.ReduceOp.SUM, grad, axis=None)
  per_replica = [strategy.experimental_local_results(t)
                 for t in (loss, labels, logits)]
  return mean_loss.numpy(), sum_grad.numpy(), per_replica


def test_two_replicas_equal_single_device_loss_and_gradient(two_replicas):
  assert two_replicas.num_replicas_in_sync == 2
  rng = np.random.default_rng(6)
  x1, x2 = _rand(rng, N_GLOBAL, D_IN), _rand(rng, N_GLOBAL, D_IN)
  w0 = _rand(rng, D_IN, D_OUT)
  loss_1, grad_1 = _single_device(x1, x2, w0)
  loss_2, grad_2, (losses_r, labels_r, logits_r) = _two_replicas(
      two_replicas, x1, x2, w0)

  # The single-device value is itself right (paper Eq. 1, x2).
  np.testing.assert_allclose(loss_1, 2 * np_paper_nt_xent(x1 @ w0, x2 @ w0,
                                                          TEMP), rtol=1e-5)
  np.testing.assert_allclose(loss_2, loss_1, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grad_2, grad_1, rtol=1e-5, atol=1e-5)

  # Each replica saw the global batch: G logit columns, offset labels.
  half = N_GLOBAL // 2
  for r in range(2):
    assert logits_r[r].shape == (half, N_GLOBAL)
    np.testing.assert_array_equal(labels_r[r].numpy(),
                                  np.arange(r * half, (r + 1) * half))
  # The comparison can fail: the gradient is far from zero, and per-replica
  # losses without cross-replica negatives give a different number.
  assert np.abs(grad_1).max() > 1e-2
  local_only = np.mean([
      2 * np_paper_nt_xent(x1[s] @ w0, x2[s] @ w0, TEMP)
      for s in (slice(0, half), slice(half, N_GLOBAL))])
  assert abs(local_only - loss_1) > 1e-2
  np.testing.assert_allclose(np.mean([l.numpy() for l in losses_r]), loss_1,
                             rtol=1e-5)


def test_cross_replica_context_does_not_gather(two_replicas):
  rng = np.random.default_rng(7)
  z1, z2 = _rand(rng, 4, 3), _rand(rng, 4, 3)
  with two_replicas.scope():  # cross-replica context: no all_gather.
    out = losses.nt_xent(z1, z2, temperature=0.5)
  assert out.logits_ab.shape == (4, 4)
  np.testing.assert_allclose(out.loss.numpy(),
                             2 * np_paper_nt_xent(z1, z2, 0.5), rtol=1e-5)


# ----------------------------------------------------------------------------
# supervised loss and top-k
# ----------------------------------------------------------------------------

def test_supervised_loss_matches_numpy():
  rng = np.random.default_rng(8)
  logits = _rand(rng, 6, 5) * 3
  labels = rng.integers(0, 5, size=6)
  ce = -np_log_softmax(logits.astype(np.float64))[np.arange(6), labels]
  got = losses.supervised_loss(labels, logits)
  assert got.dtype == tf.float32
  np.testing.assert_allclose(got.numpy(), ce.mean(), rtol=1e-5)
  got16 = losses.supervised_loss(labels, tf.cast(logits, tf.bfloat16))
  assert got16.dtype == tf.float32

  weights = np.array([1, 0, 1, 1, 0, 0], np.float32)
  got_w = losses.supervised_loss(labels, logits, weights=weights)
  np.testing.assert_allclose(got_w.numpy(), ce[weights == 1].mean(),
                             rtol=1e-5)
  zero = losses.supervised_loss(labels, logits, weights=np.zeros(6))
  assert float(zero) == 0.0 and np.isfinite(zero.numpy())


def test_supervised_loss_zero_weights_gradient_is_finite():
  logits = tf.Variable(tf.ones([3, 4]))
  with tf.GradientTape() as tape:
    loss = losses.supervised_loss([0, 1, 2], logits, weights=tf.zeros([3]))
  grad = tape.gradient(loss, logits)
  assert np.all(np.isfinite(grad.numpy()))


def test_supervised_loss_rejects_one_hot_labels():
  with pytest.raises(ValueError, match='expected integer class indices'):
    losses.supervised_loss(tf.one_hot([0, 1], 3), tf.zeros([2, 3]))
  with pytest.raises(ValueError, match='rank 2'):
    losses.supervised_loss(tf.zeros([2, 3], tf.int32), tf.zeros([2, 3]))


def test_top_k_correct():
  logits = np.array([[0.1, 0.5, 0.4, 0.0],
                     [0.9, 0.05, 0.03, 0.02],
                     [0.2, 0.3, 0.1, 0.4]], np.float32)
  labels = np.array([2, 0, 0])
  np.testing.assert_array_equal(
      losses.top_k_correct(labels, logits, 1), [0, 1, 0])
  np.testing.assert_array_equal(
      losses.top_k_correct(labels, logits, 2), [1, 1, 0])
  np.testing.assert_array_equal(
      losses.top_k_correct(labels, logits, 3), [1, 1, 1])
  assert losses.top_k_correct(labels, logits, 1).dtype == tf.float32
  with pytest.raises(ValueError, match='k=5'):
    losses.top_k_correct(labels, logits, 5)
  with pytest.raises(ValueError, match='k=0'):
    losses.top_k_correct(labels, logits, 0)
