"""A project that has never heard of simclr_tf uses an export (not a test).

Run by test_export_consumer.py as ``python -I consumer_script.py EXPORT
DATA.npz LAYER_DIR OUT.json``: ``-I`` keeps the repository off sys.path, so
only tensorflow, keras, tensorflow_hub/tf_keras and ``keras_layer.py``
(copied alone into LAYER_DIR) are importable. Each section records its
findings (or its traceback) in OUT.json for the test to assert on.
"""
import importlib.util
import json
import sys
import traceback

import numpy as np
import tensorflow as tf

EXPORT, DATA, LAYER_DIR, OUT = sys.argv[1:5]
RESULTS = {'simclr_tf_importable':
           importlib.util.find_spec('simclr_tf') is not None}


def section(fn):
  try:
    RESULTS[fn.__name__] = fn()
  except Exception:  # recorded for the test to show
    RESULTS[fn.__name__] = {'error': traceback.format_exc()}
  return fn


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _changed(before, variables):
  return sum(not np.array_equal(b, v.numpy())
             for b, v in zip(before, variables))


DATA_ = np.load(DATA)
X, Y = DATA_['images'], DATA_['labels']


@section
def plain_tf():
  """Load, call, BN modes, one fine-tuning step with our own optimizer."""
  import keras
  m = tf.saved_model.load(EXPORT)
  out = m(X, training=False)
  diffs = {k: float(np.abs(out[k].numpy() - DATA_['want_' + k]).max())
           for k in out if 'want_' + k in DATA_}
  trainable_ids = {id(v) for v in m.trainable_variables}
  stats = [v for v in m.variables if id(v) not in trainable_ids]
  before = _values(m.variables)
  m(X, training=False)
  changed_eval = _changed(before, m.variables)
  stats_before, weights_before = _values(stats), _values(m.trainable_variables)
  m(X, training=True)
  changed_stats = _changed(stats_before, stats)
  trainable_after_bn = _changed(weights_before, m.trainable_variables)
  head = tf.Variable(tf.random.stateless_normal([64, 3], [1, 2], 0, 0.1))
  variables = list(m.trainable_variables) + [head]
  opt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)

  def loss_fn():
    logits = m(X, training=True)['default'] @ head
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(Y, logits)
    return tf.reduce_mean(ce) + tf.add_n(
        [0.0] + [fn() for fn in m.regularization_losses])

  weights = _values(m.trainable_variables)
  with tf.GradientTape() as tape:
    loss_before = loss_fn()
  grads = tape.gradient(loss_before, variables)
  opt.apply_gradients(zip(grads, variables))
  # Untrained blocks end in a zero-initialised BN gamma: the convs before it
  # get no gradient yet, so count those that do.
  nonzero = sum(bool(np.any(g.numpy() != 0)) for g in grads[:-1])
  return {'keys': sorted(out), 'max_abs_diff': diffs,
          'num_variables': len(m.variables),
          'num_trainable': len(m.trainable_variables),
          'num_regularization_losses': len(m.regularization_losses),
          'changed_by_eval_call': changed_eval,
          'num_statistics': len(stats),
          'stats_changed_by_train_call': changed_stats,
          'trainable_changed_by_train_call': trainable_after_bn,
          'loss_before': float(loss_before), 'loss_after': float(loss_fn()),
          'nonzero_gradients': nonzero,
          'stem_kernel_changed': _changed(weights[:1],
                                          m.trainable_variables[:1]) == 1,
          'weights_changed_by_step': _changed(weights,
                                              m.trainable_variables)}


def _fit(model, layer_weights, compile_fn):
  compile_fn()
  before = _values(layer_weights())
  hist = model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
  return {'loss': hist.history['loss'][-1],
          'changed': _changed(before, layer_weights()),
          'num_weights': len(layer_weights())}


@section
def keras3_layer():
  """SimCLRLayer in a Keras 3 model: fit frozen, then fine-tuned."""
  import keras
  sys.path.insert(0, LAYER_DIR)
  from keras_layer import SimCLRLayer
  layer = SimCLRLayer(EXPORT)  # frozen by default
  inputs = keras.Input((32, 32, 3))
  model = keras.Model(inputs, keras.layers.Dense(3)(layer(inputs)))

  def compile_fn():
    model.compile(keras.optimizers.SGD(0.05),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))

  frozen = _fit(model, lambda: layer.weights, compile_fn)
  frozen['trainable_weights'] = len(layer.trainable_weights)
  layer.trainable = True
  tuned = _fit(model, lambda: layer.weights, compile_fn)
  tuned['trainable_weights'] = len(layer.trainable_weights)
  tuned['model_losses'] = len(model.losses)
  return {'frozen': frozen, 'trainable': tuned,
          'simclr_tf_imported': 'simclr_tf' in sys.modules}


@section
def hub_keras_layer():
  """tensorflow_hub.KerasLayer (tf_keras): fit frozen, then trainable."""
  try:
    import tensorflow_hub as hub
    import tf_keras
  except ImportError as e:
    return {'skipped': str(e)}
  results = {}
  for trainable in (False, True):
    layer = hub.KerasLayer(EXPORT, trainable=trainable,
                           output_key='default')
    model = tf_keras.Sequential([tf_keras.Input((32, 32, 3)), layer,
                                 tf_keras.layers.Dense(3)])

    def compile_fn(model=model):
      model.compile(
          tf_keras.optimizers.SGD(0.05),
          tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    res = _fit(model, lambda layer=layer: layer.weights, compile_fn)
    res['trainable_weights'] = len(layer.trainable_weights)
    results['trainable' if trainable else 'frozen'] = res
  return results


with open(OUT, 'w') as f:
  json.dump(RESULTS, f, indent=1)
