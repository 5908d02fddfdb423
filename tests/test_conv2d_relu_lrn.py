"""Tests of conv + bias + ReLU + LRN in one kernel (kernels/conv2d_relu_lrn.py), in the Triton
interpreter: forward and backward against ``F.local_response_norm(F.relu(F.conv2d(...)))`` in
float64, at AlexNet's conv1 / conv2 (batch 1) and odd shapes, NCHW and channels-last; the
fallback where one program cannot hold the channels, NaN, errors, autocast, the launches and
the custom ops. Tolerances (tests/helpers.py) scale with the reduction of each result: forward
C/groups*R*S, dinput K/groups*R*S (the LRN adds a window of ``size``), dweight and dbias N*P*Q."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close_ref, conv_inputs
from alexnet_fast import kernels
from alexnet_fast.kernels import _common, configs
from alexnet_fast.kernels.conv2d_relu_lrn import conv2d_relu_lrn, fused_problem

lrn_mod = importlib.import_module("alexnet_fast.kernels.conv2d_relu_lrn")
PAPER_LRN = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)  # alexnet_fast.model's paper preset


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def reference(x, weight, bias, stride, padding, groups, lrn):
    return F.local_response_norm(F.relu(F.conv2d(x, weight, bias, stride, padding, 1, groups)), **lrn)


def run_and_check(x, weight, bias, stride, padding, groups, lrn=PAPER_LRN, what="", input_grad=True, tol=None):
    """Forward + backward vs the float64 reference; the output and dinput keep x's memory format."""
    dtype = tol or x.dtype
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    leaves[0].requires_grad_(input_grad)
    y = conv2d_relu_lrn(*leaves, stride, padding, groups, **lrn)
    grad = torch.randn(y.shape, dtype=x.dtype)
    y.backward(grad)
    refs = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
    y_ref = reference(*refs, stride, padding, groups, lrn)
    y_ref.backward(grad.double())
    n, _, _, _ = x.shape
    k, c_per_group, r, s = weight.shape
    p, q = y.shape[2:]
    sh, sw = _pair(stride)
    assert y.shape == y_ref.shape and y.dtype == x.dtype
    assert_close_ref(y, y_ref, dtype, c_per_group * r * s, f"{what} forward")
    if input_grad:
        assert_close_ref(leaves[0].grad, refs[0].grad, dtype, k // groups * -(-r // sh) * -(-s // sw) * lrn["size"],
                         f"{what} dinput")
    assert_close_ref(leaves[1].grad, refs[1].grad, dtype, n * p * q * lrn["size"], f"{what} dweight")
    assert_close_ref(leaves[2].grad, refs[2].grad, dtype, n * p * q * lrn["size"], f"{what} dbias")
    fmt = torch.channels_last if _common.is_channels_last(x) else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt), f"{what}: output lost the input's memory format"
    if input_grad:
        assert leaves[0].grad.is_contiguous(memory_format=fmt), f"{what}: dinput lost the input's memory format"
    return y


# --------------------------------------------------------------------------------------
# AlexNet's normalized layers (paper preset), batch 1, both layouts
# --------------------------------------------------------------------------------------

ALEXNET = {  # (input C, H, W), weight, stride, padding, groups
    "conv1": ((3, 227, 227), (96, 3, 11, 11), 4, 0, 1),
    "conv2": ((96, 27, 27), (256, 48, 5, 5), 1, 2, 2),
}


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("layer", list(ALEXNET))
def test_alexnet_layers(layer, channels_last, launch_spy):
    """conv1 (96 channels in a 128-wide tile) and conv2 (two groups of 128 in one program, LRN
    across the group boundary): one fused forward launch, then LRN + ReLU backward, dgrad (not
    for conv1's image) and wgrad."""
    (c, h, w), (k, cg, r, _), stride, padding, groups = ALEXNET[layer]
    assert fused_problem(k, groups) is None
    spy = launch_spy(lrn_mod, importlib.import_module("alexnet_fast.kernels.conv2d_relu"))
    x, weight, bias = conv_inputs(1, c, h, w, k, r, r, groups, torch.float32, channels_last=channels_last,
                                  weight_scale=3 * (cg * r * r) ** -0.5)  # activations that LRN changes
    run_and_check(x, weight, bias, stride, padding, groups, what=layer, input_grad=layer != "conv1")
    expected = ["conv2d_relu_lrn_fwd_kernel", "lrn_relu_bwd_kernel"] + (["conv2d_relu_dgrad_kernel"] if layer != "conv1"
                                                                        else []) + ["conv2d_relu_wgrad_kernel"]
    assert spy.kernels() == expected
    assert spy.launches[0]["flags"]["SAVE_RELU"]


