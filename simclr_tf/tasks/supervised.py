"""Supervised training from scratch: fine-tuning's objective and input
without a pretrained start (the baseline SimCLRv2's Table 1 compares
against; ``--checkpoint`` still warm-starts when given)."""
from __future__ import annotations

from simclr_tf.tasks.finetune import Finetune


class Supervised(Finetune):
  """Cross-entropy on one cropped, flipped view; random initial weights."""

  name = 'supervised'
