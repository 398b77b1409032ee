"""Export flags: the SavedModels written to --model_dir."""

DESCRIPTION = 'SavedModels written to --model_dir'

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('int', 'keep_hub_module_max', 1,
     'Number of newest exported SavedModels to keep.'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('bool', 'export_every_checkpoint', False,
     'Export a SavedModel at every checkpoint, not only at the end.'),
)
