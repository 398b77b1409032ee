"""SimCLR augmentations as pure TensorFlow ops (SimCLR Appendix A).

Batch ops take float32 images ``[B, H, W, 3]`` in [0, 1] and draw independent
parameters for every example from one stateless seed (``int [2]``): the same
seed gives the same output, eagerly, in ``tf.function`` and in ``tf.data``.
Per-image ops (``random_resized_crop``, ``center_crop_and_resize``) serve
images whose sizes differ (image folders, ImageNet) before batching.

Appendix A (and SimCLRv2) parameters:
  * random resized crop: boxes drawn as the original release's
    ``tf.image.sample_distorted_bounding_box`` draws them (area_range
    [crop_area_min, 1], min_object_covered 0.1, so areas >= 0.1 of the
    image): per attempt the crop's pixel aspect width/height uniform in
    [3/4, 4/3], an integer height uniform between those giving the smallest
    and the largest area, width = round(height * aspect); up to 100 attempts,
    else the whole image; offset uniform. Bicubic resize; horizontal flip
    with p = 0.5.
  * colour jitter with p = 0.8: brightness (multiplicative, SimCLRv2),
    contrast and saturation factors uniform in [max(0, 1 - 0.8 s), 1 + 0.8 s],
    hue shift uniform in [-0.2 s, 0.2 s] (at most 0.5), in random order,
    clipped to [0, 1] after each; then grayscale with p = 0.2.
  * Gaussian blur with p = 0.5, sigma uniform in [0.1, 2.0], kernel size 10 %
    of the image side made odd, separable, symmetric padding (a constant
    image stays constant).
"""
from __future__ import annotations

import tensorflow as tf

from simclr_tf.data import random_ops

# Colour ops live in color.py; re-exported so augment.py is the one API.
from simclr_tf.data.color import (  # noqa: F401
    GRAY_WEIGHTS, JITTER_OPS, adjust_brightness, adjust_contrast,
    adjust_saturation_hue, color_distortion, color_jitter, jitter_params,
    random_grayscale, to_grayscale)

ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)
MAX_CROP_ATTEMPTS = 100
# The original release passes min_object_covered=0.1 with the whole image as
# the only object box, so a crop must cover at least 10 % of the image: with
# area_range (0.08, 1) the smallest crops come from 0.1, not 0.08.
MIN_OBJECT_COVERED = 0.1


def to_float(images):
  """uint8 in [0, 255] -> float32 in [0, 1] (any shape)."""
  return tf.cast(images, tf.float32) / 255.0


# Random resized crop ------------------------------------------------------


def sample_crop_boxes(seed, batch_size, height, width, area_range=(0.08, 1.0),
                      aspect_ratio_range=ASPECT_RATIO_RANGE,
                      max_attempts=MAX_CROP_ATTEMPTS):
  """Inception-style crop windows (SimCLR Appendix A, "random crop").

  Draws from the distribution of the original release's
  ``tf.image.sample_distorted_bounding_box`` (whole-image box,
  ``min_object_covered=MIN_OBJECT_COVERED``, ``max_attempts`` tries, else the
  whole image), re-implemented batched so XLA can compile it: per attempt an
  aspect ratio uniform in ``aspect_ratio_range``, an integer height uniform
  between those of the smallest and largest area (``_crop_sizes``), then for
  the first valid attempt an offset uniform in ``[0, H - h)`` (0 if h = H).

  Args:
    seed: int ``[2]``.
    batch_size: number of boxes B.
    height, width: image size (ints or scalar tensors).
    area_range: ``(min, max)`` crop area as a fraction of the image area, in
      (0, 1].
    aspect_ratio_range: crop width/height in pixels.
    max_attempts: tries per box; if none fits, the whole image.

  Returns:
    int32 ``[B, 4]``: ``(top, left, crop_height, crop_width)``.
  """
  h_img, w_img = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  # One draw for all attempts: cheap to run and to compile with XLA.
  u = random_ops.uniform(seed, [2 * max_attempts + 2, batch_size])
  lo, hi = aspect_ratio_range
  aspect = lo + (hi - lo) * u[:max_attempts]  # [A, B], uniform as the op's.
  h, w, ok = _crop_sizes(aspect, u[max_attempts:2 * max_attempts], h_img,
                         w_img, area_range)
  h, w, ok = tf.transpose(h), tf.transpose(w), tf.transpose(ok)  # [B, A]
  first = tf.argmax(tf.cast(ok, tf.int32), axis=1, output_type=tf.int32)
  found = tf.reduce_any(ok, axis=1)
  h = tf.where(found, tf.gather(h, first, batch_dims=1), h_img)
  w = tf.where(found, tf.gather(w, first, batch_dims=1), w_img)
  top = _crop_offset(u[-2], h_img - h)
  left = _crop_offset(u[-1], w_img - w)
  return tf.cast(tf.stack([top, left, h, w], axis=1), tf.int32)


