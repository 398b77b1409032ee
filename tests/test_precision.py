"""--mixed_precision=auto: the rule (simclr_tf.precision.decide) on mocked
device facts, the facts read off /proc/cpuinfo, the decision recorded in the
Config, and exports that compute in float32 whatever the run trained in."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import export
from simclr_tf import precision, runtime
from simclr_tf.config import Config, ModelConfig
from simclr_tf.models import build_model
from simclr_tf.precision import DeviceFacts, decide

AVX2 = frozenset({'fma', 'avx2', 'avx512f'})


@pytest.mark.parametrize('facts, want', [
    (DeviceFacts(tpu=True), 'bfloat16'),
    (DeviceFacts(gpu_capabilities=((8, 0),)), 'bfloat16'),
    (DeviceFacts(gpu_capabilities=((9, 0), (8, 6))), 'bfloat16'),
    (DeviceFacts(gpu_capabilities=((7, 5),)), 'none'),
    (DeviceFacts(gpu_capabilities=((8, 0), (7, 0))), 'none'),  # all, or not
    # The GPU trains, not the CPU: its flags do not count.
    (DeviceFacts(gpu_capabilities=((7, 0),),
                 cpu_flags=AVX2 | {'amx_bf16'}), 'none'),
    (DeviceFacts(cpu_flags=AVX2 | {'avx512_bf16'}), 'bfloat16'),
    (DeviceFacts(cpu_flags=AVX2 | {'amx_bf16', 'amx_tile'}), 'bfloat16'),
    (DeviceFacts(cpu_flags=AVX2 | {'avx512_fp16', 'avx512_vnni'}), 'none'),
    (DeviceFacts(cpu_flags=frozenset({'fp', 'asimd', 'bf16'})), 'none'),
    (DeviceFacts(), 'none'),
])
def test_auto_follows_the_device(facts, want):
  decision = decide('auto', facts)
  assert decision.precision == want
  assert decision.reason.startswith('auto: ')
  assert decision.policy == {'bfloat16': 'mixed_bfloat16',
                             'none': 'float32'}[want]


def test_auto_reason_names_what_it_decided_from():
  cpu = decide('auto', DeviceFacts(cpu_flags=AVX2 | {'avx512_bf16',
                                                     'amx_bf16'}))
  assert cpu.reason == 'auto: the CPU, with avx512_bf16 and amx_bf16'
  assert decide('auto', DeviceFacts(cpu_flags=AVX2)).reason == (
      'auto: the CPU, without avx512_bf16 or amx_bf16')
  gpu = decide('auto', DeviceFacts(gpu_capabilities=((7, 5),)))
  assert gpu.reason == 'auto: 1 GPU(s) of compute capability 7.5'


@pytest.mark.parametrize('forced', ['none', 'bfloat16', 'float16'])
def test_a_forced_policy_wins_on_any_device(forced):
  for facts in (DeviceFacts(tpu=True), DeviceFacts(cpu_flags=AVX2), None):
    decision = decide(forced, facts)
    assert decision.precision == forced
    assert decision.reason == f'--mixed_precision={forced}'


def test_float16_only_when_asked():
  for facts in (DeviceFacts(tpu=True), DeviceFacts(
      gpu_capabilities=((9, 0),)), DeviceFacts(cpu_flags=AVX2 | {
          'avx512_fp16', 'amx_bf16'})):
    assert decide('auto', facts).precision != 'float16'


def test_cpu_flags_from_cpuinfo(tmp_path):
  x86 = tmp_path / 'x86'
  x86.write_text('processor\t: 0\nmodel name\t: Xeon\n'
                 'flags\t\t: fpu AVX512F avx512_bf16 amx_bf16\n\n'
                 'processor\t: 1\nflags\t\t: fpu\n')
  assert precision.cpu_flags(str(x86)) == {'fpu', 'avx512f', 'avx512_bf16',
                                           'amx_bf16'}
  arm = tmp_path / 'arm'
  arm.write_text('processor\t: 0\nFeatures\t: fp asimd bf16\n')
  assert 'bf16' in precision.cpu_flags(str(arm))
  assert precision.cpu_flags(str(tmp_path / 'missing')) == frozenset()


def test_facts_of_this_machine():
  facts = precision.device_facts(trains_on_tpu=False)
  assert facts.cpu_flags == precision.cpu_flags() and not facts.tpu
  assert len(facts.gpu_capabilities) == len(
      tf.config.list_physical_devices('GPU'))
  assert precision.device_facts(trains_on_tpu=True) == (
      DeviceFacts(tpu=True))


def test_setup_records_the_decision_in_the_config(monkeypatch):
  monkeypatch.setattr(precision, 'device_facts', lambda trains_on_tpu:
                      DeviceFacts(cpu_flags=AVX2 | {'amx_bf16'}))
  try:
    cfg = runtime.setup(Config())  # auto, the default
    assert cfg.runtime.mixed_precision == 'bfloat16'
    assert cfg.runtime.precision_decision == 'auto: the CPU, with amx_bf16'
    assert keras.mixed_precision.global_policy().name == 'mixed_bfloat16'
    assert cfg.to_dict()['runtime']['precision_decision'] == (
        'auto: the CPU, with amx_bf16')
    assert runtime.setup(cfg) == cfg  # decided once
    monkeypatch.setattr(precision, 'device_facts', lambda trains_on_tpu:
                        DeviceFacts(cpu_flags=AVX2))
    cfg = runtime.setup(Config())
    assert cfg.runtime.mixed_precision == 'none'
    assert keras.mixed_precision.global_policy().name == 'float32'
  finally:
    keras.mixed_precision.set_global_policy('float32')


def _conv_dtypes(saved):
  """The dtypes of every Conv2D/MatMul in the serving signature's graph."""
  graph = saved.signatures['serving_default'].graph.as_graph_def()
  nodes = [n for f in graph.library.function for n in f.node_def]
  return {tf.dtypes.as_dtype(n.attr['T'].type).name for n in nodes
          if n.op in ('Conv2D', 'MatMul', '_FusedConv2D')}


def test_an_export_computes_in_float32_after_bfloat16_training(tmp_path):
  cfg = ModelConfig(width_multiplier=0.125, image_size=16, num_classes=3,
                    proj_out_dim=8)
  try:
    keras.mixed_precision.set_global_policy('mixed_bfloat16')
    keras.utils.set_random_seed(0)
    mixed = build_model(cfg)
    path = export.export_model(mixed, str(tmp_path), 1, Config(model=cfg))
    # The live model still trains in bfloat16 afterwards.
    images = np.random.default_rng(0).random((2, 16, 16, 3), np.float32)
    assert mixed(images)['proj_head_output'].dtype == tf.bfloat16
  finally:
    keras.mixed_precision.set_global_policy('float32')
  full = build_model(cfg)
  full.set_weights(mixed.get_weights())
  loaded = tf.saved_model.load(path)
  assert _conv_dtypes(loaded) == {'float32'}
  got = loaded(tf.constant(images))
  want = full(images)
  for key in ('final_avg_pool', 'proj_head_output', 'logits_sup'):
    np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5,
                               err_msg=key)
  assert os.path.isdir(path)
