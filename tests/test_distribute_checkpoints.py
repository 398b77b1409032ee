"""Strategy selection errors and checkpoint resolution/compatibility."""
import pytest
import tensorflow as tf

from simclr_tf import checkpoints, distribute
from simclr_tf.config import ModelConfig, RuntimeConfig
from simclr_tf.models import build_model


def test_default_strategy_on_cpu():
  strategy = distribute.build_strategy(RuntimeConfig(strategy='auto'))
  assert strategy.num_replicas_in_sync == 1
  assert distribute.is_chief(strategy)


def test_tpu_without_tpu_is_a_clear_error():
  with pytest.raises(distribute.StrategyError, match='no TPU reachable'):
    distribute.build_strategy(RuntimeConfig(strategy='tpu',
                                            tpu_name='no-such-tpu'))


@pytest.mark.parametrize('tf_config,match', [
    (None, 'needs the TF_CONFIG'),
    ('{not json', 'is not valid for multi_worker'),
    ('{"cluster": {"worker": []}, "task": {"index": 0}}', 'lists no workers'),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, tf_config, match):
  if tf_config is None:
    monkeypatch.delenv('TF_CONFIG', raising=False)
  else:
    monkeypatch.setenv('TF_CONFIG', tf_config)
  with pytest.raises(distribute.StrategyError, match=match):
    distribute.build_strategy(RuntimeConfig(strategy='multi_worker'))


def _model(**kw):
  cfg = ModelConfig(**{'width_multiplier': 0.125, 'num_classes': 3,
                       'proj_out_dim': 8, **kw})
  return build_model(cfg)


def test_resolve_prefix_directory_and_missing(tmp_path):
  model = _model()
  prefix = tf.train.Checkpoint(model=model).save(str(tmp_path / 'ckpt'))
  assert checkpoints.resolve(prefix) == prefix
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       str(tmp_path / 'dir'), 2)
  saved = manager.save()
  assert checkpoints.resolve(str(tmp_path / 'dir')) == saved
  with pytest.raises(checkpoints.CheckpointError, match='does not exist: expected a checkpoint prefix'):
    checkpoints.resolve(str(tmp_path / 'nothing'))


def test_mismatching_architecture_names_the_variable(tmp_path):
  prefix = tf.train.Checkpoint(model=_model()).save(str(tmp_path / 'c'))
  wider = _model(proj_out_dim=16)
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'projection_head.*shape \(16,\) here but \(8,\)'):
    checkpoints.check_compatible(prefix, wider)
  deeper = build_model(ModelConfig(resnet_depth=34, width_multiplier=0.125,
                                   num_classes=3, proj_out_dim=8))
  with pytest.raises(checkpoints.CheckpointError, match='is missing'):
    checkpoints.check_compatible(prefix, deeper)


def test_warm_start_restores_encoder_and_rezeroes_head(tmp_path):
  source = _model()
  prefix = tf.train.Checkpoint(model=source).save(str(tmp_path / 'c'))
  target = _model()
  checkpoints.warm_start(target, prefix, zero_init_logits=True)
  for a, b in zip(source.encoder.variables, target.encoder.variables):
    assert bool(tf.reduce_all(a == b))
  assert not any(bool(tf.reduce_any(v != 0))
                 for v in target.supervised_head.trainable_variables)
