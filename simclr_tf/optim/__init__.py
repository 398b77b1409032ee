"""Optimizers for simclr_tf: LARS, warmup+cosine schedule, factory."""
from simclr_tf.optim.factory import (build_optimizer, unwrap,
                                     weight_decay_loss)
from simclr_tf.optim.lars import DEFAULT_EXCLUDE, LARS
from simclr_tf.optim.schedule import (WarmupCosine, scaled_learning_rate,
                                      warmup_steps_for)

__all__ = [
    'DEFAULT_EXCLUDE', 'LARS', 'WarmupCosine', 'build_optimizer',
    'scaled_learning_rate', 'unwrap', 'warmup_steps_for',
    'weight_decay_loss',
]
