"""The exchanges of the column split (:mod:`alexnet_fast.layouts.columns`) as custom ops with
their autograd, so torch.compile traces them: the columns' all-gather (backward: a
reduce-scatter), the LRN halo swap with the neighbour columns (point-to-point; through CPU
buffers on gloo with CUDA tensors) and its return, and :class:`ColumnComm`, the process group
and meter they use.

Gradients: the backward of an all-gather is a reduce-scatter (each rank's slice of the
gathered input is read by every rank's layer, so its gradient is the sum of their
contributions). The final ``logits`` gather is different: every rank computes the *same*
loss from the same full logits, so the gradient of its own classes is already complete on
each rank and its backward just takes the local slice (no communication). Callers must
therefore compute the same loss on every rank (the layouts in this package do).

Memory format: every exchange returns its input's format (``kernels._common.memory_format_of``),
forward and backward, so a channels-last column (the Triton variants' fast path) stays
channels-last from layer to layer. A gather of a channels-last tensor moves it in its NHWC
storage order (no conversion); the halo swaps the few edge channels NCHW-contiguous and widens
into a channels-last tensor; ``crop{i}`` of a channels-last tensor copies the kept channels
into a dense channels-last tensor (a channel slice of NHWC is not channels-last dense, and
the next conv or gather would otherwise fall back to NCHW), with a channels-last gradient.
"""

from __future__ import annotations

import itertools
import weakref

import torch
import torch.distributed as dist

from alexnet_fast.layouts.comm import (
    CommMeter, all_gather_flat, bytes_all_gather, bytes_reduce_scatter, reduce_scatter_flat,
)

__all__ = ["ColumnComm", "gather_columns", "reduce_scatter_columns", "lrn_halo_exchange", "lrn_halo_return",
           "p2p_staged", "memory_format_of"]


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


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """``kernels._common.memory_format_of``, imported on first use (importing ``kernels``
    imports Triton, which must not happen before TRITON_INTERPRET is set)."""
    from alexnet_fast.kernels._common import memory_format_of as of

    return of(x)


_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def _storage_order(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, int, tuple[int, ...] | None]:
    """``x`` as a contiguous tensor whose dims run in its memory order (NHWC for a
    channels-last ``x``, no copy; else ``x.contiguous()``), where ``dim`` is in it, and the
    permutation back to NCHW dims (None when nothing was permuted)."""
    if memory_format_of(x) == torch.channels_last:
        return x.permute(_TO_NHWC), _TO_NHWC.index(dim), _TO_NCHW
    return x.contiguous(), dim, None


def _empty_like_format(x: torch.Tensor, shape) -> torch.Tensor:
    """An empty tensor of ``shape`` in ``x``'s memory format, dtype and device (the fakes)."""
    return torch.empty(shape, dtype=x.dtype, device=x.device, memory_format=memory_format_of(x))


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
    x = x.contiguous(memory_format=memory_format_of(x))
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
    grad_x = grad[:, front:front + c].clone(memory_format=memory_format_of(grad))
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