# --------------------------------------------------------------------------------------
# Odd shapes: strides, padding, kernels, groups 1-2, even and odd LRN sizes, masked tiles
# --------------------------------------------------------------------------------------

ODD_CASES = [
    # (N, C, H, W, K, R, stride, padding, groups, size, channels_last)
    (2, 4, 9, 9, 6, 3, 1, 1, 1, 5, False),     # 6 channels in a 16-wide tile
    (2, 5, 11, 10, 20, 3, 2, 1, 1, 3, True),   # odd C, stride 2
    (1, 6, 7, 8, 32, 3, 1, 1, 2, 5, False),    # two groups of 16: LRN across the boundary
    (1, 32, 6, 5, 64, 1, 1, 0, 2, 4, True),    # 1x1, even size (window not centred), 32-channel groups
    (3, 3, 13, 12, 10, 5, 3, 2, 1, 1, True),   # C=3 flat walk, size 1 (LRN of one channel)
    (1, 16, 5, 5, 128, 2, 1, 2, 1, 7, False),  # padding >= kernel, a full 128-wide tile
]


@pytest.mark.parametrize("case", ODD_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"_r{c[5]}_s{c[6]}_p{c[7]}"
                         f"_g{c[8]}_n{c[9]}" + ("_nhwc" if c[10] else ""))
def test_odd_shapes(case):
    n, c, h, w, k, r, stride, padding, groups, size, channels_last = case
    x, weight, bias = conv_inputs(n, c, h, w, k, r, r, groups, torch.float32, channels_last=channels_last,
                                  weight_scale=2 * (c // groups * r * r) ** -0.5)
    run_and_check(x, weight, bias, stride, padding, groups, dict(PAPER_LRN, size=size, alpha=1e-2), what=str(case))


def test_fp16_and_krsc_weight():
    x, weight, bias = conv_inputs(2, 8, 7, 7, 32, 3, 3, 2, torch.float16, channels_last=True)
    run_and_check(x, weight.to(memory_format=torch.channels_last), bias, 1, 1, 2, what="fp16 krsc")


def test_image_major_walk(monkeypatch):
    """A batch every BLOCK_M divides (16-row interpreter tiles, batch 16): the image-major walk of
    the fast path, whole channel blocks (EVEN_K), as at batch 128 on a GPU."""
    monkeypatch.setattr(configs, "CONV2D_RELU_LRN_INTERPRETER_CONFIG",
                        dict(BLOCK_M=16, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=1))
    monkeypatch.setattr(_common, "_TUNED", {})
    x, weight, bias = conv_inputs(16, 32, 4, 3, 32, 3, 3, 2, torch.float32, channels_last=True)
    run_and_check(x, weight.to(memory_format=torch.channels_last), bias, 1, 1, 2, what="image-major")


# --------------------------------------------------------------------------------------
# Fallback, NaN, inference, errors
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,groups,reason", [(300, 1, "at most 256"), (12, 3, "at most 2 groups"),
                                             (48, 2, "not a power of two")])
