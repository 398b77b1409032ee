"""Evaluation flags: linear probe, kNN monitor and --mode=eval."""
from simclr_tf import config as cfg_lib

DESCRIPTION = 'linear probe, kNN monitor and --mode=eval'

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('int', 'eval_batch_size', 256, 'Global evaluation batch size.'),
    ('int', 'eval_steps', 0,
     'Eval steps; 0 evaluates every example of --eval_split exactly once.'),
    ('str', 'eval_name', None,
     'Name of this evaluation, used in result names and summaries.'),
    ('bool', 'lineareval_while_pretraining', True,
     'Train a linear head on stop-gradient features while pretraining.'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('bool', 'eval_watch', False,
     '--mode=eval: evaluate each new checkpoint until the final step.'),
    ('int', 'eval_timeout_secs', 0,
     '--eval_watch: stop after this many seconds without a new checkpoint '
     '(0: never).'),
    ('enum', 'eval_every_checkpoint', 'auto',
     'Evaluate the classifier at every checkpoint; auto: if the run has '
     '<= 1000 checkpoints.', cfg_lib.EVAL_EVERY_CHECKPOINT),
    ('bool', 'probe_input_norm', True,
     'Standardise the input of the linear probe trained while pretraining '
     '(parameter-free BatchNorm); the original release has none.'),
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
)
