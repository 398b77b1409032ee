"""Stopping a run cleanly on SIGTERM (preemption) or SIGINT (Ctrl-C).

``install()`` (``run.py`` calls it; the library installs no handler by
itself) makes the first such signal only *request* a stop. The Trainer
checks ``requested()`` after each loop call, where model, optimizer and
step are consistent: it saves a checkpoint of that step (unless it just
did) and raises ``Stopped``, and a rerun of the same command resumes
there. A second Ctrl-C stops at once (``KeyboardInterrupt``). No
TensorFlow here.
"""
from __future__ import annotations

import signal
import threading
from typing import Optional

_requested = threading.Event()
_name = {'signal': None, 'number': None}


class Stopped(Exception):
  """The run stopped on request; ``exit_code`` is 128 + the signal."""

  def __init__(self, message: str):
    super().__init__(message)
    self.exit_code = 128 + (_name['number'] or signal.SIGINT)


def _handler(signum, frame):
  del frame
  if _requested.is_set() and signum == signal.SIGINT:
    raise KeyboardInterrupt  # a second Ctrl-C: stop now
  _name['signal'] = signal.Signals(signum).name
  _name['number'] = signum
  _requested.set()


def install() -> None:
  """SIGTERM and SIGINT request a stop (module docstring)."""
  for sig in (signal.SIGTERM, signal.SIGINT):
    signal.signal(sig, _handler)


def requested() -> Optional[str]:
  """The name of the signal that requested a stop (``'SIGTERM'``), or
  None."""
  return _name['signal'] if _requested.is_set() else None


def request(signum: int = signal.SIGTERM) -> None:
  """Requests a stop as the signal ``signum`` would (tests, embedders)."""
  _handler(signum, None)


def reset() -> None:
  _requested.clear()
  _name.update(signal=None, number=None)
