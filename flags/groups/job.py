"""Job flags: mode, warm start, and what --model_dir keeps.

Checkpoint cadence and retention, summaries and progress logs live here
because they are what the job leaves in (and prints about) --model_dir.
"""
from simclr_tf import config as cfg_lib

DESCRIPTION = 'mode, warm start, and what --model_dir keeps (checkpoints, logs)'

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('enum', 'mode', 'train',
     'What to run; eval reads checkpoints in --model_dir, export writes a '
     'SavedModel.', cfg_lib.MODES),
    ('enum', 'train_mode', 'pretrain',
     'finetune needs --checkpoint, distill --teacher; supervised: '
     'from scratch.',
     cfg_lib.TRAIN_MODES),
    ('str', 'model_dir', None,
     'Directory for checkpoints, summaries, results and exports.'),
    ('str', 'checkpoint', None,
     'Warm start from this checkpoint prefix, checkpoint dir or SavedModel '
     'if --model_dir has none.'),
    ('int', 'checkpoint_epochs', 1,
     'Epochs between checkpoints and summaries.'),
    ('int', 'checkpoint_steps', 0,
     'Steps between checkpoints; overrides --checkpoint_epochs when > 0.'),
    ('int', 'keep_checkpoint_max', 5, 'Number of newest checkpoints to keep.'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('int', 'train_summary_steps', -1,
     'Steps between training summaries; -1: min(100, total steps // 100), so '
     'every run has >= ~100 points; 0: none.'),
    ('int', 'log_every_steps', 50, 'Steps between progress log lines.'),
)
