"""Every command-line flag of simclr_tf, defined on an absl ``FlagValues``.

Names, types and meaning follow the original SimCLR TF2 ``run.py``
(google-research/simclr, ``tf2/run.py``) wherever the flag exists there
(``ORIGINAL_FLAGS``); ``OUR_FLAGS`` are additions. Differences from the
original: ``--width_multiplier`` is a float (0.25 makes a tiny model),
``--mode`` also accepts ``export``, ``--optimizer`` also ``adamw``/``lamb``,
and the defaults are the quick offline job (``QUICK_JOB``), not ImageNet.

Only ``flags.to_config.config_from_flags`` reads the values.
"""
from absl import flags as absl_flags

from simclr_tf import config as cfg_lib

FLAGS = absl_flags.FLAGS

# The no-argument run: a quick offline job (built-in shapes dataset, tiny
# ResNet-18, a few epochs on CPU). Flags not named here take the original
# run.py's defaults. Presets set every key of this dict explicitly, so tuning
# it never changes a preset.
QUICK_JOB = {
    'dataset': 'builtin',
    'resnet_depth': 18,
    'width_multiplier': 0.25,
    'image_size': 32,
    'train_batch_size': 128,
    'train_epochs': 4,
    # Gentler crops than the paper's 0.08 learn shape faster in a short run
    # (width 0.25, 4 epochs: probe 27% vs 22% at 3 epochs with 0.08, w 0.125).
    'crop_area_min': 0.25,
    'steps_per_loop': 10,
    'learning_rate': 1.0,
    'learning_rate_scaling': 'linear',
    'warmup_epochs': 1.0,
    'weight_decay': 1e-4,
    'temperature': 0.5,
    'color_jitter_strength': 0.5,
    'use_blur': False,
    'optimizer': 'lars',
    'train_split': 'train',
    'eval_split': 'test',
    'mode': 'train_then_eval',
    'model_dir': 'runs/quick',
    'eval_batch_size': 256,
    'checkpoint_epochs': 1,
    'global_bn': True,
    'use_tpu': False,  # the original defaults to True; the quick job is local
}

