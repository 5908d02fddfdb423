"""Tests of the fused Triton conv + bias + ReLU (kernels/conv2d_relu.py, kernels/nn/conv.py).

Without a GPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1):
numerics are checked against ``F.relu(F.conv2d(...))`` computed in float64, with the
tolerances of tests/helpers.py scaled by each result's reduction length:
forward C/groups*R*S, dinput K/groups*R*S, dweight and dbias N*P*Q.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close_ref, conv_inputs as make_inputs
from alexnet_fast.kernels import configs
from alexnet_fast.kernels.conv2d_relu import conv2d_relu, conv2d_relu_wgrad, relu_grad, use_flat_k

# the paper's five conv layers: (input C, H, W), weight shape, stride, padding, groups
ALEXNET_CONVS = {
    "conv1": ((3, 227, 227), (96, 3, 11, 11), 4, 0, 1),
    "conv2": ((96, 27, 27), (256, 48, 5, 5), 1, 2, 2),
    "conv3": ((256, 13, 13), (384, 256, 3, 3), 1, 1, 1),
    "conv4": ((384, 13, 13), (384, 192, 3, 3), 1, 1, 2),
    "conv5": ((384, 13, 13), (256, 192, 3, 3), 1, 1, 2),
}


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)



def run_and_check(x, weight, bias, stride, padding, groups, relu=True, what="", tol_dtype=None):
    """Forward + backward through conv2d_relu vs the float64 reference; also checks that
    the output and dinput keep the input's memory format. ``tol_dtype`` picks the
    tolerance class when it differs from the input dtype (fp32 run as TF32)."""
    dtype = x.dtype
    tol = tol_dtype or dtype
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    y = conv2d_relu(leaves[0], leaves[1], leaves[2] if bias is not None else None, stride, padding, groups, relu)
    grad = torch.randn(y.shape, dtype=dtype, device=y.device)
    y.backward(grad)

    refs = [t.detach().double().requires_grad_() for t in leaves]
    y_ref = F.conv2d(refs[0], refs[1], refs[2] if bias is not None else None, stride, padding, 1, groups)
    if relu:
        y_ref = F.relu(y_ref)
    y_ref.backward(grad.double())

    n, c, _, _ = x.shape
    k, c_per_group, r, s = weight.shape
    _, _, p, q = y.shape
    sh, sw = _pair(stride)
    assert y.shape == y_ref.shape and y.dtype == dtype
    assert_close_ref(y, y_ref, tol, c_per_group * r * s, f"{what} forward")
    assert_close_ref(leaves[0].grad, refs[0].grad, tol, k // groups * -(-r // sh) * -(-s // sw), f"{what} dinput")
    assert_close_ref(leaves[1].grad, refs[1].grad, tol, n * p * q, f"{what} dweight")
    if bias is not None:
        assert_close_ref(leaves[2].grad, refs[2].grad, tol, n * p * q, f"{what} dbias")
    channels_last = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    assert y.is_contiguous(memory_format=fmt), f"{what}: output lost the input's memory format"
    assert leaves[0].grad.is_contiguous(memory_format=fmt), f"{what}: dinput lost the input's memory format"
    if weight.stride(1) == 1 and not weight.is_contiguous():  # a KRSC weight gets a KRSC dweight
        assert leaves[1].grad.is_contiguous(memory_format=torch.channels_last), f"{what}: dweight lost KRSC"
    return y


# --------------------------------------------------------------------------------------
# The paper's AlexNet layers, batch 1
# --------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("layer", list(ALEXNET_CONVS))
def test_alexnet_layers_fp32(layer):
    (c, h, w), (k, cg, r, s), stride, padding, groups = ALEXNET_CONVS[layer]
    x, weight, bias = make_inputs(1, c, h, w, k, r, s, groups, torch.float32)
    run_and_check(x, weight, bias, stride, padding, groups, what=layer)


@pytest.mark.slow
@pytest.mark.parametrize("layer,channels_last", [("conv2", False), ("conv3", True), ("conv5", False)])
def test_alexnet_layers_fp16(layer, channels_last):
    (c, h, w), (k, cg, r, s), stride, padding, groups = ALEXNET_CONVS[layer]
    x, weight, bias = make_inputs(1, c, h, w, k, r, s, groups, torch.float16, channels_last=channels_last)
    run_and_check(x, weight, bias, stride, padding, groups, what=f"{layer} fp16")


def test_conv1_uses_flat_reduction_and_others_channel_blocks():
    """conv1's 3 input channels would fill 3/16 of a channel block: it takes the flat path."""
    assert use_flat_k(3)
    assert not any(use_flat_k(w[1]) for _, w, _, _, _ in list(ALEXNET_CONVS.values())[1:])


