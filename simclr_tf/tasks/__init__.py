"""Training modes as tasks: one ``Task`` subclass per ``--train_mode``.

A task owns what differs between training modes (see ``base.Task``): the
heads of the model, what the input pipeline yields, the per-replica
objective and its metric names, images per step, whether the run
evaluates, and what it must start from. ``steps`` runs the distributed
loop, ``train.Trainer`` and ``jobs`` receive the task.

This module imports no TensorFlow: flag checks (``flags/preflight``) read
``MODES`` before TensorFlow is loaded. A new training mode is one new file
in this package and one line here.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Optional


@dataclasses.dataclass(frozen=True)
class Mode:
  """Where a training mode's task lives, and what it must start from.

  module, cls: ``simclr_tf.tasks.<module>.<cls>``.
  needs: the flag naming what a fresh run of this mode must start from
    ('checkpoint': warm start; 'teacher': a model to distill), or None.
  views: augmented views of each example a training step sees.
  """
  module: str
  cls: str
  needs: Optional[str] = None
  views: int = 1


MODES = {
    'pretrain': Mode('pretrain', 'Pretrain', views=2),
    'finetune': Mode('finetune', 'Finetune', needs='checkpoint'),
    'distill': Mode('distill', 'Distill', needs='teacher'),
    'supervised': Mode('supervised', 'Supervised'),
}
NAMES = tuple(MODES)


def task_class(train_mode: str):
  """The ``Task`` subclass of ``train_mode`` (imports TensorFlow)."""
  if train_mode not in MODES:
    raise ValueError(f'train_mode={train_mode!r} is invalid: must be one of '
                     f'{list(NAMES)}.')
  mode = MODES[train_mode]
  module = importlib.import_module(f'simclr_tf.tasks.{mode.module}')
  return getattr(module, mode.cls)


def get(cfg):
  """The task of ``cfg.train.train_mode`` for the run ``cfg`` (a Config)."""
  return task_class(cfg.train.train_mode)(cfg)
