"""SimCLR augmentations as pure TensorFlow ops (SimCLR Appendix A).

Batch ops take float32 images ``[B, H, W, 3]`` in [0, 1] and draw independent
parameters for every example from one stateless seed (``int [2]``): the same
seed gives the same output, eagerly, in ``tf.function`` and in ``tf.data``.
Per-image ops (``random_resized_crop``, ``center_crop_and_resize``) serve
images whose sizes differ (image folders, ImageNet) before batching.

Appendix A (and SimCLRv2) parameters:
  * random resized crop: area uniform in [crop_area_min, 1] of the image,
    aspect ratio log-uniform in [3/4, 4/3] times the image's aspect ratio, up
    to 100 attempts, else the whole image (the centred crop of full size);
    bicubic resize; horizontal flip with p = 0.5.
  * colour jitter with p = 0.8: brightness (multiplicative, SimCLRv2),
    contrast and saturation factors uniform in [max(0, 1 - 0.8 s), 1 + 0.8 s],
    hue shift uniform in [-0.2 s, 0.2 s] (at most 0.5), in random order,
    clipped to [0, 1] after each; then grayscale with p = 0.2.
  * Gaussian blur with p = 0.5, sigma uniform in [0.1, 2.0], kernel size 10 %
    of the image side made odd, separable, symmetric padding (a constant
    image stays constant).
"""
from __future__ import annotations

import math

import tensorflow as tf

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # As tf.image.rgb_to_grayscale.
ASPECT_RATIO_RANGE = (3 / 4, 4 / 3)
MAX_CROP_ATTEMPTS = 100


def _seeds(seed, n):
  return tf.unstack(tf.random.experimental.stateless_split(seed, n))


def _uniform(seed, shape, minval=0.0, maxval=1.0):
  return tf.random.stateless_uniform(shape, seed, minval, maxval)


def _bcast(v):
  """``[B]`` -> ``[B, 1, 1, 1]`` to scale images."""
  return tf.reshape(v, [-1, 1, 1, 1])


def to_float(images):
  """uint8 in [0, 255] -> float32 in [0, 1] (any shape)."""
  return tf.cast(images, tf.float32) / 255.0


# Random resized crop ------------------------------------------------------


def sample_crop_boxes(seed, batch_size, height, width, area_range=(0.08, 1.0),
                      aspect_ratio_range=ASPECT_RATIO_RANGE,
                      max_attempts=MAX_CROP_ATTEMPTS):
  """Inception-style crop windows (SimCLR Appendix A, "random crop").

  Args:
    seed: int ``[2]``.
    batch_size: number of boxes B.
    height, width: image size (ints or scalar tensors).
    area_range: crop area as a fraction of the image area.
    aspect_ratio_range: crop width/height relative to the image's.
    max_attempts: tries per box; if none fits, the whole image.

  Returns:
    int32 ``[B, 4]``: ``(top, left, crop_height, crop_width)``.
  """
  h_img, w_img = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
  s_area, s_ratio, s_pos = _seeds(seed, 3)
  shape = [batch_size, max_attempts]
  area = _uniform(s_area, shape, *area_range) * h_img * w_img
  log_ratio = _uniform(s_ratio, shape, math.log(aspect_ratio_range[0]),
                       math.log(aspect_ratio_range[1]))
  ratio = tf.exp(log_ratio) * w_img / h_img
  w = tf.round(tf.sqrt(area * ratio))
  h = tf.round(tf.sqrt(area / ratio))
  ok = (w >= 1) & (h >= 1) & (w <= w_img) & (h <= h_img)
  first = tf.argmax(tf.cast(ok, tf.int32), axis=1, output_type=tf.int32)
  found = tf.reduce_any(ok, axis=1)
  h = tf.where(found, tf.gather(h, first, batch_dims=1), h_img)
  w = tf.where(found, tf.gather(w, first, batch_dims=1), w_img)
  pos = _uniform(s_pos, [batch_size, 2])
  top = tf.minimum(tf.floor(pos[:, 0] * (h_img - h + 1)), h_img - h)
  left = tf.minimum(tf.floor(pos[:, 1] * (w_img - w + 1)), w_img - w)
  return tf.cast(tf.stack([top, left, h, w], axis=1), tf.int32)


