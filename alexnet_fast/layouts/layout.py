"""The three layouts, applied to a model: what training and the harness call on each rank.

=================  ==========================================================================
``single``         one device, the whole model and batch (no process group)
``data_parallel``  DistributedDataParallel: every rank holds the whole model and ``1/W`` of
                   the batch; gradients are averaged by an all-reduce during backward
``model_parallel`` the paper's split: rank r holds column r (:mod:`.columns`), every rank
                   sees the whole batch and returns all logits
=================  ==========================================================================

On each rank::

    ctx = init_ranks()                                      # or local_context() for single
    model = layout_model(alexnet(), "model_parallel", "eager", ctx)
    logits = model(local_batch("model_parallel", images, ctx))
    loss = F.cross_entropy(logits, local_batch("model_parallel", targets, ctx))
    loss.backward(); optimizer.step()                      # optimizer over model.parameters()
    state = full_state_dict("model_parallel", model, ctx)  # single-model keys and shapes
    opt_state = full_optimizer_state_dict("model_parallel", model, optimizer, ctx)

For ``model_parallel`` every rank must be fed the same batch (same sampler and seed, no
DistributedSampler) and compute the same loss; for ``data_parallel`` each rank takes its
share of one global batch (:func:`local_batch`) or its own DistributedSampler shard.
:func:`full_state_dict` / :func:`load_full_state_dict` and :func:`full_optimizer_state_dict`
/ :func:`load_full_optimizer_state_dict` move the weights and the optimizer state (SGD
momentum buffers) between layouts: what they give is what the single model would hold, so
a checkpoint written in any layout loads in any other.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from alexnet_fast.layouts.columns import ColumnAlexNet, check_column_config, lrn_halo, merge_columns, split_columns
from alexnet_fast.layouts.exchange import ColumnComm
from alexnet_fast.layouts.comm import (
    CommMeter, DistContext, all_gather_flat, bytes_all_gather, bytes_all_reduce, bytes_reduce_scatter,
    metered_allreduce_hook,
)
from alexnet_fast.model import AlexNet, AlexNetConfig, classifier_input_hw, feature_shapes
from alexnet_fast.vocabulary import LAYOUTS, choose

__all__ = [
    "LAYOUTS",
    "batch_multiple",
    "check_layout",
    "layout_model",
    "local_batch",
    "gather_from_ranks",
    "full_state_dict",
    "full_grads",
    "load_full_state_dict",
    "full_optimizer_state_dict",
    "load_full_optimizer_state_dict",
    "comm_bytes_model",
]



def batch_multiple(layout: str, world_size: int) -> int:
    """What a global batch must be a multiple of under ``layout`` on ``world_size`` ranks:
    ``world_size`` for data_parallel (each rank takes ``1/W`` of it), 1 otherwise."""
    choose(layout, LAYOUTS, "layout")
    return world_size if layout == "data_parallel" else 1


def check_layout(layout: str, world_size: int, config: AlexNetConfig | None = None,
                 batch_size: int | None = None) -> None:
    """ValueError saying what is wrong with running ``layout`` on ``world_size`` ranks."""
    choose(layout, LAYOUTS, "layout")
    if layout == "single" and world_size != 1:
        raise ValueError(f"the single layout runs on one rank, not {world_size}")
    if layout != "single" and world_size < 2:
        raise ValueError(f"{layout} needs at least 2 ranks, got {world_size}")
    if batch_size is not None and batch_size % batch_multiple(layout, world_size):
        raise ValueError(f"data_parallel splits the batch: {batch_size} images do not divide into {world_size} ranks")
    if layout == "model_parallel" and config is not None:
        check_column_config(config, world_size)


def layout_model(model: AlexNet, layout: str, variant: str, ctx: DistContext, *,
                 meter: CommMeter | None = None, compile_mode: str = "default") -> nn.Module:
    """``model`` (a single AlexNet, the same weights on every rank) as this rank's part of
    ``layout``, on ``ctx.device``, built as ``variant`` by :func:`alexnet_fast.build_variant`.

    ``meter`` (optional) times and counts the layout's collectives. ``model`` itself is
    left untouched. data_parallel returns the DDP wrapper (its ``.module`` is the variant);
    model_parallel returns a :class:`ColumnAlexNet` (variant applied to the column).
    """
    from alexnet_fast.variants import build_variant

    if not isinstance(model, AlexNet):
        raise TypeError(f"layout_model expects an alexnet_fast AlexNet, got {type(model).__name__}")
    check_layout(layout, ctx.world_size, model.config)
    if layout == "model_parallel":
        comm = ColumnComm(ctx.rank, ctx.world_size, ctx.group, meter)
        column = ColumnAlexNet.from_single(model, comm).to(ctx.device)
        return build_variant(column, variant, compile_mode=compile_mode, copy_model=False)
    built = build_variant(model, variant, compile_mode=compile_mode).to(ctx.device)
    if layout == "single":
        return built
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    ddp = DistributedDataParallel(built, device_ids=device_ids, process_group=ctx.group)
    if meter is not None:
        ddp.register_comm_hook((ctx.group, meter), metered_allreduce_hook)
    return ddp


def local_batch(layout: str, tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's part of a global batch (dim 0): its ``1/W`` share for data_parallel,
    all of it otherwise."""
    if layout != "data_parallel":
        return tensor
    if tensor.shape[0] % ctx.world_size:
        raise ValueError(f"data_parallel splits the batch: {tensor.shape[0]} do not divide into {ctx.world_size} ranks")
    return tensor.chunk(ctx.world_size, dim=0)[ctx.rank]


