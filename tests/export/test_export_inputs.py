"""The signatures on awkward inputs: empty batches, strings not Examples."""
import numpy as np
import pytest
import tensorflow as tf


def _png(image):
  return tf.io.encode_png(tf.cast(tf.round(image * 255.0), tf.uint8)).numpy()


def _example(feature):
  return tf.train.Example(features=tf.train.Features(
      feature=feature)).SerializeToString()


def _image_example(png):
  return _example({'image/encoded': tf.train.Feature(
      bytes_list=tf.train.BytesList(value=[png]))})


def _call(loaded, name, batch):
  """``name`` signature on ``batch`` (a list: images or strings)."""
  if name == 'serving_default':
    return loaded.signatures[name](
        images=tf.constant(np.reshape(batch, [-1, 32, 32, 3]), tf.float32))
  arg = {'image_bytes': 'image_bytes', 'tf_example': 'examples'}[name]
  return loaded.signatures[name](**{arg: tf.constant(batch, tf.string)})


@pytest.mark.parametrize('name',
                         ['serving_default', 'image_bytes', 'tf_example'])
def test_empty_batch_gives_empty_outputs(loaded_export, images, name):
  one = {'serving_default': [images[0]], 'image_bytes': [_png(images[0])],
         'tf_example': [_image_example(_png(images[0]))]}[name]
  want = _call(loaded_export, name, one)
  got = _call(loaded_export, name, [])
  assert sorted(got) == sorted(want)
  for key, value in got.items():
    assert value.dtype == tf.float32, key
    assert value.shape == (0,) + tuple(want[key].shape[1:]), key


@pytest.mark.parametrize('value, shown', [
    (b'not an example', '`not an example`'),
    (b'\xff\xfe\x00 not UTF-8', '\\000 not UTF-8`'),
    (b'', '0 bytes: ``'),  # an empty Example: no 'image/encoded'
])
def test_tf_example_rejects_strings_that_are_not_examples(
    loaded_export, images, value, shown):
  good = _image_example(_png(images[0]))
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    _call(loaded_export, 'tf_example', [good, value])
  message = raised.value.message
  assert ('examples[1] is not a serialized tf.train.Example with a bytes '
          'feature `image/encoded`') in message
  assert f'got {len(value)} bytes: ' in message
  assert shown in message


def test_tf_example_given_raw_image_bytes_says_where_they_go(
    loaded_export, images):
  png = _png(images[0])  # not UTF-8: ParseExample's message was undecodable
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    _call(loaded_export, 'tf_example', [png])
  message = raised.value.message
  assert 'examples[0] is not a serialized tf.train.Example' in message
  assert f'got {len(png)} bytes: `\ufffdPNG\\r\\n' in message
  assert '(the first 24)' in message
  assert 'raw JPEG/PNG bytes go to the image_bytes signature' in message


def test_tf_example_with_an_int64_image_feature_is_rejected(loaded_export):
  example = _example({'image/encoded': tf.train.Feature(
      int64_list=tf.train.Int64List(value=[1]))})
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'examples\[0\] is not a serialized tf\.train\.'
                     r'Example with a bytes feature `image/encoded`'):
    _call(loaded_export, 'tf_example', [example])
