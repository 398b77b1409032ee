"""The one place that turns a RuntimeConfig into a tf.distribute strategy.

``auto`` picks a TPU when one is named, else MirroredStrategy over all local
GPUs when there are several, else the default strategy. ``multi_worker``
reads the cluster from ``TF_CONFIG`` (how a run goes beyond one machine).
"""
from __future__ import annotations

import json
import os
import re
from typing import Optional

import tensorflow as tf

from simclr_tf import startwatch
from simclr_tf.config import RuntimeConfig


class StrategyError(RuntimeError):
  """The requested strategy cannot run here; the message says why."""


class LostWorkerError(RuntimeError):
  """A worker of a multi-worker run went away mid-run; says which."""


def _tpu_strategy(cfg: RuntimeConfig):
  name = cfg.tpu_name or cfg.master or ''
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=name, zone=cfg.tpu_zone, project=cfg.gcp_project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except (ValueError, RuntimeError, OSError, tf.errors.OpError) as e:
    raise StrategyError(
        f'--strategy=tpu: no TPU reachable (tpu_name={name!r}, '
        f'zone={cfg.tpu_zone!r}, project={cfg.gcp_project!r}): '
        f'{type(e).__name__}: {_first_line(e)}. '
        'Name a TPU with --tpu_name (and --tpu_zone/--gcp_project), or use '
        '--strategy=auto to run on the local CPU/GPUs.') from e
  return tf.distribute.TPUStrategy(resolver)


def _multi_worker_strategy(timeout: int = 0):
  raw = os.environ.get('TF_CONFIG')
  if not raw:
    raise StrategyError('--strategy=multi_worker needs the TF_CONFIG '
                        'environment variable ({"cluster": {"worker": [...]},'
                        ' "task": {"type": "worker", "index": i}}); it is '
                        'not set.')
  try:
    tf_config = json.loads(raw)
    workers = tf_config['cluster']['worker']
    tf_config['task']['index']
  except (ValueError, KeyError, TypeError) as e:
    raise StrategyError(f'TF_CONFIG={raw!r} is not valid for multi_worker: '
                        f'{type(e).__name__} {e}; expected cluster.worker and '
                        'task.index.') from e
  if not workers:
    raise StrategyError('TF_CONFIG lists no workers in cluster.worker.')
  deadline = (startwatch.watch(workers, tf_config['task']['index'], timeout)
              if timeout else None)
  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  if deadline is not None:
    deadline.formed()
  return strategy


def _mirrored_strategy():
  gpus = tf.config.list_logical_devices('GPU')
  if gpus:
    return tf.distribute.MirroredStrategy([d.name for d in gpus])
  # Logical CPU devices (tests, or users who split a CPU) act as replicas.
  cpus = tf.config.list_logical_devices('CPU')
  return tf.distribute.MirroredStrategy([d.name for d in cpus])


def _first_line(error) -> str:
  """The first line of an error's message, without a closing period."""
  text = str(error).splitlines()[0] if str(error) else type(error).__name__
  return text.rstrip('.')


def strategy_name(cfg: RuntimeConfig) -> str:
  """``cfg.strategy`` with ``auto`` resolved (see module docstring)."""
  if cfg.strategy != 'auto':
    return cfg.strategy
  if cfg.tpu_name:
    return 'tpu'
  if len(tf.config.list_physical_devices('GPU')) > 1:
    return 'mirrored'
  return 'default'


def build_strategy(cfg: RuntimeConfig) -> tf.distribute.Strategy:
  """Returns the strategy for ``cfg.strategy`` (see module docstring)."""
  name = strategy_name(cfg)
  if name == 'tpu':
    return _tpu_strategy(cfg)
  if name == 'multi_worker':
    return _multi_worker_strategy(cfg.worker_timeout_secs)
  if name == 'mirrored':
    return _mirrored_strategy()
  if name == 'one_device':
    gpus = tf.config.list_logical_devices('GPU')
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else
                                           '/cpu:0')
  return tf.distribute.get_strategy()


_REMOTE_TASK = re.compile(r'/job:(worker|chief)/replica:\d+/task:(\d+)')


def lost_worker_message(error: BaseException,
                        cfg: RuntimeConfig) -> Optional[str]:
  """One line for a collective that failed because a worker of a
  multi-worker run went away (its name and address from TF_CONFIG, and
  how to go on); None for any other error."""
  if cfg.strategy != 'multi_worker' or not isinstance(
      error, (tf.errors.UnavailableError, tf.errors.CancelledError,
              tf.errors.DeadlineExceededError, tf.errors.AbortedError,
              tf.errors.InternalError)):
    return None
  text = str(error)
  match = _REMOTE_TASK.search(text)
  if match is None or 'Collective ops is aborted' not in text and (
      'failed to connect' not in text.lower()):
    return None
  kind, index = match.group(1), int(match.group(2))
  try:
    address = json.loads(os.environ['TF_CONFIG'])['cluster'][kind][index]
  except (KeyError, IndexError, ValueError, TypeError):
    address = 'address unknown'
  cause = next((line.split(' by: ', 1)[1] for line in text.splitlines()
                if 'Collective ops is aborted by: ' in line), 'no answer')
  cause = cause.strip().rstrip(':')
  return (f'--strategy=multi_worker: {kind} {index} ({address}) of '
          f"TF_CONFIG's cluster.{kind} was lost ({cause}). Rerun every "
          'worker with the same command to resume from the newest checkpoint.')


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes files (checkpoints, summaries, exports).

  Under MultiWorkerMirroredStrategy only worker 0 writes to ``model_dir``;
  the others write to a scratch directory (TF requires every worker to save).
  """
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type is None:
    return True
  if 'chief' in resolver.cluster_spec().as_dict():
    return task_type == 'chief'
  return task_type == 'worker' and task_id == 0
