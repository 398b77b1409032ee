"""simclr_tf: SimCLR and SimCLRv2 for TensorFlow 2.21 and Keras 3."""

__version__ = '0.1.0'
