"""The run's log is what a user needs to read (issue 14): TensorFlow's
start-up chatter is dropped, everything else passes unchanged."""
import io
import logging
import os
import subprocess
import sys

from simclr_tf import logfilter

# As TensorFlow 2.21 printed them on a CPU-only machine (run.py, issue 14).
BANNER = [
    'WARNING: All log messages before absl::InitializeLog() is called are '
    'written to STDERR',
    'I0000 00:00:1796223287.965538   26633 port.cc:153] oneDNN custom '
    'operations are on. You may see slightly different numerical results '
    'due to floating-point round-off errors from different computation '
    'orders. To turn them off, set the environment variable '
    '`TF_ENABLE_ONEDNN_OPTS=0`.',
    'I0000 00:00:1796223287.966013   26633 cudart_stub.cc:31] Could not find '
    'cuda drivers on your machine, GPU will not be used.',
]
CUINIT = ('E0000 00:00:1796223290.362781   26633 cuda_platform.cc:52] failed '
          'call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: '
          'UNKNOWN ERROR (303)')
DT_BOOL = ('E0000 00:00:1796223296.741519   26633 util.cc:131] oneDNN '
           'supports DT_BOOL only on platforms with AVX-512. Falling back to '
           'the default Eigen-based implementation if present.')
KEPT = [
    'I1202 14:54:52.259878 140401769945984 jobs.py:183] Mode train, '
    '_DefaultDistributionStrategy, 1 replica(s).',
    'Traceback (most recent call last):',
    'E0000 00:00:1796223290.362781   26633 some_kernel.cc:52] a real error',
    'error: --temperature=-1 is invalid',
    'corrupted size vs. prev_size',
]


def _filtered(lines):
  out = io.BytesIO()
  logfilter.filter_stream(io.BytesIO(''.join(
      line + '\n' for line in lines).encode()), out)
  return out.getvalue().decode().splitlines()


def test_drops_the_banner_twice_and_cuinit_without_a_driver():
  lines = BANNER + [KEPT[0]] + BANNER + [CUINIT, KEPT[1], DT_BOOL] + KEPT[2:]
  assert _filtered(lines) == KEPT


def test_keeps_cuinit_where_a_driver_was_found():
  """A failed cuInit on a machine with a CUDA driver is a real error."""
  assert _filtered(BANNER[:2] + [CUINIT]) == [CUINIT]


def test_tensorflow_info_records_are_dropped_ours_and_warnings_pass():
  keep = logfilter.TensorFlowInfo().filter

  def record(path, level=logging.INFO):
    return logging.LogRecord('absl', level, path, 1, 'x', None, None)

  tf_file = os.path.join(sys.prefix, 'lib', 'python3.11', 'site-packages',
                         'tensorflow', 'python', 'checkpoint',
                         'functional_saver.py')
  assert not keep(record(tf_file))
  assert keep(record(tf_file, logging.WARNING))
  assert keep(record('/work/main/simclr_tf/train.py'))
  assert keep(record('/work/main/simclr_tf/tensorflow_x.py'))


def test_install_filters_native_writes_and_loses_nothing_on_a_crash():
  """A child that writes to file descriptor 2 directly (as C++ does) and
  then dies of SIGABRT: its noise is dropped and its last words arrive."""
  code = ('import os, sys\n'
          'from simclr_tf import logfilter\n'
          'print(logfilter.install(), flush=True)\n'
          f'os.write(2, {(chr(10).join(BANNER + [CUINIT, KEPT[4]]) + chr(10)).encode()!r})\n'
          'os.abort()\n')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                        cwd=os.path.dirname(os.path.dirname(
                            os.path.abspath(__file__))), timeout=60)
  assert proc.returncode != 0 and proc.stdout == b'True\n'
  assert proc.stderr.decode().splitlines() == [KEPT[4]]
  raw = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       env={**os.environ, logfilter.RAW_ENV: '1'},
                       cwd=os.path.dirname(os.path.dirname(
                           os.path.abspath(__file__))), timeout=60)
  assert raw.stdout == b'False\n'  # SIMCLR_RAW_LOG=1: unfiltered
  assert raw.stderr.decode().splitlines() == BANNER + [CUINIT, KEPT[4]]
