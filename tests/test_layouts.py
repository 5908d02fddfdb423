"""Layouts: weight split/merge, the column model, the byte model, and two gloo ranks on CPU
(model_parallel == single groups=2 model, data_parallel SGD step == single full-batch step,
metered bytes == byte model, a killed or hung rank ends the run with an error naming it).

Process start-up costs seconds, so the two-rank checks are grouped into few launches: the
rank functions below run on each rank and return tensors that the tests compare.
"""

from __future__ import annotations

import contextlib
import copy
import os
import signal
import time

import pytest
import torch
import torch.nn.functional as F

from alexnet_fast import alexnet, make_config
from alexnet_fast.launch import LayoutRunError, launch
from alexnet_fast.layouts import (
    ColumnAlexNet, ColumnComm, CommMeter, comm_bytes_model, full_grads,
    full_optimizer_state_dict, full_state_dict, init_ranks, layout_model, load_full_optimizer_state_dict,
    load_full_state_dict, local_batch, local_context, merge_columns,
    shutdown, split_columns,
)
from alexnet_fast.layouts import exchange as exchange_module
from alexnet_fast.layouts.columns import ColumnGather, HaloCrop, LRNHalo
from alexnet_fast.layouts.exchange import p2p_staged

# small paper-preset model: 12/32/48/48/32 filters (6/16/24/24/16 per column), 99x99 input
# (pool5 is 2x2, so the flatten order of fc6's gathered input is exercised), 10 classes
SMALL = dict(width_mult=0.125, input_size=99, num_classes=10, dropout=0.0)
BATCH = 4


def _assert_tight(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """fp32 results that differ only in summation order: within 1e-5 of the largest value."""
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"{what}: {m}")


def _batch(config, batch=BATCH, seed=1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, config.input_size, config.input_size, generator=gen)
    return x, torch.randint(config.num_classes, (batch,), generator=gen)


def _sgd(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)


# ------------------------------------------------------------------ weights, in process


def test_split_merge_round_trip_is_bit_exact_for_the_paper_model():
    model = alexnet()  # paper preset, groups=2, 60,965,224 parameters
    state = model.state_dict()
    columns = split_columns(state)
    assert [c["features.conv1.weight"].shape[0] for c in columns] == [48, 48]
    assert columns[1]["features.conv2.weight"].shape == (128, 48, 5, 5)  # groups=2: local input
    assert columns[0]["features.conv3.weight"].shape == (192, 256, 3, 3)  # reads both columns
    assert columns[0]["classifier.fc6.weight"].shape == (2048, 9216)
    assert columns[1]["classifier.fc8.weight"].shape == (500, 4096)
    torch.testing.assert_close(columns[1]["features.conv5.bias"], state["features.conv5.bias"][128:], rtol=0, atol=0)
    merged = merge_columns(columns)
    assert list(merged) == list(state)
    for key, tensor in state.items():
        assert merged[key].dtype == tensor.dtype and torch.equal(merged[key], tensor), key
    # the columns are copies, not views of the model's weights
    columns[0]["features.conv1.weight"].zero_()
    assert state["features.conv1.weight"].abs().sum() > 0


def test_column_model_takes_the_split_weights_and_keeps_role_names():
    config = make_config(**SMALL)
    model = alexnet(**SMALL)
    for rank in (0, 1):
        column = ColumnAlexNet(config, ColumnComm(rank, 2))
        column.load_state_dict(split_columns(model.state_dict())[rank])  # strict: same keys and shapes
        names = list(column.features._modules)
        for role in ("conv1", "relu1", "lrn1", "pool1", "conv2", "lrn2", "pool2", "conv3", "conv5", "pool5"):
            assert role in names
        assert names.index("lrn1") + 1 == names.index("pool1")  # the Triton variant fuses this pair
        assert column.features.conv2.in_channels == 6 and column.features.conv3.in_channels == 32
        crop = column.features.crop1
        assert (crop.front, crop.back) == ((0, 2) if rank == 0 else (2, 0))


