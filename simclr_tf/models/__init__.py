"""Encoder (ResNet v1), heads and the SimCLR model."""
from simclr_tf.models.heads import ProjectionHead, SupervisedHead
from simclr_tf.models.param_sets import ParamSets, param_sets
from simclr_tf.models.resnet import OUTPUT_NAMES, ResNet
from simclr_tf.models.simclr import SimCLRModel, build_model, count_params

__all__ = ['OUTPUT_NAMES', 'ParamSets', 'ProjectionHead', 'ResNet',
           'SimCLRModel', 'SupervisedHead', 'build_model', 'count_params',
           'param_sets']