def _keys_cubic(x, a=-0.5):
  """Keys' cubic convolution kernel, as ``tf.image.resize`` 'bicubic'."""
  x = tf.abs(x)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return tf.where(x <= 1, near, tf.where(x < 2, far, tf.zeros_like(x)))


def resample_matrix(start, size, in_size, out_size):
  """Bicubic weights that crop ``[start, start + size)`` and resize it.

  Row ``i`` samples the crop at ``start + (i + 0.5) * size / out_size``
  (half-pixel centres) with weights renormalised at the crop border, which
  equals ``tf.image.resize(crop, method='bicubic', antialias=False)``.

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
  """
  s_box, s_flip = _seeds(seed, 2)
  batch = tf.shape(images)[0]
  boxes = sample_crop_boxes(s_box, batch, images.shape[1], images.shape[2],
                            (area_min, 1.0))
  flips = _uniform(s_flip, [batch]) < 0.5 if flip else None
  # Bicubic overshoots; clip so every op maps [0, 1] to [0, 1].
  return tf.clip_by_value(crop_and_resize(images, boxes, out_size, flips),
                          0.0, 1.0)


def random_resized_crop(image, seed, out_size, area_min=0.08, flip=True):
  """Per-image random resized crop (+ flip) for images of any size.

  Draws the same box and flip as ``random_resized_crop_batch`` with B = 1.

  Args:
    image: uint8 or float ``[H, W, C]``. Returns float32 ``[S, S, C]``
      clipped to [0, 1].
  """
  s_box, s_flip = _seeds(seed, 2)
  shape = tf.shape(image)
  box = sample_crop_boxes(s_box, 1, shape[0], shape[1], (area_min, 1.0))[0]
  crop = image[box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
  if crop.dtype == tf.uint8:
    crop = to_float(crop)
  out = tf.image.resize(crop, [out_size, out_size], method='bicubic')
  if flip:
    out = tf.where(_uniform(s_flip, [1])[0] < 0.5, out[:, ::-1], out)
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


# Colour distortion --------------------------------------------------------


def adjust_brightness(images, factor):
  """Multiplies each image ``[B, H, W, C]`` by its ``factor[b]`` (SimCLRv2)."""
  return images * _bcast(factor)


def adjust_contrast(images, factor):
  """``(x - mean) * factor + mean`` per image and channel, as
  ``tf.image.adjust_contrast``; ``factor`` ``[B]``."""
  mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  return (images - mean) * _bcast(factor) + mean


def _sat_hue_planes(r, g, b, saturation, hue):
  """Saturation scale and hue shift in HSV (Smith 1978) on RGB planes.

  Same maths as ``tf.image.rgb_to_hsv`` -> scale S (clipped to [0, 1]),
  shift H (mod 1) -> ``tf.image.hsv_to_rgb``, written as one elementwise
  expression per plane so XLA fuses it into a single loop.

  Args:
    r, g, b: float32 ``[B, H, W]`` in [0, 1].
    saturation, hue: ``[B, 1, 1]`` factor and shift (turns).
  """
  v = tf.maximum(r, tf.maximum(g, b))
  chroma = v - tf.minimum(r, tf.minimum(g, b))
  sat = tf.where(v > 0, chroma / tf.where(v > 0, v, 1.0), 0.0)
  safe = tf.where(chroma > 0, chroma, 1.0)
  h = tf.where(v == r, (g - b) / safe,
               tf.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
  h = tf.where(chroma > 0, h / 6.0, 0.0) + hue
  h = h - tf.floor(h)
  new_chroma = v * tf.clip_by_value(sat * saturation, 0.0, 1.0)

  def plane(n):
    k = 6.0 * h + n
    k = tf.where(k >= 6.0, k - 6.0, k)
    return v - new_chroma * tf.clip_by_value(tf.minimum(k, 4.0 - k), 0.0, 1.0)
  return plane(5.0), plane(3.0), plane(1.0)


def adjust_saturation_hue(images, saturation, hue):
  """HSV saturation scale and hue shift per image, as
  ``tf.image.adjust_saturation`` then ``tf.image.adjust_hue``.

  Args:
    images: float32 ``[B, H, W, 3]`` in [0, 1].
    saturation: ``[B]`` factors (1 = unchanged).
    hue: ``[B]`` shifts in turns (0 = unchanged).
  """
  planes = _sat_hue_planes(*tf.unstack(images, axis=-1),
                           saturation[:, None, None], hue[:, None, None])
  return tf.stack(planes, axis=-1)


def color_jitter(images, seed, strength, p=0.8):
  """Colour jitter with probability ``p`` per image, ops in random order.

  Every image gets its own factors and its own order of the four ops
  (brightness, contrast, saturation, hue), each followed by clipping.

  Args:
    images: float32 ``[B, H, W, 3]`` in [0, 1]; seed int ``[2]``;
      strength: colour distortion strength s.
  """
  s_apply, s_order, s_b, s_c, s_s, s_h = _seeds(seed, 6)
  batch = tf.shape(images)[0]
  lo, hi = max(0.0, 1.0 - 0.8 * strength), 1.0 + 0.8 * strength
  max_hue = min(0.2 * strength, 0.5)
  apply = _uniform(s_apply, [batch]) < p
  params = [tf.where(apply, _uniform(s, [batch], lo, hi), 1.0)
            for s in (s_b, s_c, s_s)]
  params.append(tf.where(apply, _uniform(s_h, [batch], -max_hue, max_hue),
                         0.0))
  identity = (1.0, 1.0, 1.0, 0.0)
  order = tf.argsort(_uniform(s_order, [batch, 4]), axis=1)
  order = tf.transpose(order)  # [4, B]: op index per position.

  def step(position, r, g, b):
    # One op per image at this position: the others get identity values.
    br, co, sa, hu = [tf.reshape(tf.where(order[position] == k, params[k],
                                          identity[k]), [-1, 1, 1])
                      for k in range(4)]
    # Only one of br, co differs from 1: this is brightness or contrast.
    planes = [tf.clip_by_value(
        x * (br * co) + tf.reduce_mean(x, [1, 2], keepdims=True) * (1. - co),
        0.0, 1.0) for x in (r, g, b)]
    use_hsv = (sa != 1.0) | (hu != 0.0)
    planes = [tf.where(use_hsv, new, old) for new, old in
              zip(_sat_hue_planes(*planes, sa, hu), planes)]
    return [position + 1] + planes

  # A loop (not unrolled) keeps the XLA program small: it compiles in ~1 s.
  planes = tf.unstack(images, axis=-1)  # Planes let XLA fuse per pixel.
  _, r, g, b = tf.while_loop(lambda i, *_: i < 4, step,
                             [tf.constant(0)] + planes)
  return tf.stack([r, g, b], axis=-1)


def to_grayscale(images):
  """``[B, H, W, 3]`` -> luma repeated on 3 channels."""
  gray = tf.reduce_sum(images * tf.constant(GRAY_WEIGHTS), -1, keepdims=True)
  return tf.tile(gray, [1, 1, 1, 3])


def random_grayscale(images, seed, p=0.2):
  """Grayscale with probability ``p`` per image."""
  apply = _uniform(seed, [tf.shape(images)[0]]) < p
  return tf.where(_bcast(apply), to_grayscale(images), images)


def color_distortion(images, seed, strength):
  """Colour jitter (p = 0.8) then grayscale (p = 0.2), SimCLR Appendix A."""
  s_jitter, s_gray = _seeds(seed, 2)
  return random_grayscale(color_jitter(images, s_jitter, strength), s_gray)


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
  s_apply, s_sigma = _seeds(seed, 2)
  batch = tf.shape(images)[0]
  sigma = _uniform(s_sigma, [batch], *sigma_range)
  size = blur_kernel_size(images.shape[1])
  blurred = gaussian_blur(images, sigma, size)
  return tf.where(_bcast(_uniform(s_apply, [batch]) < p), blurred, images)
