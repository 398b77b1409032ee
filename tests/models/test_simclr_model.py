"""Projection/supervised heads and the assembled SimCLR model."""
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import tasks
from simclr_tf.config import Config, ConfigError, ModelConfig, TrainConfig
from simclr_tf.models import (OUTPUT_NAMES, ProjectionHead, SupervisedHead,
                              layers, param_sets, simclr)

TINY = dict(resnet_depth=18, width_multiplier=0.125, image_size=32,
            num_classes=5)


def _model(train_mode='pretrain', lineareval=True, after=-1, freeze=False,
           **overrides):
  """The model a task of ``train_mode`` builds (heads as the mode has them)."""
  cfg = Config(model=ModelConfig(**{**TINY, **overrides}),
               train=TrainConfig(train_mode=train_mode,
                                 lineareval_while_pretraining=lineareval,
                                 fine_tune_after_block=after,
                                 freeze_encoder=freeze))
  return tasks.get(cfg).build_model(tf.distribute.get_strategy())


@pytest.mark.parametrize('mode,layers,out_dim', [('none', 0, 64),
                                                 ('linear', 1, 16),
                                                 ('nonlinear', 3, 16)])
def test_all_projection_head_modes_work(mode, layers, out_dim):
  model = _model(proj_head_mode=mode, proj_out_dim=16)
  out = model(tf.random.uniform([4, 32, 32, 3]), training=True)
  assert len(model.projection_head.linear_layers) == layers
  assert out['proj_head_output'].shape == (4, out_dim)
  assert out['proj_head_input'].shape == (4, 64)
  assert out['logits_sup'].shape == (4, 5)
  assert set(OUTPUT_NAMES) <= set(out)


def test_nonlinear_head_structure():
  head = ProjectionHead(num_layers=3, out_dim=8)
  x = tf.random.uniform([4, 12])
  y, hiddens = head(x, training=True)
  assert [h.shape[-1] for h in hiddens] == [12, 12, 12, 8]
  assert y is hiddens[-1]
  middle, last = head.linear_layers[1], head.linear_layers[-1]
  assert middle.bn.bn.center and not last.bn.bn.center  # bias = BN beta
  assert middle.dense.bias is None and last.dense.bias is None
  assert bool(tf.reduce_all(hiddens[1] >= 0))  # ReLU on middle layers
  assert bool(tf.reduce_any(hiddens[3] < 0))   # none on the last


def test_ft_proj_selector_picks_head_layer():
  model = _model(train_mode='finetune', ft_proj_selector=-1, proj_out_dim=16)
  assert model.supervised_head.linear.dense.kernel.shape == (16, 5)
  model = _model(train_mode='finetune', ft_proj_selector=1, proj_out_dim=16)
  assert model.supervised_head.linear.dense.kernel.shape == (64, 5)
  with pytest.raises(ConfigError, match='ft_proj_selector=2'):
    ModelConfig(**TINY, proj_head_mode='linear', ft_proj_selector=2)


def test_supervised_head_init_and_zero_init():
  head = SupervisedHead(7)
  head(tf.zeros([1, 100]))
  kernel = head.linear.dense.kernel.numpy()
  assert 0.005 < kernel.std() < 0.015 and head.linear.dense.bias is not None
  assert 'head_supervised' in head.linear.dense.kernel.path
  zero = SupervisedHead(7, zero_init=True)
  zero(tf.zeros([1, 100]))
  assert not zero.linear.dense.kernel.numpy().any()


def _grad_norms(model, key, training=True):
  x = tf.random.uniform([4, 32, 32, 3])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(model(x, training=training)[key]))
  grads = tape.gradient(loss, model.encoder.trainable_variables)
  return [0.0 if g is None else float(tf.norm(g)) for g in grads]


def test_linear_probe_does_not_train_the_encoder_during_pretraining():
  model = _model()
  assert max(_grad_norms(model, 'logits_sup')) == 0.0
  assert max(_grad_norms(model, 'proj_head_output')) > 0.0


def test_finetune_trains_encoder_through_supervised_head():
  model = _model(train_mode='finetune')
  assert max(_grad_norms(model, 'logits_sup')) > 0.0


def test_pretrain_without_linear_eval_has_no_supervised_head():
  model = _model(lineareval=False)
  out = model(tf.zeros([2, 32, 32, 3]))
  assert 'logits_sup' not in out and model.supervised_head is None


@pytest.mark.parametrize('after,trainable_groups', [(-1, 5), (0, 4), (2, 2),
                                                    (4, 0)])
def test_fine_tune_after_block_freezes_what_comes_before(after,
                                                         trainable_groups):
  model = _model(train_mode='finetune', after=after)
  parts = [model.encoder.stem, *model.encoder.block_groups]
  assert [bool(p.trainable_variables) for p in parts] == (
      [False] * (5 - trainable_groups) + [True] * trainable_groups)
  assert model.supervised_head.trainable_variables


def test_fine_tune_after_block_rejected_in_pretraining():
  with pytest.raises(ConfigError, match='fine_tune_after_block=2.*pretrain'):
    _model(train_mode='pretrain', after=2)


def _roles(model):
  """Each trainable variable's (is BN, is bias, in head), in order."""
  sets = param_sets(model)
  return [(sets.is_batch_norm(v), sets.is_bias(v), sets.in_head(v))
          for v in model.trainable_variables]


def test_param_sets_come_from_structure_not_names(monkeypatch):
  """Renaming the supervised head and every BN layer changes no role (the
  old name patterns would have found neither)."""
  want = _roles(_model(se_ratio=0.25))
  assert sum(r[0] for r in want) and sum(r[1] for r in want)
  assert sum(r[2] for r in want) == 2  # the classifier's kernel and bias

  class Norm(layers.FusedBatchNorm):
    def __init__(self, **kwargs):
      super().__init__(**{**kwargs, 'name': 'norm'})

  def classifier(*args, **kwargs):
    return SupervisedHead(*args, **{**kwargs, 'name': 'classifier'})

  monkeypatch.setattr(layers, 'FusedBatchNorm', Norm)
  monkeypatch.setattr(simclr, 'SupervisedHead', classifier)
  renamed = _model(se_ratio=0.25)
  paths = [v.path for v in renamed.trainable_variables]
  assert not any('batch_normalization' in p or 'head_supervised' in p
                 for p in paths)
  assert _roles(renamed) == want
  assert len(paths) == len(set(paths))


def test_checkpoint_round_trip(tmp_path):
  model = _model()
  x = tf.random.uniform([2, 32, 32, 3])
  ref = model(x)['proj_head_output'].numpy()
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / 'ckpt'))
  other = _model()
  tf.train.Checkpoint(model=other).restore(path).assert_consumed()
  assert len(tf.train.list_variables(path)) > len(model.variables)
  np.testing.assert_allclose(other(x)['proj_head_output'], ref, atol=1e-6)
