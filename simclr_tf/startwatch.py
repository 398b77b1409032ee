"""A start-up deadline for a multi-worker cluster, kept by another process.

TensorFlow waits without a limit for the workers of ``TF_CONFIG`` to join,
inside one C++ call that holds the interpreter lock: no thread of the
waiting process runs and no signal handler either. So the deadline is
kept by a small child process (``python startwatch.py``): ``watch`` starts
it, ``Watch.formed`` ends it. If the cluster has not formed when the time
is up, the child prints one error line naming the workers whose address
does not answer, and kills the waiting process (exit status 137). It also
ends when the waiting process dies. Imports only the standard library.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys


def listening(address: str) -> bool:
  """Whether something accepts connections at ``host:port``."""
  host, _, port = address.rpartition(':')
  try:
    with socket.create_connection((host.strip('[]'), int(port)), timeout=2):
      return True
  except (OSError, ValueError):
    return False


def message(workers, index: int, timeout: int) -> str:
  """The error line: which workers of ``workers`` have not started."""
  missing = [f'worker {i} ({address})' for i, address in enumerate(workers)
             if i != index and not listening(address)]
  if missing:
    why = (f'{", ".join(missing)} of TF_CONFIG\'s cluster.worker '
           f'{"has" if len(missing) == 1 else "have"} not started')
  else:
    why = ("every worker of TF_CONFIG's cluster.worker answers, but they "
           'did not form one cluster (does each have the same cluster list '
           'and its own task.index?)')
  return (f'error: --strategy=multi_worker: worker {index} waited {timeout} '
          f's (--worker_timeout_secs) for the cluster to form: {why}. Start '
          'every worker with the same command and its own TF_CONFIG '
          'task.index.')


class Watch:
  """The running deadline; ``formed()`` ends it."""

  def __init__(self, child):
    self._child = child

  def formed(self) -> None:
    self._child.stdin.close()  # end of file: the child exits
    self._child.wait()


def watch(workers, index: int, timeout: int) -> Watch:
  """Starts the deadline of ``timeout`` seconds for this process."""
  child = subprocess.Popen(
      [sys.executable, '-I', os.path.abspath(__file__), str(os.getpid()),
       str(timeout), str(index), json.dumps(list(workers))],
      stdin=subprocess.PIPE)
  return Watch(child)


def main(argv) -> None:
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # the waiting process decides
  parent, timeout, index = (int(a) for a in argv[1:4])
  workers = json.loads(argv[4])
  ready, _, _ = select.select([sys.stdin], [], [], timeout)
  if ready:  # formed (end of file), or the waiting process is gone
    return
  sys.stderr.write(message(workers, index, timeout) + '\n')
  sys.stderr.flush()
  try:
    os.kill(parent, signal.SIGKILL)
  except ProcessLookupError:
    pass


if __name__ == '__main__':
  main(sys.argv)
