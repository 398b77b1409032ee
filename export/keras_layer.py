"""A Keras 3 layer around a loaded simclr_tf export (tensorflow + keras only).

Copy this file into any project: it imports neither simclr_tf nor
tensorflow_hub. ``SimCLRLayer(path)`` loads ``saved_model/<step>/`` and
behaves like a Keras layer: ``layer(images)`` -> float32 ``[B, D]``
(``output_key='default'``, the encoder's pooled features) or the whole dict
(``output_key=None``); ``trainable`` switches fine-tuning on or off.

Keras 3 does not see the raw ``tf.Variable`` s of a loaded SavedModel. Like
``keras.layers.TFSMLayer``, the layer wraps each of them in a
``keras.Variable`` built from the ``tf.Variable`` itself (the same storage,
no copy), so the wrapper is what the optimizer updates and what the loaded
functions read. Which ones are trainable comes from the export's
``trainable_variables`` (TF Hub convention), not from each variable's flag.

As ``hub.KerasLayer`` and ``keras.layers.BatchNormalization``: the export
runs in training mode (batch statistics, moving averages updated) only when
the layer is trainable *and* called with ``training=True``; a frozen layer
is a fixed feature extractor. The export's ``regularization_losses`` are
added to the layer's losses while it is trainable.
"""
from __future__ import annotations

import os

import keras
import tensorflow as tf


class SimCLRLayer(keras.layers.Layer):
  """Wraps a loaded simclr_tf export as a Keras 3 layer.

  Args:
    export: a SavedModel directory (str or path) or an object returned by
      ``tf.saved_model.load``.
    output_key: which output to return ('default' = ``final_avg_pool``
      ``[B, D]``; e.g. 'proj_head_output', 'logits_sup'), or None for the
      whole dict.
    trainable: fine-tune the export's weights (default False: frozen).

  Call: float32 images ``[B, H, W, 3]`` in [0, 1] -> ``[B, ...]`` or dict.
  """

  def __init__(self, export, output_key='default', trainable=False,
               **kwargs):
    # Built trainable, then frozen below: ``layer.trainable = False`` is what
    # flips the wrappers' flags (Model.trainable_weights filters on them),
    # and tf's AutoTrackable skips a setattr that does not change the value.
    super().__init__(trainable=True, **kwargs)
    self.export_path = os.fspath(export) if isinstance(
        export, (str, os.PathLike)) else None
    loaded = (tf.saved_model.load(self.export_path) if self.export_path
              else export)
    _check_export(loaded, self.export_path)
    self.output_key = output_key
    # Not a tracked attribute: Keras must see the wrappers only.
    object.__setattr__(self, '_loaded', loaded)
    trainable_ids = {id(v) for v in loaded.trainable_variables}
    self.export_weights = [
        keras.Variable(initializer=v, trainable=id(v) in trainable_ids,
                       dtype=v.dtype, shape=v.shape,
                       name=f'v{i}_' + _clean(v.name))
        for i, v in enumerate(loaded.variables)]
    self.trainable = trainable
    self.built = True

  def call(self, images, training=None):
    training = bool(training) and self.trainable
    outputs = self._loaded(tf.cast(images, tf.float32), training=training)
    if self.trainable:
      for loss_fn in self._loaded.regularization_losses:
        self.add_loss(loss_fn())
    if self.output_key is None:
      return dict(outputs)
    if self.output_key not in outputs:
      raise KeyError(f'output_key={self.output_key!r} is not an output of '
                     f'this export: choose one of {sorted(outputs)} or None.')
    return outputs[self.output_key]

  def get_config(self):
    if self.export_path is None:
      raise NotImplementedError('SimCLRLayer built from a loaded object has '
                                'no config; build it from a path to save it.')
    return {**super().get_config(), 'export': self.export_path,
            'output_key': self.output_key}


def _clean(name: str) -> str:
  """A variable name Keras accepts (no '/' or ':')."""
  return name.split(':')[0].replace('/', '_')


def _check_export(loaded, path):
  missing = [a for a in ('variables', 'trainable_variables',
                         'regularization_losses', '__call__')
             if not hasattr(loaded, a)]
  if missing:
    raise ValueError(f'export={path or loaded!r} is not a simclr_tf export '
                     f'(TF Hub reusable SavedModel): it has no {missing}.')
