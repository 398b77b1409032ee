"""Crop boxes follow the original release's distribution (SimCLR App. A).

The original (google-research/simclr, data_util.distorted_bounding_box_crop)
draws crops with ``tf.image.sample_distorted_bounding_box``; our batched,
XLA-compilable ``augment.sample_crop_boxes`` must draw boxes of the same law.
We compare 20,000 boxes of each with a two-sample Kolmogorov-Smirnov
statistic on relative area h*w/(H*W), pixel aspect w/h and relative offsets.
"""
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.data import augment

N = 20000
# Under equal laws the KS statistic of two 20k samples is about 0.009 (its
# 1e-7 quantile is about 0.03); the bugs this guards move it to 0.08-0.2.
KS_MAX = 0.03


def ks_statistic(a, b):
  """Two-sample Kolmogorov-Smirnov statistic: sup |F_a(x) - F_b(x)|.

  Both empirical CDFs are evaluated at every observed value (right-continuous,
  so ties, which integer box sizes make common, are counted correctly).
  """
  a, b = np.sort(a), np.sort(b)
  x = np.concatenate([a, b])
  cdf_a = np.searchsorted(a, x, side='right') / len(a)
  cdf_b = np.searchsorted(b, x, side='right') / len(b)
  return float(np.abs(cdf_a - cdf_b).max())


def test_ks_statistic_matches_hand_computed_values():
  assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
  assert ks_statistic([0, 0], [1, 1]) == 1.0
  assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5


def op_boxes(n, height, width, area_min, seed=7):
  """``n`` boxes ``(top, left, h, w)`` from the op with the original's args."""
  seeds = tf.random.experimental.stateless_split(
      tf.constant([seed, 0], tf.int64), n)

  @tf.function
  def draw(seeds):
    def one(s):
      begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
          tf.constant([height, width, 3]),
          bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]), seed=s,
          min_object_covered=0.1, aspect_ratio_range=(3 / 4, 4 / 3),
          area_range=(area_min, 1.0), max_attempts=100,
          use_image_if_no_bounding_boxes=True)
      return tf.concat([begin[:2], size[:2]], axis=0)
    return tf.map_fn(one, seeds, fn_output_signature=tf.int32,
                     parallel_iterations=64)

  return draw(seeds).numpy()


def box_statistics(boxes, height, width):
  """Relative area, pixel aspect w/h and offsets as fractions of the image."""
  top, left, h, w = boxes.T.astype(np.float64)
  return {'area': h * w / (height * width), 'aspect': w / h,
          'top': top / height, 'left': left / width}


@pytest.mark.parametrize('height, width, area_min', [
    (32, 32, 0.08), (224, 224, 0.08), (240, 320, 0.08), (32, 32, 0.25)])
def test_crop_boxes_follow_sample_distorted_bounding_box(height, width,
                                                         area_min):
  ours = augment.sample_crop_boxes(tf.constant([3, 4], tf.int64), N, height,
                                   width, (area_min, 1.0)).numpy()
  ref = op_boxes(N, height, width, area_min)
  ours_stats = box_statistics(ours, height, width)
  ref_stats = box_statistics(ref, height, width)
  ks = {k: ks_statistic(ours_stats[k], ref_stats[k]) for k in ours_stats}
  print(f'\n{height}x{width} area_min={area_min}: KS ' + ', '.join(
      f'{k} {v:.4f}' for k, v in ks.items()) +
      f'; mean area ours {ours_stats["area"].mean():.3f}'
      f' op {ref_stats["area"].mean():.3f}')
  assert max(ks.values()) < KS_MAX, ks
  # The op's hard limits hold exactly for every box.
  assert ours_stats['area'].min() >= max(area_min, 0.1) - 1e-9
