"""Time a run.py job spends around the training step: start-up, evals, export.

Runs ``python REPO/run.py ...`` (cwd REPO; the environment as it is, less
SIMCLR_RAW_LOG) and stamps each line of its standard error and output with
its arrival (``time.monotonic()`` since the launch), so it times any
checkout (``--repo``) and two can be compared side by side. Each job gets a
fresh --model_dir in a temporary directory (deleted unless ``--keep``):

  smoke                   flags/presets/smoke.cfg (4 steps of batch 16)
  smoke_rerun             the same command on the finished smoke directory
  export_only             --mode=export on the smoke directory
  quick_first_step        the no-argument quick job, stopped (SIGTERM to its
                          process group) at its first progress line
  cifar10_cpu_first_step  flags/presets/cifar10_cpu.cfg on the npz CIFAR-10
                          in --shared, stopped at its first progress line

  python bench/job_overhead.py                          # all five jobs
  python bench/job_overhead.py --jobs smoke,export_only --repeats 3
  python bench/job_overhead.py --repo ../other_checkout # time that tree

Prints one JSON object; exits 1 if a job failed ("error": its last lines).
"""
import argparse
import collections
import importlib.metadata
import json
import os
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import machine  # bench/machine.py

HERE = os.path.dirname(os.path.abspath(__file__))
JOBS = ('smoke', 'smoke_rerun', 'export_only', 'quick_first_step',
        'cifar10_cpu_first_step')
FIRST_STEP_JOBS = ('quick_first_step', 'cifar10_cpu_first_step')
STEP = re.compile(r'\bstep (\d+)/(\d+) \|')
EVAL = re.compile(r'\bEval \(([^)]+)\) at step')
FIRST_CALL = re.compile(r'\bfirst call ([\d.]+) s')
SKIPPED = re.compile(r'already (exported|evaluated)', re.IGNORECASE)
PHASES = (('export', 'Exported SavedModel to'),
          ('checkpoint', 'Saved checkpoint'))
KILL_GRACE_SEC = 20

Line = collections.namedtuple('Line', 't stream text')
Run = collections.namedtuple('Run', 'lines exit_sec exit_code kill_sec '
                                    'timed_out')


def job_argv(name, dirs, shared):
  """run.py's arguments for job ``name`` (--model_dir after --flagfile)."""
  smoke = ['--flagfile=flags/presets/smoke.cfg', f'--model_dir={dirs}/smoke']
  return {
      'smoke': smoke, 'smoke_rerun': smoke,
      'export_only': ['--mode=export', f'--model_dir={dirs}/smoke'],
      'quick_first_step': [f'--model_dir={dirs}/quick', '--seed=1'],
      'cifar10_cpu_first_step': [
          '--flagfile=flags/presets/cifar10_cpu.cfg',
          f'--dataset=npz:{shared}/data/cifar10',
          f'--model_dir={dirs}/cifar10_cpu', '--seed=1'],
  }[name]


def _read(stream, name, start, events):
  """Queues (stream, arrival, text) per line, then text None at the end."""
  for raw in iter(stream.readline, b''):
    text = raw.decode('utf-8', errors='replace').rstrip('\r\n')
    events.put((name, time.monotonic() - start, text))
  events.put((name, time.monotonic() - start, None))


def _wait(proc, exited, start, events):
  code = proc.wait()
  exited.set()
  events.put(('exit', time.monotonic() - start, code))


def signal_group(proc, sig):
  """Signals the job's process group: run.py and its log filter."""
  try:
    os.killpg(proc.pid, sig)
  except ProcessLookupError:
    pass


def stop_group(proc, exited):
  """SIGTERM (run.py checkpoints and exits 143), SIGKILL if run.py is
  still alive after the grace period."""
  signal_group(proc, signal.SIGTERM)
  if not exited.wait(KILL_GRACE_SEC):
    signal_group(proc, signal.SIGKILL)


