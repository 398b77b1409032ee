"""Pictures made of thumbnails (pure numpy): the Projector's sprite and the
kNN monitor's neighbour grid."""
from __future__ import annotations

import math

import numpy as np

MAX_SPRITE_SIDE = 8192  # TensorBoard's Projector refuses larger sprites
GREEN = (40, 170, 60)
RED = (210, 40, 40)


def sprite_thumb_side(num_images: int, image_side: int,
                      largest: int = 64) -> int:
  """The thumbnail side for a sprite of ``num_images``: at most the
  image's side, ``largest`` and what fits in ``MAX_SPRITE_SIDE``."""
  per_row = max(1, math.ceil(math.sqrt(num_images)))
  return max(1, min(image_side, largest, MAX_SPRITE_SIDE // per_row))


def sprite(thumbs: np.ndarray) -> np.ndarray:
  """uint8 ``[N, t, t, 3]`` -> one uint8 image ``[r t, r t, 3]`` with
  ``r = ceil(sqrt(N))``: thumbnail ``i`` at row ``i // r``, column
  ``i % r`` (the Projector's layout), the rest black."""
  n, t = thumbs.shape[0], thumbs.shape[1]
  r = max(1, math.ceil(math.sqrt(n)))
  out = np.zeros((r * t, r * t, 3), np.uint8)
  for i in range(n):
    row, col = divmod(i, r)
    out[row * t:(row + 1) * t, col * t:(col + 1) * t] = thumbs[i]
  return out


def _framed(thumb, colour, border):
  t = thumb.shape[0]
  out = np.empty((t + 2 * border, t + 2 * border, 3), np.uint8)
  out[:] = colour
  out[border:border + t, border:border + t] = thumb
  return out


def neighbour_grid(query_thumbs, query_labels, near_thumbs, near_labels,
                   border: int = 2, gap: int = 6) -> np.ndarray:
  """One row per query: the query (white frame), a gap, then its nearest
  bank images, most similar first, framed green when their label is the
  query's and red when not. uint8 ``[Q (t + 2b), (n + 1)(t + 2b) + gap,
  3]``.

  Args:
    query_thumbs: uint8 [Q, t, t, 3]; query_labels: [Q].
    near_thumbs: uint8 [Q, n, t, t, 3]; near_labels: [Q, n].
  """
  q, n, t = near_thumbs.shape[0], near_thumbs.shape[1], near_thumbs.shape[2]
  cell = t + 2 * border
  out = np.full((q * cell, (n + 1) * cell + gap, 3), 255, np.uint8)
  for i in range(q):
    top = i * cell
    out[top:top + cell, :cell] = _framed(query_thumbs[i], 255, border)
    for j in range(n):
      colour = GREEN if near_labels[i, j] == query_labels[i] else RED
      left = (j + 1) * cell + gap
      out[top:top + cell, left:left + cell] = _framed(
          near_thumbs[i, j], colour, border)
  return out
