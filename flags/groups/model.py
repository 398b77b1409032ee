"""Model flags: ResNet encoder, batch norm and projection head."""
from simclr_tf import config as cfg_lib

DESCRIPTION = 'ResNet encoder, batch norm and projection head'

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('int', 'resnet_depth', 50,
     'ResNet depth: 18, 34, 50, 101, 152 or 200.'),
    ('float', 'width_multiplier', 1.0,
     'ResNet width multiplier; fractions like 0.25 make tiny models.'),
    ('float', 'sk_ratio', 0.0,
     'Selective-kernel ratio; > 0 enables SK (SimCLRv2: 0.0625).'),
    ('float', 'se_ratio', 0.0,
     'Squeeze-and-excitation ratio; > 0 enables SE.'),
    ('float', 'batch_norm_decay', 0.9,
     'Batch-norm moving-average decay (momentum).'),
    ('bool', 'global_bn', True,
     'Batch-norm statistics across replicas (applies only with > 1 replica).'),
    ('enum', 'proj_head_mode', 'nonlinear',
     'Projection head type (nonlinear: an MLP).',
     cfg_lib.PROJ_HEAD_MODES),
    ('int', 'proj_out_dim', 128, 'Output dimension of the projection head.'),
    ('int', 'num_proj_layers', 3,
     'Dense layers of the nonlinear head (2 in SimCLR, 3 in SimCLRv2).'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('enum', 'cifar_stem', 'auto',
     'CIFAR stem (3x3 conv, no max-pool); auto: iff --image_size <= 32.',
     ('auto', 'true', 'false')),
    ('bool', 'group1_projection', False,
     "ResNet-18/34: a projection shortcut in block group 1 too, as the "
     "original release (set by itself when loading such a checkpoint)."),
)