def test_split_merge_refuse_bad_input():
    state = alexnet(**SMALL).state_dict()
    with pytest.raises(ValueError, match=r"features.conv2.weight.*\(32, 6, 5, 5\).*3 columns"):
        split_columns(state, world_size=3)
    with pytest.raises(TypeError, match="not a tensor"):
        split_columns({"w": [1, 2]})
    with pytest.raises(TypeError, match="mapping"):
        split_columns([torch.zeros(2)])
    a, b = split_columns(state)
    b.pop("classifier.fc8.bias")
    with pytest.raises(ValueError, match="different keys"):
        merge_columns([a, b])
    a, b = split_columns(state)
    b["features.conv1.weight"] = b["features.conv1.weight"].double()
    with pytest.raises(ValueError, match="features.conv1.weight"):
        merge_columns([a, b])
    with pytest.raises(TypeError, match="list"):
        merge_columns(a)


def test_column_split_refuses_configs_it_cannot_split():
    with pytest.raises(ValueError, match="fc8"):
        ColumnAlexNet(make_config(width_mult=0.125, input_size=99, num_classes=5), ColumnComm(0, 2))
    with pytest.raises(ValueError, match="conv2 has groups=4"):
        ColumnAlexNet(make_config(width_mult=0.25, input_size=99, groups=4), ColumnComm(0, 2))
    with pytest.raises(ValueError, match="lrn1: a column holds 1 channels"):
        ColumnAlexNet(make_config(width_mult=0.025, input_size=99), ColumnComm(0, 2))  # conv1: 2 filters
    # groups=1 splits too: every conv after conv1 gathers both columns first
    column = ColumnAlexNet(make_config(width_mult=0.125, input_size=99, groups=1), ColumnComm(1, 2))
    assert {"gather2", "gather3", "gather4", "gather5"} <= set(column.features._modules)


def test_comm_bytes_model_for_the_paper_network():
    config = make_config()
    # data_parallel, W=2: one all-reduce of 60,965,224 fp32 gradients, 2(W-1)/W = 1 x bytes
    assert comm_bytes_model("data_parallel", config, 128, train=True) == 60_965_224 * 4
    assert comm_bytes_model("data_parallel", config, 128, train=False) == 0
    assert comm_bytes_model("single", config, 128, train=True) == 0
    # model_parallel forward, batch 128, fp32, per image (elements each rank sends):
    #   halo1 2x55x55 + halo2 2x27x27 + gather3 128x13x13 + gather6 128x6x6
    #   + gather7 2048 + gather8 2048 + logits 500
    per_image = 2 * 55 * 55 + 2 * 27 * 27 + 128 * 13 * 13 + 128 * 36 + 2048 + 2048 + 500
    assert per_image == 38_344
    assert comm_bytes_model("model_parallel", config, 128, train=False) == 128 * 4 * per_image
    # training sends it all again backwards (reduce-scatter, halo gradients) except the logits
    assert comm_bytes_model("model_parallel", config, 128, train=True) == 128 * 4 * (2 * per_image - 500)
    assert comm_bytes_model("model_parallel", config, 128, train=False, dtype=torch.bfloat16) == 128 * 2 * per_image
    with pytest.raises(ValueError, match="do not divide"):
        comm_bytes_model("data_parallel", config, 5, train=True)


def test_local_context_takes_a_device_name():
    assert local_context("cpu").device == torch.device("cpu") and local_context("cpu").group is None
    with pytest.raises(ValueError, match="'cuda:x'"):
        local_context("cuda:x")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="need 1 GPU"):
            local_context("cuda:0")
    else:
        with pytest.raises(ValueError, match=f"cuda:{torch.cuda.device_count()} asked for"):
            local_context(f"cuda:{torch.cuda.device_count()}")


def test_local_context_makes_the_gpu_current(monkeypatch):
    """``cuda:1`` becomes the current device, so kernels and timers use it (mocked CUDA)."""
    current = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: current.append(torch.device(device)))
    assert local_context("cuda:1").device == torch.device("cuda:1")
    assert current == [torch.device("cuda:1")]


def test_comm_meter_records_on_its_devices_stream(monkeypatch):
    recorded = []

    class Event:
        def __init__(self, enable_timing=False):
            pass

        def record(self, stream=None):
            recorded.append(stream)

    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: f"stream of {torch.device(device)}")
    meter = CommMeter(torch.device("cuda:1"))
    with meter.span(8):
        pass
    assert recorded == ["stream of cuda:1"] * 3  # the origin, start and end


