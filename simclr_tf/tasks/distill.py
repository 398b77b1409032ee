"""Distillation (SimCLRv2 Sec. 2.3): a student learns a fine-tuned
teacher's predictions on unlabeled images.

The teacher (--teacher: a simclr_tf run, checkpoint or export, or an
original release checkpoint) is built as it was trained, restored, and run
in inference mode; it is never trained and lives outside the student's
model, so neither checkpoints nor exports hold it. The student's
architecture comes from the flags (the teacher's for self-distillation, or
a smaller one); it starts from scratch or from --checkpoint.

Loss (SimCLRv2 Eq. 2 and 3): cross-entropy from softmax(teacher / T) to
softmax(student / T) over the images of --train_split (their labels are not
read), T = --distill_temperature; with --distill_label_weight = a > 0,
``(1 - a) * distillation + a * cross-entropy`` on --labeled_split's labels.
Both models see the same augmented image (crop and flip, as fine-tuning).
"""
from __future__ import annotations

import tensorflow as tf
from absl import logging

from simclr_tf import checkpoints, data, losses, tasks
from simclr_tf.checkpoints import CheckpointError
from simclr_tf.tasks.base import SUPERVISED_METRICS, Task, supervised_metrics

DISTILL_METRICS = ('distill_loss', 'teacher_agreement')


class Distill(Task):
  """The student is the model; the teacher is built by ``prepare``."""

  name = 'distill'
  progress = (('teacher_agreement', 'agreement'), ('supervised_acc', 'acc'))

  def __init__(self, cfg):
    super().__init__(cfg)
    self.teacher = None

  @property
  def label_weight(self) -> float:
    return self.cfg.loss.distill_label_weight

  @property
  def images_per_step(self) -> int:
    """The unlabeled batch, plus the labeled one when labels are used."""
    return super().images_per_step * (2 if self.label_weight > 0 else 1)

  # The teacher.

  def prepare(self, strategy) -> None:
    """Builds and restores the teacher (before anything is written).

    Raises:
      CheckpointError: --teacher has no classifier, or one for another
        number of classes or image size than this run's.
    """
    flag = f'--teacher={self.cfg.train.teacher}'
    prefix = checkpoints.teacher(self.cfg, verify=checkpoints.damage)
    if prefix is None:
      raise CheckpointError(f'--train_mode=distill needs --teacher=PATH '
                            f'(--mode={self.cfg.mode} trains nothing).')
    teacher_cfg = checkpoints.checkpoint_config(self.cfg, prefix)
    mine, theirs = self.cfg.model, teacher_cfg.model
    if theirs.num_classes != mine.num_classes:
      raise CheckpointError(
          f'{flag} predicts {theirs.num_classes} classes but '
          f'--dataset={self.cfg.data.dataset} has {mine.num_classes}: '
          'distill a teacher fine-tuned on this dataset.')
    if theirs.image_size != mine.image_size:
      raise CheckpointError(
          f'{flag} was trained at --image_size={theirs.image_size}, this '
          f'run uses {mine.image_size}: give --image_size='
          f'{theirs.image_size}.')
    teacher = tasks.get(teacher_cfg).build_model(strategy)
    if not checkpoints.classifier_fits(prefix, teacher):
      raise CheckpointError(
          f'{flag} has no classifier to distill (a pretraining run without '
          '--lineareval_while_pretraining?): give a --train_mode=finetune '
          'run, or one that trained a linear probe.')
    with strategy.scope():
      kind = checkpoints.restore_model(prefix, teacher)
    teacher.trainable = False
    self.teacher = teacher
    logging.info('Teacher: %s (%s), ResNet-%d width %g, %d classes.', prefix,
                 kind, theirs.resnet_depth, theirs.width_multiplier,
                 theirs.num_classes)

  # The input.

  def training_inputs(self) -> list:
    labeled = [('labeled_split', 'train_batch_size')] if (
        self.label_weight > 0) else []
    return super().training_inputs() + labeled

  def dataset(self, strategy, source, split: str, start_step: int):
    """Unlabeled batches of ``split``; with labels, zipped with batches of
    --labeled_split (its own seed) under 'unlabeled' and 'labeled'."""
    if self.label_weight == 0:
      return super().dataset(strategy, source, split, start_step)
    cfg, t = self.cfg, self.cfg.train
    seed = t.seed
    streams = {
        'unlabeled': (split, self.input_mode, seed),
        'labeled': (cfg.data.labeled_split, self.input_mode,
                    None if seed is None else seed + 1),
    }
    return data.build_zipped_dataset(
        strategy, source, streams, global_batch_size=t.train_batch_size,
        image_size=cfg.model.image_size, augment_cfg=cfg.augment,
        cache=cfg.data.cache_dataset, start_step=start_step)

  # The objective.

  def objective_metric_names(self, model) -> tuple:
    return DISTILL_METRICS + (SUPERVISED_METRICS if self.label_weight > 0
                              else ())

  def objective(self, model, batch):
    if self.teacher is None:
      raise RuntimeError('Distill.prepare(strategy) must run before training'
                         ' (it builds the teacher).')
    weight = self.label_weight
    images = batch['image'] if weight == 0 else batch['unlabeled']['image']
    teacher_logits = self.teacher(images, training=False)['logits_sup']
    if weight > 0:  # one student pass: BN statistics over both batches
      both = tf.concat([images, batch['labeled']['image']], axis=0)
      student_logits, labeled_logits = tf.split(
          model(both, training=True)['logits_sup'], 2, axis=0)
    else:
      student_logits = model(images, training=True)['logits_sup']
    distill = losses.distillation_loss(
        teacher_logits, student_logits, self.cfg.loss.distill_temperature)
    metrics = {'distill_loss': distill,
               'teacher_agreement': losses.agreement(teacher_logits,
                                                     student_logits)}
    if weight == 0:
      return distill, metrics
    metrics.update(supervised_metrics(
        tf.cast(batch['labeled']['label'], tf.int32), labeled_logits))
    loss = (1.0 - weight) * distill + weight * metrics['supervised_loss']
    return loss, metrics
