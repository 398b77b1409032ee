"""Evaluations of a model during and after training (issue 13: evaluators
as hooks). ``knn``: weighted k-nearest-neighbour classification of
embeddings, the kNN monitor's arithmetic."""