# (kind, name, original default, help[, choices]). Defaults are replaced by
# QUICK_JOB where it names the flag.
ORIGINAL_SPECS = (
    ('float', 'learning_rate', 0.3,
     'Base learning rate, scaled by batch size per --learning_rate_scaling.'),
    ('enum', 'learning_rate_scaling', 'linear',
     'linear: lr * batch / 256; sqrt: lr * sqrt(batch) (better for small '
     'batches).', cfg_lib.LR_SCALINGS),
    ('float', 'warmup_epochs', 10.0,
     'Epochs of linear learning-rate warmup before the cosine decay.'),
    ('float', 'weight_decay', 1e-6, 'Weight decay (L2) coefficient.'),
    ('float', 'batch_norm_decay', 0.9,
     'Batch-norm moving-average decay (momentum).'),
    ('int', 'train_batch_size', 512,
     'Global training batch size (split across replicas).'),
    ('str', 'train_split', 'train',
     "Training split, with optional slicing, e.g. 'train' or 'train[:10%]'."),
    ('int', 'train_epochs', 100,
     'Epochs to train; ignored when --train_steps > 0.'),
    ('int', 'train_steps', 0,
     'Steps to train; overrides --train_epochs when > 0.'),
    ('int', 'eval_steps', 0,
     'Eval steps; 0 evaluates every example of --eval_split exactly once.'),
    ('int', 'eval_batch_size', 256, 'Global evaluation batch size.'),
    ('int', 'checkpoint_epochs', 1,
     'Epochs between checkpoints and summaries.'),
    ('int', 'checkpoint_steps', 0,
     'Steps between checkpoints; overrides --checkpoint_epochs when > 0.'),
    ('str', 'eval_split', 'validation',
     "Evaluation split, e.g. 'test' or 'validation'."),
    ('str', 'dataset', 'imagenet2012',
     "'builtin' (offline shapes), a TFDS name (e.g. cifar10), "
     "'folder:PATH' or 'npz:PATH'."),
    ('bool', 'cache_dataset', False,
     'Cache the dataset in memory (good for CIFAR-sized data, not ImageNet).'),
    ('enum', 'mode', 'train',
     'What to run; eval reads checkpoints in --model_dir, export writes a '
     'SavedModel.', cfg_lib.MODES),
    ('enum', 'train_mode', 'pretrain',
     'finetune needs --checkpoint, distill --teacher; supervised: '
     'from scratch.',
     cfg_lib.TRAIN_MODES),
    ('bool', 'lineareval_while_pretraining', True,
     'Train a linear head on stop-gradient features while pretraining.'),
    ('str', 'checkpoint', None,
     'Warm start from this checkpoint prefix, checkpoint dir or SavedModel '
     'if --model_dir has none.'),
    ('bool', 'zero_init_logits_layer', False,
     'Zero-initialise the supervised (logits) head after a warm start.'),
    ('int', 'fine_tune_after_block', -1,
     'Fine-tune only after this block: -1 all, 0 after the stem, '
     '4 the linear head only.'),
    ('str', 'master', None,
     'TPU master address, used with --use_tpu when --tpu_name is unset.'),
    ('str', 'model_dir', None,
     'Directory for checkpoints, summaries, results and exports.'),
    ('str', 'data_dir', None,
     'TFDS data directory (never downloaded into), or the cache of '
     '--dataset=builtin.'),
    ('bool', 'use_tpu', True,
     'Run on a Cloud TPU (--strategy=auto then means tpu).'),
    ('str', 'tpu_name', None,
     'Cloud TPU name or grpc:// address; with --strategy=auto implies tpu.'),
    ('str', 'tpu_zone', None, 'GCE zone of the Cloud TPU (optional).'),
    ('str', 'gcp_project', None, 'GCP project of the Cloud TPU (optional).'),
    ('enum', 'optimizer', 'lars',
     'Optimizer; lars as in the paper (adamw and lamb are additions).',
     cfg_lib.OPTIMIZERS),
    ('float', 'momentum', 0.9,
     'Momentum of the lars and momentum optimizers.'),
    ('str', 'eval_name', None,
     'Name of this evaluation, used in result names and summaries.'),
    ('int', 'keep_checkpoint_max', 5, 'Number of newest checkpoints to keep.'),
    ('int', 'keep_hub_module_max', 1,
     'Number of newest exported SavedModels to keep.'),
    ('float', 'temperature', 0.1,
     'NT-Xent temperature (0.1 ImageNet, 0.5 CIFAR-10).'),
    ('bool', 'hidden_norm', True,
     'L2-normalise projections before the contrastive loss (cosine).'),
    ('enum', 'proj_head_mode', 'nonlinear',
     'Projection head type (nonlinear: an MLP).',
     cfg_lib.PROJ_HEAD_MODES),
    ('int', 'proj_out_dim', 128, 'Output dimension of the projection head.'),
    ('int', 'num_proj_layers', 3,
     'Dense layers of the nonlinear head (2 in SimCLR, 3 in SimCLRv2).'),
    ('int', 'ft_proj_selector', 0,
     'Head layer to fine-tune from: 0 the encoder output, k after layer k, '
     '-1 the last.'),
    ('bool', 'global_bn', True,
     'Batch-norm statistics across replicas (applies only with > 1 replica).'),
    ('float', 'width_multiplier', 1.0,
     'ResNet width multiplier; fractions like 0.25 make tiny models.'),
    ('int', 'resnet_depth', 50,
     'ResNet depth: 18, 34, 50, 101, 152 or 200.'),
    ('float', 'sk_ratio', 0.0,
     'Selective-kernel ratio; > 0 enables SK (SimCLRv2: 0.0625).'),
    ('float', 'se_ratio', 0.0,
     'Squeeze-and-excitation ratio; > 0 enables SE.'),
    ('int', 'image_size', 224, 'Input image height and width in pixels.'),
    ('float', 'color_jitter_strength', 1.0,
     'Colour jitter strength (1.0 ImageNet, 0.5 CIFAR-10).'),
    ('bool', 'use_blur', True,
     'Random Gaussian blur on pretraining views.'),
)

