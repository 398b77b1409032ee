"""The smallest model with the export contract (quick to export)."""
import keras
import tensorflow as tf


class StubModel(keras.Model):
  """[B, H, W, 3] -> {'final_avg_pool': [B, 3], 'proj_head_output': [B, 4]}."""

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.dense = keras.layers.Dense(4, name='dense')

  def call(self, images, training=False):
    pooled = tf.reduce_mean(images, axis=[1, 2])
    return {'final_avg_pool': pooled, 'proj_head_output': self.dense(pooled)}
