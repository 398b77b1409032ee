"""Split names with TFDS-style slicing for the non-TFDS sources.

``folder:``, ``npz:`` and ``builtin`` sources accept the slicing syntax of
TFDS (``tfds.core.ReadInstruction``) on one split::

  'train'            every example
  'train[:500]'      the first 500 examples
  'train[-500:]'     the last 500 examples
  'train[:1%]'       the first 1 % (semi-supervised fine-tuning, SimCLR Sec. 6)
  'train[10%:20%]'   examples from 10 % up to 20 %

Indices refer to the source's canonical order (see each source). Percent
boundaries are integers and round to the closest example exactly as TFDS's
default ``rounding='closest'`` does: boundary ``round(pct * n / 100)`` with
Python's ``round`` (halves to even). Out-of-range
boundaries are clipped like Python slices. Concatenation (``train+test``) is
not supported here.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

_SPLIT_RE = re.compile(
    r'^\s*(?P<name>[\w.-]+)\s*'
    r'(?:\[\s*(?P<start>-?\d+%?)?\s*:\s*(?P<stop>-?\d+%?)?\s*\])?\s*$')


@dataclasses.dataclass(frozen=True)
class SplitSlice:
  """A parsed split: ``name`` plus optional start/stop boundaries.

  Each boundary is ``None`` (open), ``(value, False)`` for an absolute index
  or ``(value, True)`` for a percentage.
  """
  name: str
  start: Optional[tuple] = None
  stop: Optional[tuple] = None

  def indices(self, num_examples: int) -> tuple[int, int]:
    """Returns ``[begin, end)`` in ``range(num_examples)`` for this slice."""
    begin = _resolve(self.start, num_examples, 0)
    end = _resolve(self.stop, num_examples, num_examples)
    return begin, max(begin, end)

  @property
  def is_full(self) -> bool:
    return self.start is None and self.stop is None


def _bound(text: Optional[str]) -> Optional[tuple]:
  if text is None:
    return None
  if text.endswith('%'):
    return int(text[:-1]), True
  return int(text), False


def _resolve(bound: Optional[tuple], n: int, default: int) -> int:
  if bound is None:
    return default
  value, percent = bound
  if percent:  # Exactly TFDS's 'closest' rounding (Python round()).
    value = int(round(value * n / 100.0))
  if value < 0:
    value += n
  return min(max(value, 0), n)


def parse_split(split: str) -> SplitSlice:
  """Parses ``'train'`` or ``'train[a:b]'`` (a, b: ints or int percents).

  Raises:
    ValueError: the string is not of that form, or a percent is outside
      [-100, 100].
  """
  match = _SPLIT_RE.match(split) if isinstance(split, str) else None
  if match is None:
    raise ValueError(
        f'Split {split!r} is not understood: expected a split name with an '
        "optional slice, e.g. 'train', 'train[:500]', 'train[:10%]', "
        "'train[10%:20%]' ('+' concatenation is only supported for TFDS "
        'datasets).')
  start, stop = _bound(match['start']), _bound(match['stop'])
  for bound in (start, stop):
    if bound is not None and bound[1] and not -100 <= bound[0] <= 100:
      raise ValueError(f'Split {split!r} has percent {bound[0]}%: percents '
                       'must be in [-100%, 100%].')
  return SplitSlice(match['name'], start, stop)