def _crop_offset(u, free):
  """The op's offset: uniform in ``[0, free)``, 0 when ``free`` is 0.

  Like the kernel (``Uniform(H - h)``), a crop smaller than the image never
  touches its last row/column; kept so our boxes follow the op's law.
  """
  # min(): u * free can round up to free in float32.
  return tf.minimum(tf.floor(u * free), tf.maximum(free - 1.0, 0.0))


def _crop_sizes(aspect, u, h_img, w_img, area_range):
  """One attempt of the kernel's ``GenerateRandomCrop`` size step, batched.

  Float32 as the kernel; ``tf.round`` rounds half to even as its ``lrintf``.

  Args:
    aspect: float32 ``[A, B]`` crop width/height per attempt.
    u: float32 ``[A, B]`` uniforms in [0, 1) for the height.
    h_img, w_img: float32 scalars, the image size.
    area_range: ``(min, max)`` fractions of the image area.

  Returns:
    ``(h, w, ok)``: float32 ``[A, B]`` sizes and bool ``[A, B]`` whether the
    attempt is accepted.
  """
  image_area = h_img * w_img
  # Same float32 product order as the kernel (fraction * W * H).
  min_area = tf.cast(area_range[0], tf.float32) * w_img * h_img
  max_area = tf.cast(area_range[1], tf.float32) * w_img * h_img
  max_h = _max_crop_height(aspect, h_img, w_img, max_area)
  min_h = tf.minimum(tf.round(tf.sqrt(min_area / aspect)), max_h)
  # Integer height uniform in [min_h, max_h]; min(): u * n may round to n.
  h = tf.minimum(min_h + tf.floor(u * (max_h - min_h + 1.0)), max_h)
  w = tf.round(h * aspect)
  # Rounding can leave the area just outside the range: the kernel retries
  # once one pixel taller, then once one pixel shorter.
  h = tf.where(h * w < min_area, h + 1.0, h)
  w = tf.round(h * aspect)
  h = tf.where(h * w > max_area, h - 1.0, h)
  w = tf.round(h * aspect)
  area = h * w
  ok = ((area >= min_area) & (area <= max_area) & (h >= 1.0) & (w >= 1.0)
        & (h <= h_img) & (w <= w_img))
  # The op's overlap check against the whole-image box: the crop covers at
  # least MIN_OBJECT_COVERED of the image.
  return h, w, ok & (area / image_area >= MIN_OBJECT_COVERED)


def _max_crop_height(aspect, h_img, w_img, max_area):
  """Tallest height the kernel allows: area at most ``max_area``, rounded
  width ``round(h * aspect)`` at most the image width, h at most its height.
  """
  max_h = tf.round(tf.sqrt(max_area / aspect))
  # Too wide after rounding: the kernel takes trunc((W + 0.5 - eps) / aspect)
  # (in double), one less if that still rounds too wide.
  fit = tf.floor((tf.cast(w_img, tf.float64) + 0.5 - 1e-7)
                 / tf.cast(aspect, tf.float64))
  fit = tf.cast(fit, tf.float32)
  fit = tf.where(tf.round(fit * aspect) > w_img, fit - 1.0, fit)
  max_h = tf.where(tf.round(max_h * aspect) > w_img, fit, max_h)
  return tf.minimum(max_h, h_img)


