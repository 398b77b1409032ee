"""Distillation (SimCLRv2 Sec. 2.3): the loss, the frozen teacher kept out
of the student's files, resume after kill -9, and each bad input."""
import dataclasses
import os
import signal
import subprocess
import time

import cli
import numpy as np
import pytest
import tensorflow as tf

from simclr_tf import checkpoints, data, losses, rundir, steps, tasks
from simclr_tf.checkpoints import CheckpointError
from simclr_tf.config import (Config, ConfigError, DataConfig, LossConfig,
                              ModelConfig, OptimConfig, TrainConfig)
from simclr_tf.models import count_params, param_sets
from simclr_tf.optim import build_optimizer

# -- The loss against numpy. -----------------------------------------------


def _softmax(x):
  e = np.exp(x - x.max(axis=1, keepdims=True))
  return e / e.sum(axis=1, keepdims=True)


def _reference(t, s, temperature):
  """float64: mean_i -sum_y softmax(t/T) log softmax(s/T), and its
  gradient with respect to s."""
  p, q = _softmax(t / temperature), _softmax(s / temperature)
  loss = np.mean(-np.sum(p * np.log(q), axis=1))
  return loss, (q - p) / temperature / len(t)


@pytest.mark.parametrize('temperature', [1.0, 2.0])
def test_loss_and_gradient_match_numpy(temperature):
  rng = np.random.default_rng(0)
  t, s = rng.normal(size=(6, 5)) * 3, rng.normal(size=(6, 5)) * 3
  want, want_grad = _reference(t, s, temperature)
  student = tf.Variable(s, dtype=tf.float32)
  with tf.GradientTape() as tape:
    loss = losses.distillation_loss(tf.constant(t, tf.float32), student,
                                    temperature)
  assert loss.dtype == tf.float32
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(tape.gradient(loss, student), want_grad,
                             rtol=1e-4, atol=1e-7)
  assert float(losses.agreement(t, s)) == pytest.approx(np.mean(
      t.argmax(1) == s.argmax(1)))


def test_loss_refuses_bad_input():
  with pytest.raises(ValueError, match='temperature=0'):
    losses.distillation_loss(tf.zeros([2, 3]), tf.zeros([2, 3]), 0)
  with pytest.raises(ValueError, match=r'\[N, C\]'):
    losses.distillation_loss(tf.zeros([2, 3]), tf.zeros([2, 4]))


def test_two_replicas_give_the_one_device_gradient(two_replicas):
  """Each replica's mean over its half, divided by the replicas and summed,
  is the full batch's gradient (the training loop's contract)."""
  rng = np.random.default_rng(1)
  x = tf.constant(rng.normal(size=(8, 4)), tf.float32)
  teacher = tf.constant(rng.normal(size=(8, 3)) * 2, tf.float32)
  init = rng.normal(size=(4, 3)).astype(np.float32)

  def grad(w, xs, ts, replicas):
    with tf.GradientTape() as tape:
      loss = losses.distillation_loss(ts, tf.matmul(xs, w), 2.0) / replicas
    return tape.gradient(loss, w)

  want = grad(tf.Variable(init), x, teacher, 1)
  with two_replicas.scope():
    w = tf.Variable(init)
  halves = two_replicas.experimental_distribute_values_from_function(
      lambda ctx: (x[ctx.replica_id_in_sync_group * 4:][:4],
                   teacher[ctx.replica_id_in_sync_group * 4:][:4]))
  per_replica = two_replicas.run(lambda v: grad(w, *v, 2), args=(halves,))
  got = two_replicas.reduce(tf.distribute.ReduceOp.SUM, per_replica, None)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# -- A teacher run directory written in-process. ---------------------------

TINY = ModelConfig(resnet_depth=18, width_multiplier=0.125, image_size=32,
                   num_classes=3, proj_out_dim=16)


@pytest.fixture(scope='module')
def npz_dir(tmp_path_factory):
  return cli.write_tiny_npz(tmp_path_factory.mktemp('npz'))


def _cfg(npz_dir, model=TINY, **train):
  return Config(
      data=DataConfig(dataset=f'npz:{npz_dir}', labeled_split='train[:50%]'),
      model=model, optim=OptimConfig(learning_rate=0.5),
      train=TrainConfig(train_batch_size=8, seed=0, **train))