def gather_from_ranks(tensor: torch.Tensor, ctx: DistContext) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (same shape and dtype on all), in rank order; no autograd."""
    if ctx.group is None:
        return [tensor]
    tensor = tensor.detach().contiguous()
    stacked = tensor.new_empty((ctx.world_size, *tensor.shape))
    all_gather_flat(stacked.view(-1), tensor.view(-1), group=ctx.group)
    return list(stacked.unbind(0))


def _inner(model: nn.Module) -> nn.Module:
    """The variant inside a DDP wrapper, or the model itself."""
    from torch.nn.parallel import DistributedDataParallel

    return model.module if isinstance(model, DistributedDataParallel) else model


def full_state_dict(layout: str, model: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    """The single model's state_dict (keys and shapes) on every rank, whatever the layout.
    For model_parallel this is a collective: every rank must call it."""
    state = _inner(model).state_dict()
    if layout != "model_parallel":
        return state
    return _merge_from_ranks(state, ctx)


def _merge_from_ranks(column: Mapping[str, torch.Tensor], ctx: DistContext) -> dict[str, torch.Tensor]:
    per_rank: list[dict[str, torch.Tensor]] = [{} for _ in range(ctx.world_size)]
    for key in sorted(column):  # same order on every rank
        for r, part in enumerate(gather_from_ranks(column[key], ctx)):
            per_rank[r][key] = part
    return merge_columns(per_rank)


def full_grads(layout: str, model: nn.Module, ctx: DistContext) -> dict[str, torch.Tensor]:
    """Parameter gradients by single-model name (after backward; a collective for
    model_parallel). data_parallel gradients are DDP's averaged ones."""
    grads = {}
    for name, p in _inner(model).named_parameters():
        if p.grad is None:
            raise ValueError(f"parameter {name} has no gradient: call backward first")
        grads[name] = p.grad
    return _merge_from_ranks(grads, ctx) if layout == "model_parallel" else grads


def load_full_state_dict(layout: str, model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                         ctx: DistContext) -> None:
    """Load a single-model state_dict into this rank's part of ``layout``."""
    if layout == "model_parallel":
        state_dict = split_columns(state_dict, ctx.world_size)[ctx.rank]
    _inner(model).load_state_dict(state_dict)


