"""Augmentation ops (SimCLR Appendix A): eager, in tf.data, statistics."""
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf.data import augment
from simclr_tf.data import color

SEED = tf.constant([3, 4], tf.int64)


def _images(n=8, size=16, seed=0):
  rng = np.random.default_rng(seed)
  return tf.constant(rng.uniform(size=(n, size, size, 3)), tf.float32)


def _in_dataset(fn, *args):
  """Runs ``fn(*args)`` inside a tf.data map and returns the result."""
  ds = tf.data.Dataset.from_tensors(args).map(lambda *a: fn(*a))
  return next(iter(ds))


# Shapes, dtypes, ranges: eagerly and inside tf.data -----------------------

OPS = {
    'crop': lambda x, s: augment.random_resized_crop_batch(x, s, 12),
    'jitter': lambda x, s: augment.color_jitter(x, s, 1.0),
    'distortion': lambda x, s: augment.color_distortion(x, s, 0.5),
    'gray': augment.random_grayscale,
    'blur': augment.random_blur,
}


@pytest.mark.parametrize('name', sorted(OPS))
def test_op_shape_dtype_range_eager_and_in_dataset(name):
  x = _images()
  eager = OPS[name](x, SEED)
  in_ds = _in_dataset(OPS[name], x, SEED)
  size = 12 if name == 'crop' else 16
  for out in (eager, in_ds):
    assert out.shape == (8, size, size, 3) and out.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(out)) < float(tf.reduce_max(out)) <= 1.0
  np.testing.assert_allclose(eager, in_ds, atol=1e-5)


def test_same_seed_same_output_other_seed_differs():
  x = _images()
  a = augment.color_distortion(x, SEED, 1.0)
  b = augment.color_distortion(x, SEED, 1.0)
  c = augment.color_distortion(x, SEED + 1, 1.0)
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 0.01


def test_per_image_crop_matches_batch_crop_with_same_seed():
  x = _images(1, 20)
  batch = augment.random_resized_crop_batch(x, SEED, 10)[0]
  single = augment.random_resized_crop(x[0], SEED, 10)
  np.testing.assert_allclose(batch, single, atol=2e-3)


# Crop ---------------------------------------------------------------------


def test_crop_and_resize_matches_tf_image_resize_bicubic():
  x = _images(3, 24).numpy()[:, :, :20]  # Non-square input.
  boxes = tf.constant([[0, 0, 24, 20], [3, 5, 10, 12], [10, 2, 13, 7]])
  out = augment.crop_and_resize(tf.constant(x), boxes, 16)
  for i, (top, left, h, w) in enumerate(boxes.numpy()):
    ref = tf.image.resize(x[i, top:top + h, left:left + w], [16, 16],
                          method='bicubic')
    # tf.image.resize quantises its cubic weights to a 1/1024 table.
    np.testing.assert_allclose(out[i], ref, atol=2e-3)


def test_resample_rows_sum_to_one():
  m = augment.resample_matrix(tf.constant([0, 4]), tf.constant([32, 9]), 32,
                              16)
  np.testing.assert_allclose(tf.reduce_sum(m, -1), np.ones((2, 16)), atol=1e-6)


def test_crop_boxes_area_and_aspect_within_bounds():
  # Law of tf.image.sample_distorted_bounding_box as the original calls it
  # (test_crop_distribution.py compares the two in full).
  boxes = augment.sample_crop_boxes(SEED, 4000, 32, 32).numpy()
  top, left, h, w = boxes.T
  assert (top >= 0).all() and (left >= 0).all()
  assert (top + h <= 32).all() and (left + w <= 32).all()
  # As the op: a crop smaller than the image never reaches its last row/col.
  assert (top + h < 32)[h < 32].all() and (left + w < 32)[w < 32].all()
  area = h * w / 1024.0
  # min_object_covered = 0.1 rejects crops below 0.1 though area_min = 0.08.
  assert area.min() >= 0.1 and area.max() <= 1.0
  assert 0.41 < area.mean() < 0.45, area.mean()  # The op: 0.431.
  ratio = w / h
  # Pixel aspect in [3/4, 4/3] up to rounding the width of small crops.
  assert ratio.min() > 0.75 * 0.95 and ratio.max() < 4 / 3 * 1.05
  assert 0.95 < np.median(ratio) < 1.05
  # Offsets are spread over the free range.
  assert len(np.unique(top[h < 16])) > 10


def test_crop_boxes_pixel_aspect_ignores_image_aspect():
  # A landscape image: the crop's own w/h stays in [3/4, 4/3] (not times
  # the image's 4/3).
  boxes = augment.sample_crop_boxes(SEED, 4000, 240, 320).numpy()
  ratio = boxes[:, 3] / boxes[:, 2]
  assert ratio.min() > 0.74 and ratio.max() < 1.35
  assert 1.0 < np.median(ratio) < 1.1  # Uniform in [3/4, 4/3]: 1.04.


