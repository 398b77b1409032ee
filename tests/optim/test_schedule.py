"""Warmup + cosine learning rate (SimCLR Appendix B.1)."""
import copy
import math

import keras
import pytest

from simclr_tf.optim import WarmupCosine, scaled_learning_rate, warmup_steps_for


def _value(sched, step):
  return float(sched(step))


def test_linear_scaling_warmup_then_cosine():
  sched = WarmupCosine(0.3, 512, total_steps=110, warmup_steps=10)
  peak = 0.3 * 512 / 256
  assert _value(sched, 0) == 0.0
  assert _value(sched, 5) == pytest.approx(peak / 2, rel=1e-6)
  assert _value(sched, 10) == pytest.approx(peak, rel=1e-6)
  assert _value(sched, 60) == pytest.approx(peak / 2, rel=1e-6)
  last = peak * 0.5 * (1 + math.cos(math.pi * 99 / 100))
  assert _value(sched, 109) == pytest.approx(last, rel=1e-5)
  assert _value(sched, 110) == pytest.approx(0.0, abs=1e-7)
  assert _value(sched, 500) == pytest.approx(0.0, abs=1e-7)


def test_sqrt_scaling_without_warmup():
  sched = WarmupCosine(0.075, 4096, total_steps=100, warmup_steps=0,
                       scaling='sqrt')
  peak = 0.075 * 64
  assert _value(sched, 0) == pytest.approx(peak, rel=1e-6)
  assert _value(sched, 50) == pytest.approx(peak / 2, rel=1e-6)
  assert _value(sched, 100) == pytest.approx(0.0, abs=1e-6)


def test_accepts_optimizer_iterations():
  sched = WarmupCosine(1.0, 256, total_steps=10, warmup_steps=4)
  opt = keras.optimizers.SGD(sched)
  assert float(opt.learning_rate) == 0.0
  opt.iterations.assign(2)
  assert float(opt.learning_rate) == pytest.approx(0.5)


def test_helpers():
  assert scaled_learning_rate(0.3, 256) == pytest.approx(0.3)
  assert scaled_learning_rate(0.1, 16, 'sqrt') == pytest.approx(0.4)
  assert warmup_steps_for(10, 50000, 512) == 976  # 500000 // 512
  assert warmup_steps_for(0.5, 1000, 64) == 7    # 500.0 // 64 = 7.0
  assert warmup_steps_for(0, 1000, 64) == 0


def test_get_config_round_trips():
  sched = WarmupCosine(0.3, 512, total_steps=100, warmup_steps=10,
                       scaling='sqrt')
  config = sched.get_config()
  clone = WarmupCosine.from_config(copy.deepcopy(config))
  assert clone.get_config() == config
  again = keras.optimizers.schedules.deserialize(
      keras.optimizers.schedules.serialize(sched))
  assert _value(again, 37) == pytest.approx(_value(sched, 37))


@pytest.mark.parametrize('kwargs, bad', [
    (dict(total_steps=5, warmup_steps=10), 'total_steps=5'),
    (dict(total_steps=0), 'total_steps=0'),
    (dict(total_steps=10, warmup_steps=-1), 'warmup_steps=-1'),
    (dict(total_steps=10, base_learning_rate=0.0), 'base_learning_rate=0.0'),
    (dict(total_steps=10, batch_size=0), 'batch_size=0'),
    (dict(total_steps=10, scaling='log'), "scaling='log'"),
])
def test_bad_values_are_named(kwargs, bad):
  args = dict(base_learning_rate=0.3, batch_size=256)
  args.update(kwargs)
  with pytest.raises(ValueError, match=bad):
    WarmupCosine(**args)


def test_warmup_helper_rejects_bad_values():
  with pytest.raises(ValueError, match='batch_size=0'):
    warmup_steps_for(1, 100, 0)
  with pytest.raises(ValueError, match='warmup_epochs=-1'):
    warmup_steps_for(-1, 100, 8)
