"""Which evaluators a run has, and how often each runs.

With a training plan (``train.TrainPlan``), during ``--mode=train_then_eval``:

  linear     the supervised head on the eval split (when the task has one):
             at every checkpoint when ``--eval_every_checkpoint`` is true,
             or ``auto`` and the run has at most
             ``MAX_AUTO_EVAL_CHECKPOINTS`` checkpoints; else at the end.
  knn        the kNN monitor every ``--knn_every_epochs`` (0: off).
  projector  Projector embeddings at the end (``--projector_examples`` 0:
             off).

``--mode=eval`` runs the same evaluators once per checkpoint.
"""
from __future__ import annotations

from absl import logging

from simclr_tf.evaluators import knn_monitor, linear, projector

MAX_AUTO_EVAL_CHECKPOINTS = 1000


def eval_every_checkpoint(cfg, plan) -> bool:
  """Whether the supervised head is evaluated at every checkpoint."""
  choice = cfg.evaluation.eval_every_checkpoint
  if choice != 'auto':
    return choice == 'true'
  return plan.total_steps / plan.checkpoint_every <= MAX_AUTO_EVAL_CHECKPOINTS


def knn_every_steps(cfg, plan) -> int:
  """``--knn_every_epochs`` in steps (at least 1)."""
  return max(1, round(cfg.evaluation.knn_every_epochs *
                      plan.steps_per_epoch))


def reads(cfg, task) -> dict:
  """What the evaluators read: {'eval_split': bool, 'train_split': bool}
  (the kNN bank is the train split)."""
  knn = cfg.evaluation.knn_every_epochs > 0
  return {'eval_split': (task.evaluates() or knn or
                         cfg.evaluation.projector_examples > 0),
          'train_split': knn}


def build_evaluators(cfg, strategy, source, task, plan=None) -> list:
  """The evaluators of a run (module docstring); ``plan`` None: no
  cadence (``--mode=eval``)."""
  settings = cfg.evaluation
  evaluators = []
  if task.evaluates():
    every = plan.checkpoint_every if plan and eval_every_checkpoint(
        cfg, plan) else 0
    evaluators.append(linear.LinearEval(cfg, strategy, source, every))
  else:
    logging.info('No supervised head (lineareval_while_pretraining=false): '
                 'no top-1/top-5 evaluation.')
  if settings.knn_every_epochs > 0:
    evaluators.append(knn_monitor.KnnEval(
        cfg, strategy, source, knn_every_steps(cfg, plan) if plan else 0))
  if settings.projector_examples > 0:
    evaluators.append(projector.ProjectorEval(cfg, strategy, source))
  return evaluators
