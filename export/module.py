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
the model has a supervised head), float32. An empty batch (0 images, 0
strings) returns the same keys with batch dimension 0. A ``tf_example``
string that is not a serialized ``tf.train.Example`` with an
``'image/encoded'`` bytes feature raises ``tf.errors.InvalidArgumentError``
that says so, names its index and shows its first bytes.

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
# How many bytes of a bad tf_example string its error message shows.
_SHOWN_BYTES = 24


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


def _shown(value):
  """String scalar -> its first ``_SHOWN_BYTES`` bytes as valid UTF-8.

  For an error message: bytes that are not UTF-8 become U+FFFD (Python
  raises ``UnicodeDecodeError`` on a message that is not UTF-8); the
  ``Assert`` op C-escapes control characters, quotes and backslashes.
  """
  head = tf.strings.unicode_transcode(
      tf.strings.substr(value, 0, _SHOWN_BYTES), 'UTF-8', 'UTF-8',
      errors='replace')
  more = tf.where(tf.strings.length(value) > _SHOWN_BYTES,
                  f' (the first {_SHOWN_BYTES})', '')
  return tf.strings.join(['`', head, '`', more])


def _first_unparsable(examples, parse):
  """Index (int64) of the first string ``parse`` fails on, -1 if none.

  Each string is parsed on its own in a ``tf.data`` pipeline whose
  ``ignore_errors`` drops the failures; the first index missing from what
  is left is the answer.
  """
  count = tf.size(examples, out_type=tf.int64)

  def parsed_index(index, example):
    # A data dependency: tf.data prunes ops that only a control edge needs.
    length = tf.strings.length(parse(example[tf.newaxis]))[0]
    return tf.where(length >= 0, index, -1)

  indices = tf.data.Dataset.zip(
      tf.data.Dataset.range(count),
      tf.data.Dataset.from_tensor_slices(examples)).map(
          parsed_index).ignore_errors()

  def step(state, index):
    expected, first = state
    gap = tf.logical_and(first < 0, tf.not_equal(index, expected))
    return index + 1, tf.where(gap, expected, first)

  expected, first = indices.reduce(
      (tf.constant(0, tf.int64), tf.constant(-1, tf.int64)), step)
  return tf.where(tf.logical_and(first < 0, expected < count), expected,
                  first)


def parse_image_bytes(examples):
  """Serialized ``tf.train.Example`` s -> their ``'image/encoded'`` bytes.

  Like ``tf.io.parse_example``, but a string it cannot parse (not an
  Example, or no single bytes value under ``'image/encoded'``) raises
  ``InvalidArgumentError`` with a message that says so, names the index and
  shows the string's first bytes (see ``_shown``). (``ParseExample``'s own
  message quotes the raw bytes, and when they are not UTF-8, e.g. an
  encoded image passed by mistake, Python fails decoding the message and
  raises ``UnicodeDecodeError`` instead.) The batch is parsed once, inside a
  ``tf.data`` pipeline that drops the error; only if it failed are the
  strings parsed again one by one to find the bad one.

  Args:
    examples: string ``[N]``. Returns string ``[N]``.
  """
  spec = {IMAGE_FEATURE: tf.io.FixedLenFeature([], tf.string)}

  def parse(batch):
    return tf.io.parse_example(batch, spec)[IMAGE_FEATURE]

  # (True, bytes), or (False, []) if parsing failed. get_single_element
  # adds ~0.3 ms; Dataset.reduce would add ~15 ms (measured, 16 strings).
  parsed = tf.data.Dataset.from_tensors(examples).map(
      lambda batch: (tf.constant(True), parse(batch))).ignore_errors()
  failed = tf.data.Dataset.from_tensors(
      (tf.constant(False), tf.zeros([0], tf.string)))
  parsed, image_bytes = parsed.concatenate(failed).take(1).get_single_element()

  def explain():
    bad = _first_unparsable(examples, parse)
    value = examples[tf.maximum(bad, 0)]
    # No quotes or backslashes: Assert would print them escaped.
    message = tf.strings.join([
        'tf_example: examples[', tf.strings.as_string(bad), '] is not a '
        'serialized tf.train.Example with a bytes feature '
        f'`{IMAGE_FEATURE}` holding one encoded image; got ',
        tf.strings.as_string(tf.strings.length(value)), ' bytes: ',
        _shown(value), '. Expected tf.train.Example(features=...)'
        '.SerializeToString() with the JPEG/PNG bytes as the one value of '
        f'`{IMAGE_FEATURE}`; raw JPEG/PNG bytes go to the image_bytes '
        'signature.'])
    check = tf.debugging.Assert(bad < 0, [message])
    # Reached only if no single string failed: ParseExample's own error.
    with tf.control_dependencies([check]):
      return parse(examples)

  return tf.cond(parsed, lambda: image_bytes, explain)


def _infer_any_batch(infer, images):
  """``infer(images)``, also for an empty batch.

  The model's BatchNorm fails on 0 images, so an empty batch runs one
  all-zero image of the same size instead and returns its outputs cut to
  batch 0: every key, the right trailing shape. A non-empty batch goes to
  ``infer`` unchanged.
  """
  shape = tf.shape(images)
  batch = tf.cond(
      tf.equal(shape[0], 0),
      lambda: tf.zeros([1, shape[1], shape[2], 3], images.dtype),
      lambda: images)
  return {k: v[:shape[0]] for k, v in infer(batch).items()}


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
      return _infer_any_batch(infer, images)

    @tf.function(input_signature=[BYTES_SPEC], autograph=False)
    def serve_bytes(image_bytes):
      images = tf.map_fn(
          lambda b: decode_and_preprocess(b, size, crop), image_bytes,
          fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32))
      return _infer_any_batch(infer, images)

    @tf.function(input_signature=[EXAMPLES_SPEC], autograph=False)
    def serve_examples(examples):
      return serve_bytes(parse_image_bytes(examples))

    return {'serving_default': serve_images.get_concrete_function(),
            'image_bytes': serve_bytes.get_concrete_function(),
            'tf_example': serve_examples.get_concrete_function()}
