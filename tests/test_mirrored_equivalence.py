"""A whole pretraining step on 2 mirrored replicas == 1 replica.

MirroredStrategy over the two logical CPU devices (``two_replicas``) with
global BN (Keras ``BatchNormalization(synchronized=True)``) against the
default strategy, where ``tasks.base.effective_model_config`` turns global BN
off: with one replica, plain (fused) BN over the whole batch computes the
same statistics. Both start from the same weights and see the same global
batch of 8 (each replica the contiguous half ``tests/helpers`` gives it)
and run the product's step (``steps.make_train_loop``: both views
concatenated per replica, NT-Xent gathered across replicas, the linear
probe, weight decay, LARS) for 2 steps. The loss and LARS alone are
compared across replicas in test_losses.py and optim/.

Each replica's concatenated batch is [its half of view 1; its half of view
2], a different order from the single replica's [view 1; view 2]; BN
statistics are sums over the batch and NT-Xent all-gathers each view in
replica order, so the results still agree.

Tolerances (float32), ``np.testing.assert_allclose`` (rtol, atol): every
step's metrics (1e-5, 1e-6); after each step every weight (1e-5, 1e-5);
each step's update of every trainable variable within 1% of its largest
element (plus 2 float32 ulps of the weight). Observed here: metrics differ
by <= 2e-6 (losses ~8), weights by <= 3e-7, updates by <= 0.2%.

The initial weights are seeded: with a random init, about 1 in 20 runs had
one pre-ReLU activation within float32 rounding of 0 (1e-7), which the two
computations put on different sides, so that element's gradient is in
one run and not the other (a 2e-5 difference in one BN beta after step 2);
a property of ReLU, not of the distribution.
"""
import os
import sys

import pytest
import tensorflow as tf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), 'helpers'))
import fixed_batch_train as fbt  # noqa: E402

from simclr_tf.config import (Config, LossConfig, ModelConfig,  # noqa: E402
                              OptimConfig, TrainConfig)

pytestmark = pytest.mark.slow

METRIC_TOL, WEIGHT_TOL, UPDATE_RTOL = (1e-5, 1e-6), (1e-5, 1e-5), 1e-2
GLOBAL_BATCH, IMAGE_SIZE, STEPS, INIT_SEED = 8, 16, 2, 0
CFG = Config(
    model=ModelConfig(resnet_depth=18, width_multiplier=0.125,
                      image_size=IMAGE_SIZE, proj_out_dim=16, global_bn=True),
    loss=LossConfig(temperature=0.5),
    optim=OptimConfig(optimizer='lars', learning_rate=1.0, weight_decay=1e-4),
    train=TrainConfig(model_dir='unused', train_batch_size=GLOBAL_BATCH,
                      lineareval_while_pretraining=True))


@pytest.fixture(scope='module')
def runs(two_replicas):
  batch = fbt.global_batch(GLOBAL_BATCH, IMAGE_SIZE)
  one = fbt.train_fixed_batch(CFG, tf.distribute.get_strategy(), batch, STEPS,
                              init_seed=INIT_SEED)
  init = [one[f'step0/{i}'] for i in range(len(one['paths']))]
  two = fbt.train_fixed_batch(CFG, two_replicas, batch, STEPS,
                              init_weights=init)
  return one, two


def test_two_replicas_use_global_bn_on_their_halves(runs):
  one, two = runs
  assert int(one['num_replicas']) == 1 and int(two['num_replicas']) == 2
  assert int(one['synchronized_bn_layers']) == 0  # fused per-replica BN
  num_bn = sum(str(p).endswith('moving_mean') for p in two['paths'])
  assert int(two['synchronized_bn_layers']) == num_bn > 0
  assert one['local_labels'].tolist() == [list(range(8))]
  assert two['local_labels'].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]
  assert float(two['local_copy_spread']) == 0.0  # replicas stay in sync


def test_two_replicas_match_one_replica(runs):
  one, two = runs
  seen = fbt.assert_same_training(one, two, metric_tol=METRIC_TOL,
                                  weight_tol=WEIGHT_TOL,
                                  update_rtol=UPDATE_RTOL)
  print(f'largest differences, 2 replicas vs 1: {seen}')


def test_moving_variance_matches(runs):
  one, two = runs
  fbt.assert_same_moving_variance(one, two, *WEIGHT_TOL)
