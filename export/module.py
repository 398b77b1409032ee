"""The exported module: what ``tf.saved_model.load(path)`` gives a consumer.

``ExportModule`` wraps a ``SimCLRModel`` under the attribute ``model`` (a
warm start restores ``model/encoder/...`` from the export's ``variables/``)
and adds the TF Hub reusable-SavedModel attributes and the serving
signatures:

  m(images, training=False) -> dict   images: float32 [B, H, W, 3] in [0, 1]
  m.variables                         every variable the calls use
  m.trainable_variables               those a fine-tuner should update
  m.regularization_losses             tf.functions () -> float32 scalar
  signatures: serving_default (float images), image_bytes (JPEG/PNG),
              tf_example (serialized tf.train.Example, 'image/encoded')

Every signature returns the dict of ``OUTPUT_KEYS`` (``logits_sup`` only when
the model has a supervised head), float32.

Checkpoint keys: TF names each variable in ``variables/variables`` by its
shortest object path, which is the Hub tuple (``variables/<i>/...``), not
``model/encoder/...``. Restoring by object graph (``tf.train.Checkpoint(
model=...).restore``) follows the ``model`` edges and works; code that looks
variables up by key string must resolve the path through the checkpoint's
object graph instead.
"""
from __future__ import annotations

import tensorflow as tf

from simclr_tf.data import augment
from simclr_tf.models.resnet import OUTPUT_NAMES

OUTPUT_KEYS = ('default',) + OUTPUT_NAMES + (
    'proj_head_input', 'proj_head_output', 'logits_sup')
IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name='images')
BYTES_SPEC = tf.TensorSpec([None], tf.string, name='image_bytes')
EXAMPLES_SPEC = tf.TensorSpec([None], tf.string, name='examples')
IMAGE_FEATURE = 'image/encoded'
SIGNATURE_NAMES = ('serving_default', 'image_bytes', 'tf_example')


def eval_crop_proportion(image_size: int, crop_proportion: float) -> float:
  """The evaluation pipeline's crop: none at <= 32 px (CIFAR), else as given."""
  return crop_proportion if image_size > 32 else 1.0


def decode_and_preprocess(image_bytes, image_size: int,
                          crop_proportion: float):
  """Evaluation preprocessing of one encoded image, as the eval pipeline.

  Decodes JPEG/PNG/GIF/BMP to RGB, scales to [0, 1], takes the centred crop
  of ``crop_proportion`` and resizes it (bicubic) to ``image_size``; an
  image already of that size with no crop is passed through unchanged.

  Args:
    image_bytes: string scalar. Returns float32 ``[S, S, 3]``.
  """
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  image.set_shape([None, None, 3])

  def crop_and_resize():
    return augment.center_crop_and_resize(image, image_size, crop_proportion)

  if crop_proportion < 1.0:
    image = crop_and_resize()
  else:
    shape = tf.shape(image)
    same_size = tf.logical_and(tf.equal(shape[0], image_size),
                               tf.equal(shape[1], image_size))
    image = tf.cond(same_size, lambda: augment.to_float(image),
                    crop_and_resize)
  return tf.ensure_shape(image, [image_size, image_size, 3])


def _as_loss_function(regularization):
  """A zero-argument Python callable as a saveable tf.function -> scalar."""
  @tf.function(input_signature=[], autograph=False)
  def regularization_loss():
    return tf.cast(regularization(), tf.float32)
  return regularization_loss


class ExportModule(tf.Module):
  """SimCLR model + TF Hub attributes, ready for ``tf.saved_model.save``.

  Args:
    model: a built ``SimCLRModel`` (``call(images, training) -> dict``).
    image_size: the side the model was trained at (``image_bytes`` and
      ``tf_example`` resize to it; float inputs may be any size >= it).
    crop_proportion: evaluation centre crop for encoded images (already
      resolved: 1.0 at <= 32 px, see ``eval_crop_proportion``).
    regularization: None, or a zero-argument callable returning the scalar
      regularization term (traced into ``regularization_losses``).
  """

  # tf.Module defines these two as read-only properties; the Hub convention
  # needs them saved as attributes, so plain class attributes shadow them.
  variables = ()
  trainable_variables = ()

  def __init__(self, model, *, image_size: int, crop_proportion: float,
               regularization=None):
    super().__init__(name='simclr_export')
    if not 0 < crop_proportion <= 1:
      raise ValueError(f'crop_proportion={crop_proportion!r} is invalid: '
                       'must be in (0, 1].')
    self.model = model
    # Tuples, not lists: the same objects the calls capture, so a consumer's
    # optimizer updates what the functions read.
    self.variables = tuple(model.variables)
    self.trainable_variables = tuple(model.trainable_variables)
    self.regularization_losses = (
        (_as_loss_function(regularization),) if regularization else ())
    self._image_size = int(image_size)
    self._crop = float(crop_proportion)

  @property
  def image_size(self) -> int:
    """Side encoded images are resized to (not saved: see the JSON)."""
    return self._image_size

  @property
  def crop_proportion(self) -> float:
    """Centre crop applied to encoded images before resizing."""
    return self._crop

  # autograph=False: nothing here needs it, and autograph re-reads source
  # files at trace time (an edit during a long run breaks the export).
  @tf.function(autograph=False)
  def __call__(self, images, training=False):
    """float32 ``[B, H, W, 3]`` in [0, 1] -> dict of float32 outputs.

    ``training=True`` runs BatchNorm on batch statistics and updates its
    moving averages (Python bool; both values are traced at export).
    """
    outputs = self.model(images, training=training)
    outputs = {k: tf.cast(v, tf.float32) for k, v in outputs.items()}
    outputs['default'] = outputs['final_avg_pool']
    return outputs

  def trace(self) -> tuple:
    """Traces ``__call__`` for both ``training`` values (before saving);
    returns the output keys, sorted."""
    for training in (False, True):
      fn = self.__call__.get_concrete_function(IMAGES_SPEC, training=training)
    return tuple(sorted(fn.structured_outputs))

  def signatures(self) -> dict:
    """{name: concrete function} of ``SIGNATURE_NAMES`` (inference mode)."""
    size, crop = self._image_size, self._crop
    # The traced function itself, so the signatures call one shared graph.
    infer = self.__call__.get_concrete_function(IMAGES_SPEC, training=False)

    @tf.function(input_signature=[IMAGES_SPEC], autograph=False)
    def serve_images(images):
      return infer(images)

    @tf.function(input_signature=[BYTES_SPEC], autograph=False)
    def serve_bytes(image_bytes):
      images = tf.map_fn(
          lambda b: decode_and_preprocess(b, size, crop), image_bytes,
          fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
      return infer(images)

    @tf.function(input_signature=[EXAMPLES_SPEC], autograph=False)
    def serve_examples(examples):
      features = tf.io.parse_example(
          examples, {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)})
      return serve_bytes(features[IMAGE_FEATURE])

    return {'serving_default': serve_images.get_concrete_function(),
            'image_bytes': serve_bytes.get_concrete_function(),
            'tf_example': serve_examples.get_concrete_function()}