def test_fallback_names_its_reason_and_gives_the_same_result(k, groups, reason, launch_spy):
    assert reason in fused_problem(k, groups)
    spy = launch_spy()
    x, weight, bias = conv_inputs(1, 6, 5, 5, k, 3, 3, groups, torch.float32)
    y = conv2d_relu_lrn(x, weight, bias, 1, 1, groups, **PAPER_LRN)
    assert_close_ref(y, reference(x.double(), weight.double(), bias.double(), 1, 1, groups, PAPER_LRN),
                     torch.float32, 6 // groups * 9, "fallback")
    assert "conv2d_relu_lrn_fwd_kernel" not in spy.kernels() and "conv2d_relu_fwd_kernel" in spy.kernels()


def test_inference_stores_only_the_output(launch_spy):
    spy = launch_spy(lrn_mod)
    x, weight, bias = conv_inputs(1, 4, 6, 6, 16, 3, 3, 1, torch.float32)
    with torch.no_grad():
        conv2d_relu_lrn(x, weight, bias, 1, 1, 1)
    conv2d_relu_lrn(x, weight.requires_grad_(), bias, 1, 1, 1)
    assert [launch["flags"]["SAVE_RELU"] for launch in spy.launches] == [False, True]


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_nan_and_inf_propagate_like_pytorch(channels_last):
    x, weight, bias = conv_inputs(1, 4, 7, 7, 16, 3, 3, 1, torch.float32, channels_last=channels_last)
    x[0, 1, 3, 3] = float("nan")
    x[0, 2, 0, 6] = float("inf")
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    y = conv2d_relu_lrn(*leaves, 1, 1, 1, **PAPER_LRN)
    y.sum().backward()
    refs = [t.double().requires_grad_() for t in (x, weight, bias)]
    y_ref = reference(*refs, 1, 1, 1, PAPER_LRN)
    y_ref.sum().backward()
    for got, ref, what in ((y, y_ref, "y"), (leaves[0].grad, refs[0].grad, "dx")):
        assert torch.equal(got.isnan(), ref.isnan()), f"{what}: NaN positions differ"
        finite = ref.isfinite()
        assert_close_ref(got[finite], ref[finite], torch.float32, 4 * 9 * 5, what)


def _args(**overrides):
    args = dict(x=torch.randn(1, 4, 8, 8), weight=torch.randn(16, 2, 3, 3), bias=torch.randn(16), stride=1,
                padding=1, groups=2, size=5, alpha=1e-4, beta=0.75, k=2.0)
    args.update(overrides)
    return args


BAD_INPUTS = [
    ("size 0", dict(size=0), ValueError, "size must be >= 1"),
    ("size float", dict(size=2.5), TypeError, "size must be an int"),
    ("alpha negative", dict(alpha=-1.0), ValueError, "alpha >= 0 and k > 0"),
    ("beta nan", dict(beta=float("nan")), ValueError, "beta must be finite"),
    ("x rank 3", dict(x=torch.randn(4, 8, 8)), ValueError, "x must be 4-D"),
    ("float64", dict(x=torch.randn(1, 4, 8, 8, dtype=torch.float64)), TypeError, "dtype torch.float64"),
    ("dtype mismatch", dict(weight=torch.randn(16, 2, 3, 3, dtype=torch.float16)), TypeError, "differs from x dtype"),
    ("devices differ", dict(weight=torch.randn(16, 2, 3, 3, device="meta")), ValueError, "one device"),
    ("stride 0", dict(stride=0), ValueError, "stride must be >= 1"),
    ("groups vs channels", dict(groups=3), ValueError, "must be >= 1 and divide"),
    ("string padding", dict(padding="same"), ValueError, "padding='same' is not supported"),
]


@pytest.mark.parametrize("overrides,error,message", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs(overrides, error, message):
    with pytest.raises(error, match=message):
        conv2d_relu_lrn(**_args(**overrides))


# --------------------------------------------------------------------------------------
# Autocast, the custom ops, torch.compile
# --------------------------------------------------------------------------------------

def test_autocast_runs_in_the_autocast_dtype(launch_spy):
    spy = launch_spy(lrn_mod, importlib.import_module("alexnet_fast.kernels.conv2d_relu"))
    x, weight, bias = conv_inputs(1, 4, 6, 5, 32, 3, 3, 2, torch.float32)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    with torch.autocast("cpu", dtype=torch.float16):
        y = kernels.conv2d_relu_lrn(*leaves, 1, 1, 2, **PAPER_LRN)
    assert y.dtype == torch.float16
    y.float().sum().backward()
    assert [t.grad.dtype for t in leaves] == [torch.float32] * 3
    assert spy.kernels() == ["conv2d_relu_lrn_fwd_kernel", "lrn_relu_bwd_kernel", "conv2d_relu_dgrad_kernel",
                             "conv2d_relu_wgrad_kernel"]
    assert {d for launch in spy.launches for name, d in launch["arg_dtypes"].items()
            if not name.endswith("_partial_ptr")} == {torch.float16}
    y_ref = reference(*(t.half().double() for t in (x, weight, bias)), 1, 1, 2, PAPER_LRN)
    assert_close_ref(y, y_ref, torch.float16, 18, "autocast forward")


def test_custom_ops_opcheck():
    x, weight, bias = conv_inputs(1, 4, 5, 5, 16, 3, 3, 1, torch.float32)
    for save in (False, True):
        torch.library.opcheck(torch.ops.alexnet_fast.conv2d_relu_lrn.default,
                              (x, weight, bias, [1, 1], [1, 1], 1, 5, 1e-4, 0.75, 2.0, save),
                              test_utils=("test_schema", "test_faketensor"))
    a = torch.relu(torch.randn(1, 16, 5, 5))
    torch.library.opcheck(torch.ops.alexnet_fast.lrn_relu_bwd.default, (torch.randn_like(a), a, 5, 1e-4, 0.75, 2.0))


@pytest.mark.slow
def test_torch_compile_fullgraph_forward_and_backward():
    x, weight, bias = conv_inputs(1, 4, 6, 6, 16, 3, 3, 1, torch.float32, channels_last=True)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    fn = torch.compile(lambda *a: conv2d_relu_lrn(*a, 1, 1, 1, **PAPER_LRN), fullgraph=True, backend="aot_eager")
    fn(*leaves).sum().backward()
    refs = [t.double().requires_grad_() for t in (x, weight, bias)]
    reference(*refs, 1, 1, 1, PAPER_LRN).sum().backward()
    assert_close_ref(leaves[1].grad, refs[1].grad, torch.float32, 36 * 5, "compiled dweight")


def test_codegen_specs_cover_both_kernels_and_the_paper_launches():
    """Generic specs of the fused forward for every dot, path and config at 128 and 2 x 128
    channels; launch-faithful ones at paper conv1 (the flat walk: the conv's pipeline exception)
    and conv2 (two groups in one program, the fast path) at batch 128, as the launcher builds them;
    the backward kernel's on LRN's tiles, launch-faithfully at the paper's lrn1 / lrn2."""
    from alexnet_fast.profiling.codegen.specs import module_specs

    specs = module_specs(lrn_mod)
    generic = [s for s in specs if s.args is None and s.kernel == "conv2d_relu_lrn_fwd_kernel"]
    assert {(s.dtype, s.constexprs["GROUPS"], s.extra["table"]) for s in generic} >= {
        ("bf16", 1, "mma"), ("bf16", 2, "mma"), ("fp32", 2, "tf32"), ("fp32", 1, "fma")}
    real = {s.shape: s for s in specs if s.args is not None and s.kernel == "conv2d_relu_lrn_fwd_kernel"
            and s.dtype == "bf16"}
    conv1, conv2 = real["paper conv1 b128 NHWC"], real["paper conv2 b128 NHWC"]
    assert conv1.constexprs["FLAT_K"] and conv1.constexprs["GROUPS"] == 1 and conv1.constexprs["BLOCK_N"] == 128
    assert "pipeline_exception" in conv1.extra
    assert conv2.constexprs["GROUPS"] == 2 and conv2.constexprs["IMAGE_ROWS"] and not conv2.constexprs["EVEN_K"]  # 48 of 64
    assert conv2.args["sx_c"] == 1 and conv2.args["C_PER_GROUP"] == 48 and conv2.extra["grid"] == (128 * 27 * 27 // 64, 1)
    assert {s.shape for s in specs if s.kernel == "lrn_relu_bwd_kernel" and s.args is not None} == {
        "paper conv+relu+lrn1 96x55x55 NHWC", "paper conv+relu+lrn2 256x27x27 NHWC"}
