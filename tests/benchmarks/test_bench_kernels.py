"""Each AlexNet kernel against its PyTorch baselines at the paper network's layer shapes.

Providers are the per-layer implementations of the vocabulary
(:data:`alexnet_fast.vocabulary.IMPLS`, each a variant in a memory format,
:data:`profiling.cell_types.LAYER_IMPLS`): ``eager-nchw`` (eager PyTorch, the baseline),
``compile`` (torch.compile of the same function) and ``triton`` (this project's kernels,
channels-last: their fast path; skipped on CPU, where Triton only runs interpreted); conv+ReLU
also gets ``eager-nhwc`` (cuDNN's channels-last path), so the Triton conv is compared with cuDNN
in both layouts. Test ids are ``<layer>-<precision>-<provider>``; one group per layer and
precision, so pytest-benchmark's table compares the providers of one layer;
``extra_info["shape"]`` ends in the layout. FLOPs and bytes come from ``profiling/flops.py``
(eager: separate ops; compile and triton: fused). Before it is timed, every provider's output is
judged like a harness cell (``profiling.judge.judge``: relative RMS error vs float64 within 3x
eager's own + the precision's floor); the errors go into ``extra_info`` beside the speed. Run:
``pytest tests/benchmarks --benchmark-only``.
"""

import pytest
import torch
import torch.nn.functional as F

from alexnet_fast.model import make_config
from alexnet_fast.precision import policy
from alexnet_fast.vocabulary import TRITON_OPS
from alexnet_fast.kernels._common import layout_name
from bench_setup import BATCH, DEVICE, PRECISIONS, run_benchmark, skip_triton_reason
from alexnet_fast.profiling.flops import bytes_model_for, layer_units, unit_cost
from alexnet_fast.profiling.judge import Reference, floor, judge
from alexnet_fast.profiling.cell_types import LAYER_IMPLS

UNITS = [u for u in layer_units(make_config("paper")) if u.op in TRITON_OPS]
PROVIDERS = ("eager-nchw", "compile", "triton")
CONV_PROVIDERS = ("eager-nchw", "eager-nhwc", "compile", "triton")
FORMATS = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}


def cases():
    for unit in UNITS:
        for precision in PRECISIONS:
            if precision == "tf32" and unit.op != "conv2d_relu":
                continue  # TF32 changes only matrix products
            for provider in CONV_PROVIDERS if unit.op == "conv2d_relu" else PROVIDERS:
                yield pytest.param(unit, precision, provider, id=f"{unit.name}-{precision}-{provider}")


def make_inputs(unit, dtype, memory_format=torch.contiguous_format):
    """x (and for conv the weight and bias) of ``unit``; x and weight in ``memory_format``
    (channels_last: NHWC activations, KRSC weights), the same values in either format."""
    n = BATCH["kernel"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, *unit.in_shape, generator=g).to(DEVICE, dtype)
    x = x.contiguous(memory_format=memory_format)
    if unit.op != "conv2d_relu":
        return x, ()
    p = unit.params
    c, k = unit.in_shape[0], unit.out_shape[0]
    w = (torch.randn(k, c // p["groups"], p["kernel"], p["kernel"], generator=g) * 0.01).to(DEVICE, dtype)
    b = torch.randn(k, generator=g).to(DEVICE, dtype)
    return x, (w.contiguous(memory_format=memory_format), b)


def reference_fn(unit):
    """The eager PyTorch function of a unit: fn(x, *weights)."""
    p = unit.params
    if unit.op == "conv2d_relu":
        return lambda x, w, b: F.relu(F.conv2d(x, w, b, p["stride"], p["padding"], groups=p["groups"]))
    if unit.op == "local_response_norm":
        return lambda x: F.local_response_norm(x, p["size"], p["alpha"], p["beta"], p["k"])
    if unit.op == "max_pool2d":
        return lambda x: F.max_pool2d(x, p["kernel"], p["stride"])
    return lambda x: F.max_pool2d(F.local_response_norm(x, p["size"], p["alpha"], p["beta"], p["k"]),
                                  p["kernel"], p["stride"])


def triton_fn(unit):
    from alexnet_fast import kernels

    p = unit.params
    if unit.op == "conv2d_relu":
        return lambda x, w, b: kernels.conv2d_relu(x, w, b, p["stride"], p["padding"], p["groups"], relu=True)
    if unit.op == "local_response_norm":
        return lambda x: kernels.local_response_norm(x, p["size"], p["alpha"], p["beta"], p["k"])
    if unit.op == "max_pool2d":
        return lambda x: kernels.max_pool2d(x, p["kernel"], p["stride"])
    return lambda x: kernels.lrn_max_pool2d(x, p["size"], p["alpha"], p["beta"], p["k"], p["kernel"], p["stride"])


@pytest.mark.parametrize("unit, precision, provider", list(cases()))
def test_kernel(benchmark, unit, precision, provider):
    impl = LAYER_IMPLS[provider]
    if impl.variant == "triton" and (reason := skip_triton_reason(unit.op)):
        pytest.skip(reason)
    memory_format = FORMATS[impl.memory_format]
    # a kernel sees its inputs in the compute dtype of the policy (autocast casts them to it)
    prec = policy(precision)
    with prec.flags(), torch.no_grad():
        x, weights = make_inputs(unit, prec.dtype, memory_format)
        fn = {"eager": reference_fn, "compile": lambda u: torch.compile(reference_fn(u)),
              "triton": triton_fn}[impl.variant](unit)
        out = fn(x, *weights)  # first call (compiles) outside the timing; checked before it is timed
        expected = reference_fn(unit)(x, *weights)
        exact = reference_fn(unit)(x.double(), *(w.double() for w in weights))
        verdict = judge({"out": out}, Reference({"out": expected.float()}, {"out": exact}), floor(precision, "inference"))
        benchmark.extra_info.update(max_abs_err=verdict["abs"], max_rel_err=verdict["rel"],
                                    fp64_rrmse=verdict["fp64_err"], fp64_rrmse_allowed=verdict["tolerance"])
        assert verdict["equivalent"], f"{provider} is not equivalent to eager PyTorch: {verdict}"
        assert out.is_contiguous(memory_format=memory_format), f"{provider} changed the memory format"
        cost = unit_cost(unit, BATCH["kernel"], precision)
        model = bytes_model_for(impl.variant)
        shape = "x".join(map(str, x.shape))
        if weights:
            shape += " w" + "x".join(map(str, weights[0].shape)) + f" s{unit.params['stride']} p{unit.params['padding']}"
        shape += f" {layout_name(memory_format)}"
        baseline = None
        if provider != "eager-nchw":  # the speedup over eager NCHW, in paired rounds (bench_setup)
            eager_fn, (xb, wb) = reference_fn(unit), make_inputs(unit, prec.dtype)
            baseline = lambda: eager_fn(xb, *wb)  # noqa: E731
        run_benchmark(benchmark, lambda: fn(x, *weights), kind="kernel", group=f"{unit.name} {precision}",
                      flops=cost.flops, nbytes=cost.bytes(model), dtype=precision, shape=shape, kernel=unit.name,
                      provider=provider, baseline=baseline)