OUR_SPECS = (
    ('int', 'train_summary_steps', -1,
     'Steps between training summaries; -1: min(100, total steps // 100), so '
     'every run has >= ~100 points; 0: none.'),
    ('enum', 'strategy', 'auto',
     'Distribution; auto: a TPU if asked for, else all local GPUs, else CPU.',
     cfg_lib.STRATEGIES),
    ('int', 'seed', None,
     'Random seed for weights, data order and augmentation; unset: random.'),
    ('bool', 'freeze_encoder', False,
     'Train only the heads; the encoder (BN in inference mode) stays as '
     'initialised or loaded (--checkpoint).'),
    ('int', 'steps_per_loop', 1,
     'Training steps per tf.function call (more is faster, coarser logs).'),
    ('int', 'log_every_steps', 50, 'Steps between progress log lines.'),
    ('bool', 'export_every_checkpoint', False,
     'Export a SavedModel at every checkpoint, not only at the end.'),
    ('bool', 'skip_corrupt_images', False,
     '--dataset=folder:PATH: skip undecodable images instead of failing.'),
    ('enum', 'cifar_stem', 'auto',
     'CIFAR stem (3x3 conv, no max-pool); auto: iff --image_size <= 32.',
     ('auto', 'true', 'false')),
    ('bool', 'jit', False, 'Compile the training step with XLA.'),
    ('float', 'crop_area_min', 0.08,
     'Lower end of the crop area range (paper: 0.08); crops cover >= 0.1 '
     'of the image as in the original, so less acts as 0.1.'),
    ('int', 'cpu_devices', 0,
     'Split the CPU into this many logical devices (0: leave as is); with '
     '--strategy=mirrored each is a replica (tests, CPU-only rehearsal).'),
    ('enum', 'mixed_precision', 'none',
     'Mixed-precision compute dtype (variables stay float32).',
     cfg_lib.MIXED_PRECISION),
    ('bool', 'deterministic', False,
     'Enable TensorFlow op determinism (slower; pair with --seed).'),
    ('bool', 'group1_projection', False,
     "ResNet-18/34: a projection shortcut in block group 1 too, as the "
     "original release (set by itself when loading such a checkpoint)."),
    ('bool', 'probe_input_norm', True,
     'Standardise the input of the linear probe trained while pretraining '
     '(parameter-free BatchNorm); the original release has none.'),
    ('bool', 'eval_watch', False,
     '--mode=eval: evaluate each new checkpoint until the final step.'),
    ('int', 'eval_timeout_secs', 0,
     '--eval_watch: stop after this many seconds without a new checkpoint '
     '(0: never).'),
    ('str', 'teacher', None,
     '--train_mode=distill: the classifier to distill (our run dir, '
     'checkpoint or export, or an original checkpoint).'),
    ('float', 'distill_temperature', 1.0,
     'Softmax temperature of teacher and student in distillation.'),
    ('float', 'distill_label_weight', 0.0,
     'Distillation: weight of the cross-entropy on --labeled_split (0: '
     'the teacher alone).'),
    ('float', 'knn_every_epochs', 1.0,
     'Epochs between kNN monitor evaluations (and at the end); 0: off.'),
    ('int', 'knn_k', 200, 'kNN monitor: neighbours that vote.'),
    ('float', 'knn_temperature', 0.1,
     'kNN monitor: votes weigh exp(cosine similarity / this).'),
    ('int', 'knn_bank_size', 0,
     'kNN monitor: train examples in the bank; 0: all (up to 2 GiB of '
     'features).'),
    ('int', 'projector_examples', 2000,
     'Eval images embedded for the TensorBoard Projector at the end; 0: '
     'none.'),
    ('enum', 'eval_every_checkpoint', 'auto',
     'Evaluate the classifier at every checkpoint; auto: if the run has '
     '<= 1000 checkpoints.', cfg_lib.EVAL_EVERY_CHECKPOINT),
    ('str', 'labeled_split', None,
     'Labeled split used when --distill_label_weight > 0, e.g. '
     "'train[:10%]'."),
)

ORIGINAL_FLAGS = tuple(spec[1] for spec in ORIGINAL_SPECS)
OUR_FLAGS = tuple(spec[1] for spec in OUR_SPECS)
ALL_FLAGS = ORIGINAL_FLAGS + OUR_FLAGS

_DEFINE = {
    'float': absl_flags.DEFINE_float,
    'int': absl_flags.DEFINE_integer,
    'bool': absl_flags.DEFINE_bool,
    'str': absl_flags.DEFINE_string,
}


def default_of(name):
  """The default of flag ``name``: QUICK_JOB's, else the original's."""
  if name in QUICK_JOB:
    return QUICK_JOB[name]
  for spec in ORIGINAL_SPECS + OUR_SPECS:
    if spec[1] == name:
      return spec[2]
  raise KeyError(f'no flag named {name!r}')


def _define(spec, flag_values):
  kind, name, _, help_text = spec[:4]
  default = default_of(name)
  if kind == 'enum':
    absl_flags.DEFINE_enum(name, default, list(spec[4]), help_text,
                           flag_values=flag_values)
  else:
    _DEFINE[kind](name, default, help_text, flag_values=flag_values)


def define_flags(flag_values=FLAGS):
  """Defines every flag on ``flag_values`` (absl's global FLAGS by default).

  Idempotent: flags already defined there are left alone, so calling it
  twice (run.py and a test, say) is safe.
  """
  for spec in ORIGINAL_SPECS + OUR_SPECS:
    if spec[1] not in flag_values:
      _define(spec, flag_values)
  return flag_values