def test_comm_meter_keeps_each_step():
    meter = CommMeter(torch.device("cpu"))
    with meter.span(100):
        time.sleep(0.01)
    meter.next_step()
    with meter.span(7):
        pass
    with meter.span(5):
        pass
    meter.next_step()
    (ms0, bytes0, calls0), (ms1, bytes1, calls1) = meter.steps()
    assert (bytes0, calls0, bytes1, calls1) == (100, 1, 12, 2)
    assert ms0 >= 10 and ms1 < ms0


def test_comm_meter_counts_overlapping_spans_once():
    meter = CommMeter(torch.device("cpu"))
    origin = meter._origin
    meter._spans = [(origin + 0.000, origin + 0.010), (origin + 0.005, origin + 0.020), (origin + 0.030, origin + 0.031)]
    assert meter.elapsed_ms() == pytest.approx(21.0)
    with meter.span(100):
        time.sleep(0.01)
    assert meter.bytes_sent == 100 and meter.calls == 1


# ------------------------------------------------------------- two gloo ranks on CPU


def _loud_lrn_model_and_batch():
    """A model and batch where the LRN changes the logits by ~10% (He init, inputs x10; at
    the paper's init it changes them by ~1e-7, below the comparison's 1e-5), and a batch
    unlike the other checks' (a halo buffer left unfilled finds no right values in memory)."""
    torch.manual_seed(0)
    model = alexnet(**SMALL, init="kaiming")
    x, y = _batch(model.config, seed=2)
    return model, 10 * x, y


