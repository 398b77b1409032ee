"""The original SimCLR TF2 release's checkpoints and exports, read by key.

The original (google-research/simclr, ``tf2/``) saves
``tf.train.Checkpoint(model=..., global_step=..., optimizer=...)``; its keys
follow the Python attribute names and list indices of its Keras layers
(``model/resnet_model/block_groups/<g>/layers/<b>/conv2d_bn_layers/<i>/...``),
not ours, so ``tf.train.Checkpoint.restore`` cannot match them. This module
names, for every variable of our model, the key the original stores it
under (``original_keys``), lists the keys of the original's SavedModel export
(``export_keys``: trainables by position in ``model.trainable_variables``,
BN moving statistics by position in each top layer's ``variables``), infers
the architecture from a checkpoint's shapes (``infer_architecture``), and
loads tensors by key (``load``). Optimizer slots, ``global_step`` and
``save_counter`` are never read.
"""
from __future__ import annotations

import re

import numpy as np

from simclr_tf.checkpoints import ours
from simclr_tf.checkpoints.reader import open_reader
from simclr_tf.models.resnet import RESNET_SPECS

SUFFIX = '/.ATTRIBUTES/VARIABLE_VALUE'
RESNET = 'model/resnet_model'
STEM = f'{RESNET}/initial_conv_relu_max_pool'
HEAD = 'model/_projection_head/linear_layers'
SUPERVISED = 'model/supervised_head/linear_layer/dense'
# Top layers of the original model, in the order Keras tracks them.
TOP_LAYERS = ('resnet_model', '_projection_head', 'supervised_head')
_BN_NAMES = ('gamma', 'beta', 'moving_mean', 'moving_variance')
_MOVING = ('moving_mean', 'moving_variance')
DEFAULT_SK_RATIO = 0.0625  # SimCLRv2's; SK mid widths below 32 hide it


class OriginalFormatError(ValueError):
  """A checkpoint of the original's format does not fit; says which key."""


# Our model -> original keys ------------------------------------------------


def _bn(prefix, layer):
  """Variables of our ``BatchNormRelu`` under ``prefix/bn/<name>``."""
  for name in _BN_NAMES:
    v = getattr(layer.bn, name, None)
    if v is not None:
      yield f'{prefix}/bn/{name}', v


def _conv(prefix, layer):
  """Kernel of our ``Conv2dFixedPadding``."""
  yield f'{prefix}/conv2d/kernel', layer.conv.kernel


def _dense(prefix, layer):
  """Kernel (and bias) of a Keras Conv2D/Dense."""
  yield f'{prefix}/kernel', layer.kernel
  if getattr(layer, 'bias', None) is not None:
    yield f'{prefix}/bias', layer.bias


def _stem(stem):
  """Stem layers -> indices of ``initial_conv_relu_max_pool``."""
  if len(stem.convs) == 1:  # CIFAR or ImageNet: 0 conv, 1 id, 2 BN-ReLU
    yield from _conv(f'{STEM}/0', stem.convs[0])
    yield from _bn(f'{STEM}/2', stem.bn)
    return
  # ResNet-D: 0 conv, 1 BN, 2 conv, 3 BN, 4 conv, 5 id, 6 BN-ReLU
  for index, layer in enumerate(stem.convs):
    body = _bn if index % 2 else _conv
    yield from body(f'{STEM}/{index}', layer)
  yield from _bn(f'{STEM}/6', stem.bn)


def _shortcut(prefix, shortcut):
  """ResNet-D shortcuts start with padding/pooling layers that hold none."""
  first = len(shortcut.pool)
  yield from _conv(f'{prefix}/{first}', shortcut.conv)
  yield from _bn(f'{prefix}/{first + 1}', shortcut.bn)


def _sk(prefix, sk):
  yield from _conv(f'{prefix}/conv2d_fixed_padding', sk.conv)
  yield from _bn(f'{prefix}/batch_norm_relu', sk.bn)
  yield from _dense(f'{prefix}/conv2d_0', sk.fuse)
  yield from _bn(f'{prefix}/batch_norm_relu_1', sk.fuse_bn)
  yield from _dense(f'{prefix}/conv2d_1', sk.select)