def run_job(argv, repo, timeout, stop_at_first_step=False) -> Run:
  """Runs run.py with ``argv`` and keeps every line with its arrival;
  stops it at its first progress line if asked, or at ``timeout``."""
  env = {k: v for k, v in os.environ.items() if k != 'SIMCLR_RAW_LOG'}
  events, exited = queue.Queue(), threading.Event()
  start = time.monotonic()
  proc = subprocess.Popen([sys.executable, os.path.join(repo, 'run.py')]
                          + argv, cwd=repo, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, start_new_session=True)
  for target, args in ((_read, (proc.stdout, 'stdout')),
                       (_read, (proc.stderr, 'stderr')),
                       (_wait, (proc, exited))):
    threading.Thread(target=target, args=args + (start, events),
                     daemon=True).start()
  lines, exit_sec, code, kill_sec, timed_out = [], None, None, None, False
  pending = 3  # two streams to end, one exit
  try:
    while pending:
      try:
        kind, t, payload = events.get(timeout=1)
      except queue.Empty:
        now = time.monotonic() - start
        if kill_sec is None and now > timeout:
          kill_sec, timed_out = now, True
          stop_group(proc, exited)
        elif exit_sec is not None and now > exit_sec + KILL_GRACE_SEC:
          signal_group(proc, signal.SIGKILL)  # a member holds the pipes
          break
        continue
      if kind == 'exit':
        exit_sec, code, pending = t, payload, pending - 1
      elif payload is None:
        pending -= 1
      else:
        lines.append(Line(round(t, 3), kind, payload))
        if stop_at_first_step and kill_sec is None and STEP.search(payload):
          kill_sec = time.monotonic() - start
          stop_group(proc, exited)
  finally:
    if not exited.is_set():
      signal_group(proc, signal.SIGKILL)
  return Run(lines, exit_sec, code, kill_sec, timed_out)


def phase_of(text):
  """The phase a log line ends ('eval:NAME', 'export', ...), or None."""
  if SKIPPED.search(text):
    return 'skipped'
  match = EVAL.search(text)
  if match:
    return f'eval:{match.group(1)}'
  return next((name for name, key in PHASES if key in text), None)


def phases_after(lines, index):
  """Each phase line after lines[index]: its arrival minus the previous
  line's (and its text for a 'skipped' line); None without lines[index]."""
  if index is None:
    return None
  return [{'name': name, 'sec': round(lines[i].t - lines[i - 1].t, 3),
           **({'text': lines[i].text} if name == 'skipped' else {})}
          for i in range(index + 1, len(lines))
          for name in [phase_of(lines[i].text)] if name]


def find(lines, predicate, last=False):
  """The index of the first (last) line whose text satisfies predicate."""
  hits = [i for i, line in enumerate(lines) if predicate(line.text)]
  return (hits[-1] if last else hits[0]) if hits else None


def arrival(lines, predicate):
  index = find(lines, predicate)
  return lines[index].t if index is not None else None


def is_last_step(text):
  match = STEP.search(text)
  return bool(match) and match.group(1) == match.group(2)


def smoke_figures(run):
  last = find(run.lines, is_last_step, last=True)
  phases = phases_after(run.lines, last) or []
  return {'start_to_first_step_sec': arrival(run.lines, STEP.search),
          'last_step_to_end_sec': None if last is None
          else round(run.exit_sec - run.lines[last].t, 3),
          'phases_after_last_step': phases,
          'export_sec': next((p['sec'] for p in phases
                              if p['name'] == 'export'), None)}


def rerun_figures(run):
  done = find(run.lines, lambda text: 'Already trained' in text)
  return {'phases_after_already_trained': phases_after(run.lines, done)}


def export_figures(run):
  restored = arrival(run.lines, lambda text: 'Restored the model' in text)
  exported = arrival(run.lines, lambda text: 'Exported SavedModel to' in text)
  return {'export_sec': None if None in (restored, exported)
          else round(exported - restored, 3)}


def first_step_figures(run):
  first = find(run.lines, STEP.search)
  call = first is not None and FIRST_CALL.search(run.lines[first].text)
  return {'start_to_first_progress_sec': arrival(run.lines, STEP.search),
          'first_call_sec': float(call.group(1)) if call else None,
          'kill_to_exit_sec': None if run.kill_sec is None
          else round(run.exit_sec - run.kill_sec, 3),
          'lines_before_first_step': [{'t': l.t, 'text': l.text[:120]}
                                      for l in run.lines[:first]]}


FIGURES = {'smoke': smoke_figures, 'smoke_rerun': rerun_figures,
           'export_only': export_figures,
           'quick_first_step': first_step_figures,
           'cifar10_cpu_first_step': first_step_figures}


