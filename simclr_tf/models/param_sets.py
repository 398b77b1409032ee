"""Which trainable variables are batch-norm parameters, biases or the
supervised head's, read from the model's structure (layer types and
attributes), never from names: renaming a layer changes no set.

The optimizers decide from these sets which variables get weight decay and
LARS's trust ratio (``simclr_tf.optim.factory``).
"""
from __future__ import annotations

import dataclasses
import functools

import keras

from simclr_tf.models.layers import FusedBatchNorm

_BATCH_NORM_TYPES = (FusedBatchNorm, keras.layers.BatchNormalization)


@dataclasses.dataclass(frozen=True)
class ParamSets:
  """Trainable variables by the role their layer gives them (Keras
  variables, compared by identity)."""
  batch_norm: tuple = ()
  biases: tuple = ()
  head: tuple = ()

  @functools.cached_property
  def _ids(self) -> dict:
    """Role -> frozenset of the ids of its variables (built once)."""
    return {role: frozenset(id(v) for v in getattr(self, role))
            for role in ('batch_norm', 'biases', 'head')}

  def is_batch_norm(self, variable) -> bool:
    return id(variable) in self._ids['batch_norm']

  def is_bias(self, variable) -> bool:
    return id(variable) in self._ids['biases']

  def in_head(self, variable) -> bool:
    return id(variable) in self._ids['head']


def _layers(layer):
  """``layer`` and every layer inside it, each once."""
  return layer._flatten_layers(include_self=True, recursive=True)  # pylint: disable=protected-access


def param_sets(model, head=None) -> ParamSets:
  """The roles of ``model``'s trainable variables.

  Args:
    model: a Keras layer or model (a ``SimCLRModel``, or any other).
    head: the layer whose variables are the supervised head's; default
      ``model.supervised_head`` when the model has one.
  """
  if head is None:
    head = getattr(model, 'supervised_head', None)
  batch_norm, biases = [], []
  for layer in _layers(model):
    if isinstance(layer, _BATCH_NORM_TYPES):
      batch_norm += layer.trainable_variables
      continue
    bias = getattr(layer, 'bias', None)
    if isinstance(bias, keras.Variable) and bias.trainable:
      biases.append(bias)
  return ParamSets(batch_norm=tuple(batch_norm), biases=tuple(biases),
                   head=tuple(head.trainable_variables) if head else ())
