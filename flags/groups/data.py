"""Data flags: dataset, splits, image size and augmentation."""

DESCRIPTION = 'dataset, splits, image size and augmentation'

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('str', 'dataset', 'imagenet2012',
     "'builtin' (offline shapes), a TFDS name (e.g. cifar10), "
     "'folder:PATH' or 'npz:PATH'."),
    ('str', 'data_dir', None,
     'TFDS data directory (never downloaded into), or the cache of '
     '--dataset=builtin.'),
    ('str', 'train_split', 'train',
     "Training split, with optional slicing, e.g. 'train' or 'train[:10%]'."),
    ('str', 'eval_split', 'validation',
     "Evaluation split, e.g. 'test' or 'validation'."),
    ('bool', 'cache_dataset', False,
     'Cache the dataset in memory (good for CIFAR-sized data, not ImageNet).'),
    ('int', 'image_size', 224, 'Input image height and width in pixels.'),
    ('float', 'color_jitter_strength', 1.0,
     'Colour jitter strength (1.0 ImageNet, 0.5 CIFAR-10).'),
    ('bool', 'use_blur', True,
     'Random Gaussian blur on pretraining views.'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('str', 'labeled_split', None,
     'Labeled split used when --distill_label_weight > 0, e.g. '
     "'train[:10%]'."),
    ('bool', 'skip_corrupt_images', False,
     '--dataset=folder:PATH: skip undecodable images instead of failing.'),
    ('float', 'crop_area_min', 0.08,
     'Lower end of the crop area range (paper: 0.08); crops cover >= 0.1 '
     'of the image as in the original, so less acts as 0.1.'),
)