# --------------------------------------------------------------------------------------
# Odd shapes: strides 1-4, padding 0-2, kernels 1-11, groups 1-2, both reduction orders,
# NCHW and NHWC, sizes that are not multiples of any block
# --------------------------------------------------------------------------------------

# (N, C, H, W, K, (R, S), stride, padding, groups, channels_last, relu, bias)
ODD_SHAPES = [
    (1, 3, 9, 10, 5, (3, 3), 1, 1, 1, False, True, True),
    (2, 4, 11, 7, 6, (3, 3), 2, 1, 2, True, True, True),
    (1, 3, 23, 23, 7, (11, 11), 4, 2, 1, False, True, True),   # conv1-like, stride 4
    (1, 3, 17, 15, 4, (11, 11), 4, 0, 1, True, True, False),
    (1, 4, 7, 7, 4, (1, 1), 3, 0, 2, False, False, True),      # stride > kernel: empty phases
    (2, 2, 6, 9, 3, (2, 5), (1, 3), (2, 0), 1, True, True, True),
    (1, 34, 9, 8, 6, (3, 3), 2, 1, 2, False, True, True),      # 17 channels/group: channel blocks
    (2, 40, 7, 9, 34, (3, 3), 1, 2, 2, True, True, True),
    (1, 32, 11, 11, 20, (5, 5), 3, 2, 1, False, True, False),
    (1, 18, 5, 6, 18, (4, 3), (2, 1), (1, 2), 1, True, False, True),
    (1, 3, 8, 8, 2, (8, 8), 1, 0, 1, False, True, True),      # 1x1 output
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", ODD_SHAPES, ids=lambda c: "x".join(map(str, c[:4])) + f"_k{c[5][0]}x{c[5][1]}_s{c[6]}_p{c[7]}_g{c[8]}" + ("_nhwc" if c[9] else ""))
def test_odd_shapes(case, dtype):
    n, c, h, w, k, (r, s), stride, padding, groups, channels_last, relu, bias = case
    x, weight, b = make_inputs(n, c, h, w, k, r, s, groups, dtype, channels_last=channels_last, bias=bias)
    run_and_check(x, weight, b, stride, padding, groups, relu=relu, what=str(case))


# The fast path's layouts: channels-last activations with KRSC (channels_last) weights, the
# channels per group a multiple of 16 (whole channel blocks, as in AlexNet conv2-conv5) or not
# (a partial last block), groups 1 and 2, stride 1 and 2. dweight must come back KRSC.
KRSC_CASES = [
    (2, 32, 7, 6, 32, (3, 3), 1, 1, 2),    # 16 channels per group: whole blocks
    (1, 40, 9, 7, 24, (5, 3), 2, (2, 1), 1),
    (1, 34, 6, 9, 18, (3, 3), (1, 2), 1, 2),
]


@pytest.mark.parametrize("case,dtype", [(c, torch.float32) for c in KRSC_CASES] + [(KRSC_CASES[0], torch.float16)],
                         ids=lambda v: str(v).split(".")[-1] if isinstance(v, torch.dtype)
                         else "x".join(map(str, v[:4])) + f"_k{v[4]}_g{v[8]}")
def test_channels_last_with_krsc_weight(case, dtype):
    n, c, h, w, k, (r, s), stride, padding, groups = case
    x, weight, b = make_inputs(n, c, h, w, k, r, s, groups, dtype, channels_last=True)
    run_and_check(x, weight.to(memory_format=torch.channels_last), b, stride, padding, groups, what=f"krsc {case}")


# The image-major walks: a batch that is a multiple of BLOCK_M (fwd, dgrad: a tile of images at
# one pixel, only the taps inside) or of BLOCK_K (wgrad: K-steps of images at one pixel), as at
# batch 128 on a GPU. The interpreter's one config has huge blocks, so these tests give it 16-wide
# ones: channel blocks then wrap, with and without a masked tail.
IMAGE_MAJOR_CASES = [
    # (N, C, H, W, K, (R, S), stride, padding, groups, channels_last)
    (16, 40, 3, 4, 24, (3, 3), 1, 1, 2, True),    # 20 channels per group: a masked channel tail; dgrad: 12
    (16, 32, 4, 3, 32, (3, 3), 2, 1, 1, False),   # whole channel blocks (EVEN_K), 4 stride phases, NCHW
    (16, 3, 7, 7, 16, (5, 5), 2, 2, 1, True),     # C=3: the flat walk; wgrad's image lanes, taps per column
    (16, 16, 3, 3, 16, (2, 2), 1, 2, 1, True),    # padding >= kernel: border pixels with no tap inside
]


@pytest.fixture
def small_interpreter_blocks(monkeypatch):
    """16-wide interpreter blocks (a fresh autotuner cache, so every kernel takes them)."""
    from alexnet_fast.kernels import _common

    monkeypatch.setattr(configs, "CONV2D_RELU_INTERPRETER_CONFIG",
                        dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=1))
    monkeypatch.setattr(_common, "_TUNED", {})


