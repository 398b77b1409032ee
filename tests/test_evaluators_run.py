"""What a run writes for its evaluators (issue 13), from one tiny
``run.py`` training run and one ``--mode=eval`` on it: the curves (eval at
every checkpoint, kNN every epoch, training scalars at every step of a
short run), the neighbour grid, the Projector files, the result JSON, the
progress log, and the README's list of TensorBoard tags."""
import json
import os
import re

import pytest
from tensorboard.backend.event_processing import event_accumulator

import cli

README = os.path.join(cli.ROOT, 'README.md')
# Tags only other training modes write (README lists them per mode).
OTHER_MODES = {'train/distill_loss', 'train/teacher_agreement'}


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('evalrun')
  npz = cli.write_tiny_npz(root)
  (root / 'classes.txt').write_text('dark\nmid\nlight\n')
  model_dir = str(root / 'run')
  # 48 examples, batch 8: 6 steps an epoch, 2 epochs + 1 = 13 steps,
  # checkpoints at 6, 12, 13; kNN every half epoch (3 steps).
  proc = cli.run(cli.TINY + [
      f'--dataset=npz:{npz}', f'--model_dir={model_dir}', '--train_epochs=2',
      '--seed=1', '--knn_every_epochs=0.5', '--knn_k=10',
      '--projector_examples=15', '--steps_per_loop=4'])
  return model_dir, proc.stderr, proc.stdout


def _tags(path):
  acc = event_accumulator.EventAccumulator(
      path, size_guidance={'tensors': 0})
  acc.Reload()
  return {tag: [e.step for e in acc.Tensors(tag)]
          for tag in acc.Tags()['tensors']}


def _readme_tags():
  text = open(README).read()
  section = text.split('## TensorBoard', 1)[1].split('\n## ', 1)[0]
  return set(re.findall(r'`((?:train|eval)/\w+)`', section))


def test_curves_results_and_log(run_dir):
  model_dir, log, _ = run_dir
  train_tags, eval_tags = (_tags(os.path.join(model_dir, d))
                           for d in ('train', 'eval'))
  # Every step of a 13-step run, though a loop call runs up to 4 steps
  # (the first stops at step 3, the first kNN evaluation).
  assert train_tags['train/total_loss'] == list(range(1, 14))
  assert train_tags['train/learning_rate'] == list(range(1, 14))
  assert eval_tags['eval/top_1'] == [6, 12, 13]  # every checkpoint
  assert eval_tags['eval/knn_top1'] == [3, 6, 9, 12, 13]
  assert eval_tags['eval/neighbours'] == [3, 6, 9, 12, 13]
  written = set(train_tags) | set(eval_tags)
  readme = _readme_tags()
  assert written <= readme, f'not in the README: {written - readme}'
  assert readme - OTHER_MODES <= written, (
      f'in the README, not written: {readme - OTHER_MODES - written}')
  for step in (6, 12, 13):
    with open(os.path.join(model_dir, f'result_{step}.json')) as f:
      result = json.load(f)
    assert {'top_1', 'knn_top1', 'knn_top5'} <= set(result)
    assert result['knn_bank_examples'] == 48
    assert result['global_step'] == step
  with open(os.path.join(model_dir, 'result.json')) as f:
    assert json.load(f)['global_step'] == 13
  assert re.search(r'step 13/13 \| .*knn@1 [\d.]+ \| eval@1 [\d.]+', log)
  assert re.search(r'Eval \(knn\) at step 3: knn_top1 [\d.]+, knn_top5 '
                   r'[\d.]+ \(20 queries of test, a bank of 48 of train, '
                   r'k 10\)', log)


def test_projector_written_at_the_end(run_dir):
  model_dir = run_dir[0]
  run = os.path.join(model_dir, 'eval')
  assert os.listdir(os.path.join(run, 'projector')) == ['13']
  config = open(os.path.join(run, 'projector_config.pbtxt')).read()
  assert 'tensor_shape: 15' in config and 'single_image_dim: 32' in config
  meta = open(os.path.join(run, 'projector', '13', 'metadata.tsv')).read()
  assert meta.splitlines()[:3] == ['label\tclass', '0\tdark', '1\tmid']


def test_mode_eval_runs_the_same_evaluators(run_dir):
  model_dir = run_dir[0]
  proc = cli.run(cli.TINY + [
      f'--dataset=npz:{os.path.dirname(model_dir)}',
      f'--model_dir={model_dir}', '--mode=eval', '--eval_name=again',
      '--knn_k=10', '--projector_examples=15'])
  tags = _tags(os.path.join(model_dir, 'eval_again'))
  assert {'eval/top_1', 'eval/knn_top1', 'eval/neighbours'} <= set(tags)
  assert tags['eval/knn_top1'] == [13]
  assert os.path.exists(os.path.join(model_dir, 'eval_again',
                                     'projector_config.pbtxt'))
  with open(os.path.join(model_dir, 'result_13.json')) as f:
    result = json.load(f)
  assert 'Eval (knn) at step 13' in proc.stderr
  assert {'top_1', 'knn_top1'} <= set(result)


def test_summary_on_standard_output(run_dir):
  """A finished run used to print its results only into the log."""
  model_dir, _, stdout = run_dir
  lines = stdout.strip().splitlines()
  assert lines[0] == ('done: --mode=train_then_eval at step 13, '
                      f'--model_dir={model_dir}')
  assert re.fullmatch(r'  eval: top_1 [\d.]+, top_5 [\d.]+, knn_top1 '
                      r'[\d.]+, knn_top5 [\d.]+', lines[1])
  assert lines[2] == '  export: ' + os.path.join(model_dir, 'saved_model', '13')


def test_class_names_recorded(run_dir):
  """A consumer could not tell what logits_sup index 2 means."""
  model_dir = run_dir[0]
  names = ['dark', 'mid', 'light']
  with open(os.path.join(model_dir, 'result.json')) as f:
    assert json.load(f)['class_names'] == names
  meta = os.path.join(model_dir, 'saved_model', '13', 'assets.extra',
                      'simclr_export.json')
  with open(meta) as f:
    assert json.load(f)['config']['data']['class_names'] == names


def test_progress_from_the_first_call_with_named_units(run_dir):
  """The first line used to come at step 50, with an ETA that counted the
  tracing and 'img/s' that counted views."""
  log = run_dir[1]
  progress = [l for l in log.splitlines() if ' | loss ' in l]
  first = progress[0]
  assert re.search(r'step 3/13 \| .* \| [\d.]+ images/s \([\d.]+ '
                   r'views/s\) \| first call [\d.]+ s \(tracing included\)',
                   first), first
  assert all(re.search(r'images/s \([\d.]+ views/s\) \| ETA ', l)
             for l in progress[1:]), progress