def _se(prefix, se):
  yield from _dense(f'{prefix}/se_reduce', se.reduce)
  yield from _dense(f'{prefix}/se_expand', se.expand)


# Bottleneck body (conv_a, bn_a, [sk | conv_b, bn_b], conv_c, bn_c) ->
# conv_relu_dropblock_layers indices (DropBlocks take indices too).
_BOTTLENECK_INDEX = {False: (0, 1, 3, 4, 6, 7), True: (0, 1, 3, 5, 6)}
_SE_INDEX = {False: 9, True: 8}


def _block(prefix, block):
  """One residual block, in the original's attribute order: a basic
  block tracks its body before its shortcut, a bottleneck after."""
  if block.bottleneck:
    if block.shortcut is not None:
      yield from _shortcut(f'{prefix}/projection_layers', block.shortcut)
    sk = block.sk_ratio > 0
    body = f'{prefix}/conv_relu_dropblock_layers'
    for index, layer in zip(_BOTTLENECK_INDEX[sk], block.body):
      part = (_sk if layer.name == 'sk' else
              _conv if hasattr(layer, 'conv') else _bn)
      yield from part(f'{body}/{index}', layer)
    if block.se is not None:
      yield from _se(f'{body}/{_SE_INDEX[sk]}', block.se)
    return
  for index, layer in enumerate(block.body):
    yield from (_bn if index % 2 else _conv)(
        f'{prefix}/conv2d_bn_layers/{index}', layer)
  if block.shortcut is not None:
    yield from _shortcut(f'{prefix}/shortcut_layers', block.shortcut)
  if block.se is not None:
    yield from _se(f'{prefix}/se_layer', block.se)


def _encoder(encoder):
  yield from _stem(encoder.stem)
  for g, group in enumerate(encoder.block_groups):
    for b, block in enumerate(group.blocks):
      yield from _block(f'{RESNET}/block_groups/{g}/layers/{b}', block)


def _heads(model):
  for j, layer in enumerate(model.projection_head.linear_layers):
    # The original's LinearLayer makes its BN in __init__, its Dense in
    # build(): Keras tracks the BN first.
    yield from _bn(f'{HEAD}/{j}/bn_relu', layer.bn)
    yield from _dense(f'{HEAD}/{j}/dense', layer.dense)
  head = model.supervised_head
  if head is not None:
    yield from _dense(SUPERVISED, head.linear.dense)


def _walk(model):
  """(top layer, key, variable) in the original's tracking order."""
  for key, v in _encoder(model.encoder):
    yield 'resnet_model', key, v
  for key, v in _heads(model):
    top = ('supervised_head' if key.startswith('model/supervised_head')
           else '_projection_head')
    yield top, key, v


def original_keys(model) -> dict:
  """Training-checkpoint key (with SUFFIX) -> our variable, for every
  variable of ``model`` the original has (not our probe's input norm)."""
  return {key + SUFFIX: v for _, key, v in _walk(model)}


def _is_moving(key: str) -> bool:
  return key.rsplit('/', 1)[-1] in _MOVING


def export_keys(model) -> dict:
  """Key in the original's SavedModel ``variables/variables`` -> ours.

  Its exported module stores ``trainable_variables_list`` (position in the
  original ``model.trainable_variables``) and reaches the BN moving
  statistics through ``model/<top layer>/variables/<j>``, a Keras 2 layer's
  ``variables`` being its trainables, then its other variables.
  """
  walk = list(_walk(model))
  trainable = [v for _, key, v in walk if not _is_moving(key)]
  keys = {f'trainable_variables_list/{i}{SUFFIX}': v
          for i, v in enumerate(trainable)}
  for top in TOP_LAYERS:
    own = [(key, v) for t, key, v in walk if t == top]
    ordered = ([v for key, v in own if not _is_moving(key)] +
               [v for key, v in own if _is_moving(key)])
    keys.update({f'model/{top}/variables/{j}{SUFFIX}': v
                 for j, v in enumerate(ordered)})
  return keys


# Format detection ----------------------------------------------------------


