"""The serving signatures: encoded bytes and tf.train.Example inputs."""
import numpy as np
import tensorflow as tf

from export.module import decode_and_preprocess
from simclr_tf.data import augment


def _uint8(images):
  return tf.cast(tf.round(images * 255.0), tf.uint8)


def _encode(images, fmt):
  enc = tf.io.encode_png if fmt == 'png' else (
      lambda x: tf.io.encode_jpeg(x, quality=95))
  return tf.stack([enc(x) for x in _uint8(images)])


def test_png_bytes_equal_float_path(loaded_export, images):
  pngs = _encode(images, 'png')
  for png, image in zip(pngs, images):  # lossless: the very same pixels
    np.testing.assert_array_equal(decode_and_preprocess(png, 32, 1.0), image)
  want = loaded_export.signatures['serving_default'](images=images)
  got = loaded_export.signatures['image_bytes'](image_bytes=pngs)
  for key in want:  # another graph may sum in another order: 1e-5
    np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)


def _smooth_images():
  """float32 [2, 32, 32, 3] low-frequency images (JPEG keeps them well)."""
  y, x = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32),
                     indexing='ij')
  images = [np.stack([x, y, 0.5 + 0.4 * np.sin(6 * x * y)], -1),
            np.stack([1 - y, 0.3 + 0.3 * x, x * y], -1)]
  return (np.round(np.stack(images) * 255) / 255).astype(np.float32)


def test_jpeg_bytes_match_float_path(loaded_export):
  images = _smooth_images()
  jpegs = _encode(images, 'jpeg')
  decoded = tf.stack([tf.io.decode_jpeg(b) for b in jpegs])
  got = loaded_export.signatures['image_bytes'](image_bytes=jpegs)
  # Same decoder, same preprocessing: the decoded JPEG's float path.
  want = loaded_export.signatures['serving_default'](
      images=tf.cast(decoded, tf.float32) / 255.0)
  np.testing.assert_allclose(got['default'], want['default'], atol=1e-5)
  # The original (lossless) images: within JPEG's error.
  assert np.abs(decoded.numpy() / 255.0 - images).mean() < 0.01
  lossless = loaded_export.signatures['serving_default'](images=images)
  diff = np.linalg.norm(got['default'] - lossless['default'], axis=1)
  assert (diff < 0.05 * np.linalg.norm(lossless['default'], axis=1)).all()


def test_tf_example_signature(loaded_export, images):
  pngs = _encode(images, 'png')
  examples = [tf.train.Example(features=tf.train.Features(feature={
      'image/encoded': tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[b.numpy()])),
      'image/class/label': tf.train.Feature(
          int64_list=tf.train.Int64List(value=[1]))})).SerializeToString()
              for b in pngs]
  got = loaded_export.signatures['tf_example'](examples=tf.constant(examples))
  want = loaded_export.signatures['serving_default'](images=images)
  np.testing.assert_allclose(got['logits_sup'], want['logits_sup'],
                             atol=1e-5)
  assert got['default'].shape == (4, 64)


def test_preprocess_crops_and_resizes_like_eval_pipeline():
  rng = np.random.default_rng(1)
  image = rng.integers(0, 256, (48, 40, 3)).astype(np.uint8)
  png = tf.io.encode_png(image)
  got = decode_and_preprocess(png, 64, 0.875)
  want = augment.center_crop_and_resize(tf.constant(image), 64, 0.875)
  assert got.shape == (64, 64, 3)
  np.testing.assert_allclose(got, want, atol=1e-6)
  # CIFAR size: no crop, only a resize when the size differs
  small = decode_and_preprocess(png, 32, 1.0)
  np.testing.assert_allclose(
      small, augment.center_crop_and_resize(tf.constant(image), 32, 1.0),
      atol=1e-6)
  same = decode_and_preprocess(tf.io.encode_png(image[:32, :32]), 32, 1.0)
  np.testing.assert_array_equal(same, image[:32, :32] / np.float32(255.0))
