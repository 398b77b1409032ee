"""Keeps TensorFlow's start-up chatter out of a run's log.

TensorFlow's C++ side prints lines no environment variable silences
(``TF_CPP_MIN_LOG_LEVEL`` does not reach what it logs before
``absl::InitializeLog``): its banner twice (once per shared library), "Could
not find cuda drivers", then ``failed call to cuInit`` as an *error* on
every machine without a GPU, and "oneDNN supports DT_BOOL only on
platforms with AVX-512" as an error at the first step. ``install`` routes
the process's standard error (file descriptor 2, so C++ writes too)
through a small filter process that drops exactly those lines (``Noise``)
and passes everything else on unchanged, line by line; TensorFlow's
Python INFO lines are dropped at their loggers (``TensorFlowInfo``).

The filter is a separate process, not a thread, so that nothing is lost
when the run dies (a segmentation fault, an abort, kill -9): the filter
reads until the last writer is gone. It ignores SIGINT and SIGTERM (a
Ctrl-C reaches the whole process group; the run decides how to stop) and
ends at end of file. ``SIMCLR_RAW_LOG=1`` turns it off. Imports only the
standard library; ``python logfilter.py`` is the filter itself.
"""
from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys

RAW_ENV = 'SIMCLR_RAW_LOG'

_ALWAYS = tuple(re.compile(p) for p in (
    r'^WARNING: All log messages before absl::InitializeLog\(\) is called '
    r'are written to STDERR$',
    r'port\.cc:\d+\] oneDNN custom operations are on\.',
    r'cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine',
    r'\] oneDNN supports DT_BOOL only on platforms with AVX-512\.',
))
_NO_DRIVER = _ALWAYS[2]
# Expected, hence noise, only where there is no CUDA driver to initialise.
_CUINIT = re.compile(r'cuda_platform\.cc:\d+\] failed call to cuInit')


class Noise:
  """Which lines of standard error to drop (see the module docstring)."""

  def __init__(self):
    self.no_cuda_driver = False

  def drops(self, line: str) -> bool:
    if _NO_DRIVER.search(line):
      self.no_cuda_driver = True
    if any(p.search(line) for p in _ALWAYS):
      return True
    return self.no_cuda_driver and bool(_CUINIT.search(line))


def filter_stream(source, sink) -> None:
  """Copies the lines of binary ``source`` to ``sink`` except the noise."""
  noise = Noise()
  for raw in iter(source.readline, b''):
    if not noise.drops(raw.decode('utf-8', errors='replace')):
      sink.write(raw)
      sink.flush()


class TensorFlowInfo(logging.Filter):
  """Drops the INFO (and DEBUG) records TensorFlow's own Python code logs
  (through absl or its ``tensorflow`` logger): a "Sharding callback
  duration" per checkpoint, 2.4 KB of renamed input names per exported
  signature, "Writing fingerprint"... Its warnings and errors pass."""

  def filter(self, record):
    path = record.pathname.replace(os.sep, '/')
    return record.levelno >= logging.WARNING or (
        '/site-packages/tensorflow/' not in path and
        '/dist-packages/tensorflow/' not in path)


PYTHON_LOGGERS = ('absl', 'tensorflow')  # where TensorFlow's records go

_child = None  # the filter process, kept referenced while it runs


def install() -> bool:
  """Routes this process's standard error through the filter and filters
  the ``PYTHON_LOGGERS`` (``TensorFlowInfo``); returns whether the filter runs (not when
  ``SIMCLR_RAW_LOG=1``, or when it cannot start)."""
  global _child
  if os.environ.get(RAW_ENV) == '1':
    return False
  for name in PYTHON_LOGGERS:
    logging.getLogger(name).addFilter(TensorFlowInfo())
  sys.stderr.flush()
  try:
    child = subprocess.Popen(
        [sys.executable, '-I', os.path.abspath(__file__)],
        stdin=subprocess.PIPE, stdout=sys.__stderr__.fileno(),
        stderr=subprocess.DEVNULL)
  except OSError:
    return False
  os.dup2(child.stdin.fileno(), 2)
  child.stdin.close()  # fd 2 is now the only write end
  _child = child
  return True


def main() -> None:
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  try:
    filter_stream(sys.stdin.buffer, sys.stdout.buffer)
  except BrokenPipeError:  # whoever read the log is gone
    pass


if __name__ == '__main__':
  main()
