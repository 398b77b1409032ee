"""Weighted kNN classification (the kNN monitor's arithmetic) against a
numpy reference: ties, k larger than the bank, one class, padding."""
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.evaluators import knn


def _reference(queries, bank, labels, num_classes, k, temperature):
  """float64 numpy: scores [Q, C] (ties in similarity: lower bank index
  first, as tf.math.top_k), each query's divided by exp(s_max / T)."""
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
  sim = q @ b.T
  k = min(k, len(bank))
  scores = np.zeros((len(q), num_classes))
  for i, row in enumerate(sim):
    top = np.argsort(-row, kind='stable')[:k]
    for j in top:
      scores[i, labels[j]] += np.exp((row[j] - row.max()) / temperature)
  return scores


def _ranks(scores, labels):
  return np.array([
      sum(s > row[y] or (s == row[y] and c < y) for c, s in enumerate(row))
      for row, y in zip(scores, labels)])


@pytest.mark.parametrize('k,num_classes,bank_size', [
    (5, 4, 30), (200, 4, 30),  # k larger than the bank: the whole bank
    (3, 1, 10),                # one class
    (7, 10, 50)])
def test_scores_and_accuracy_match_numpy(k, num_classes, bank_size):
  rng = np.random.default_rng(k + num_classes)
  bank = rng.normal(size=(bank_size, 8))
  labels = rng.integers(0, num_classes, bank_size)
  queries = rng.normal(size=(13, 8))
  query_labels = rng.integers(0, num_classes, 13)
  want = _reference(queries, bank, labels, num_classes, k, 0.1)
  got = knn.knn_scores(queries, bank, labels, num_classes=num_classes, k=k,
                       temperature=0.1, chunk=4)
  np.testing.assert_allclose(got, want, rtol=2e-4)
  ranks = _ranks(want, query_labels)
  acc = knn.knn_accuracy(queries, query_labels, bank, labels,
                         num_classes=num_classes, k=k, temperature=0.1)
  assert float(acc['knn_top1']) == pytest.approx(np.mean(ranks < 1))
  assert float(acc['knn_top5']) == pytest.approx(np.mean(ranks < 5))
  if num_classes == 1:
    assert float(acc['knn_top1']) == 1.0


def test_small_temperature_does_not_overflow():
  """exp(1 / 0.005) is inf in float32 and even float64 at 0.001: the
  scores stay finite and rank as the formula does."""
  rng = np.random.default_rng(1)
  bank = rng.normal(size=(40, 6))
  labels = rng.integers(0, 4, 40)
  queries = rng.normal(size=(9, 6))
  query_labels = rng.integers(0, 4, 9)
  for temperature in (0.005, 0.001):
    got = knn.knn_scores(queries, bank, labels, num_classes=4, k=10,
                         temperature=temperature).numpy()
    assert np.isfinite(got).all()
    want = _reference(queries, bank, labels, 4, 10, temperature)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-30)
    acc = knn.knn_accuracy(queries, query_labels, bank, labels,
                           num_classes=4, k=10, temperature=temperature)
    assert float(acc['knn_top1']) == pytest.approx(
        np.mean(_ranks(want, query_labels) < 1))


def test_ties_in_similarity_and_in_scores():
  """Duplicated bank rows tie in similarity: top_k takes the first; equal
  class scores rank by class index; classes without votes are not top-5."""
  bank = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
  labels = np.array([2, 0, 1, 3])
  queries = np.array([[1.0, 0.0], [1.0, 1.0]])
  got = knn.knn_scores(queries, bank, labels, num_classes=8, k=1,
                       temperature=1.0).numpy()
  np.testing.assert_allclose(got, _reference(queries, bank, labels, 8, 1,
                                             1.0), rtol=1e-6)
  assert got[0, 2] > 0 and got[0, 0] == 0  # the first of the equal rows
  scores = tf.constant([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]] * 3)
  ranks = knn.rank_of_label(scores, tf.constant([1, 0, 7])).numpy()
  assert list(ranks) == [1, 0, 7]
  acc = knn.knn_accuracy(np.array([[1.0, 0.0]] * 2), [2, 7], bank, labels,
                         num_classes=8, k=1, temperature=1.0)
  assert float(acc['knn_top1']) == 0.5 and float(acc['knn_top5']) == 0.5


def test_padding_weights_and_bad_arguments():
  bank, labels = np.eye(3), np.array([0, 1, 2])
  acc = knn.knn_accuracy(np.eye(3), [0, 1, 0], bank, labels, num_classes=3,
                         k=1, weights=[1.0, 1.0, 0.0])
  assert float(acc['knn_top1']) == 1.0  # the wrong one is padding
  for kwargs, bad in ((dict(k=0), 'k=0'), (dict(temperature=0.0),
                                           'temperature=0.0'),
                      (dict(num_classes=0), 'num_classes=0')):
    with pytest.raises(ValueError, match=bad):
      knn.knn_scores(bank, bank, labels, **{'num_classes': 3, **kwargs})
  with pytest.raises(ValueError, match='same D'):
    knn.knn_scores(np.ones((2, 4)), bank, labels, num_classes=3)