def _keys_cubic(x, a=-0.5):
  """Keys' cubic convolution kernel, as ``tf.image.resize`` 'bicubic'."""
  x = tf.abs(x)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return tf.where(x <= 1, near, tf.where(x < 2, far, tf.zeros_like(x)))


def resample_matrix(start, size, in_size, out_size):
  """Bicubic weights that crop ``[start, start + size)`` and resize it.

  Row ``i`` samples the crop at ``start + (i + 0.5) * size / out_size``
  (half-pixel centres) with weights renormalised at the crop border: the
  result equals ``tf.image.resize(crop, method='bicubic')`` (Keys cubic,
  a = -0.5, no antialiasing) up to that op's 1/1024 weight-table rounding.

  Args:
    start, size: ``[B]`` crop offsets and lengths along one axis.
    in_size: image length along that axis (int).
    out_size: output length (int).

  Returns:
    float32 ``[B, out_size, in_size]``.
  """
  start = tf.cast(start, tf.float32)[:, None, None]
  size = tf.cast(size, tf.float32)[:, None, None]
  i = tf.range(out_size, dtype=tf.float32)[None, :, None]
  j = tf.range(in_size, dtype=tf.float32)[None, None, :]
  centre = start + (i + 0.5) * size / out_size
  weights = _keys_cubic(j + 0.5 - centre)
  weights = tf.where((j >= start) & (j < start + size), weights, 0.0)
  return weights / tf.reduce_sum(weights, axis=-1, keepdims=True)


def crop_and_resize(images, boxes, out_size, flip=None):
  """Crops every image to its box and resizes (bicubic) to ``out_size``.

  Args:
    images: float32 ``[B, H, W, C]`` with static H and W.
    boxes: int32 ``[B, 4]`` ``(top, left, height, width)``.
    out_size: int output side S.
    flip: optional bool ``[B]``: mirror those outputs left-right.

  Returns:
    float32 ``[B, S, S, C]``.
  """
  height, width = images.shape[1], images.shape[2]
  rows = resample_matrix(boxes[:, 0], boxes[:, 2], height, out_size)
  cols = resample_matrix(boxes[:, 1], boxes[:, 3], width, out_size)
  if flip is not None:
    cols = tf.where(flip[:, None, None], tf.reverse(cols, axis=[1]), cols)
  out = tf.einsum('byh,bhwc->bywc', rows, images)
  return tf.einsum('bxw,bywc->byxc', cols, out)


def random_resized_crop_batch(images, seed, out_size, area_min=0.08,
                              flip=True):
  """Random resized crop (+ flip, p = 0.5) of a batch of equal-size images.

  Args:
    images: float32 ``[B, H, W, C]`` (static H, W). Returns ``[B, S, S, C]``
      clipped to [0, 1].
    area_min: lower end of the crop's area range (``--crop_area_min``);
      boxes as ``sample_crop_boxes``, so areas are also >= 0.1.
  """
  s_box, s_flip = random_ops.split_seeds(seed, 2)
  batch = tf.shape(images)[0]
  boxes = sample_crop_boxes(s_box, batch, images.shape[1], images.shape[2],
                            (area_min, 1.0))
  flips = random_ops.uniform(s_flip, [batch]) < 0.5 if flip else None
  # Bicubic overshoots; clip so every op maps [0, 1] to [0, 1].
  return tf.clip_by_value(crop_and_resize(images, boxes, out_size, flips),
                          0.0, 1.0)


