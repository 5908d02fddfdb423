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

Gradients: the backward of an all-gather is a reduce-scatter (each rank's slice of the
gathered input is read by every rank's layer, so its gradient is the sum of their
contributions). The final ``logits`` gather is different: every rank computes the *same*
loss from the same full logits, so the gradient of its own classes is already complete on
each rank and its backward just takes the local slice (no communication). Callers must
therefore compute the same loss on every rank (the layouts in this package do).

Convolutions of a single model with ``groups == 1`` everywhere (``groups=1`` presets) also
split: every conv after conv1 then gathers first. Other group counts are refused.

Under autocast, gathers that feed a conv or linear send the autocast dtype: those layers
cast their input to it anyway, so the result is bit-identical and the bytes are halved.

Memory format: every exchange returns its input's format (``kernels._common.memory_format_of``),
forward and backward, so a channels-last column (the Triton variants' fast path) stays
channels-last from layer to layer. A gather of a channels-last tensor moves it in its NHWC
storage order (no conversion); the halo swaps the few edge channels NCHW-contiguous and widens
into a channels-last tensor; ``crop{i}`` of a channels-last tensor copies the kept channels
into a dense channels-last tensor (a channel slice of NHWC is not channels-last dense, and
the next conv or gather would otherwise fall back to NCHW), with a channels-last gradient.

One cohesive thing, kept in one file (~525 lines): the column split -- how weights split,
the exchanges (custom ops with their autograd), and the column model that uses them.
"""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from alexnet_fast.layouts.comm import (
    CommMeter, all_gather_flat, bytes_all_gather, bytes_reduce_scatter, reduce_scatter_flat,
)
from alexnet_fast.model import (
    AlexNet, AlexNetConfig, classifier_input_hw, classifier_modules, feature_layers, feature_module, min_input_size,
    validate_config,
)

__all__ = [
    "split_columns",
    "merge_columns",
    "check_column_config",
    "ColumnComm",
    "ColumnGather",
    "LRNHalo",
    "gather_columns",
    "reduce_scatter_columns",
    "lrn_halo_exchange",
    "lrn_halo_return",
    "HaloCrop",
    "ColumnAlexNet",
    "lrn_halo",
    "p2p_staged",
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


# ------------------------------------------------------------------ communication


class ColumnComm:
    """What a column's exchange layers share: the process group, this rank's position in it,
    and the meter that counts time and bytes. A handle to process-wide state, so
    ``copy.deepcopy`` of a model (as ``build_variant`` does) shares it instead of copying.
    The exchange ops take tensors and numbers only, so they find it by ``key``."""

    _registry: "weakref.WeakValueDictionary[int, ColumnComm]" = weakref.WeakValueDictionary()
    _keys = itertools.count()

    def __init__(self, rank: int, world_size: int, group: dist.ProcessGroup | None = None,
                 meter: CommMeter | None = None):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a group of {world_size}")
        self.rank, self.world_size, self.group = rank, world_size, group
        self.meter = meter if meter is not None else CommMeter(None)
        self.key = next(ColumnComm._keys)
        ColumnComm._registry[self.key] = self  # weak: gone with the last model that uses it

    @staticmethod
    def find(key: int) -> "ColumnComm":
        return ColumnComm._registry[key]

    def global_rank(self, group_rank: int) -> int:
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)

    def __deepcopy__(self, memo: dict) -> "ColumnComm":
        return self

    def __repr__(self) -> str:
        return f"ColumnComm(rank={self.rank}, world_size={self.world_size})"


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``kernels._common.memory_format_of``, imported on first use (importing ``kernels``
    imports Triton, which must not happen before TRITON_INTERPRET is set)."""
    from kernels._common import memory_format_of as of

    return of(x)


_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def _storage_order(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, int, tuple[int, ...] | None]:
    """``x`` as a contiguous tensor whose dims run in its memory order (NHWC for a
    channels-last ``x``, no copy; else ``x.contiguous()``), where ``dim`` is in it, and the
    permutation back to NCHW dims (None when nothing was permuted)."""
    if _memory_format_of(x) == torch.channels_last:
        return x.permute(_TO_NHWC), _TO_NHWC.index(dim), _TO_NCHW
    return x.contiguous(), dim, None


def _empty_like_format(x: torch.Tensor, shape) -> torch.Tensor:
    """An empty tensor of ``shape`` in ``x``'s memory format, dtype and device (the fakes)."""
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=_memory_format_of(x))


# The exchanges are custom ops (register_fake + register_autograd): torch.compile keeps each
# as one opaque node of its graph (no graph break), and at run time calls the Python below,
# which runs the collective and meters it. Not CUDA-graph safe (host-side collectives).
_OP_TAGS = (torch.Tag.cudagraph_unsafe,) if hasattr(torch.Tag, "cudagraph_unsafe") else ()