@pytest.mark.parametrize("case", IMAGE_MAJOR_CASES, ids=lambda c: "x".join(map(str, c[:4])) + f"_k{c[5][0]}_s{c[6]}_p{c[7]}_g{c[8]}"
                         + ("_nhwc" if c[9] else ""))
def test_image_major_walks(case, small_interpreter_blocks):
    n, c, h, w, k, (r, s), stride, padding, groups, channels_last = case
    x, weight, b = make_inputs(n, c, h, w, k, r, s, groups, torch.float32, channels_last=channels_last)
    if channels_last:
        weight = weight.to(memory_format=torch.channels_last)
    run_and_check(x, weight, b, stride, padding, groups, what=f"image-major {case}")


def test_channels_last_weight_and_strided_input():
    """Any strides work: a channels_last weight, a sliced (non-contiguous) input; dweight
    comes back in the weight's memory format."""
    x, weight, bias = make_inputs(1, 20, 9, 11, 8, 3, 3, 2, torch.float32)
    x = torch.randn(1, 20, 9, 22)[..., ::2]  # W stride 2
    weight = weight.to(memory_format=torch.channels_last)
    leaf_w = weight.clone().requires_grad_()
    y = conv2d_relu(x, leaf_w, bias, 1, 1, 2)
    y.sum().backward()  # a stride-0 grad_out, rearranged to the output's strides
    w_ref = weight.double().requires_grad_()
    F.relu(F.conv2d(x.double(), w_ref, bias.double(), 1, 1, 1, 2)).sum().backward()
    assert_close_ref(y, F.relu(F.conv2d(x.double(), weight.double(), bias.double(), 1, 1, 1, 2)), torch.float32, 90)
    assert_close_ref(leaf_w.grad, w_ref.grad, torch.float32, 9 * 11)
    assert leaf_w.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("walk", ["channel_blocks", "flat_k", "image_lanes"])