def _write_run(model_dir, cfg):
  """A finished run of ``cfg`` as training leaves it: ckpt-1, config.json;
  random weights, a classifier when the mode has one."""
  model = tasks.get(cfg).build_model(tf.distribute.get_strategy())
  manager = checkpoints.make_manager(model, tf.Variable(0), model_dir, 1)
  manager.save(checkpoint_number=1)
  rundir.write_json(os.path.join(model_dir, 'config.json'), cfg.to_dict())
  return model_dir


@pytest.fixture(scope='module')
def teacher_dir(tmp_path_factory, npz_dir):
  return _write_run(str(tmp_path_factory.mktemp('teacher')),
                    _cfg(npz_dir, train_mode='finetune', checkpoint='x'))


def _distill(npz_dir, teacher, **overrides):
  cfg = _cfg(npz_dir, train_mode='distill', teacher=teacher)
  loss = overrides.pop('loss', None)
  cfg = dataclasses.replace(cfg, loss=loss or cfg.loss, **overrides)
  return tasks.get(cfg)


def _weights(model):
  return [v.numpy() for v in model.variables]


@pytest.mark.parametrize('label_weight', [0.0, 0.5])
def test_teacher_stays_bit_identical_and_outside_the_student(
    npz_dir, teacher_dir, tmp_path, label_weight):
  task = _distill(npz_dir, teacher_dir,
                  loss=LossConfig(distill_label_weight=label_weight))
  strategy = tf.distribute.get_strategy()
  student = task.build_model(strategy)
  task.prepare(strategy)
  teacher = task.teacher
  assert not teacher.trainable_variables
  before, student_before = _weights(teacher), _weights(student)
  optimizer = build_optimizer(task.cfg.optim, 0.5, param_sets(student))
  loop = steps.make_train_loop(student, optimizer, strategy, task)
  source = data.get_source(task.cfg.data)
  metrics = loop(iter(task.dataset(strategy, source, 'train', 0)),
                 tf.constant(3))
  assert set(metrics) == set(task.metric_names(student))
  assert ('supervised_acc' in metrics) == (label_weight > 0)
  assert all(np.isfinite(float(v)) for v in metrics.values())
  for b, a in zip(before, _weights(teacher), strict=True):
    np.testing.assert_array_equal(a, b)  # weights and BN statistics
  assert any(not np.array_equal(b, a) for b, a in
             zip(student_before, _weights(student)))
  # The student's checkpoint holds the student (and its optimizer) only.
  manager = checkpoints.make_manager(student, optimizer, str(tmp_path), 1)
  saved = tf.train.list_variables(manager.save(checkpoint_number=3))
  stored = sum(int(np.prod(shape)) for key, shape in saved
               if key != '_CHECKPOINTABLE_OBJECT_GRAPH')
  # The student's variables, a momentum slot per trainable one, and a few
  # optimizer scalars; the teacher would add count_params(teacher) more.
  want = (count_params(student.variables) +
          count_params(student.trainable_variables))
  assert want <= stored < want + 10 < count_params(teacher.variables) + want


def test_bad_teachers_stop_before_anything_is_written(npz_dir, teacher_dir,
                                                      tmp_path):
  def refused(teacher, **overrides):
    with pytest.raises(CheckpointError) as e:
      _distill(npz_dir, teacher, **overrides).prepare(
          tf.distribute.get_strategy())
    return str(e.value)

  no_head = _write_run(str(tmp_path / 'pre'), _cfg(
      npz_dir, lineareval_while_pretraining=False))
  assert 'has no classifier to distill' in refused(no_head)
  other = dataclasses.replace(TINY, num_classes=4)
  four = _write_run(str(tmp_path / 'four'), _cfg(
      npz_dir, other, train_mode='finetune', checkpoint='x'))
  msg = refused(four, model=TINY)
  assert 'predicts 4 classes' in msg and 'has 3' in msg
  bigger = dataclasses.replace(TINY, image_size=40)
  big = _write_run(str(tmp_path / 'big'), _cfg(
      npz_dir, bigger, train_mode='finetune', checkpoint='x'))
  assert '--image_size=40' in refused(big)
  # What preflight checks (before TensorFlow): present and loadable.
  cfg = _cfg(npz_dir, train_mode='distill', model_dir=str(tmp_path / 'x'))
  with pytest.raises(CheckpointError, match='needs --teacher=PATH'):
    checkpoints.teacher(cfg)
  with pytest.raises(CheckpointError, match='--teacher=/nope does not exist'):
    checkpoints.teacher(dataclasses.replace(
        cfg, train=dataclasses.replace(cfg.train, teacher='/nope')))
  assert not os.path.exists(tmp_path / 'x')