@torch.library.custom_op("alexnet_fast::gather_columns", mutates_args=(), tags=_OP_TAGS)
def gather_columns(x: torch.Tensor, comm_key: int, dim: int, replicated_loss: bool) -> torch.Tensor:
    """All-gather every column's ``x`` and concatenate them along ``dim`` in rank order.

    Backward: a reduce-scatter (each rank's slice is read by every rank's next layer, so its
    gradient is the sum of their contributions), or with ``replicated_loss`` the local slice
    alone (every rank computed the same loss from the same gathered tensor)."""
    comm = ColumnComm.find(comm_key)
    x, dim, back = _storage_order(x, dim)
    stacked = x.new_empty((comm.world_size, *x.shape))
    with comm.meter.span(bytes_all_gather(_nbytes(x), comm.world_size)):
        all_gather_flat(stacked.view(-1), x.view(-1), group=comm.group)
    out = torch.cat(stacked.unbind(0), dim=dim)
    return out if back is None else out.permute(back)


@gather_columns.register_fake
def _(x, comm_key, dim, replicated_loss):
    shape = list(x.shape)
    shape[dim] *= ColumnComm.find(comm_key).world_size
    return _empty_like_format(x, shape)


@torch.library.custom_op("alexnet_fast::reduce_scatter_columns", mutates_args=(), tags=_OP_TAGS)
def reduce_scatter_columns(grad: torch.Tensor, comm_key: int, dim: int) -> torch.Tensor:
    """Backward of :func:`gather_columns`: sum over ranks of this rank's slice along ``dim``."""
    comm = ColumnComm.find(comm_key)
    grad, dim, back = _storage_order(grad, dim)
    parts = torch.stack(grad.chunk(comm.world_size, dim=dim), dim=0).contiguous()
    out = grad.new_empty(parts.shape[1:])
    with comm.meter.span(bytes_reduce_scatter(_nbytes(parts), comm.world_size)):
        reduce_scatter_flat(out.view(-1), parts.view(-1), group=comm.group)
    return out if back is None else out.permute(back)


@reduce_scatter_columns.register_fake
def _(grad, comm_key, dim):
    shape = list(grad.shape)
    shape[dim] //= ColumnComm.find(comm_key).world_size
    return _empty_like_format(grad, shape)


def _gather_setup(ctx, inputs, output) -> None:
    _, ctx.comm_key, ctx.dim, ctx.replicated_loss = inputs
    ctx.width = inputs[0].shape[ctx.dim]


def _gather_backward(ctx, grad):
    if ctx.replicated_loss:
        rank = ColumnComm.find(ctx.comm_key).rank
        return grad.narrow(ctx.dim, rank * ctx.width, ctx.width), None, None, None
    return reduce_scatter_columns(grad, ctx.comm_key, ctx.dim), None, None, None


gather_columns.register_autograd(_gather_backward, setup_context=_gather_setup)


def p2p_staged(backend: str, device: torch.device) -> bool:
    """Whether a point-to-point exchange of tensors on ``device`` over ``backend`` goes through
    CPU buffers. Gloo's send/recv have no CUDA path (its collectives stage CUDA tensors
    themselves; its p2p refuses them), so gloo with CUDA tensors -- two ranks sharing one GPU,
    ``ALEXNET_FAST_RANKS_SHARE_GPU=1`` -- is staged; NCCL (CUDA tensors) and gloo on CPU send
    the tensors as they are."""
    return str(backend) == dist.Backend.GLOO and torch.device(device).type != "cpu"


def _swap(sends: list[tuple[torch.Tensor, int]], recvs: list[tuple[torch.Tensor, int]], comm: ColumnComm) -> None:
    """Point-to-point exchange with neighbour columns (group ranks), timed and counted: each
    ``(tensor, peer)`` of ``sends`` goes to ``peer``, each of ``recvs`` is filled from
    ``peer``. Staged through CPU buffers where the backend cannot send the tensors' device
    (:func:`p2p_staged`): a copy out before, a copy in after (blocking copies, ordered with
    the device's stream)."""
    if not sends and not recvs:
        return
    device = (sends or recvs)[0][0].device
    staged = p2p_staged(dist.get_backend(comm.group), device)

    def cpu_buffer(t: torch.Tensor) -> torch.Tensor:
        return torch.empty(t.shape, dtype=t.dtype, device="cpu")

    wire_sends = [t.contiguous() for t, _ in sends]
    wire_recvs = [t for t, _ in recvs]
    with comm.meter.span(sum(_nbytes(t) for t in wire_sends)):
        if staged:  # the copies are this transport's cost: inside the span
            wire_sends = [cpu_buffer(t).copy_(t) for t in wire_sends]
            wire_recvs = [cpu_buffer(t) for t in wire_recvs]
        ops = [dist.P2POp(dist.isend, t, comm.global_rank(peer), comm.group)
               for t, (_, peer) in zip(wire_sends, sends)]
        ops += [dist.P2POp(dist.irecv, t, comm.global_rank(peer), comm.group)
                for t, (_, peer) in zip(wire_recvs, recvs)]
        for request in dist.batch_isend_irecv(ops):
            request.wait()
        if staged:
            for (t, _), buffer in zip(recvs, wire_recvs):
                t.copy_(buffer)