def _layouts_rank_checks() -> dict:
    """On each of 2 ranks: model_parallel and data_parallel against the single model."""
    ctx = init_ranks(timeout_s=120)
    try:
        torch.manual_seed(0)
        single = alexnet(**SMALL)
        config = single.config
        x, y = _batch(config)
        out: dict = {"rank": ctx.rank}

        # model_parallel: logits and every gradient; one SGD step; metered bytes
        meter = CommMeter(ctx.device)
        column = layout_model(single, "model_parallel", "eager", ctx, meter=meter)
        column.train()
        logits = column(x)
        F.cross_entropy(logits, y).backward()
        out["mp_logits"] = logits.detach()
        out["mp_grads"] = full_grads("model_parallel", column, ctx)
        out["mp_bytes"] = meter.bytes_sent
        out["mp_bytes_model"] = comm_bytes_model("model_parallel", config, BATCH, train=True)
        opt = _sgd(column.parameters())
        opt.step()
        out["mp_after_step"] = full_state_dict("model_parallel", column, ctx)
        out["mp_optimizer"] = full_optimizer_state_dict("model_parallel", column, opt, ctx)

        # a batch of one image (slices of it are contiguous: no exchange may return a view)
        one = layout_model(single, "model_parallel", "eager", ctx)
        F.cross_entropy(one(x[:1]), y[:1]).backward()
        out["mp_batch1_grads"] = full_grads("model_parallel", one, ctx)
        # the optimizer state moves too: split into another column's optimizer, merged back
        one_opt = _sgd(one.parameters())
        load_full_optimizer_state_dict("model_parallel", one, one_opt, out["mp_optimizer"], ctx)
        out["mp_optimizer_reloaded"] = full_optimizer_state_dict("model_parallel", one, one_opt, ctx)

        # mixed precision: gathers send bf16 (what conv3/fc6/fc7/fc8 cast to anyway)
        meter.reset()
        bf16_column = layout_model(single, "model_parallel", "eager", ctx, meter=meter)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_logits = bf16_column(x)
        F.cross_entropy(bf16_logits.float(), y).backward()
        out["mp_bf16_logits"] = bf16_logits.detach()
        out["mp_bf16_grads"] = full_grads("model_parallel", bf16_column, ctx)
        out["mp_bf16_bytes"] = meter.bytes_sent
        out["mp_bf16_bytes_model"] = comm_bytes_model("model_parallel", config, BATCH, train=True, dtype=torch.bfloat16)

        # the halo as gloo runs it with CUDA tensors (two ranks sharing a GPU): through CPU
        # buffers; p2p_staged (the path choice, its own test below) answers yes here
        loud, x2, y2 = _loud_lrn_model_and_batch()
        asked = []
        chooser = exchange_module.p2p_staged
        exchange_module.p2p_staged = lambda backend, device: asked.append((str(backend), device.type)) or True
        try:
            staged = layout_model(loud, "model_parallel", "eager", ctx)
            staged_logits = staged(x2)
            F.cross_entropy(staged_logits, y2).backward()
        finally:
            exchange_module.p2p_staged = chooser
        out["staged_asked"] = asked
        direct = layout_model(loud, "model_parallel", "eager", ctx)  # the same, sent as they are
        direct_logits = direct(x2)
        F.cross_entropy(direct_logits, y2).backward()
        out["direct_logits"], out["direct_grads"] = direct_logits.detach(), full_grads("model_parallel", direct, ctx)
        out["staged_logits"] = staged_logits.detach()
        out["staged_grads"] = full_grads("model_parallel", staged, ctx)

        # the column under torch.compile: one graph (fullgraph), same logits and gradients
        compiled = layout_model(single, "model_parallel", "eager", ctx)
        compiled.compile(backend="aot_eager", fullgraph=True)
        compiled_logits = compiled(x)
        F.cross_entropy(compiled_logits, y).backward()
        out["mp_compiled_logits"] = compiled_logits.detach()
        out["mp_compiled_grads"] = full_grads("model_parallel", compiled, ctx)

        # channels-last (the Triton variants' layout): every exchange keeps it, both ways
        nhwc = layout_model(single, "model_parallel", "eager", ctx).to(memory_format=torch.channels_last)
        out["cl_formats"] = {}

        def record(name, **tensors):  # a hook: returns None, so it changes nothing
            for kind, t in tensors.items():
                out["cl_formats"][name, kind] = (t.is_contiguous(memory_format=torch.channels_last), t.is_contiguous())

        for name, module in nhwc.features.named_children():
            if isinstance(module, (LRNHalo, HaloCrop, ColumnGather)):
                module.register_forward_hook(lambda m, args, y, name=name: record(name, x_in=args[0], y_out=y))
                module.register_full_backward_hook(lambda m, gx, gy, name=name: record(name, grad_y=gy[0], grad_x=gx[0]))
        nhwc_logits = nhwc(x.contiguous(memory_format=torch.channels_last))
        F.cross_entropy(nhwc_logits, y).backward()
        out["cl_logits"] = nhwc_logits.detach()
        out["cl_grads"] = full_grads("model_parallel", nhwc, ctx)

        # state moves between layouts: load the single weights back into a column
        load_full_state_dict("model_parallel", compiled, single.state_dict(), ctx)
        out["mp_reloaded"] = full_state_dict("model_parallel", compiled, ctx)

        # data_parallel: one SGD step on half the batch each == one step on the whole batch
        meter.reset()
        ddp = layout_model(single, "data_parallel", "eager", ctx, meter=meter)
        ddp.train()
        opt = _sgd(ddp.parameters())
        F.cross_entropy(ddp(local_batch("data_parallel", x, ctx)), local_batch("data_parallel", y, ctx)).backward()
        opt.step()
        out["dp_after_step"] = full_state_dict("data_parallel", ddp, ctx)
        out["dp_bytes"] = meter.bytes_sent
        out["dp_bytes_model"] = comm_bytes_model("data_parallel", config, BATCH, train=True)
        return out
    finally:
        shutdown(ctx)


def _single_reference() -> dict:
    """What the single groups=2 model computes on the same weights and batch."""
    torch.manual_seed(0)
    single = alexnet(**SMALL)
    x, y = _batch(single.config)
    start = copy.deepcopy(single.state_dict())
    logits = single(x)
    F.cross_entropy(logits, y).backward()
    grads = {k: p.grad.clone() for k, p in single.named_parameters()}
    opt = _sgd(single.parameters())
    opt.step()
    one = alexnet(**SMALL)
    one.load_state_dict(start)
    F.cross_entropy(one(x[:1]), y[:1]).backward()
    batch1_grads = {k: p.grad.clone() for k, p in one.named_parameters()}
    bf16 = alexnet(**SMALL)
    bf16.load_state_dict(start)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_logits = bf16(x)
    F.cross_entropy(bf16_logits.float(), y).backward()
    bf16_grads = {k: p.grad.clone() for k, p in bf16.named_parameters()}
    other, x2, y2 = _loud_lrn_model_and_batch()
    other_logits = other(x2)
    F.cross_entropy(other_logits, y2).backward()
    other_grads = {k: p.grad.clone() for k, p in other.named_parameters()}
    return {"logits": logits.detach(), "grads": grads, "start": start, "after_step": single.state_dict(),
            "loud_logits": other_logits.detach(), "loud_grads": other_grads,
            "optimizer": opt.state_dict(), "names": [k for k, _ in single.named_parameters()],
            "bf16_logits": bf16_logits.detach(), "bf16_grads": bf16_grads, "batch1_grads": batch1_grads}


