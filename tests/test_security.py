"""Loading never unpickles, and paths from flags never reach a shell."""
import os
import pickle
import re

import numpy as np
import pytest

from simclr_tf import config
from simclr_tf.data import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCT = ('simclr_tf', 'export', 'flags', 'bench', 'run.py')
FORBIDDEN = {
    r'^\s*(import pickle|from pickle|import dill|import cloudpickle)':
        'a pickle module',
    r'allow_pickle\s*=\s*True': 'allow_pickle=True',
    r'shell\s*=\s*True': 'a shell subprocess',
    r'os\.(system|popen)\(': 'os.system/os.popen',
    r'(?<![\w.])(eval|exec)\(': 'eval/exec',
}


def _product_files():
  for top in PRODUCT:
    path = os.path.join(ROOT, top)
    if os.path.isfile(path):
      yield path
    for dirpath, _, names in os.walk(path):
      yield from (os.path.join(dirpath, n) for n in names
                  if n.endswith('.py'))


def test_no_pickle_shell_or_eval_in_the_product():
  files = list(_product_files())
  assert len(files) > 30
  found = []
  for path in files:
    with open(path, encoding='utf-8') as f:
      for number, line in enumerate(f, 1):
        for pattern, what in FORBIDDEN.items():
          if re.search(pattern, line):
            found.append(f'{os.path.relpath(path, ROOT)}:{number}: {what}')
  assert not found, '\n'.join(found)


class _Payload:
  """Unpickling this writes a marker file: proof that pickle ran."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (open, (self.marker, 'w'))


def test_npz_with_a_pickled_object_array_is_refused_unopened(tmp_path):
  marker = tmp_path / 'unpickled'
  images = np.empty(2, dtype=object)
  images[:] = [_Payload(str(marker)), _Payload(str(marker))]
  data = tmp_path / 'data'
  data.mkdir()
  for split in ('train', 'test'):
    np.savez(data / f'{split}.npz', images=images, labels=np.arange(2))
  assert pickle.dumps(images)  # the payload is a real pickle
  with pytest.raises(ValueError, match=r'images have dtype object; '
                     r'expected uint8'):
    source = sources.get_source(config.DataConfig(dataset=f'npz:{data}'))
    source.num_examples('train')
  assert not marker.exists()


def test_shell_syntax_in_a_path_is_just_a_missing_path(tmp_path):
  marker = tmp_path / 'ran'
  weird = f'{tmp_path}/x; touch {marker} $(touch {marker})'
  with pytest.raises(Exception, match='not found|does not exist|no such'):
    sources.get_source(config.DataConfig(dataset=f'npz:{weird}'))
  assert not marker.exists()
