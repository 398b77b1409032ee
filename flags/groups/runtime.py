"""Runtime flags: devices, distribution, precision, speed and seeds."""
from simclr_tf import config as cfg_lib

DESCRIPTION = 'devices, distribution, precision, speed and seeds'

# Flags of the original SimCLR TF2 run.py: (kind, name, original default,
# help[, choices]).
ORIGINAL_SPECS = (
    ('bool', 'use_tpu', True,
     'Run on a Cloud TPU (--strategy=auto then means tpu).'),
    ('str', 'tpu_name', None,
     'Cloud TPU name or grpc:// address; with --strategy=auto implies tpu.'),
    ('str', 'tpu_zone', None, 'GCE zone of the Cloud TPU (optional).'),
    ('str', 'gcp_project', None, 'GCP project of the Cloud TPU (optional).'),
    ('str', 'master', None,
     'TPU master address, used with --use_tpu when --tpu_name is unset.'),
)

# Our additions, same layout.
OUR_SPECS = (
    ('enum', 'strategy', 'auto',
     'Distribution; auto: a TPU if asked for, else all local GPUs, else CPU.',
     cfg_lib.STRATEGIES),
    ('int', 'worker_timeout_secs', 300,
     '--strategy=multi_worker: stop, naming the workers that are missing, '
     'when the cluster has not formed after this many seconds (0: wait).'),
    ('int', 'cpu_devices', 0,
     'Split the CPU into this many logical devices (0: leave as is); with '
     '--strategy=mirrored each is a replica (tests, CPU-only rehearsal).'),
    ('enum', 'mixed_precision', 'auto',
     'Compute dtype; auto: bfloat16 where the device has it, else float32 '
     '(README "Precision").',
     cfg_lib.MIXED_PRECISION),
    ('bool', 'jit', False, 'Compile the training step with XLA.'),
    ('bool', 'deterministic', False,
     'Enable TensorFlow op determinism (slower; pair with --seed).'),
    ('int', 'seed', None,
     'Random seed for weights, data order and augmentation; unset: random.'),
    ('int', 'steps_per_loop', 1,
     'Training steps per tf.function call (more is faster, coarser logs).'),
)
