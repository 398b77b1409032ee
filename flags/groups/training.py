"""Training flags: optimizer, schedule, loss, fine-tuning, distillation."""
from simclr_tf import config as cfg_lib

DESCRIPTION = ('optimizer, schedule, contrastive loss, fine-tuning and '
               'distillation')

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('float', 'learning_rate', 0.3,
     'Base learning rate, scaled by batch size per --learning_rate_scaling.'),
    ('enum', 'learning_rate_scaling', 'linear',
     'linear: lr * batch / 256; sqrt: lr * sqrt(batch) (better for small '
     'batches).', cfg_lib.LR_SCALINGS),
    ('float', 'warmup_epochs', 10.0,
     'Epochs of linear learning-rate warmup before the cosine decay.'),
    ('float', 'weight_decay', 1e-6, 'Weight decay (L2) coefficient.'),
    ('enum', 'optimizer', 'lars',
     'Optimizer; lars as in the paper (adamw and lamb are additions).',
     cfg_lib.OPTIMIZERS),
    ('float', 'momentum', 0.9,
     'Momentum of the lars and momentum optimizers.'),
    ('int', 'train_batch_size', 512,
     'Global training batch size (split across replicas).'),
    ('int', 'train_epochs', 100,
     'Epochs to train; ignored when --train_steps > 0.'),
    ('int', 'train_steps', 0,
     'Steps to train; overrides --train_epochs when > 0.'),
    ('float', 'temperature', 0.1,
     'NT-Xent temperature (0.1 ImageNet, 0.5 CIFAR-10).'),
    ('bool', 'hidden_norm', True,
     'L2-normalise projections before the contrastive loss (cosine).'),
    ('int', 'fine_tune_after_block', -1,
     'Fine-tune only after this block: -1 all, 0 after the stem, '
     '4 the linear head only.'),
    ('int', 'ft_proj_selector', 0,
     'Head layer to fine-tune from: 0 the encoder output, k after layer k, '
     '-1 the last.'),
    ('bool', 'zero_init_logits_layer', False,
     'Zero-initialise the supervised (logits) head after a warm start.'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('bool', 'freeze_encoder', False,
     'Train only the heads; the encoder (BN in inference mode) stays as '
     'initialised or loaded (--checkpoint).'),
    ('str', 'teacher', None,
     '--train_mode=distill: the classifier to distill (our run dir, '
     'checkpoint or export, or an original checkpoint).'),
    ('float', 'distill_temperature', 1.0,
     'Softmax temperature of teacher and student in distillation.'),
    ('float', 'distill_label_weight', 0.0,
     'Distillation: weight of the cross-entropy on --labeled_split (0: '
     'the teacher alone).'),
)