def test_wgrad_split_reduction(walk, request):
    """Split-K wgrad (what a GPU uses to fill its SMs) sums its fp32 partials exactly like
    one split: checked against the float64 reference with 1 and 3 splits, in both reduction
    orders and in the image-lane walk (batch 16 with 16-wide interpreter blocks: split z takes
    its K-steps of each tap's walk, border taps have fewer)."""
    if walk == "image_lanes":
        request.getfixturevalue("small_interpreter_blocks")
    n, c, h, w = (16, 20, 4, 3) if walk == "image_lanes" else (2, 6 if walk == "flat_k" else 20, 13, 12)
    x, weight, bias = make_inputs(n, c, h, w, 10, 3, 3, 2, torch.float32, channels_last=walk == "image_lanes")
    y = conv2d_relu(x, weight, bias, 1, 1, 2)
    grad = torch.randn_like(y)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, weight, bias))
    F.relu(F.conv2d(xd, wd, bd, 1, 1, 1, 2)).backward(grad.double())
    for splits in (1, 3):
        dw, db = conv2d_relu_wgrad(relu_grad(grad, y, True), x, weight, (1, 1), (1, 1), 2, splits=splits)
        assert_close_ref(dw, wd.grad, torch.float32, n * h * w, f"dweight, {splits} splits")
        assert_close_ref(db, bd.grad, torch.float32, n * h * w, f"dbias, {splits} splits")


def test_empty_batch():
    x = torch.randn(0, 4, 8, 8, requires_grad=True)
    weight = torch.randn(6, 4, 3, 3, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    y = conv2d_relu(x, weight, bias, 1, 1)
    assert y.shape == (0, 6, 8, 8)
    y.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(weight.grad, torch.zeros_like(weight)) and torch.equal(bias.grad, torch.zeros_like(bias))


# --------------------------------------------------------------------------------------
# gradcheck
# --------------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Input #.* is not a double precision:UserWarning")
@pytest.mark.parametrize("relu", [True, False])
def test_gradcheck_fp32(relu):
    """torch.autograd.gradcheck in fp32 (the kernels have no float64), fast mode (a random
    projection of the full Jacobian: each interpreted launch costs ~50 ms, the full
    Jacobian would take hundreds); central differences with eps=1e-2, atol=1e-3, rtol=1e-2
    -- fp32 rounding of the outputs (~1e-6) over eps stays far below atol. The conv is
    linear, so the differences are exact up to rounding as long as no pre-activation
    crosses 0 within eps: x >= 0.5 and per-channel signs on weight and bias make every
    pre-activation |z| >= 0.5, negative for half the output channels (their ReLU gradient
    is 0), positive for the others. The float64-reference tests check the full gradients."""
    torch.manual_seed(1)
    x = (torch.rand(1, 4, 6, 5) + 0.5).requires_grad_()
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1, 1)
    weight = ((torch.rand(4, 2, 3, 2) + 0.1) * sign).requires_grad_()
    bias = (0.5 * sign.flatten()).requires_grad_()

    def fn(x, weight, bias):
        return conv2d_relu(x, weight, bias, stride=(2, 1), padding=(1, 0), groups=2, relu=relu)

    assert torch.autograd.gradcheck(fn, (x, weight, bias), eps=1e-2, atol=1e-3, rtol=1e-2, fast_mode=True)