def test_crop_boxes_respect_crop_area_min():
  boxes = augment.sample_crop_boxes(SEED, 1000, 32, 32, (0.5, 1.0)).numpy()
  assert (boxes[:, 2] * boxes[:, 3] / 1024.0).min() >= 0.5


def test_crop_boxes_same_eager_in_function_and_xla_with_tensor_sizes():
  fn = lambda h, w: augment.sample_crop_boxes(SEED, 2000, h, w)
  eager = fn(240, 320)
  for compiled in (tf.function(fn), tf.function(fn, jit_compile=True)):
    np.testing.assert_array_equal(compiled(tf.constant(240), tf.constant(320)),
                                  eager)


def test_flip_rate_is_half():
  ramp = tf.tile(tf.linspace(0.0, 1.0, 16)[None, None, :, None],
                 [4000, 16, 1, 3])
  out = augment.random_resized_crop_batch(ramp, SEED, 16, area_min=1.0)
  flipped = (out[:, 8, 0, 0] > out[:, 8, -1, 0]).numpy()
  assert 0.46 < flipped.mean() < 0.54, flipped.mean()


def test_center_crop_proportion_and_size():
  image = tf.reshape(tf.range(40 * 60 * 3, dtype=tf.float32),
                     [40, 60, 3]) / (40 * 60 * 3)
  out = augment.center_crop_and_resize(image, 35, 0.875)
  ref = tf.clip_by_value(
      tf.image.resize(image[3:38, 13:48], [35, 35], method='bicubic'), 0, 1)
  assert out.shape == (35, 35, 3)
  np.testing.assert_allclose(out, ref, atol=1e-6)
  same = augment.center_crop_and_resize(
      tf.constant(np.full((32, 32, 3), 255, np.uint8)), 32, 1.0)
  np.testing.assert_allclose(same, np.ones((32, 32, 3)), atol=1e-6)


# Colour -------------------------------------------------------------------


def test_brightness_and_contrast_match_numpy_reference():
  x = _images(3)
  f = tf.constant([0.3, 1.0, 1.6])
  np.testing.assert_allclose(augment.adjust_brightness(x, f),
                             x.numpy() * f.numpy()[:, None, None, None])
  mean = x.numpy().mean(axis=(1, 2), keepdims=True)
  ref = (x.numpy() - mean) * f.numpy()[:, None, None, None] + mean
  np.testing.assert_allclose(augment.adjust_contrast(x, f), ref, atol=1e-6)
  for i in range(3):
    np.testing.assert_allclose(augment.adjust_contrast(x, f)[i],
                               tf.image.adjust_contrast(x[i], f[i]),
                               atol=1e-6)


def test_saturation_hue_match_tf_image():
  x = _images(4)
  sat = tf.constant([0.0, 0.4, 1.0, 1.8])
  hue = tf.constant([-0.45, 0.0, 0.2, 0.5])
  out = augment.adjust_saturation_hue(x, sat, hue)
  for i in range(4):
    ref = tf.image.adjust_hue(tf.image.adjust_saturation(x[i], sat[i]),
                              hue[i])
    np.testing.assert_allclose(out[i], ref, atol=1e-5)


def _jitter_reference(images, factors, order_index):
  """Each image: tf.image ops one by one in its order, clipping after each."""
  ops = {
      0: lambda x, f: x * f,
      1: tf.image.adjust_contrast,
      2: tf.image.adjust_saturation,
      3: tf.image.adjust_hue,
  }
  out = []
  for i in range(images.shape[0]):
    x = images[i]
    for op in color.ORDERS[int(order_index[i])]:
      x = tf.clip_by_value(ops[op](x, factors[op, i]), 0.0, 1.0)
    out.append(x)
  return tf.stack(out)


def test_color_jitter_matches_sequential_tf_image_reference():
  x = _images(48, 6)
  factors, order_index = augment.jitter_params(SEED, 48, 1.0)
  assert len(set(order_index.numpy().tolist())) > 15  # Many orders covered.
  np.testing.assert_allclose(augment.color_jitter(x, SEED, 1.0),
                             _jitter_reference(x, factors, order_index),
                             atol=2e-5)


def test_every_op_order_fits_the_slot_template():
  for order in color.ORDERS:
    slots = color.order_slots(order)
    in_order = [slots[op] for op in order]
    assert max(slots) <= 5
    for op in range(4):
      assert slots[op] % 2 == (0 if op >= 2 else 1)  # HSV even, BC odd.
    for k in range(1, 4):  # Strictly later, except adjacent HSV ops.
      merged = order[k] >= 2 and order[k - 1] >= 2
      assert in_order[k] == in_order[k - 1] if merged else (
          in_order[k] > in_order[k - 1])