def _check_model_parallel_equals_single(results, ref):
    """Both ranks return the single model's logits and gradients; one SGD step lands on its weights."""
    for rank in (0, 1):
        out = results[rank]
        _assert_tight(out["mp_logits"], ref["logits"], f"rank {rank} logits")
        assert set(out["mp_grads"]) == set(ref["grads"])
        for name, grad in ref["grads"].items():
            _assert_tight(out["mp_grads"][name], grad, f"rank {rank} grad {name}")
        for name, value in ref["after_step"].items():
            _assert_tight(out["mp_after_step"][name], value, f"rank {rank} after SGD step: {name}")
    torch.testing.assert_close(results[0]["mp_logits"], results[1]["mp_logits"], rtol=0, atol=0)
    for name, grad in ref["batch1_grads"].items():
        _assert_tight(results[1]["mp_batch1_grads"][name], grad, f"batch of 1: grad {name}")


def _check_model_parallel_halo_paths(results, ref):
    """Where the LRN matters (:func:`_loud_lrn_model_and_batch`), the halo sent as it is and
    the halo staged through CPU buffers (gloo's path for CUDA tensors) give the single model's
    logits and gradients; every halo exchange and return (2 LRNs, forward and backward) of the
    staged run went that way."""
    for rank in (0, 1):
        out = results[rank]
        assert out["staged_asked"] == [("gloo", "cpu")] * 4, out["staged_asked"]
        for path in ("direct", "staged"):
            _assert_tight(out[f"{path}_logits"], ref["loud_logits"], f"rank {rank} {path}-halo logits")
            for name, grad in ref["loud_grads"].items():
                _assert_tight(out[f"{path}_grads"][name], grad, f"rank {rank} {path}-halo grad {name}")


def test_halo_p2p_is_staged_through_cpu_only_for_gloo_with_gpu_tensors():
    """gloo's send/recv have no CUDA path: two ranks sharing one GPU (gloo) stage the halo."""
    assert p2p_staged("gloo", torch.device("cuda", 0)) and p2p_staged(torch.distributed.Backend.GLOO, "cuda")
    assert not p2p_staged("nccl", torch.device("cuda", 1))  # NCCL sends device tensors as they are
    assert not p2p_staged("gloo", torch.device("cpu"))


def _check_optimizer_state(results, ref):
    """The columns' SGD state merged is the single model's (momentum buffer by buffer), and
    splitting it into another column optimizer and merging again is bit-exact."""
    for rank in (0, 1):
        merged = results[rank]["mp_optimizer"]
        assert merged["param_groups"] == ref["optimizer"]["param_groups"]
        assert merged["state"].keys() == ref["optimizer"]["state"].keys()
        for index, entry in ref["optimizer"]["state"].items():
            _assert_tight(merged["state"][index]["momentum_buffer"], entry["momentum_buffer"],
                          f"rank {rank} momentum buffer of {ref['names'][index]}")
            assert torch.equal(results[rank]["mp_optimizer_reloaded"]["state"][index]["momentum_buffer"],
                               merged["state"][index]["momentum_buffer"]), ref["names"][index]


def _check_model_parallel_bf16(results, ref):
    out = results[0]
    assert out["mp_bf16_logits"].dtype == torch.bfloat16
    # bf16 keeps 8 significant bits; both sides round the same products, in other orders
    tolerance = 5e-2
    for name, value in [("logits", ref["bf16_logits"])] + list(ref["bf16_grads"].items()):
        got = out["mp_bf16_logits"] if name == "logits" else out["mp_bf16_grads"][name]
        error = (got.double() - value.double()).abs().max().item() / value.double().abs().max().item()
        assert error < tolerance, f"{name}: relative error {error:.3g}"
    assert out["mp_bf16_bytes"] == out["mp_bf16_bytes_model"] < out["mp_bytes"]