def _halo_sizes(comm: ColumnComm, below: int, above: int) -> tuple[int, int]:
    """Channels this rank borrows from below (rank r-1) and above (rank r+1)."""
    return (below if comm.rank > 0 else 0), (above if comm.rank < comm.world_size - 1 else 0)


@torch.library.custom_op("alexnet_fast::lrn_halo_exchange", mutates_args=(), tags=_OP_TAGS)
def lrn_halo_exchange(x: torch.Tensor, comm_key: int, below: int, above: int) -> torch.Tensor:
    """Widen a column's tensor (NCHW or channels-last, kept) with the neighbours' edge
    channels: ``below`` channels of rank r-1 (its last ones) in front, ``above`` channels of
    rank r+1 (its first ones) behind. Mirrored, rank r sends its first ``above`` channels to r-1 and its last
    ``below`` channels to r+1. Backward (:func:`lrn_halo_return`) sends the gradients of the
    borrowed channels back to their owners, who add them to their edge channels."""
    comm = ColumnComm.find(comm_key)
    x = x.contiguous(memory_format=_memory_format_of(x))
    n, c, h, w = x.shape
    front, back = _halo_sizes(comm, below, above)
    # the edge channels travel NCHW-contiguous (``_swap`` sends contiguous copies)
    recv_below, recv_above = x.new_empty((n, front, h, w)), x.new_empty((n, back, h, w))
    sends, recvs = [], []
    if front:
        sends.append((x[:, :above], comm.rank - 1))
        recvs.append((recv_below, comm.rank - 1))
    if back:
        sends.append((x[:, c - below:], comm.rank + 1))
        recvs.append((recv_above, comm.rank + 1))
    _swap(sends, recvs, comm)
    out = _empty_like_format(x, (n, front + c + back, h, w))  # x's format, whatever cat would pick
    out[:, :front] = recv_below
    out[:, front:front + c] = x
    out[:, front + c:] = recv_above
    return out


@lrn_halo_exchange.register_fake
def _(x, comm_key, below, above):
    front, back = _halo_sizes(ColumnComm.find(comm_key), below, above)
    n, c, h, w = x.shape
    return _empty_like_format(x, (n, front + c + back, h, w))


@torch.library.custom_op("alexnet_fast::lrn_halo_return", mutates_args=(), tags=_OP_TAGS)
def lrn_halo_return(grad: torch.Tensor, comm_key: int, below: int, above: int) -> torch.Tensor:
    """Backward of :func:`lrn_halo_exchange`: the gradient of this rank's own channels."""
    comm = ColumnComm.find(comm_key)
    front, back = _halo_sizes(comm, below, above)
    n, wide, h, w = grad.shape
    c = wide - front - back
    # never a view (added to below); in the format of the incoming gradient
    grad_x = grad[:, front:front + c].clone(memory_format=_memory_format_of(grad))
    from_below = grad.new_empty((n, above if front else 0, h, w))  # r-1's gradient of our first channels
    from_above = grad.new_empty((n, below if back else 0, h, w))  # r+1's gradient of our last channels
    sends, recvs = [], []
    if front:
        sends.append((grad[:, :front], comm.rank - 1))
        recvs.append((from_below, comm.rank - 1))
    if back:
        sends.append((grad[:, front + c:], comm.rank + 1))
        recvs.append((from_above, comm.rank + 1))
    _swap(sends, recvs, comm)
    if front:
        grad_x[:, :above] += from_below
    if back:
        grad_x[:, c - below:] += from_above
    return grad_x


@lrn_halo_return.register_fake
def _(grad, comm_key, below, above):
    front, back = _halo_sizes(ColumnComm.find(comm_key), below, above)
    n, wide, h, w = grad.shape
    return _empty_like_format(grad, (n, wide - front - back, h, w))


def _halo_setup(ctx, inputs, output) -> None:
    _, ctx.comm_key, ctx.below, ctx.above = inputs


def _halo_backward(ctx, grad):
    return lrn_halo_return(grad, ctx.comm_key, ctx.below, ctx.above), None, None, None


lrn_halo_exchange.register_autograd(_halo_backward, setup_context=_halo_setup)


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
        if _memory_format_of(x) == torch.channels_last:
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
