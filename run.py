"""simclr_tf command line: pretrain, fine-tune, evaluate and export SimCLR.

    python run.py                                  # quick offline job
    python run.py --flagfile=flags/presets/cifar10_cpu.cfg --model_dir=DIR

Flags -> validated Config -> strategy -> dispatch on --mode.
"""
import os
import sys

# oneDNN doubles TensorFlow's CPU matmul throughput on CPUs where TF leaves it
# off (AVX2-only x86); it must be set before TensorFlow is imported. An
# explicit TF_ENABLE_ONEDNN_OPTS in the environment wins.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # noqa: E402

import flags as simclr_flags  # noqa: E402
from simclr_tf import logfilter, stopping  # noqa: E402
from simclr_tf.config import ConfigError  # noqa: E402

simclr_flags.define_flags()
simclr_flags.define_help_flags()  # --help, -h: the flags by group
FLAGS = simclr_flags.FLAGS


def main(argv, flag_values=FLAGS):
  """Runs the job the parsed ``flag_values`` describe; returns the exit code.

  A user error prints one ``error: ...`` line: exit 2 for flags and paths
  (checked before TensorFlow is imported), 1 for what needs the dataset,
  the strategy or a checkpoint (checked before --model_dir is written).
  """
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    cfg = simclr_flags.config_from_flags(flag_values)
    simclr_flags.preflight(cfg)
  except ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  stopping.install()  # SIGTERM / Ctrl-C: checkpoint, then stop
  try:
    from simclr_tf import jobs  # heavy imports only after validation
    try:
      outcome = jobs.run(cfg, export_fn=_export_fn())
      print('\n'.join(outcome.lines()))  # the summary, on standard output
      return outcome.exit_code
    except jobs.USER_ERRORS as e:
      print(f'error: {e}', file=sys.stderr)
      return 1
  except stopping.Stopped as e:
    print(f'stopped: {e}', file=sys.stderr)
    return e.exit_code
  except KeyboardInterrupt:
    print('stopped: interrupted (Ctrl-C twice, or before training began); '
          'rerun the same command to resume from the newest checkpoint.',
          file=sys.stderr)
    return 130


def _export_fn():
  """The exporter (export/ is outside the library; run.py joins them)."""
  from export import saved_model
  return saved_model.export_model


if __name__ == '__main__':
  logfilter.install()  # before TensorFlow is imported: its chatter goes
  app.run(main)