def _check_model_parallel_compiled(results, ref):
    """The column compiled with fullgraph=True (no graph break at the exchanges) is as exact."""
    out = results[0]
    _assert_tight(out["mp_compiled_logits"], ref["logits"], "compiled logits")
    for name, grad in ref["grads"].items():
        _assert_tight(out["mp_compiled_grads"][name], grad, f"compiled grad {name}")


def _check_model_parallel_channels_last(results, ref):
    """A channels-last column: every halo, crop and gather (forward and backward) returns
    channels-last for a channels-last input, and the logits and gradients are the single
    groups=2 model's."""
    for rank in (0, 1):
        out = results[rank]
        formats = out["cl_formats"]
        assert set(formats) == {(name, kind) for name in ("halo1", "crop1", "halo2", "crop2", "gather3")
                                for kind in ("x_in", "y_out", "grad_y", "grad_x")}, sorted(formats)
        for (name, kind), (channels_last, nchw) in formats.items():
            assert channels_last and not nchw, f"rank {rank} {name} {kind}: not channels-last"
        _assert_tight(out["cl_logits"], ref["logits"], f"rank {rank} channels-last logits")
        for name, grad in ref["grads"].items():
            _assert_tight(out["cl_grads"][name], grad, f"rank {rank} channels-last grad {name}")


def _check_state_dict_round_trip(results, ref):
    """load_full_state_dict then full_state_dict through the ranks is bit-exact."""
    for key, value in ref["start"].items():
        assert torch.equal(results[1]["mp_reloaded"][key], value), key


def _check_data_parallel_step(results, ref):
    """One SGD step on half the batch per rank == one step on the whole batch."""
    for rank in (0, 1):
        for name, value in ref["after_step"].items():
            _assert_tight(results[rank]["dp_after_step"][name], value, f"rank {rank} {name}")


def _check_bytes(results, ref):
    """Bytes counted at the collective calls == the byte model."""
    for rank in (0, 1):  # with 2 ranks and an odd LRN size both ranks send the same
        assert results[rank]["mp_bytes"] == results[rank]["mp_bytes_model"] > 0
        assert results[rank]["dp_bytes"] == results[rank]["dp_bytes_model"] > 0


WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)  # torch elastic's default set


def _own_handler(signum, frame):  # a caller's handler, for the launcher to leave in place
    raise AssertionError(f"signal {signum} delivered during a test")


@contextlib.contextmanager
def _launch_keeps_signal_handlers():
    """The in-process launch must leave the signal handlers as it found them (torch elastic's
    agent installs its own for SIGINT, SIGTERM, SIGHUP and SIGQUIT and never puts them back:
    seen, a later SIGINT test in the same xdist worker finding elastic's handler)."""
    previous = signal.signal(signal.SIGHUP, _own_handler)  # not only the defaults: one of the caller's own
    try:
        found = {s: signal.getsignal(s) for s in WATCHED_SIGNALS}
        yield
        left = {s: signal.getsignal(s) for s in WATCHED_SIGNALS}
        changed = {s.name: getattr(h, "__name__", h) for s, h in left.items() if h is not found[s]}
        assert not changed, f"the launch changed the signal handlers: {changed}"
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_two_gloo_ranks_match_the_single_model():
    """One launch (start-up is the cost; one test so that pytest-xdist runs it once), which
    leaves the signal handlers as it found them."""
    with _launch_keeps_signal_handlers():
        results = launch(_layouts_rank_checks, world_size=2, timeout_s=240)
    ref = _single_reference()
    _check_model_parallel_equals_single(results, ref)  # logits, every gradient, one SGD step, batch of 1
    _check_optimizer_state(results, ref)
    _check_model_parallel_halo_paths(results, ref)
    _check_model_parallel_bf16(results, ref)
    _check_model_parallel_compiled(results, ref)
    _check_model_parallel_channels_last(results, ref)
    _check_state_dict_round_trip(results, ref)
    _check_data_parallel_step(results, ref)
    _check_bytes(results, ref)


def _killed_mid_step(victim: int) -> None:
    """Rank ``victim`` dies (SIGKILL) between forward and backward of its second step."""
    ctx = init_ranks(timeout_s=60)
    torch.manual_seed(0)
    model = layout_model(alexnet(**SMALL), "model_parallel", "eager", ctx)
    x, y = _batch(model.config)
    for step in range(3):
        loss = F.cross_entropy(model(x), y)
        if step == 1 and ctx.rank == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        loss.backward()  # the survivor waits here for the victim's gradients
    shutdown(ctx)


