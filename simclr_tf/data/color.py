"""Colour distortion ops (SimCLR Appendix A, SimCLRv2 brightness).

Batch ops on float32 images ``[B, H, W, 3]`` in [0, 1] with independent
parameters per image drawn from one stateless seed. Re-exported by
``simclr_tf.data.augment``; see there for the parameters.
"""
from __future__ import annotations

import itertools

import tensorflow as tf

from simclr_tf.data import random_ops

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # As tf.image.rgb_to_grayscale.




def adjust_brightness(images, factor):
  """Multiplies each image ``[B, H, W, C]`` by its ``factor[b]`` (SimCLRv2)."""
  return images * random_ops.per_image(factor)


def adjust_contrast(images, factor):
  """``(x - mean) * factor + mean`` per image and channel, as
  ``tf.image.adjust_contrast``; ``factor`` ``[B]``."""
  mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
  return (images - mean) * random_ops.per_image(factor) + mean


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


JITTER_OPS = ('brightness', 'contrast', 'saturation', 'hue')
_IDENTITY = (1.0, 1.0, 1.0, 0.0)
# All 24 orders of the four ops; row i lists op indices in application order.
ORDERS = tuple(itertools.permutations(range(4)))


def order_slots(order):
  """Slots of one op order in the template (HSV, BC, HSV, BC, HSV, BC).

  Saturation and hue (HSV ops) next to each other share one HSV slot: they
  act on separate HSV coordinates, so one conversion does both. Brightness
  and contrast (BC ops) each take a BC slot. Every one of the 24 orders fits
  the template in order, so running the slots in sequence applies the ops in
  each image's own order with 3 HSV conversions instead of 4.

  Args:
    order: 4 op indices (into ``JITTER_OPS``) in application order.
  Returns:
    tuple: slot (0..5) of op ``JITTER_OPS[o]`` at position o.
  """
  slots, prev, prev_hsv = [0] * 4, -1, False
  for op in order:
    hsv = op >= 2
    if not (hsv and prev_hsv):  # HSV slots are even, BC slots odd.
      prev += 2 if hsv == (prev % 2 == 0) else 1
    slots[op], prev_hsv = prev, hsv
  return tuple(slots)


_SLOT_TABLE = tuple(order_slots(o) for o in ORDERS)


def jitter_params(seed, batch_size, strength, p=0.8):
  """Random colour-jitter parameters, independent per image.

  Returns:
    factors: float32 ``[4, B]`` brightness, contrast and saturation factors
      uniform in [max(0, 1 - 0.8 s), 1 + 0.8 s] and hue shifts uniform in
      [-0.2 s, 0.2 s] (at most 0.5); identity values (1, 1, 1, 0) for the
      images not jittered (probability 1 - p).
    order_index: int32 ``[B]``: row of ``ORDERS`` (uniform over the 24).
  """
  # One draw: cheap to run and compile.
  u = random_ops.uniform(seed, [6, batch_size])
  lo, hi = max(0.0, 1.0 - 0.8 * strength), 1.0 + 0.8 * strength
  max_hue = min(0.2 * strength, 0.5)
  apply = u[0] < p
  factors = [lo + (hi - lo) * u[k] for k in (1, 2, 3)]
  factors.append(max_hue * (2.0 * u[4] - 1.0))
  factors = tf.stack([tf.where(apply, f, i) for f, i in
                      zip(factors, _IDENTITY)])
  order_index = tf.minimum(tf.cast(u[5] * len(ORDERS), tf.int32),
                           len(ORDERS) - 1)
  return factors, order_index


def _jitter_planes(planes, factors, order_index):
  """Applies ``jitter_params`` to RGB planes ``3 x [B, H, W]``."""
  slots = tf.gather(tf.constant(_SLOT_TABLE, tf.int32), order_index)

  def params(op, slot):
    value = tf.where(slots[:, op] == slot, factors[op], _IDENTITY[op])
    return tf.reshape(value, [-1, 1, 1])

  def step(i, r, g, b):
    sat, hue = params(2, 2 * i), params(3, 2 * i)
    use_hsv = (sat != 1.0) | (hue != 0.0)
    planes = [tf.where(use_hsv, tf.clip_by_value(new, 0.0, 1.0), old)
              for new, old in zip(_sat_hue_planes(r, g, b, sat, hue),
                                  (r, g, b))]
    # At most one of brightness, contrast is not 1 in this slot.
    br, co = params(0, 2 * i + 1), params(1, 2 * i + 1)
    planes = [tf.clip_by_value(
        x * (br * co) + tf.reduce_mean(x, [1, 2], keepdims=True) * (1. - co),
        0.0, 1.0) for x in planes]
    return [i + 1] + planes

  # A loop (not unrolled) keeps the XLA program small and quick to compile.
  _, r, g, b = tf.while_loop(lambda i, *_: i < 3, step,
                             [tf.constant(0)] + list(planes))
  return r, g, b


def color_jitter(images, seed, strength, p=0.8):
  """Colour jitter with probability ``p`` per image, ops in random order.

  Every image gets its own factors and its own order of the four ops
  (brightness, contrast, saturation, hue), each followed by clipping
  (SimCLR Appendix A; brightness multiplicative as in SimCLRv2).

  Args:
    images: float32 ``[B, H, W, 3]`` in [0, 1]; seed int ``[2]``;
      strength: colour distortion strength s.
  """
  factors, order_index = jitter_params(seed, tf.shape(images)[0], strength, p)
  planes = tf.unstack(images, axis=-1)  # Planes let XLA fuse per pixel.
  return tf.stack(_jitter_planes(planes, factors, order_index), axis=-1)


def to_grayscale(images):
  """``[B, H, W, 3]`` -> luma repeated on 3 channels."""
  gray = tf.reduce_sum(images * tf.constant(GRAY_WEIGHTS), -1, keepdims=True)
  return tf.tile(gray, [1, 1, 1, 3])


def random_grayscale(images, seed, p=0.2):
  """Grayscale with probability ``p`` per image."""
  apply = random_ops.uniform(seed, [tf.shape(images)[0]]) < p
  return tf.where(random_ops.per_image(apply), to_grayscale(images), images)


def color_distortion(images, seed, strength):
  """Colour jitter (p = 0.8) then grayscale (p = 0.2), SimCLR Appendix A.

  Same result as ``random_grayscale(color_jitter(images, s1, strength), s2)``
  with ``s1, s2`` split from ``seed``; computed on RGB planes.
  """
  s_jitter, s_gray = random_ops.split_seeds(seed, 2)
  batch = tf.shape(images)[0]
  factors, order_index = jitter_params(s_jitter, batch, strength)
  r, g, b = _jitter_planes(tf.unstack(images, axis=-1), factors, order_index)
  gray = GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b
  apply = tf.reshape(random_ops.uniform(s_gray, [batch]) < 0.2, [-1, 1, 1])
  return tf.stack([tf.where(apply, gray, x) for x in (r, g, b)], axis=-1)
