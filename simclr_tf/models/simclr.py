"""The SimCLR model: ResNet encoder f(.) + projection head g(.) + classifier.

``SimCLRModel(images)`` returns the dict of DESIGN.md: the encoder's named
outputs plus ``proj_head_input``, ``proj_head_output`` and (when a
supervised head exists) ``logits_sup``. The two augmented views of a
pretraining batch are concatenated on the batch axis by the caller, so BN
statistics span both views as in the paper.
"""
from __future__ import annotations

import math
from typing import Optional

import keras
import tensorflow as tf

from simclr_tf.config import ConfigError, ModelConfig
from simclr_tf.models.heads import ProjectionHead, SupervisedHead
from simclr_tf.models.resnet import ResNet


class SimCLRModel(keras.Model):
  """Encoder + heads -> dict of named tensors (float32 images in [0, 1]).

  Args:
    encoder: a ``ResNet`` layer.
    projection_head: a ``ProjectionHead`` (0 layers for mode 'none').
    supervised_head: a ``SupervisedHead`` or None.
    ft_proj_selector: which projection-head hidden feeds the supervised head
      (0 = encoder output, -1 = last head layer).
    probe_stop_gradient: cut the classifier's input from the gradient
      (linear evaluation during pretraining, SimCLR Sec. 4).
  """

  def __init__(self, encoder, projection_head, supervised_head=None,
               ft_proj_selector: int = 0, probe_stop_gradient: bool = True,
               **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.projection_head = projection_head
    self.supervised_head = supervised_head
    self.ft_proj_selector = ft_proj_selector
    self.probe_stop_gradient = probe_stop_gradient

  def call(self, images, training=False):
    outputs = dict(self.encoder(images, training=training))
    features = outputs['final_avg_pool']
    projection, hiddens = self.projection_head(features, training=training)
    outputs['proj_head_input'] = features
    outputs['proj_head_output'] = projection
    if self.supervised_head is not None:
      probe_input = hiddens[self.ft_proj_selector]
      if self.probe_stop_gradient:
        probe_input = tf.stop_gradient(probe_input)
      outputs['logits_sup'] = self.supervised_head(probe_input,
                                                   training=training)
    return outputs

  def encoder_variables(self):
    """Trainable variables of f(.) and g(.), i.e. all but the classifier."""
    return (self.encoder.trainable_variables +
            self.projection_head.trainable_variables)


def build_model(cfg: ModelConfig, *, probe: bool = True,
                probe_stop_gradient: bool = True,
                probe_input_norm: Optional[bool] = None,
                frozen_groups: int = 0) -> SimCLRModel:
  """Builds (and creates the variables of) a model with these heads.

  The defaults are pretraining's (``simclr_tf.tasks`` gives each training
  mode's):

  Args:
    cfg: the architecture.
    probe: give the model a supervised (logits) head.
    probe_stop_gradient: cut its input from the gradient (a linear probe).
    probe_input_norm: standardise its input (None: ``cfg.probe_input_norm``).
    frozen_groups: 0..5 encoder groups (stem, block groups 1-4) kept
      frozen: not trainable, BN in inference mode, gradient cut after them.
  """
  if not 0 <= frozen_groups <= 5:
    raise ConfigError(f'frozen_groups={frozen_groups!r} is invalid: must be '
                      'in [0, 5] (fine_tune_after_block + 1).')
  if probe_input_norm is None:
    probe_input_norm = cfg.probe_input_norm
  bn = dict(momentum=cfg.batch_norm_decay, epsilon=cfg.batch_norm_epsilon,
            synchronized=cfg.global_bn)
  encoder = ResNet(cfg.resnet_depth, cfg.width_multiplier,
                   cifar_stem=cfg.uses_cifar_stem, sk_ratio=cfg.sk_ratio,
                   se_ratio=cfg.se_ratio,
                   batch_norm_decay=cfg.batch_norm_decay,
                   batch_norm_epsilon=cfg.batch_norm_epsilon,
                   global_bn=cfg.global_bn, frozen_groups=frozen_groups,
                   group1_projection=cfg.group1_projection, name='resnet')
  head = ProjectionHead(cfg.num_head_layers, cfg.proj_out_dim, bn_kwargs=bn,
                        name='projection_head')
  supervised = (SupervisedHead(cfg.num_classes, cfg.zero_init_logits_layer,
                               input_norm=probe_input_norm, bn_kwargs=bn)
                if probe else None)
  model = SimCLRModel(encoder, head, supervised,
                      ft_proj_selector=cfg.ft_proj_selector,
                      probe_stop_gradient=probe_stop_gradient, name='simclr')
  model(tf.zeros([1, cfg.image_size, cfg.image_size, 3]), training=False)
  return model


def count_params(variables) -> int:
  """Total number of scalars in ``variables``."""
  return int(sum(math.prod(v.shape) for v in variables))
