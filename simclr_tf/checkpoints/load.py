"""Loading a checkpoint of any kind into a model: one entry point per use,
dispatching to the loader of the prefix's kind (``formats.detect``)."""
from __future__ import annotations

import tensorflow as tf
from absl import logging

from simclr_tf.checkpoints import formats, original, ours
from simclr_tf.checkpoints.paths import CheckpointError


def _original_variables(model, whole: bool) -> list:
  """What an original checkpoint restores: encoder and projection head,
  and (``whole``) the classifier (not our probe's input norm)."""
  variables = list(model.encoder.variables) + list(
      model.projection_head.variables)
  if whole and model.supervised_head is not None:
    variables += list(model.supervised_head.linear.variables)
  return variables


def check(prefix: str, model, *, whole: bool = False) -> str:
  """Raises CheckpointError naming the first variable of the encoder, the
  projection head and (``whole``: a resume, an evaluation, an export) the
  classifier that is missing from the checkpoint or has another shape.
  Returns the checkpoint's kind."""
  kind = formats.detect(prefix)
  if kind in formats.ORIGINAL_KINDS:
    try:
      original.check(prefix, model, _original_variables(model, whole))
    except original.OriginalFormatError as e:
      raise CheckpointError(str(e)) from None
  else:
    ours.check_compatible(prefix, model, supervised_head=whole)
  return kind


check_compatible = ours.check_compatible  # the simclr_tf-format check


def _head_fits(kind, prefix, model) -> bool:
  head = model.supervised_head
  if kind not in formats.ORIGINAL_KINDS:
    return ours.head_fits(prefix, model)
  try:
    original.check(prefix, model, list(head.linear.variables))
    return True
  except original.OriginalFormatError:
    return False


def classifier_fits(prefix: str, model) -> bool:
  """Whether ``prefix`` holds a classifier of ``model``'s shape."""
  return (model.supervised_head is not None and
          _head_fits(formats.detect(prefix), prefix, model))


def warm_start(model, prefix: str, *, zero_init_logits: bool = False) -> str:
  """Restores the model's weights (not the optimizer) from ``prefix``.

  The encoder and projection head always; the classifier only when the
  checkpoint has one of the same shape (else it starts afresh, and the log
  says so); ``zero_init_logits`` re-zeroes it (SimCLRv2 fine-tuning).
  Returns the checkpoint's kind.
  """
  kind = check(prefix, model)
  head = model.supervised_head
  fits = head is not None and _head_fits(kind, prefix, model)
  with_head = fits and not zero_init_logits
  if kind in formats.ORIGINAL_KINDS:
    original.load(prefix, model, _original_variables(model, with_head))
  else:
    parts = ['encoder', 'projection_head'] + (
        ['supervised_head'] if with_head else [])
    ours.restore(prefix, model, parts)
  if head is not None and zero_init_logits:
    for v in head.trainable_variables:
      v.assign(tf.zeros_like(v))
  if head is not None and not fits:
    logging.info('The classifier of %s does not fit this model (%d classes'
                 ' here, another number or none there): it starts afresh%s.',
                 prefix, head.num_classes,
                 ' at zero' if zero_init_logits else '')
  parts = ('the encoder, projection head and classifier' if with_head
           else 'the encoder and projection head')
  logging.info('Warm-started %s from %s (%s).', parts, prefix, kind)
  return kind


def restore_model(prefix: str, model) -> str:
  """Restores the whole model (eval, export) after ``check``; returns the
  checkpoint's kind."""
  kind = check(prefix, model, whole=True)
  if kind in formats.ORIGINAL_KINDS:
    original.load(prefix, model, _original_variables(model, True))
  else:
    tf.train.Checkpoint(model=model).restore(prefix).expect_partial()
  return kind
