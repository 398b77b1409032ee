"""Which evaluators a run has, and how often each runs."""
from __future__ import annotations

from absl import logging

from simclr_tf.evaluators import linear


def build_evaluators(cfg, strategy, source, task) -> list:
  """The evaluators of a run that evaluates (``--mode=train_then_eval`` or
  ``eval``): the supervised head's accuracy when the task has one."""
  evaluators = []
  if task.evaluates():
    evaluators.append(linear.LinearEval(cfg, strategy, source))
  else:
    logging.warning('No supervised head (lineareval_while_pretraining=false)'
                    '; skipping evaluation.')
  return evaluators