def test_config_refuses_inconsistent_distillation_flags():
  with pytest.raises(ConfigError, match='teacher.*only applies to'):
    Config(train=TrainConfig(teacher='/t'))
  with pytest.raises(ConfigError, match='distill_label_weight=0.5.*'
                     'labeled_split'):
    Config(train=TrainConfig(train_mode='distill'),
           loss=LossConfig(distill_label_weight=0.5))
  for bad in (dict(distill_temperature=0.0), dict(distill_label_weight=1.5)):
    with pytest.raises(ConfigError, match=list(bad)[0]):
      LossConfig(**bad)


# -- The command line: kill -9 and rerun; nothing of the teacher written. --


@pytest.mark.slow
def test_killed_distillation_resumes_and_writes_only_the_student(
    npz_dir, tmp_path):
  """A distillation run killed after its first checkpoint and rerun ends
  bit for bit where an uninterrupted one ends; its checkpoints and export
  hold the student (width 0.0625) and nothing of the teacher (0.125)."""
  common = [f'--dataset=npz:{npz_dir}', '--seed=3', *cli.TINY]
  teacher = str(tmp_path / 'teacher')
  cli.run([*common, f'--model_dir={teacher}', '--train_steps=2',
           '--mode=train'])
  # Its export is the same teacher as its checkpoint.
  images = tf.random.stateless_uniform([4, 32, 32, 3], [1, 2])
  logits = []
  for path in (teacher, os.path.join(teacher, 'saved_model')):
    task = _distill(npz_dir, path)
    task.prepare(tf.distribute.get_strategy())
    logits.append(task.teacher(images)['logits_sup'].numpy())
  np.testing.assert_allclose(logits[0], logits[1], rtol=1e-5, atol=1e-6)
  # A bad teacher (a pretraining run without a probe) writes nothing.
  no_probe = _write_run(str(tmp_path / 'no_probe'), _cfg(
      npz_dir, lineareval_while_pretraining=False))
  bad = cli.run([*common, f'--model_dir={tmp_path / "bad"}',
                 '--train_mode=distill', f'--teacher={no_probe}'],
                check=False)
  assert bad.returncode == 1 and 'error: --teacher=' in bad.stderr
  assert 'has no classifier' in bad.stderr.splitlines()[-1]
  assert not os.path.exists(tmp_path / 'bad')

  def args(model_dir):
    return [*common, f'--model_dir={model_dir}', '--train_mode=distill',
            f'--teacher={teacher}', '--width_multiplier=0.0625',
            '--train_steps=4', '--checkpoint_steps=2', '--deterministic',
            '--keep_checkpoint_max=50', '--distill_temperature=2',
            '--mode=train']

  ref_dir, dir_ = str(tmp_path / 'uninterrupted'), str(tmp_path / 'killed')
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
  ref = subprocess.Popen(cli.run_py_command(args(ref_dir)), env=env,
                         cwd=cli.ROOT, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
  victim = subprocess.Popen(cli.run_py_command(args(dir_)), env=env,
                            cwd=cli.ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
  deadline = time.time() + 400
  while (not os.path.exists(os.path.join(dir_, 'checkpoint')) and
         victim.poll() is None and time.time() < deadline):
    time.sleep(0.05)
  victim.send_signal(signal.SIGKILL)
  assert victim.wait(60) == -signal.SIGKILL, 'finished before the kill'
  proc = cli.run(args(dir_))
  assert ref.wait(600) == 0
  assert 'Resumed from' in proc.stderr and 'Teacher: ' in proc.stderr
  teacher_shapes = {tuple(s) for _, s in tf.train.list_variables(
      checkpoints.latest(teacher)) if len(s) == 2}
  for step in (2, 4):
    a, b = (tf.train.load_checkpoint(os.path.join(d, f'ckpt-{step}'))
            for d in (ref_dir, dir_))
    shapes = a.get_variable_to_shape_map()
    for key in shapes:
      if key != '_CHECKPOINTABLE_OBJECT_GRAPH':
        np.testing.assert_array_equal(a.get_tensor(key), b.get_tensor(key))
    assert (32, 3) in {tuple(s) for s in shapes.values()}  # the student's
    assert (64, 3) in teacher_shapes  # the teacher's classifier ...
    assert (64, 3) not in {tuple(s) for s in shapes.values()}  # ... absent
  export = os.path.join(dir_, 'saved_model', '4', 'variables', 'variables')
  exported = {tuple(s) for _, s in tf.train.list_variables(export)}
  assert (32, 3) in exported and (64, 3) not in exported