# --------------------------------------------------------------------------------------
# GPU: against cuDNN, with autotuning (skipped without CUDA)
# --------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("dtype,allow_tf32", [(torch.float32, False), (torch.float32, True),
                                              (torch.float16, True), (torch.bfloat16, True)],
                         ids=["fp32", "tf32", "fp16", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("layer", list(ALEXNET_CONVS))
def test_alexnet_layers_gpu(layer, dtype, allow_tf32, channels_last, monkeypatch):
    """Batch 8 on the GPU (autotuned configs, split-K wgrad) vs float64: forward and all
    gradients. TF32 keeps 10 mantissa bits, like fp16: its results get fp16 tolerances."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", allow_tf32)
    (c, h, w), (k, cg, r, s), stride, padding, groups = ALEXNET_CONVS[layer]
    x, weight, bias = make_inputs(8, c, h, w, k, r, s, groups, dtype, channels_last=channels_last)
    x, weight, bias = x.cuda(), weight.cuda(), bias.cuda()
    tol_dtype = torch.float16 if dtype == torch.float32 and allow_tf32 else dtype
    run_and_check(x, weight, bias, stride, padding, groups, what=f"{layer} gpu", tol_dtype=tol_dtype)


# --------------------------------------------------------------------------------------
# Views of every argument, NaN / inf (issue 14: silent wrong answers)
# --------------------------------------------------------------------------------------

def _views():
    """(name, x, weight, bias, grad_out maker) with one argument a strided or expanded view."""
    x = torch.randn(2, 4, 7, 6)
    weight = torch.randn(6, 2, 3, 3) * 0.3
    bias = torch.randn(6)
    dense = lambda y: torch.randn_like(y)  # noqa: E731
    return [
        ("bias_strided", x, weight, torch.randn(12)[::2], dense),
        ("bias_expanded", x, weight, torch.randn(1).expand(6), dense),
        ("x_strided", torch.randn(2, 4, 7, 12)[..., ::2], weight, bias, dense),
        ("x_expanded", torch.randn(2, 4, 1, 6).expand(2, 4, 7, 6), weight, bias, dense),
        ("x_permuted", torch.randn(4, 2, 6, 7).permute(1, 0, 3, 2), weight, bias, dense),
        ("weight_strided", x, (torch.randn(6, 4, 3, 3) * 0.3)[:, ::2], bias, dense),
        ("weight_expanded", x, torch.randn(6, 2, 1, 3).expand(6, 2, 3, 3), bias, dense),
        ("grad_strided", x, weight, bias, lambda y: torch.randn(*y.shape[:3], 2 * y.shape[3])[..., ::2]),
        ("grad_expanded", x, weight, bias, lambda y: torch.randn(1, *y.shape[1:]).expand_as(y)),
    ]


@pytest.mark.parametrize("case", range(len(_views())), ids=[v[0] for v in _views()])
def test_views_of_every_argument(case):
    """Every tensor argument (x, weight, bias, grad_out) may be a strided or expanded view:
    forward and all three gradients equal the float64 reference (the strided bias gave an
    error of ~1.3 before the launcher honoured its stride)."""
    name, x, weight, bias, make_grad = _views()[case]
    leaves = [t.detach().requires_grad_() for t in (x, weight, bias)]  # views stay views
    y = conv2d_relu(*leaves, stride=1, padding=1, groups=2)
    grad = make_grad(y)
    y.backward(grad)
    refs = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
    y_ref = F.relu(F.conv2d(*refs, 1, 1, 1, 2))
    y_ref.backward(grad.double())
    assert_close_ref(y, y_ref, torch.float32, 18, f"{name} forward")
    for got, ref, what in zip(leaves, refs, ("dx", "dweight", "dbias")):
        assert_close_ref(got.grad, ref.grad, torch.float32, 2 * 7 * 6, f"{name} {what}")


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nan_and_inf_propagate_like_pytorch(channels_last):
    """NaN / inf in x reach the output as in F.relu(F.conv2d(...)) (the fused ReLU used to
    turn NaN into 0), and the backward's ReLU mask lets the gradient through where the
    output is NaN (PyTorch's threshold_backward): same NaN / inf positions in y, dx, dw, db,
    finite values equal to the float64 reference."""
    x, weight, bias = make_inputs(1, 4, 6, 6, 6, 3, 3, 2, torch.float32, channels_last=channels_last)
    x = x.clone()
    x[0, 0, 2, 2] = float("nan")
    x[0, 3, 4, 4] = float("inf")
    x[0, 2, 0, 5] = -float("inf")
    leaves = [t.detach().clone().requires_grad_() for t in (x, weight, bias)]
    y = conv2d_relu(*leaves, stride=1, padding=1, groups=2)
    grad = torch.randn_like(y)
    y.backward(grad)
    refs = [t.detach().double().requires_grad_() for t in (x, weight, bias)]
    y_ref = F.relu(F.conv2d(*refs, 1, 1, 1, 2))
    y_ref.backward(grad.double())
    assert y_ref.isnan().any() and y_ref.isinf().any()
    for got, ref, what in [(y, y_ref, "y")] + list(zip([t.grad for t in leaves], [t.grad for t in refs],
                                                          ("dx", "dweight", "dbias"))):
        assert torch.equal(got.isnan(), ref.isnan()), f"{what}: NaN positions differ"
        assert torch.equal(got.isinf(), ref.isinf()), f"{what}: inf positions differ"
        finite = ref.isfinite()
        assert_close_ref(got[finite], ref[finite], torch.float32, 36, what)
