"""A damaged checkpoint state file never costs checkpoints (issue 14):
the run resumes from the newest complete checkpoint instead of starting
over at step 0 and overwriting it, or stops naming the files."""
import logging
import os

import pytest
import tensorflow as tf

import cli
from simclr_tf import checkpoints
from simclr_tf.checkpoints import paths, reader


def _files(model_dir):
  return {n: open(os.path.join(model_dir, n), 'rb').read()
          for n in os.listdir(model_dir) if n.startswith('ckpt-')}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  root = tmp_path_factory.mktemp('recovery')
  npz = cli.write_tiny_npz(root)
  model_dir = str(root / 'run')
  args = cli.TINY + [f'--dataset=npz:{npz}', f'--model_dir={model_dir}',
                     '--checkpoint_steps=1', '--seed=1', '--mode=train']
  cli.run(args + ['--train_steps=2'])
  return model_dir, args


def _fake_checkpoints(directory, spec):
  """``spec``: step -> (has index, shards present, shard count)."""
  os.makedirs(directory, exist_ok=True)
  for step, (index, present, count) in spec.items():
    if index:
      open(os.path.join(directory, f'ckpt-{step}.index'), 'w').close()
    for k in present:
      open(os.path.join(directory, f'ckpt-{step}.data-{k:05d}-of-'
                                   f'{count:05d}'), 'w').close()


@pytest.mark.parametrize('state', ['garbage {{ not a proto', '',
                                   'model_checkpoint_path: "ckpt-9"\n'])
def test_latest_falls_back_to_the_newest_complete_checkpoint(tmp_path,
                                                             state):
  d = str(tmp_path)
  _fake_checkpoints(d, {1: (True, [0], 1), 2: (True, [0, 1], 2),
                        3: (True, [0], 2), 4: (False, [0], 1)})
  with open(os.path.join(d, 'checkpoint'), 'w') as f:
    f.write(state)
  assert paths.complete_checkpoints(d) == [os.path.join(d, 'ckpt-1'),
                                           os.path.join(d, 'ckpt-2')]
  assert checkpoints.latest(d) == os.path.join(d, 'ckpt-2')


def test_latest_refuses_when_no_checkpoint_is_complete(tmp_path):
  d = str(tmp_path)
  _fake_checkpoints(d, {5: (True, [], 1), 6: (False, [0], 1)})
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'--model_dir=.* holds checkpoint files but no '
                     r'complete checkpoint.*ckpt-5\.index'):
    checkpoints.latest(d)
  assert checkpoints.latest(str(tmp_path / 'missing')) is None


def test_named_checkpoint_wins_and_names_are_matched_exactly(tmp_path):
  d = str(tmp_path / 'runs' / 'glob[1]')
  _fake_checkpoints(d, {1: (True, [0], 1), 2: (True, [0], 1)})
  with open(os.path.join(d, 'checkpoint'), 'w') as f:
    f.write('model_checkpoint_path: "ckpt-1"\n')
  assert checkpoints.latest(d) == os.path.join(d, 'ckpt-1')