def test_jitter_params_ranges_and_order_uniformity():
  factors, order_index = augment.jitter_params(SEED, 24000, 1.0, p=1.0)
  factors = factors.numpy()
  for k in range(3):
    assert 0.2 <= factors[k].min() < 0.21 and 1.79 < factors[k].max() <= 1.8
  assert -0.2 <= factors[3].min() < -0.19 and 0.19 < factors[3].max() <= 0.2
  counts = np.bincount(order_index.numpy(), minlength=24)
  assert counts.min() > 850 and counts.max() < 1150


def test_color_distortion_is_jitter_then_grayscale():
  x = _images(16)
  s_jitter, s_gray = tf.unstack(tf.random.experimental.stateless_split(SEED,
                                                                       2))
  ref = augment.random_grayscale(augment.color_jitter(x, s_jitter, 0.7),
                                 s_gray)
  np.testing.assert_allclose(augment.color_distortion(x, SEED, 0.7), ref,
                             atol=1e-6)


def test_jitter_rate_is_point_eight():
  rng = np.random.default_rng(1)
  colours = rng.uniform(0.2, 0.8, (4000, 1, 1, 3)).astype(np.float32)
  x = tf.constant(np.tile(colours, [1, 2, 2, 1]))
  out = augment.color_jitter(x, SEED, 1.0)
  changed = (tf.reduce_max(tf.abs(out - x), [1, 2, 3]) > 1e-4).numpy()
  assert 0.77 < changed.mean() < 0.83, changed.mean()


def test_jitter_brightness_range_follows_strength():
  # One op changes a gray image: brightness (x * f) or contrast (no-op on a
  # constant); saturation/hue keep gray. So values stay within x * [lo, hi].
  x = tf.fill([2000, 2, 2, 3], 0.5)
  out = augment.color_jitter(x, SEED, 0.5).numpy()
  lo, hi = 0.5 * (1 - 0.8 * 0.5), 0.5 * (1 + 0.8 * 0.5)
  assert out.min() >= lo - 1e-5 and out.max() <= hi + 1e-5
  assert out.min() < lo + 0.02 and out.max() > hi - 0.02


def test_grayscale_rate_is_point_two_and_uses_luma():
  x = _images(4000, 2)
  out = augment.random_grayscale(x, SEED).numpy()
  gray = (np.ptp(out, axis=-1) < 1e-6).all(axis=(1, 2))
  assert 0.17 < gray.mean() < 0.23, gray.mean()
  luma = (x.numpy() * np.array(augment.GRAY_WEIGHTS)).sum(-1)
  np.testing.assert_allclose(out[gray][..., 0], luma[gray], atol=1e-6)


# Blur ---------------------------------------------------------------------


def test_blur_kernel_sums_to_one_and_size_is_odd_tenth():
  k = augment.gaussian_kernels(tf.constant([0.1, 1.0, 2.0]), 23)
  np.testing.assert_allclose(tf.reduce_sum(k, 1), np.ones(3), atol=1e-6)
  assert augment.blur_kernel_size(32) == 3
  assert augment.blur_kernel_size(224) == 23
  assert augment.blur_kernel_size(96) == 9


def test_blur_of_constant_image_is_constant():
  x = tf.fill([3, 16, 16, 3], 0.37)
  out = augment.gaussian_blur(x, tf.constant([0.1, 1.0, 2.0]), 7)
  np.testing.assert_allclose(out, x, atol=1e-6)


def test_blur_matches_numpy_reference():
  x = _images(2, 12).numpy()
  sigma = np.array([0.5, 2.0], np.float32)
  out = augment.gaussian_blur(tf.constant(x), tf.constant(sigma), 5).numpy()
  for i in range(2):
    t = np.arange(-2, 3)
    k = np.exp(-t ** 2 / (2 * sigma[i] ** 2))
    k /= k.sum()
    p = np.pad(x[i], [(2, 2), (2, 2), (0, 0)], mode='symmetric')
    rows = sum(k[j] * p[j:j + 12] for j in range(5))
    ref = sum(k[j] * rows[:, j:j + 12] for j in range(5))
    np.testing.assert_allclose(out[i], ref, atol=1e-5)


def test_random_blur_rate_is_half():
  x = _images(2000, 20)  # Kernel size 3.
  # sigma >= 1 so every blurred image visibly changes (at sigma = 0.1 a
  # 3-tap kernel is the identity to float precision).
  out = augment.random_blur(x, SEED, sigma_range=(1.0, 2.0))
  changed = (tf.reduce_max(tf.abs(out - x), [1, 2, 3]) > 1e-6).numpy()
  assert 0.46 < changed.mean() < 0.54, changed.mean()


@pytest.mark.parametrize('name', ['crop', 'distortion', 'blur'])
def test_xla_compiled_op_matches_eager(name):
  x = _images()
  compiled = tf.function(OPS[name], jit_compile=True)(x, SEED)
  np.testing.assert_allclose(compiled, OPS[name](x, SEED), atol=1e-4)