def is_checkpoint(keys) -> bool:
  """Keys of an original training checkpoint."""
  return any(k.startswith(f'{RESNET}/initial_conv_relu_max_pool/')
             for k in keys)


def is_export(keys) -> bool:
  """Keys of an original SavedModel's variables."""
  return (any(k.startswith('trainable_variables_list/') for k in keys) and
          any(k.startswith(f'{RESNET}/variables/') for k in keys))


# Loading -------------------------------------------------------------------


def training_keys_of_export(prefix: str) -> dict:
  """Training-checkpoint key -> stored key, for an original export that
  carries its object graph (a real one does: its module reaches every
  variable through ``model/resnet_model/...`` too); {} without one."""
  return {path + SUFFIX: key
          for path, key in ours.object_graph_keys(prefix).items()
          if path.startswith(tuple(f'model/{top}/' for top in TOP_LAYERS))}


def keys_for(model, keys, prefix=None) -> dict:
  """The key map that fits the stored ``keys``: the training checkpoint's,
  or an export's (through its object graph when it has one, else by the
  positions of the original's variable lists)."""
  if not is_export(keys):
    return original_keys(model)
  by_path = training_keys_of_export(prefix) if prefix else {}
  if by_path:
    return {by_path[key]: v for key, v in original_keys(model).items()
            if key in by_path}
  return export_keys(model)


def _stored_keys(model, shapes, prefix) -> dict:
  """id(variable) -> its key in ``shapes`` (an export reaches a variable by
  several keys and stores it under one), or the expected key if absent."""
  found = {}
  for key, v in keys_for(model, shapes, prefix).items():
    if id(v) not in found or (key in shapes and found[id(v)] not in shapes):
      found[id(v)] = key
  return found


def _checked_keys(reader, prefix: str, model, variables) -> dict:
  """id(variable) -> stored key for each of ``variables``; raises
  OriginalFormatError naming the first that is missing from the original
  checkpoint at ``prefix`` or has another shape."""
  shapes = reader.get_variable_to_shape_map()
  by_var = _stored_keys(model, shapes, prefix)
  for v in variables:
    key = by_var.get(id(v))
    if key is None or key not in shapes:
      raise OriginalFormatError(
          f'checkpoint {prefix!r} (the original release\'s format) has no '
          f'variable for {v.path} (expected key '
          f'{(key or "?").removesuffix(SUFFIX)!r}): it was written for '
          'another architecture.')
    if tuple(shapes[key]) != tuple(v.shape):
      raise OriginalFormatError(
          f'checkpoint {prefix!r}: {key.removesuffix(SUFFIX)} has shape '
          f'{tuple(shapes[key])} there but {v.path} has {tuple(v.shape)} '
          'here.')
  return by_var


def check(prefix: str, model, variables) -> None:
  """Raises OriginalFormatError naming the first of ``variables`` that is
  missing from the original checkpoint at ``prefix`` or has another shape."""
  _checked_keys(open_reader(prefix), prefix, model, variables)


def load(prefix: str, model, variables) -> int:
  """Assigns every one of ``variables`` from the original checkpoint or
  export at ``prefix`` (after the checks of ``check``); returns how many."""
  reader = open_reader(prefix)
  by_var = _checked_keys(reader, prefix, model, variables)
  for v in variables:
    v.assign(reader.get_tensor(by_var[id(v)]).astype(np.float32))
  return len(variables)


# Architecture from shapes --------------------------------------------------


def _shape(shapes, key):
  return tuple(shapes.get(key + SUFFIX, ()))


def _blocks_per_group(keys):
  found = {}
  for key in keys:
    m = re.match(rf'{RESNET}/block_groups/(\d+)/layers/(\d+)/', key)
    if m:
      g, b = int(m.group(1)), int(m.group(2))
      found[g] = max(found.get(g, 0), b + 1)
  return tuple(found[g] for g in sorted(found))


def _ratio(widths, default):
  """A ratio r with ``max(int(f * r), floor) == mid`` for every
  (f, mid, floor); ``default`` when it fits (the floor hides r)."""
  def fits(r):
    return all(max(int(f * r), floor) == mid for f, mid, floor in widths)
  if fits(default):
    return default
  for f, mid, floor in widths:
    if mid > floor:
      return mid / f
  return default


