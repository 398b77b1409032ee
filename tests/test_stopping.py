"""SIGTERM (preemption) and Ctrl-C stop a run cleanly (issue 14): a
checkpoint of the current step, one 'stopped:' line, no traceback, and a
rerun resumes from that step."""
import os
import signal
import subprocess

import pytest

import cli


@pytest.fixture(scope='module')
def npz_dir(tmp_path_factory):
  return cli.write_tiny_npz(tmp_path_factory.mktemp('npz'))


def _run_until_training_then(signum, args):
  """Starts run.py, sends ``signum`` once training has logged a step."""
  env = {**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2'}
  proc = subprocess.Popen(cli.run_py_command(args), stderr=subprocess.PIPE,
                          text=True, env=env, cwd=cli.ROOT)
  lines = []
  for line in proc.stderr:
    lines.append(line)
    if '| loss ' in line:  # a progress line: training runs
      proc.send_signal(signum)
      break
  _, rest = proc.communicate(timeout=300)
  return proc.returncode, ''.join(lines) + rest


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_current_step_and_stops_cleanly(npz_dir, tmp_path,
                                                         signum):
  model_dir = str(tmp_path / 'run')
  base = cli.TINY + [f'--dataset=npz:{npz_dir}', f'--model_dir={model_dir}',
                     '--checkpoint_steps=1000', '--seed=1', '--mode=train']
  code, log = _run_until_training_then(signum, base + ['--train_steps=400'])
  assert code == 128 + signum, log[-3000:]
  assert 'Traceback' not in log, log[-3000:]
  stopped = [l for l in log.splitlines() if l.startswith('stopped: ')]
  assert len(stopped) == 1, log[-3000:]
  name = signal.Signals(signum).name
  step = int(stopped[0].split(' at step ')[1].split(':')[0])
  assert stopped[0] == (f'stopped: {name} at step {step}: saved '
                        f'{os.path.join(model_dir, f"ckpt-{step}")}. Rerun '
                        'the same command to resume from it.')
  assert cli.ckpt_steps(model_dir) == [step] and 0 < step < 400
  if signum == signal.SIGTERM:  # one rerun serves both signals
    rerun = cli.run(base + [f'--train_steps={step + 2}'])
    assert f'Resumed from {os.path.join(model_dir, f"ckpt-{step}")}' in (
        rerun.stderr)
    assert cli.ckpt_steps(model_dir) == [step, step + 2]
