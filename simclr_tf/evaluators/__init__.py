"""Evaluations of a model during and after training, as hooks the Trainer
and ``--mode=eval`` run (``base``): the supervised head's accuracy
(``linear``); ``knn``: weighted k-nearest-neighbour classification of
embeddings, the kNN monitor's arithmetic."""
from simclr_tf.evaluators.base import Evaluator, Report, run_due

__all__ = ['Evaluator', 'Report', 'run_due']
