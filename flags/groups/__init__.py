"""The flag groups of ``run.py --help``, in the order it lists them.

Each module is one group and the one owner of its flags' membership: its
``ORIGINAL_SPECS`` (flags of the original SimCLR TF2 ``run.py``) and
``OUR_SPECS`` (additions) hold ``(kind, name, original default, help[,
choices])`` entries, and ``DESCRIPTION`` is the line under the group's name.
A new flag goes into the tables of the group it belongs to;
``flags.definitions`` builds every table and list from these modules.
"""
from flags.groups import (data, evaluation, export, job, model, runtime,
                          training)

GROUPS = (job, data, model, training, evaluation, export, runtime)


def name_of(group):
  """The short name of ``group`` (``'data'`` for ``flags.groups.data``)."""
  return group.__name__.rsplit('.', 1)[-1]


__all__ = ['GROUPS', 'name_of']