def random_resized_crop(image, seed, out_size, area_min=0.08, flip=True):
  """Per-image random resized crop (+ flip) for images of any size.

  Draws the same box and flip as ``random_resized_crop_batch`` with B = 1.

  Args:
    image: uint8 or float ``[H, W, C]``. Returns float32 ``[S, S, C]``
      clipped to [0, 1].
    area_min: as in ``random_resized_crop_batch``.
  """
  s_box, s_flip = random_ops.split_seeds(seed, 2)
  shape = tf.shape(image)
  box = sample_crop_boxes(s_box, 1, shape[0], shape[1], (area_min, 1.0))[0]
  crop = image[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
  if crop.dtype == tf.uint8:
    crop = to_float(crop)
  out = tf.image.resize(crop, [out_size, out_size], method='bicubic')
  if flip:
    out = tf.where(random_ops.uniform(s_flip, [1])[0] < 0.5, out[:, ::-1], out)
  return tf.clip_by_value(out, 0.0, 1.0)


def center_crop_and_resize(image, out_size, crop_proportion=0.875):
  """Evaluation crop: the centred window with the output's (square) aspect,
  ``crop_proportion`` of the largest such window, resized (bicubic).

  Args:
    image: uint8 or float ``[H, W, C]``. Returns float32 ``[S, S, C]``.
  """
  if image.dtype == tf.uint8:
    image = to_float(image)
  shape = tf.shape(image)
  side = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
  crop = tf.cast(tf.round(side * crop_proportion), tf.int32)
  top, left = (shape[0] - crop + 1) // 2, (shape[1] - crop + 1) // 2
  image = image[top:top + crop, left:left + crop]
  if image.shape[0] == out_size and image.shape[1] == out_size:
    return image
  image = tf.image.resize(image, [out_size, out_size], method='bicubic')
  return tf.clip_by_value(image, 0.0, 1.0)


# Gaussian blur ------------------------------------------------------------


def blur_kernel_size(image_side):
  """Odd kernel size about 10 % of the side (the original's rule)."""
  return (image_side // 10) // 2 * 2 + 1


def gaussian_kernels(sigma, kernel_size):
  """Normalised 1-D Gaussians: ``sigma`` ``[B]`` -> float32 ``[B, k]``."""
  radius = kernel_size // 2
  x = tf.range(-radius, radius + 1, dtype=tf.float32)[None, :]
  sigma = tf.cast(sigma, tf.float32)[:, None]
  kernel = tf.exp(-tf.square(x) / (2.0 * tf.square(sigma)))
  return kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)


def gaussian_blur(images, sigma, kernel_size):
  """Separable Gaussian blur, one ``sigma[b]`` per image, symmetric padding.

  Args:
    images: float32 ``[B, H, W, C]``; sigma ``[B]``; kernel_size odd int.
  """
  radius = kernel_size // 2
  if radius == 0:
    return images
  shape = tf.shape(images)
  b, h, w, c = shape[0], shape[1], shape[2], shape[3]
  # Fold the batch into channels so one depthwise conv uses B kernels.
  x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, h, w, b * c])
  x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
             mode='SYMMETRIC')
  kernel = tf.repeat(gaussian_kernels(sigma, kernel_size), c, axis=0)
  kernel = tf.transpose(kernel)  # [k, B * C]
  x = tf.nn.depthwise_conv2d(x, kernel[:, None, :, None], [1, 1, 1, 1],
                             'VALID')
  x = tf.nn.depthwise_conv2d(x, kernel[None, :, :, None], [1, 1, 1, 1],
                             'VALID')
  return tf.transpose(tf.reshape(x, [h, w, b, c]), [2, 0, 1, 3])


def random_blur(images, seed, p=0.5, sigma_range=(0.1, 2.0)):
  """Gaussian blur with probability ``p`` per image (SimCLR Appendix A)."""
  u = random_ops.uniform(seed, [2, tf.shape(images)[0]])
  sigma = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * u[1]
  blurred = gaussian_blur(images, sigma, blur_kernel_size(images.shape[1]))
  return tf.where(random_ops.per_image(u[0] < p), blurred, images)
