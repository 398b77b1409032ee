"""One training run per ``--model_dir``: an advisory lock file.

``<model_dir>/.run.lock`` is locked with ``flock`` for as long as a
training run writes there, and holds who holds it (pid, host, start time,
command line) so a second run can name it. The operating system drops the
lock when its process ends in any way (kill -9, a crash, a lost machine's
NFS lease), so a killed run leaves no stale lock: the file stays, but only
a live holder locks it. Only the chief of a multi-worker run takes it (the
other workers write nowhere in ``model_dir``), so all workers share it.

Remote directories (``gs://`` ...) and filesystems without ``flock`` are
not locked; the run says so once and goes on. Imports no TensorFlow.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys

from absl import logging

from simclr_tf.config import ConfigError

LOCK_NAME = '.run.lock'


class RunLockedError(ConfigError):
  """Another live run holds ``--model_dir``; says which."""


def _holder_text(path: str) -> str:
  try:
    with open(path, encoding='utf-8') as f:
      who = json.load(f)
    return (f"pid {who['pid']} on {who['host']}, started {who['started']}: "
            f"{who['command']}")
  except (OSError, ValueError, KeyError, TypeError):
    return 'a process that has not yet written its name'


def _describe_self() -> str:
  return json.dumps({
      'pid': os.getpid(), 'host': socket.gethostname(),
      'started': datetime.datetime.now().isoformat(timespec='seconds'),
      'command': ' '.join([os.path.basename(sys.executable)] + sys.argv)})


@contextlib.contextmanager
def hold(model_dir: str, enabled: bool = True):
  """Holds ``model_dir``'s lock for the ``with`` block (a no-op when not
  ``enabled``, e.g. on a non-chief worker).

  Creates ``model_dir`` if needed; when the block raises, the lock file
  is put back as it was (removed, with the directory if this created
  both and nothing else is there), so a run refused by a later check
  leaves ``model_dir`` as it found it.

  Raises:
    RunLockedError: another live process holds the lock.
  """
  if not enabled or '://' in model_dir:
    if enabled:
      logging.warning('--model_dir=%s is remote: it is not locked against a '
                      'second run writing there at the same time.', model_dir)
    yield
    return
  created = not os.path.isdir(model_dir)
  os.makedirs(model_dir, exist_ok=True)
  path = os.path.join(model_dir, LOCK_NAME)
  existed = os.path.exists(path)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  locked = False
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      locked = True
    except BlockingIOError:
      raise RunLockedError(
          f'--model_dir={model_dir} is in use by another training run '
          f'({_holder_text(path)}). Wait for it to end or stop it, or give '
          'this run another --model_dir.') from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        raise
      logging.warning('--model_dir=%s cannot be locked (%s): a second run '
                      'writing there at the same time is not refused.',
                      model_dir, e.strerror)
    before = os.pread(fd, 1 << 16, 0)
    os.ftruncate(fd, 0)
    os.pwrite(fd, (_describe_self() + '\n').encode('utf-8'), 0)
    try:
      yield
    except BaseException:  # a run refused later leaves model_dir as it was
      if existed:
        os.ftruncate(fd, 0)
        os.pwrite(fd, before, 0)
      else:
        os.remove(path)
        if created and not os.listdir(model_dir):
          os.rmdir(model_dir)
      raise
  finally:
    if locked:
      fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
