"""The paper's column split of AlexNet: one column per rank, activations exchanged between.

Krizhevsky et al. put half of every layer's filters on each of two GPUs. Column ``r`` of
``W`` (rank ``r`` of the process group) holds rows ``[r*n/W, (r+1)*n/W)`` of dim 0 of every
weight and bias of the single model: the output channels of conv1..conv5 (48/128/192/192/128
for the paper), the output units of fc6 and fc7 (2048 + 2048) and the classes of fc8
(500 + 500). So :func:`split_columns` is "chunk dim 0 of every tensor" and
:func:`merge_columns` is "concatenate dim 0", exact both ways.

What each column computes (activations NCHW or channels-last, any float dtype; every rank
gets the whole batch, the same images and the same targets):

==================  =====================================================================
conv1               local filters on the (replicated) image
lrn1, lrn2          cross-channel LRN needs ``size // 2`` channels below and
                    ``(size - 1) // 2`` above each channel: ``halo{i}`` swaps those edge
                    channels with the neighbour columns (point-to-point; through CPU
                    buffers on gloo with CUDA tensors), ``lrn{i}`` and
                    ``pool{i}`` run on the widened tensor and ``crop{i}`` drops the borrowed
                    channels after the pool (pooling is per channel, and keeping ``lrn{i}``
                    next to ``pool{i}`` lets the Triton variant fuse them). The paper's
                    cuda-convnet normalised each GPU's maps alone; the halo makes the
                    columns compute exactly the one-device model's function instead.
conv2, conv4, conv5 ``groups == W`` in the single model: read only the local column
conv3 (groups 1)    ``gather3`` all-gathers the columns along channels first
fc6, fc7, fc8       ``drop6``/``drop7`` act on the local units *before* the gather (so each
                    unit has one dropout mask, drawn by its owner), then ``gather6/7/8``
                    all-gather the columns and the local rows of the layer are applied
logits              fc8 on rank r gives classes ``[r*K/W, (r+1)*K/W)``; ``logits``
                    all-gathers them so every rank returns all ``K`` logits, in order
==================  =====================================================================

Convolutions of a single model with ``groups == 1`` everywhere (``groups=1`` presets) also
split: every conv after conv1 then gathers first. Other group counts are refused.

Under autocast, gathers that feed a conv or linear send the autocast dtype: those layers
cast their input to it anyway, so the result is bit-identical and the bytes are halved.


The exchanges (all-gather / reduce-scatter / halo custom ops with their autograd, the
memory-format rule) are :mod:`alexnet_fast.layouts.exchange`; this module splits and merges
the weights and builds the column model that uses them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast.layouts.exchange import (ColumnComm, gather_columns, lrn_halo_exchange,
                                           memory_format_of)
from alexnet_fast.model import (
    AlexNet, AlexNetConfig, classifier_input_hw, classifier_modules, feature_layers, feature_module, min_input_size,
    validate_config,
)

__all__ = [
    "split_columns",
    "merge_columns",
    "check_column_config",
    "ColumnGather",
    "LRNHalo",
    "HaloCrop",
    "ColumnAlexNet",
    "lrn_halo",
]

# --------------------------------------------------------------------------- weights


def split_columns(state_dict: Mapping[str, torch.Tensor], world_size: int = 2) -> list[dict[str, torch.Tensor]]:
    """Split a single-model state_dict into ``world_size`` column state_dicts.

    Every tensor is chunked along dim 0 (conv output channels, linear output units, fc8
    classes); each column gets its own contiguous copy, same keys, same dtype. Works for any
    ``alexnet_fast`` AlexNet state_dict (``groups=2`` paper model or ``groups=1``).
    ValueError names a tensor whose dim 0 does not split evenly.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"split_columns expects a state_dict (a mapping), got {type(state_dict).__name__}")
    columns: list[dict[str, torch.Tensor]] = [{} for _ in range(world_size)]
    for key, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is a {type(tensor).__name__}, not a tensor")
        if tensor.dim() == 0 or tensor.shape[0] % world_size:
            raise ValueError(
                f"state_dict[{key!r}] of shape {tuple(tensor.shape)} does not split into "
                f"{world_size} columns along dim 0"
            )
        for column, part in zip(columns, tensor.chunk(world_size, dim=0)):
            column[key] = part.clone()
    return columns


