"""SavedModel export of simclr_tf models, and a Keras 3 layer for consumers.

``export_model(model, model_dir, step, cfg)`` writes
``model_dir/saved_model/<step>/`` atomically (see ``export.saved_model``);
the exported module's contract is in ``export.module``;
``export/keras_layer.py`` is standalone (tensorflow + keras only) so that a
consumer can copy it into a project that does not have simclr_tf.
"""
from export.saved_model import (ExportError, build_module, export_dir,
                                export_model, latest_export, list_versions,
                                prune_versions, write_saved_model,
                                write_version)

__all__ = ['ExportError', 'build_module', 'export_dir', 'export_model',
           'latest_export', 'list_versions', 'prune_versions',
           'write_saved_model', 'write_version']