def infer_architecture(shapes: dict) -> dict:
  """ModelConfig fields an original checkpoint's (or export's) shapes fix.

  Args:
    shapes: key -> shape, of a training checkpoint (export keys are
      positions, not names: ``None`` is returned for them).

  Returns:
    dict with resnet_depth, width_multiplier, cifar_stem, sk_ratio,
    se_ratio, group1_projection, proj_head_mode, num_proj_layers,
    proj_out_dim, num_classes (None without a supervised head) and
    probe_input_norm, or None when ``shapes`` is not such a checkpoint.
  """
  keys = set(k.removesuffix(SUFFIX) for k in shapes)
  if not is_checkpoint(shapes):
    return None
  blocks = _blocks_per_group(keys)
  bottleneck = any('conv_relu_dropblock_layers' in k for k in keys)
  depth = next((d for d, spec in RESNET_SPECS.items()
                if spec == (bottleneck, blocks)), None)
  if depth is None:
    raise OriginalFormatError(
        f'the checkpoint holds a ResNet with {list(blocks)} blocks per group '
        f'({"bottleneck" if bottleneck else "basic"} blocks), which is none '
        f'of depths {sorted(RESNET_SPECS)}.')
  first = (f'{RESNET}/block_groups/0/layers/0/'
           + ('conv_relu_dropblock_layers/0/conv2d/kernel' if bottleneck
              else 'conv2d_bn_layers/0/conv2d/kernel'))
  width = _shape(shapes, first)[-1] / 64
  deep_stem = f'{STEM}/4/conv2d/kernel' in keys
  stem_kernel = _shape(shapes, f'{STEM}/0/conv2d/kernel')
  cifar_stem = not deep_stem and stem_kernel[0] == 3
  sk_widths = [(_shape(shapes, k[:-len('conv2d_0/kernel')] +
                       'conv2d_1/kernel')[-1] // 2,
                _shape(shapes, k)[-1], 32)
               for k in keys if k.endswith('/conv2d_0/kernel')]
  resnet_d = deep_stem or any(
      re.search(r'(shortcut|projection)_layers/[12]/conv2d/kernel$', k)
      for k in keys)
  se_widths = [(_se_filters(shapes, k, bottleneck), _shape(shapes, k)[-1], 1)
               for k in keys if k.endswith('/se_reduce/kernel')]
  head = sorted(int(m.group(1)) for k in keys
                if (m := re.match(rf'{HEAD}/(\d+)/dense/kernel$', k)))
  n_head = len(head)
  sup = _shape(shapes, f'{SUPERVISED}/kernel')
  return {
      'resnet_depth': depth,
      'width_multiplier': width,
      'cifar_stem': cifar_stem,
      'sk_ratio': (_ratio(sk_widths, DEFAULT_SK_RATIO) if sk_widths else
                   DEFAULT_SK_RATIO if resnet_d else 0.0),
      'se_ratio': _ratio(se_widths, 0.0) if se_widths else 0.0,
      'group1_projection': (not bottleneck and any(
          k.startswith(f'{RESNET}/block_groups/0/layers/0/shortcut_layers/')
          for k in keys)),
      'proj_head_mode': {0: 'none', 1: 'linear'}.get(n_head, 'nonlinear'),
      'num_proj_layers': max(n_head, 1),
      'proj_out_dim': (_shape(shapes, f'{HEAD}/{head[-1]}/dense/kernel')[-1]
                       if head else None),
      'num_classes': sup[-1] if sup else None,
      'probe_input_norm': False,
  }


def _se_filters(shapes, key, bottleneck):
  """The block's ``filters`` (the original sizes SE from them)."""
  block = key.split('/conv_relu_dropblock_layers/')[0] if bottleneck else \
      key.split('/se_layer/')[0]
  conv = ('conv_relu_dropblock_layers/0/conv2d/kernel' if bottleneck
          else 'conv2d_bn_layers/0/conv2d/kernel')
  return _shape(shapes, f'{block}/{conv}')[-1]