def merge_columns(columns: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`split_columns`: concatenate each tensor's columns along dim 0.

    ValueError if the columns do not have the same keys, or a tensor's columns disagree in
    dtype or in their other dimensions.
    """
    if isinstance(columns, Mapping) or not isinstance(columns, Sequence) or not columns:
        raise TypeError("merge_columns expects a non-empty list of column state_dicts")
    keys = list(columns[0])
    for r, column in enumerate(columns):
        if not isinstance(column, Mapping):
            raise TypeError(f"column {r} is a {type(column).__name__}, not a state_dict")
        if set(column) != set(keys):
            diff = sorted(set(column) ^ set(keys))
            raise ValueError(f"column {r} has different keys from column 0: {diff[:5]}")
    merged: dict[str, torch.Tensor] = {}
    for key in keys:
        parts = [column[key] for column in columns]
        first = parts[0]
        for r, part in enumerate(parts):
            if not isinstance(part, torch.Tensor):
                raise TypeError(f"column {r}[{key!r}] is a {type(part).__name__}, not a tensor")
            if part.dtype != first.dtype or part.dim() == 0 or part.shape[1:] != first.shape[1:]:
                raise ValueError(
                    f"{key!r}: column {r} has {part.dtype} {tuple(part.shape)}, column 0 has "
                    f"{first.dtype} {tuple(first.shape)}; columns must agree except in dim 0"
                )
        merged[key] = torch.cat(parts, dim=0)
    return merged


def lrn_halo(size: int) -> tuple[int, int]:
    """(channels below, channels above) that PyTorch's LRN of ``size`` reads around a
    channel: its window for channel c is ``[c - size // 2, c + (size - 1) // 2]``."""
    return size // 2, (size - 1) // 2


def check_column_config(config: AlexNetConfig, world_size: int) -> None:
    """ValueError naming the layer if ``config`` cannot be split into ``world_size`` columns."""
    validate_config(config)
    if not isinstance(world_size, int) or world_size < 2:
        raise ValueError(f"model_parallel needs at least 2 columns (ranks), got {world_size!r}")
    for i, spec in enumerate(config.convs, start=1):
        groups = config.conv_groups(i)
        if groups not in (1, world_size) or (i == 1 and groups != 1):
            raise ValueError(
                f"conv{i} has groups={groups}: a {world_size}-column split handles groups=1 "
                f"(gather the columns first) or groups={world_size} after conv1 (column-local)"
            )
        if spec.out_channels % world_size:
            raise ValueError(f"conv{i}: {spec.out_channels} filters do not split into {world_size} columns")
        if i in config.lrn_after and config.lrn is not None:
            column = spec.out_channels // world_size
            if max(lrn_halo(config.lrn.size)) > column:
                raise ValueError(
                    f"lrn{i}: a column holds {column} channels, fewer than the LRN window "
                    f"(size {config.lrn.size}) reaches into its neighbour"
                )
    for name, units in (("fc6", config.hidden[0]), ("fc7", config.hidden[1]), ("fc8", config.num_classes)):
        if units % world_size:
            raise ValueError(f"{name}: {units} outputs do not split into {world_size} columns")


# ----------------------------------------------------------------------- modules


class ColumnGather(nn.Module):
    """All-gather the columns along ``dim`` (1: channels of NCHW, or units of a flat
    activation), see :func:`gather_columns`. ``to_autocast``: under autocast, send the
    autocast dtype (only for gathers whose consumer casts to it anyway)."""

    def __init__(self, comm: ColumnComm, dim: int = 1, *, replicated_loss: bool = False,
                 to_autocast: bool = True):
        super().__init__()
        self.comm, self.dim = comm, dim
        self.replicated_loss, self.to_autocast = replicated_loss, to_autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_autocast and torch.is_autocast_enabled(x.device.type):
            x = x.to(torch.get_autocast_dtype(x.device.type))
        return gather_columns(x, self.comm.key, self.dim, self.replicated_loss)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, replicated_loss={self.replicated_loss}"


class LRNHalo(nn.Module):
    """Borrow the neighbour columns' edge channels an LRN of ``size`` reads (NCHW or
    channels-last, kept), see :func:`lrn_halo_exchange`."""

    def __init__(self, comm: ColumnComm, size: int):
        super().__init__()
        self.comm = comm
        self.below, self.above = lrn_halo(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"LRNHalo expects NCHW activations, got shape {tuple(x.shape)}")
        return lrn_halo_exchange(x, self.comm.key, self.below, self.above)

    def extra_repr(self) -> str:
        return f"below={self.below}, above={self.above}"


class HaloCrop(nn.Module):
    """Drop the channels :class:`LRNHalo` borrowed (``front`` first, ``back`` last). A
    channels-last input gives a dense channels-last copy, and its gradient is channels-last
    too (a channel slice of it would not be channels-last dense, the next layer would fall
    back to NCHW, and the slice's backward is NCHW); NCHW gives a view."""

    def __init__(self, front: int, back: int):
        super().__init__()
        self.front, self.back = front, back

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if memory_format_of(x) == torch.channels_last:
            # a negative pad is a crop whose output and gradient keep the input's format
            return F.pad(x, (0, 0, 0, 0, -self.front, -self.back))
        return x[:, self.front:x.shape[1] - self.back]

    def extra_repr(self) -> str:
        return f"front={self.front}, back={self.back}"


class ColumnAlexNet(nn.Module):
    """Column ``comm.rank`` of an AlexNet split over ``comm.world_size`` ranks.

    Module names keep the single model's roles (``features.conv1 relu1 lrn1 pool1 ...``,
    ``classifier.drop6 fc6 ...``) with the exchanges between them (``halo{i}``, ``crop{i}``,
    ``gather{i}``, ``classifier.gather6/7/8``, ``logits``), so ``build_variant``'s
    swap-by-role works on ``.features`` and the state_dict keys are those of the single
    model (tensors cut by :func:`split_columns`). Input: the whole NCHW batch, the same on
    every rank; output: all logits (N, num_classes), the same on every rank.
    """

    def __init__(self, config: AlexNetConfig, comm: ColumnComm):
        super().__init__()
        world = comm.world_size
        check_column_config(config, world)
        self.config, self.comm = config, comm
        layers: dict[str, nn.Module] = {}
        walk = feature_layers(config)  # the single model's walk, with the exchanges put in
        in_ch, split = config.in_channels, False  # the image is replicated, not split
        for step, layer in enumerate(walk):
            i = layer.index
            if layer.kind == "conv":
                if split and config.conv_groups(i) == 1:
                    layers[f"gather{i}"] = ColumnGather(comm, dim=1)
                    in_ch *= world
            elif layer.kind == "lrn":
                layers[f"halo{i}"] = LRNHalo(comm, config.lrn.size)
            layers[layer.name] = feature_module(layer, config, in_ch, columns=world)
            if layer.kind == "conv":
                in_ch, split = layer.conv.out_channels // world, True
            block_ends = step + 1 == len(walk) or walk[step + 1].index != i
            if block_ends and f"halo{i}" in layers:  # drop the borrowed channels after the pool
                halo = layers[f"halo{i}"]
                layers[f"crop{i}"] = HaloCrop(halo.below if comm.rank > 0 else 0,
                                              halo.above if comm.rank < world - 1 else 0)
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = None if config.adaptive_pool is None else nn.AdaptiveAvgPool2d(config.adaptive_pool)
        flat_hw = classifier_input_hw(config)
        classifier = classifier_modules(config, in_ch * world * flat_hw * flat_hw, columns=world,
                                        gather=lambda: ColumnGather(comm, dim=1))
        classifier["logits"] = ColumnGather(comm, dim=1, replicated_loss=True, to_autocast=False)
        self.classifier = nn.Sequential(classifier)
        self._min_size = min_input_size(config)

    @classmethod
    def from_single(cls, model: AlexNet, comm: ColumnComm) -> "ColumnAlexNet":
        """This rank's column of ``model``, with its weights (exact copies of the rows)."""
        if not isinstance(model, AlexNet):
            raise TypeError(f"from_single expects an alexnet_fast AlexNet, got {type(model).__name__}")
        column = cls(model.config, comm)
        state = split_columns(model.state_dict(), comm.world_size)[comm.rank]
        column.load_state_dict(state)
        p = next(model.parameters())
        return column.to(device=p.device, dtype=p.dtype)

    # the single model's input checks and forward pass: they use only config, _min_size,
    # features, avgpool and classifier, which the column has under the same names
    check_input = AlexNet.check_input
    forward = AlexNet.forward
