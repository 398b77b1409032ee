"""Checkpoints: which one a run reads, what kind it is, how it is loaded.

* ``paths`` (no TensorFlow): which checkpoint each mode reads (``choose``),
  the teacher a distillation reads (``teacher``), and the prefix a path
  stands for (``resolve``, ``latest``).
* ``formats``: the kind of a prefix, read from its keys: simclr_tf's
  checkpoint or export, the original release's checkpoint or export.
* ``load``: one entry point per use (``check``, ``warm_start``,
  ``restore_model``) that dispatches to the loader of the kind:
  ``ours`` (object graph) or ``original`` (by key).
* ``architecture``: the model fields a checkpoint fixes (inferred from
  the original's shapes, or the config.json of our run).
* ``manager``: the CheckpointManager training writes with.

Importing this package imports no TensorFlow; the TensorFlow-side names
below load their module on first use.
"""
from simclr_tf.checkpoints.paths import (CHECKPOINT_NAME, Choice,
                                         CheckpointError, choose, latest,
                                         resolve, teacher)

_LAZY = {
    'make_manager': 'manager', 'step_of': 'manager',
    'remove_partial': 'manager',
    'STEP_KEY': 'manager',
    'detect': 'formats',
    'damage': 'reader',
    'check': 'load', 'warm_start': 'load', 'restore_model': 'load',
    'check_compatible': 'load', 'classifier_fits': 'load',
    'resolve_architecture': 'architecture',
    'checkpoint_config': 'architecture',
}


def __getattr__(name):
  if name not in _LAZY:
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
  import importlib
  module = importlib.import_module(f'{__name__}.{_LAZY[name]}')
  return getattr(module, name)


__all__ = ['CHECKPOINT_NAME', 'Choice', 'CheckpointError', 'choose', 'latest', 'resolve',
           'teacher', *_LAZY]
