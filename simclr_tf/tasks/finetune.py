"""Fine-tuning (SimCLRv2 Sec. 2): cross-entropy on one cropped, flipped
view, from a pretrained model (--checkpoint)."""
from __future__ import annotations

import tensorflow as tf

from simclr_tf.tasks.base import SUPERVISED_METRICS, Task, supervised_metrics


class Finetune(Task):
  """The classifier and the encoder after --fine_tune_after_block learn
  from the labels."""

  name = 'finetune'

  def objective_metric_names(self, model) -> tuple:
    return SUPERVISED_METRICS

  def objective(self, model, batch):
    outputs = model(batch['image'], training=True)
    metrics = supervised_metrics(tf.cast(batch['label'], tf.int32),
                                 outputs['logits_sup'])
    return metrics['supervised_loss'], metrics