def test_rerun_with_a_garbled_state_file_and_a_damaged_newest_checkpoint(
    trained):
  """A garbled state file used to restart the run from step 0 over ckpt-1
  and ckpt-2; a truncated newest checkpoint raised a traceback. Now the
  run resumes from the newest checkpoint that reads (ckpt-2; the
  truncated ckpt-3 is passed over) and keeps every readable one."""
  model_dir, args = trained
  before = _files(model_dir)
  for name in before:  # ckpt-3: a copy of ckpt-2, its data then truncated
    if name.startswith('ckpt-2.'):
      with open(os.path.join(model_dir, 'ckpt-3.' + name[7:]), 'wb') as f:
        f.write(before[name][:len(before[name]) // 2]
                if '.data-' in name else before[name])
  with open(os.path.join(model_dir, 'checkpoint'), 'w') as f:
    f.write('\x00\x17garbled')
  proc = cli.run(args + ['--train_steps=3'])
  assert 'state file in' in proc.stderr and 'is missing, empty or ' \
      'unreadable' in proc.stderr
  assert f'{os.path.join(model_dir, "ckpt-3")} is damaged' in proc.stderr
  assert 'manually editing the Checkpoint proto' not in proc.stderr  # noise
  assert f'Resumed from {os.path.join(model_dir, "ckpt-2")} at step 2' in (
      proc.stderr)
  after = _files(model_dir)
  assert {n: after[n] for n in before} == before  # nothing overwritten
  assert cli.ckpt_steps(model_dir) == [1, 2, 3]
  assert paths.state_names(model_dir) == os.path.join(model_dir, 'ckpt-3')
  assert reader.damage(os.path.join(model_dir, 'ckpt-3')) is None


@pytest.fixture(scope='module')
def saved_checkpoints(tmp_path_factory):
  """ckpt-1 .. ckpt-3 of two small variables, as the manager writes them."""
  d = str(tmp_path_factory.mktemp('small'))
  v = tf.Variable(tf.range(4000, dtype=tf.float32))
  w = tf.Variable(tf.ones([3, 3]))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=v, w=w), d,
                                       max_to_keep=5, checkpoint_name='ckpt')
  for step in (1, 2, 3):
    manager.save(checkpoint_number=step)
  return {n: open(os.path.join(d, n), 'rb').read() for n in os.listdir(d)}


def _damage(data, how):
  if how == 'truncated .data':
    return {'.data-00000-of-00001': data[:len(data) // 3]}
  if how == 'flipped bytes in .data':
    flipped = bytearray(data)
    flipped[100:140] = bytes(b ^ 0xff for b in flipped[100:140])
    return {'.data-00000-of-00001': bytes(flipped)}
  if how == 'garbage .index':
    return {'.index': os.urandom(300)}
  return {'.index': b''}  # empty .index


@pytest.mark.parametrize('how', ['truncated .data', 'flipped bytes in .data',
                                 'garbage .index', 'empty .index'])
def test_a_damaged_checkpoint_is_passed_over_for_the_newest_readable(
    tmp_path, saved_checkpoints, how, caplog):
  d = str(tmp_path)
  for name, data in saved_checkpoints.items():
    with open(os.path.join(d, name), 'wb') as f:
      f.write(data)
  newest, older = os.path.join(d, 'ckpt-3'), os.path.join(d, 'ckpt-2')
  for suffix, data in _damage(
      saved_checkpoints['ckpt-3.data-00000-of-00001'], how).items():
    with open(newest + suffix, 'wb') as f:
      f.write(data)
  assert reader.damage(newest) and reader.damage(older) is None
  assert checkpoints.latest(d) == newest  # without reading: as named
  with caplog.at_level(logging.WARNING):
    assert checkpoints.latest(d, verify=reader.damage) == older
  assert f'{newest} is damaged' in caplog.text
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'--checkpoint=.*ckpt-3: .*ckpt-3 is damaged'):
    paths.resolve(newest, verify=reader.damage)
  assert paths.resolve(d, verify=reader.damage) == older


def test_every_checkpoint_damaged_or_data_missing_is_named(
    tmp_path, saved_checkpoints):
  d = str(tmp_path)
  for name, data in saved_checkpoints.items():
    if name.endswith('.index'):  # the data shards are missing
      with open(os.path.join(d, name), 'wb') as f:
        f.write(data)
  prefix = os.path.join(d, 'ckpt-2')
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'ckpt-2 is damaged .*ckpt-2\.data-00000-of-00001'
                     r'.*No such file'):
    paths.resolve(prefix, flag='checkpoint', verify=reader.damage)
  for step in (1, 2, 3):  # now complete, every one truncated
    with open(os.path.join(d, f'ckpt-{step}.data-00000-of-00001'), 'wb') as f:
      f.write(b'\0' * 10)
  with pytest.raises(checkpoints.CheckpointError,
                     match=r'--model_dir=.*: no checkpoint there can be read'
                     r'.*ckpt-3 is damaged.*ckpt-2 is damaged.*ckpt-1 is '
                     r'damaged'):
    checkpoints.latest(d, flag='model_dir', verify=reader.damage)
