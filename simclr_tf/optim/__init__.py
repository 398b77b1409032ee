"""Optimizers for simclr_tf: LARS, warmup+cosine schedule, factory."""
from simclr_tf.optim.factory import (build_optimizer, lars_excluded, unwrap,
                                     weight_decay_loss)
from simclr_tf.optim.lars import LARS
from simclr_tf.optim.schedule import (WarmupCosine, scaled_learning_rate,
                                      warmup_steps_for)

__all__ = [
    'LARS', 'WarmupCosine', 'build_optimizer', 'lars_excluded',
    'scaled_learning_rate', 'unwrap', 'warmup_steps_for',
    'weight_decay_loss',
]
