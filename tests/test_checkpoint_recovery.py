"""A damaged checkpoint state file never costs checkpoints (issue 14):
the run resumes from the newest complete checkpoint instead of starting
over at step 0 and overwriting it, or stops naming the files."""
import os

import pytest

import cli
from simclr_tf import checkpoints
from simclr_tf.checkpoints import paths


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


def test_rerun_with_a_garbled_state_file_resumes_and_keeps_checkpoints(
    trained):
  """It used to restart from step 0 and overwrite ckpt-1 and ckpt-2."""
  model_dir, args = trained
  before = _files(model_dir)
  with open(os.path.join(model_dir, 'checkpoint'), 'w') as f:
    f.write('\x00\x17garbled')
  proc = cli.run(args + ['--train_steps=3'])
  assert 'using the newest complete checkpoint' in proc.stderr
  assert f'Resumed from {os.path.join(model_dir, "ckpt-2")} at step 2' in (
      proc.stderr)
  after = _files(model_dir)
  assert {n: after[n] for n in before} == before  # nothing overwritten
  assert cli.ckpt_steps(model_dir) == [1, 2, 3]
  assert paths.state_names(model_dir) == os.path.join(model_dir, 'ckpt-3')