def test_a_rank_killed_mid_step_ends_the_run_naming_it():
    start = time.perf_counter()
    with _launch_keeps_signal_handlers(), pytest.raises(LayoutRunError, match=r"rank 1 failed first") as error:
        launch(_killed_mid_step, 1, world_size=2, timeout_s=60)  # a failed launch restores them too
    assert error.value.rank == 1
    assert "SIGKILL" in str(error.value)
    assert time.perf_counter() - start < 60


def _hangs(victim: int, timeout_s: float) -> None:
    """Rank ``victim`` stops answering before the first collective; the others wait in it."""
    ctx = init_ranks(timeout_s=timeout_s)
    if ctx.rank == victim:
        time.sleep(10 * timeout_s)
    torch.distributed.barrier()
    shutdown(ctx)


@pytest.mark.slow
def test_a_hung_rank_ends_the_run_within_the_timeout():
    timeout_s = 6.0
    start = time.perf_counter()
    with pytest.raises(LayoutRunError, match=r"rank \d failed first") as error:
        launch(_hangs, 0, timeout_s, world_size=2, timeout_s=timeout_s)
    # start-up (a few s on a loaded machine) + timeout + the agent's shutdown grace
    assert time.perf_counter() - start < timeout_s + 40, str(error.value)


# ---------------------------------------------------------------- autocast through the layouts
def _fp16_autocast_step(layout: str) -> list[tuple[str, set]]:
    """One fp16 forward + backward of the triton variant in ``layout`` under the project's
    precision policy (autocast over fp32 weights); returns the launches' dtypes."""
    from alexnet_fast.precision import policy

    from helpers import LaunchSpy

    ctx = init_ranks(timeout_s=120) if layout != "single" else local_context("cpu")
    try:
        with LaunchSpy() as spy:
            torch.manual_seed(0)
            single = alexnet(width_mult=0.0625, input_size=67, num_classes=10, dropout=0.0)
            x, y = _batch(single.config, batch=2)
            model = layout_model(single, layout, "triton", ctx)
            prec = policy("fp16")
            with prec.context(ctx.device):
                loss = F.cross_entropy(model(local_batch(layout, x, ctx)), local_batch(layout, y, ctx))
            loss.backward()
        return [(launch["kernel"], launch["dtypes"]) for launch in spy.launches]
    finally:
        if layout != "single":
            shutdown(ctx)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["single", "data_parallel", "model_parallel"])
def test_triton_kernels_run_in_the_autocast_dtype_in_every_layout(layout):
    """Under fp16 autocast every Triton launch of the triton variant -- conv+ReLU
    forward, dgrad and wgrad, conv+ReLU+LRN or fused LRN+pool, and pool, forward and backward -- gets fp16
    operands, in one process and on both ranks of each two-rank layout (the model-parallel
    gather used to hand an fp16 activation to an fp32 weight and die with a TypeError)."""
    from alexnet_fast.kernels import op_modules

    launchers = [(m.autotuned, m.device_guard) for m in op_modules()]
    results = {0: _fp16_autocast_step(layout)} if layout == "single" else \
        launch(_fp16_autocast_step, layout, world_size=2, timeout_s=300)
    # the spies are gone (single runs in this process: later tests get the real launchers)
    assert [(m.autotuned, m.device_guard) for m in op_modules()] == launchers
    for rank, seen in results.items():
        kernels = {k for k, _ in seen}
        assert {"conv2d_relu_fwd_kernel", "conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel",
                "max_pool2d_fwd_kernel", "max_pool2d_bwd_kernel"} <= kernels, (rank, sorted(kernels))
        # conv1, conv2 with their LRN in one op (the default), or LRN + pool fused apart (where the
        # column model's LRN halo sits between them)
        assert ({"conv2d_relu_lrn_fwd_kernel", "lrn_relu_bwd_kernel"} <= kernels
                or {"lrn_max_pool2d_fwd_kernel", "lrn_max_pool2d_bwd_kernel"} <= kernels), (rank, sorted(kernels))
        for kernel, dtypes in seen:  # fp16 operands (wgrad's fp32 partial sums may sit beside them)
            assert torch.float16 in dtypes, (rank, kernel, dtypes)
            assert dtypes <= {torch.float16, torch.float32}, (rank, kernel, dtypes)
