"""SimCLR pretraining: NT-Xent on two views, plus the linear probe."""
from __future__ import annotations

import tensorflow as tf

from simclr_tf import data, losses
from simclr_tf.tasks.base import SUPERVISED_METRICS, Task, supervised_metrics


class Pretrain(Task):
  """Contrastive learning (SimCLR Eq. 1) on two augmented views (crop,
  flip, colour distortion, blur if asked), with a linear probe on
  stop-gradient features when --lineareval_while_pretraining."""

  name = 'pretrain'
  input_mode = 'pretrain'
  progress = (('contrast_acc', 'contrast_acc'),
              ('supervised_acc', 'probe_acc'))

  def head_options(self) -> dict:
    return dict(probe=self.cfg.train.lineareval_while_pretraining,
                probe_stop_gradient=True,
                probe_input_norm=self.cfg.model.probe_input_norm,
                frozen_groups=self.frozen_groups())

  def evaluates(self) -> bool:
    return self.cfg.train.lineareval_while_pretraining

  def objective_metric_names(self, model) -> tuple:
    names = ('contrast_loss', 'contrast_acc', 'contrast_entropy')
    return names + (SUPERVISED_METRICS if model.supervised_head else ())

  def objective(self, model, batch):
    """Views [b,H,W,3] x 2 concatenated on the batch axis (BN statistics
    over both views), projections split back, NT-Xent over the global
    batch; the probe sees both views with the labels duplicated."""
    images = tf.concat([batch['view1'], batch['view2']], axis=0)
    outputs = model(images, training=True)
    z1, z2 = tf.split(outputs['proj_head_output'], 2, axis=0)
    con = losses.nt_xent(z1, z2, temperature=self.cfg.loss.temperature,
                         hidden_norm=self.cfg.loss.hidden_norm)
    acc, entropy = losses.contrastive_metrics(con)
    metrics = dict(contrast_loss=con.loss, contrast_acc=acc,
                   contrast_entropy=entropy)
    loss = con.loss
    if 'logits_sup' in outputs:
      labels = tf.cast(batch['label'], tf.int32)
      metrics.update(supervised_metrics(tf.concat([labels, labels], axis=0),
                                        outputs['logits_sup']))
      loss += metrics['supervised_loss']
    return loss, metrics

  def write_start_summaries(self, writer, strategy, source) -> None:
    """A grid of augmented (view1 | view2) pairs.

    From a small dataset of its own: taking a batch from the training
    iterator would shift the stream by one step relative to a resumed run.
    """
    cfg, t = self.cfg, self.cfg.train
    batch = min(8, t.train_batch_size // strategy.num_replicas_in_sync)
    pairs = data.make_dataset(
        source, cfg.data.train_split, mode=self.input_mode, batch_size=batch,
        image_size=cfg.model.image_size, augment_cfg=cfg.augment, seed=t.seed,
        jit_compile=False)
    first = next(iter(pairs))
    with writer.as_default(step=0):
      tf.summary.image('train/view_pairs',
                       tf.concat([first['view1'], first['view2']], axis=2),
                       max_outputs=8)