def measure(name, run) -> dict:
  """The figures every job has, then job ``name``'s own."""
  return {'wall_sec': round(run.exit_sec, 3), 'exit_code': run.exit_code,
          'skipped_lines': [l.text for l in run.lines
                            if SKIPPED.search(l.text)],
          **FIGURES[name](run)}


def numbers(figures) -> dict:
  """The numeric figures, phases as 'LIST.NAME' (summed if repeated)."""
  out = {}
  for key, value in figures.items():
    if isinstance(value, (int, float)) and key != 'exit_code':
      out[key] = value
    elif key.startswith('phases_after') and value:
      for phase in value:
        name = f'{key}.{phase["name"]}'
        out[name] = out.get(name, 0) + phase['sec']
  return out


def medians(runs) -> dict:
  """The median of each figure that is a number in every repetition."""
  flat = [numbers(r) for r in runs]
  return {k: round(statistics.median(f[k] for f in flat), 3)
          for k in flat[0] if all(k in f for f in flat)}


def checkout(repo) -> dict:
  """The timed tree: path, commit, and whether tracked files differ."""
  def git(*argv):
    return subprocess.run(['git', '-C', repo, *argv], capture_output=True,
                          text=True).stdout.strip()
  return {'repo': repo,
          'commit': git('rev-parse', '--short', 'HEAD') or None,
          'dirty': bool(git('status', '--porcelain', '--untracked-files=no'))}


def run_jobs(args, root, report) -> bool:
  """Runs the chosen jobs ``--repeats`` times into ``report``; False when
  one failed (``report['error']``). The smoke run the smoke_rerun and
  export_only jobs need runs unreported when smoke is not chosen."""
  wanted = [j for j in JOBS if j in args.jobs]
  setup = ['smoke'] if ({'smoke_rerun', 'export_only'} & set(wanted)
                        and 'smoke' not in wanted) else []
  report['jobs'] = {}
  for rep in range(args.repeats):
    for name in setup + wanted:
      argv = job_argv(name, os.path.join(root, str(rep)), args.shared)
      run = run_job(argv, args.repo, args.timeout, name in FIRST_STEP_JOBS)
      stopped = run.kill_sec is not None and not run.timed_out
      if run.timed_out or (run.exit_code != 0 and not stopped):
        report['error'] = {
            'job': name, 'repetition': rep, 'argv': argv,
            'exit_code': run.exit_code, 'timed_out': run.timed_out,
            'last_lines': [l.text for l in run.lines[-20:]]}
        return False
      if name in wanted:
        job = report['jobs'].setdefault(name, {'argv': argv, 'runs': []})
        job['runs'].append(measure(name, run))
        job['median'] = medians(job['runs'])
  return True


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--repo', default=os.path.dirname(HERE),
                      help='the checkout whose run.py to time')
  parser.add_argument('--shared', help='holds data/cifar10 '
                      '(default: REPO/../shared)')
  parser.add_argument('--jobs', default=','.join(JOBS),
                      help='comma-separated subset of: ' + ', '.join(JOBS))
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--timeout', type=float, default=3600,
                      help='seconds before a job is stopped as failed')
  parser.add_argument('--keep', action='store_true',
                      help='keep the temporary model directories')
  args = parser.parse_args()
  args.repo = os.path.abspath(args.repo)
  args.shared = os.path.abspath(args.shared or
                                os.path.join(args.repo, '..', 'shared'))
  args.jobs = [j.strip() for j in args.jobs.split(',') if j.strip()]
  if set(args.jobs) - set(JOBS):
    parser.error(f'unknown jobs {sorted(set(args.jobs) - set(JOBS))}')
  root = tempfile.mkdtemp(prefix='job_overhead_')
  report = {'benchmark': 'job_overhead', **checkout(args.repo),
            'repeats': args.repeats}
  try:
    ok = run_jobs(args, root, report)
  finally:
    if args.keep:
      report['model_dirs'] = root
    else:
      shutil.rmtree(root, ignore_errors=True)
  report.update(nproc=os.cpu_count(), cpu_model=machine.cpu_model(),
                tensorflow=importlib.metadata.version('tensorflow'),
                loadavg_1min=round(os.getloadavg()[0], 2))
  print(json.dumps(report))
  sys.exit(0 if ok else 1)


if __name__ == '__main__':
  main()