def _optimizer_param_names(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Single-model names of the optimizer's parameters, in its state_dict's index order."""
    names = {id(p): name for name, p in _inner(model).named_parameters()}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    foreign = sum(id(p) not in names for p in params)
    if foreign:
        raise ValueError(f"the optimizer holds {foreign} parameter(s) that are not the model's")
    return [names[id(p)] for p in params]


def _map_optimizer_tensors(state: Mapping, names: list[str], convert) -> dict:
    """``state`` (an ``optimizer.state_dict()``) with its per-parameter tensors of dim >= 1
    (momentum buffers, moments: shaped like their parameter) replaced by ``convert``'s
    result; ``convert`` maps ``{"<param name>/<state key>": tensor}`` to the same keys."""
    per_param = state["state"]
    if any(not 0 <= index < len(names) for index in per_param):
        raise ValueError(f"the optimizer state has parameter indices {sorted(per_param)} for a model "
                         f"with {len(names)} parameters")
    tensors = {f"{names[index]}/{key}": value for index, entry in per_param.items()
               for key, value in entry.items() if isinstance(value, torch.Tensor) and value.dim() > 0}
    converted = convert(tensors) if tensors else {}
    return {**state, "state": {index: {key: converted.get(f"{names[index]}/{key}", value)
                                       for key, value in entry.items()}
                               for index, entry in per_param.items()}}


def full_optimizer_state_dict(layout: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                              ctx: DistContext) -> dict:
    """``optimizer.state_dict()`` as the single model's optimizer would hold it (after an
    optimizer built over ``model.parameters()``: parameter indices in the single model's
    order). For model_parallel the per-parameter tensors are merged across the columns:
    a collective, every rank must call it."""
    state = optimizer.state_dict()
    if layout != "model_parallel":
        return state
    names = _optimizer_param_names(model, optimizer)
    return _map_optimizer_tensors(state, names, lambda tensors: _merge_from_ranks(tensors, ctx))


def load_full_optimizer_state_dict(layout: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                                   state: Mapping, ctx: DistContext) -> None:
    """Load a single-model optimizer state (:func:`full_optimizer_state_dict`) into the
    optimizer of this rank's part of ``layout``."""
    if layout == "model_parallel":
        names = _optimizer_param_names(model, optimizer)
        state = _map_optimizer_tensors(state, names,
                                       lambda tensors: split_columns(tensors, ctx.world_size)[ctx.rank])
    optimizer.load_state_dict(state)


def _param_count(config: AlexNetConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in AlexNet(config).parameters())


def comm_bytes_model(layout: str, config: AlexNetConfig, batch_size: int, train: bool, *,
                     world_size: int | None = None, dtype: torch.dtype = torch.float32) -> int:
    """Bytes the busiest rank sends per step, by formula (conventions in :mod:`.comm`).

    * data_parallel: one all-reduce of every gradient (fp32, as the parameters) in training;
      nothing in inference.
    * model_parallel (``B`` = whole batch, activations in ``dtype``, the autocast dtype under
      mixed precision): forward all-gathers of the local activation before conv3 (and every
      other ungrouped conv after conv1), fc6, fc7, fc8 and of the fc8 logits; LRN halos of
      ``size // 2`` channels sent up and ``(size - 1) // 2`` down (p2p). Training adds the
      backward: a reduce-scatter as large as each forward all-gather except the logits', and
      the halo gradients sent back.

    ``world_size`` None: 1 for single, 2 otherwise.
    """
    if world_size is None:
        world_size = 1 if layout == "single" else 2
    check_layout(layout, world_size, config if layout == "model_parallel" else None, batch_size)
    if layout == "single":
        return 0
    if layout == "data_parallel":
        return bytes_all_reduce(4 * _param_count(config), world_size) if train else 0
    w, item = world_size, torch.tensor([], dtype=dtype).element_size()
    shapes = feature_shapes(config)
    names = list(shapes)
    passes = 2 if train else 1
    total = 0
    for i in range(2, len(config.convs) + 1):  # gathers before ungrouped convs
        if config.conv_groups(i) == 1:
            c, h, wd = shapes[names[names.index(f"conv{i}") - 1]]
            total += passes * bytes_all_gather(c // w * h * wd * batch_size * item, w)
    c5 = config.convs[-1].out_channels
    hw = classifier_input_hw(config)
    for units in (c5 * hw * hw, config.hidden[0], config.hidden[1]):  # gather6, gather7, gather8
        local = units // w * batch_size * item
        total += bytes_all_gather(local, w) + (bytes_reduce_scatter(local * w, w) if train else 0)
    total += bytes_all_gather(config.num_classes // w * batch_size * item, w)  # logits
    if config.lrn is not None:  # halos: the busiest rank, rank 0 of 2 or an inner rank of more
        below, above = lrn_halo(config.lrn.size)
        for i in config.lrn_after:
            _, h, wd = shapes[f"conv{i}"]
            per_channel = h * wd * batch_size * item
            sent = [0] * w
            for r in range(w):
                up, down = r < w - 1, r > 0  # has a rank above / below
                sent[r] = per_channel * (below * up + above * down)  # forward
                if train:
                    sent[r] += per_channel * (below * down + above * up)  # gradients back
            total += max(sent)
    return total
