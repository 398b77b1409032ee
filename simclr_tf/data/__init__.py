"""Datasets -> per-replica batches of augmented views (SimCLR Appendix A)."""
from simclr_tf.data.pipeline import (build_dataset, build_zipped_dataset,
                                     eval_steps, make_dataset,
                                     per_replica_batch_size)
from simclr_tf.data.sources import Source, get_source

__all__ = ['Source', 'build_dataset', 'build_zipped_dataset', 'eval_steps',
           'get_source', 'make_dataset', 'per_replica_batch_size']
