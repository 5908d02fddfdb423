"""Tests of the fused Triton conv + bias + ReLU (kernels/conv2d_relu.py, kernels/nn/conv.py).

Without a GPU the kernels run in Triton's interpreter (conftest sets TRITON_INTERPRET=1):
numerics are checked against ``F.relu(F.conv2d(...))`` computed in float64, with the
tolerances of tests/helpers.py scaled by each result's reduction length:
forward C/groups*R*S, dinput K/groups*R*S, dweight and dbias N*P*Q.
"""

from __future__ import annotations

import contextlib
import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_close_ref
from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import KernelSpec
from alexnet_fast.kernels.conv2d_relu import (
    _KERNELS,
    CONFIG_ARCHS,
    DOTS,
    _constexpr_args,
    codegen_specs,
    conv2d_relu,
    conv2d_relu_wgrad,
    dot_precision,
    relu_grad,
    config_table,
    use_flat_k,
)
from alexnet_fast.kernels.nn.conv import Conv2dReLU

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


def make_inputs(n, c, h, w, k, r, s, groups, dtype, channels_last=False, bias=True, weight_scale=None):
    x = torch.randn(n, c, h, w, dtype=dtype)
    fan_in = c // groups * r * s
    weight = (torch.randn(k, c // groups, r, s) * (weight_scale or fan_in ** -0.5)).to(dtype)
    b = torch.randn(k, dtype=dtype) * 0.1 if bias else None
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, weight, b


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
# Bad inputs: each raises the documented error
# --------------------------------------------------------------------------------------

def _args(**overrides):
    args = dict(x=torch.randn(1, 4, 8, 8), weight=torch.randn(6, 2, 3, 3), bias=torch.randn(6),
                stride=1, padding=1, groups=2, relu=True)
    args.update(overrides)
    return args


BAD_INPUTS = [
    ("x not a tensor", dict(x=[[1.0]]), TypeError, "x must be a torch.Tensor"),
    ("weight not a tensor", dict(weight=3.0), TypeError, "weight must be a torch.Tensor"),
    ("x rank 3", dict(x=torch.randn(4, 8, 8)), ValueError, "x must be 4-D"),
    ("weight rank 2", dict(weight=torch.randn(6, 18)), ValueError, "weight must be 4-D"),
    ("bias rank 2", dict(bias=torch.randn(6, 1)), ValueError, "bias must be 1-D"),
    ("float64", dict(x=torch.randn(1, 4, 8, 8, dtype=torch.float64)), TypeError, "dtype torch.float64"),
    ("int input", dict(x=torch.ones(1, 4, 8, 8, dtype=torch.int32)), TypeError, "dtype torch.int32"),
    ("dtype mismatch", dict(weight=torch.randn(6, 2, 3, 3, dtype=torch.float16)), TypeError, "differs from x dtype"),
    ("bias dtype mismatch", dict(bias=torch.randn(6, dtype=torch.float16)), TypeError, "bias dtype"),
    ("bias length", dict(bias=torch.randn(5)), ValueError, "bias has 5 elements"),
    ("channels vs weight", dict(weight=torch.randn(6, 3, 3, 3)), ValueError, "expects 6"),
    ("groups vs channels", dict(groups=3), ValueError, "must be >= 1 and divide"),
    ("groups vs out channels", dict(weight=torch.randn(5, 1, 3, 3), bias=None, groups=4), ValueError, "must be >= 1 and divide"),
    ("groups 0", dict(groups=0), ValueError, "groups=0"),
    ("groups float", dict(groups=2.0), TypeError, "groups must be an int"),
    ("stride 0", dict(stride=0), ValueError, "stride must be >= 1"),
    ("stride triple", dict(stride=(1, 1, 1)), ValueError, "stride must be an int or a pair"),
    ("stride float", dict(stride=1.5), TypeError, "stride must be an int, got float"),
    ("negative padding", dict(padding=(1, -1)), ValueError, "padding must be >= 0"),
    ("string padding", dict(padding="same"), ValueError, "padding='same' is not supported"),
    ("kernel larger than input", dict(x=torch.randn(1, 4, 2, 2), padding=0), ValueError, "smaller than the 3x3 kernel"),
    ("relu not bool", dict(relu=1), TypeError, "relu must be a bool"),
    ("empty channels", dict(x=torch.randn(1, 0, 8, 8), weight=torch.randn(6, 0, 3, 3), groups=1), ValueError, "empty x"),
    ("devices differ", dict(weight=torch.randn(6, 2, 3, 3, device="meta")), ValueError, "one device"),
    ("not a Triton device", dict(x=torch.randn(1, 4, 8, 8, device="meta"), weight=torch.randn(6, 2, 3, 3, device="meta"),
                                 bias=torch.randn(6, device="meta")), ValueError, "need CUDA tensors"),
]


@pytest.mark.parametrize("overrides,error,message", [c[1:] for c in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs(overrides, error, message):
    with pytest.raises(error, match=message):
        conv2d_relu(**_args(**overrides))


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="CPU tensors run only under TRITON_INTERPRET=1"):
        conv2d_relu(**_args())


# --------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_module_from_conv_shares_parameters(bias):
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=bias)
    module = Conv2dReLU.from_conv(conv)
    assert module.weight is conv.weight and module.bias is conv.bias
    assert list(module.state_dict()) == list(conv.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), conv.state_dict().values()))
    assert "relu=True" in repr(module)

    x = torch.randn(2, 4, 9, 9)
    expected = F.relu(F.conv2d(x.double(), conv.weight.double(), conv.bias.double() if bias else None, 2, 1, 1, 2))
    y = module(x)
    assert_close_ref(y, expected, torch.float32, 2 * 9)
    y.sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.shape == conv.weight.shape  # grads reach the shared Parameter


def test_module_without_relu_and_state_dict_round_trip():
    conv = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(0, 1))
    module = Conv2dReLU.from_conv(conv, relu=False)
    x = torch.randn(1, 3, 8, 7)
    assert_close_ref(module(x), conv(x).double(), torch.float32, 3 * 6)
    fresh = Conv2dReLU(3, 5, (3, 2), stride=(2, 1), padding=(0, 1), relu=False)
    fresh.load_state_dict(conv.state_dict())
    assert_close_ref(fresh(x), conv(x).double(), torch.float32, 3 * 6)
    back = nn.Conv2d(3, 5, (3, 2), stride=(2, 1), padding=(0, 1))
    back.load_state_dict(module.state_dict())
    assert torch.equal(back.weight, conv.weight)


def test_module_keeps_train_mode():
    conv = nn.Conv2d(3, 4, 3).eval()
    assert not Conv2dReLU.from_conv(conv).training


@pytest.mark.parametrize("kwargs,message", [
    (dict(dilation=2), "dilation"),
    (dict(padding_mode="reflect", padding=1), "padding_mode"),
    (dict(padding="same"), "string padding"),
    (dict(padding="valid"), "string padding"),
])
def test_module_refuses_unsupported(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Conv2dReLU(4, 4, 3, **kwargs)
    with pytest.raises(ValueError, match=message):
        Conv2dReLU.from_conv(nn.Conv2d(4, 4, 3, **kwargs))


def test_module_from_conv_needs_a_conv():
    with pytest.raises(TypeError, match="expects an nn.Conv2d"):
        Conv2dReLU.from_conv(nn.Linear(3, 3))


# --------------------------------------------------------------------------------------
# torch.compile and the custom ops
# --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_torch_compile_fullgraph_forward_and_backward():
    """The custom ops trace without graph breaks (fullgraph=True) through forward and the
    backward graph (dgrad and wgrad are custom ops too); results equal eager."""
    torch._dynamo.reset()

    def loss_fn(x, weight, bias):
        y = conv2d_relu(x, weight, bias, stride=2, padding=1, groups=2)
        return (y * y).mean() + y.amax()

    x = torch.randn(2, 4, 9, 9, requires_grad=True)
    weight = torch.randn(6, 2, 3, 3, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    compiled = torch.compile(loss_fn, fullgraph=True)
    loss = compiled(x, weight, bias)
    loss.backward()
    grads = [t.grad.clone() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    loss_eager = loss_fn(x, weight, bias)
    loss_eager.backward()
    torch.testing.assert_close(loss, loss_eager)
    for got, t in zip(grads, (x, weight, bias)):
        torch.testing.assert_close(got, t.grad)


@pytest.mark.slow
def test_custom_ops_opcheck():
    """torch.library.opcheck: schema, fake (meta) kernels, autograd registration and
    AOT dispatch of the three custom ops, on tiny tensors (NCHW and NHWC)."""
    x = torch.randn(1, 4, 6, 7)
    weight = torch.randn(6, 2, 3, 3, requires_grad=True)
    bias = torch.randn(6, requires_grad=True)
    for xx in (x.requires_grad_(), x.detach().to(memory_format=torch.channels_last).requires_grad_()):
        torch.library.opcheck(torch.ops.alexnet_fast.conv2d_relu.default, (xx, weight, bias, [2, 1], [1, 0], 2, True))
    y = conv2d_relu(x.detach(), weight.detach(), bias.detach(), (2, 1), (1, 0), 2)
    grad = relu_grad(torch.randn_like(y), y, True)
    torch.library.opcheck(torch.ops.alexnet_fast.conv2d_relu_dgrad.default,
                          (grad, weight.detach(), [1, 4, 6, 7], [2, 1], [1, 0], 2, False))
    torch.library.opcheck(torch.ops.alexnet_fast.conv2d_relu_wgrad.default,
                          (grad, x.detach(), weight.detach(), [2, 1], [1, 0], 2))


# --------------------------------------------------------------------------------------
# Launch settings and the code-generation contract
# --------------------------------------------------------------------------------------

def test_dot_precision_follows_cudnn_allow_tf32():
    assert dot_precision(torch.float32, "cuda", allow_tf32=True) == "tf32"
    assert dot_precision(torch.float32, "cuda", allow_tf32=False) == "ieee"
    assert dot_precision(torch.float32, "cpu", allow_tf32=True) == "ieee"
    assert dot_precision(torch.float16, "cuda", allow_tf32=True) == "ieee"


def test_configs_are_data_and_fit_shared_memory():
    """Every GPU config of every arch's tables: tile sizes tensor cores accept, and a worst-case
    (every stage buffered) shared-memory estimate within the arch's per-block limit (sm_80 163 KB,
    also for the gather table, which every arch uses;
    sm_90 and sm_100 227 KB; 4-byte operands in the tf32 and FMA tables). The compile check proper is
    profiling/codegen/."""
    limit = {80: 163 * 1024, 90: 227 * 1024, 100: 227 * 1024, conv_mod.GATHER: 163 * 1024}  # gather: every arch
    for arch in CONFIG_ARCHS + (conv_mod.GATHER,):
        for dot in DOTS:
            table = config_table(arch, dot)
            for kernel in _KERNELS:
                assert table[kernel], (arch, dot, kernel)
                for cfg in table[kernel]:
                    assert {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_warps", "num_stages"} <= set(cfg)
                    assert min(cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]) >= 16
                    size = 2 if dot == "mma" else 4
                    assert (cfg["BLOCK_M"] + cfg["BLOCK_N"]) * cfg["BLOCK_K"] * size * cfg["num_stages"] <= limit[arch]
    assert conv_mod.config_arch((9, 0)) == 90 and conv_mod.config_arch((8, 6)) == 80
    assert conv_mod.config_arch((10, 0)) == 100 and conv_mod.config_arch((10, 3)) == 100  # B200, B300
    assert conv_mod.config_arch((12, 0)) == 80  # an arch without a table of its own: sm_80's
    interp = configs.CONV2D_RELU_INTERPRETER_CONFIG
    assert min(interp["BLOCK_M"], interp["BLOCK_N"], interp["BLOCK_K"]) >= 16


def test_codegen_specs_cover_every_kernel_config_and_dtype():
    """Generic specs: every config of every table (each arch's fast-path tables, the gather and
    FMA tables) for its dtypes, with its archs and autotune positions; the fast path's with what
    fast_path guarantees (unit channel strides, multiples of 16, the image-major walk)."""
    specs = [s for s in codegen_specs() if s.args is None]
    assert all(isinstance(s, KernelSpec) for s in specs)
    seen = {(s.kernel, s.config, s.dtype) for s in specs}
    assert len(seen) == len(specs), "duplicate spec"
    precisions = {"fp32": ("tf32", "ieee"), "fp16": ("ieee",), "bf16": ("ieee",)}
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    for name, fn in _KERNELS.items():
        mine = [s for s in specs if s.fn is fn]
        expected = 0
        for dtype, precs in precisions.items():
            for precision in precs:
                dot = conv_mod.dot_kind(torch_dtype[dtype], precision)
                for fast in ((True, False) if dot != "fma" else (False,)):
                    orders = 2 if "FLAT_K" in fn.arg_names and not fast else 1
                    tables = {arch: config_table(arch if fast else conv_mod.GATHER, dot)[name] for arch in CONFIG_ARCHS}
                    expected += orders * len({conv_mod._config_name(c) for cfgs in tables.values() for c in cfgs})
                    suffix = conv_mod._path_suffix(dot, fast)
                    for arch, cfgs in tables.items():  # each entry: a spec for its arch, with its rank
                        for rank, cfg in enumerate(cfgs):
                            hits = [s for s in mine if s.dtype == dtype and s.extra["input_precision"] == precision
                                    and s.config.startswith(conv_mod._config_name(cfg) + suffix)
                                    and ("gather" in s.config) == (suffix == "_gather")]
                            assert hits and all(arch in s.extra["archs"] and s.extra["autotune_rank"][arch] == rank
                                                for s in hits), (name, dtype, precision, arch, cfg)
                            for spec in hits if fast else ():
                                units, multiples, _, walk = conv_mod._FAST_PATH_ARGS[name]
                                assert all(spec.signature[a] == "constexpr" and spec.constexprs[a] == 1 for a in units)
                                assert set(spec.extra["divisible_by_16"]) == set(multiples) | {"BATCH"}
                                assert spec.constexprs[walk] and not spec.constexprs.get("FLAT_K", False)
        assert len(mine) == expected, name
        for spec in mine:
            assert list(spec.signature) == fn.arg_names
            constexprs = [n for n, t in spec.signature.items() if t == "constexpr"]
            assert set(_constexpr_args(fn)) <= set(constexprs) and sorted(spec.constexprs) == sorted(constexprs)
            ptr = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}[spec.dtype]
            assert all(t in (ptr, "*fp32", "i32", "constexpr") for t in spec.signature.values())
            assert spec.expects_mma == (spec.dtype != "fp32" or spec.constexprs["INPUT_PRECISION"] == "tf32")


def test_fast_path_takes_channels_last_launches_at_batches_the_tiles_divide():
    """conv2-conv5 channels-last at batch 128 take the arch's tables; NCHW, conv1 (the flat
    walk), odd channel counts and a batch the tiles do not divide take the gather table."""
    x = torch.empty((128, 256, 13, 13), device="meta").to(memory_format=torch.channels_last)
    w = torch.empty((384, 256, 3, 3), device="meta").to(memory_format=torch.channels_last)
    y = torch.empty((128, 384, 13, 13), device="meta").to(memory_format=torch.channels_last)

    def fast(x, w, y, arch=90):
        args, _ = conv_mod._fwd_launch(x, w, None, y, (1, 1), (1, 1), 1, True, "ieee")
        return conv_mod.fast_path("fwd", args, arch, "mma")

    assert fast(x, w, y) and fast(x, w, y, arch=80)
    assert not fast(x.contiguous(), w.contiguous(), y.contiguous())  # NCHW: gathered
    assert not fast(x[:32], w, y[:32])  # 32 is no multiple of the 128-row tiles
    assert fast(x[:64], w, y[:64]) == (conv_mod.fast_batch_multiple("fwd", 90, "mma") <= 64)
    odd = torch.empty((128, 40, 13, 13), device="meta").to(memory_format=torch.channels_last)
    assert not fast(odd, torch.empty((384, 40, 3, 3), device="meta").to(memory_format=torch.channels_last), y)
    assert not conv_mod.fast_path("fwd", {"FLAT_K": True}, 90, "mma")  # conv1's 3 channels


def test_codegen_real_shape_specs_are_the_launches_of_both_presets():
    """Launch-faithful specs: every conv layer of both presets, each tensor-core config of each
    arch's tables for the three kernels (conv1 has no dgrad: the image needs no gradient), fp16,
    bf16, TF32, with the arguments the launchers pass for channels-last activations and KRSC
    weights: unit channel strides and the channels per group as an argument (what lets the
    compiler prove 16-byte aligned, contiguous loads along the reduction), and the launch-time
    constexprs of a batch of 128: the image-major walks, whole channel blocks where they divide."""
    from alexnet_fast.profiling.codegen.arch import SMS
    from alexnet_fast.profiling.codegen.specs import alexnet_conv_layers

    layers = alexnet_conv_layers()
    real = [s for s in codegen_specs(layers, (128,), SMS) if s.args is not None]
    assert not [s for s in codegen_specs() if s.args is not None]  # generic without launch shapes
    assert len(layers) == 10
    assert len({(s.kernel, s.config, s.dtype, s.shape) for s in real}) == len(real)
    index = {(s.kernel, s.config, s.dtype, s.shape): s for s in real}
    for dtype_name, dtype, precision in (("fp16", torch.float16, "ieee"), ("bf16", torch.bfloat16, "ieee"),
                                         ("fp32", torch.float32, "tf32")):
        for arch in CONFIG_ARCHS:
            launches = conv_mod.real_launches(layers, 128, dtype, precision, arch, SMS[arch])
            assert len(launches) == 3 * len(layers) - 2  # no conv1 dgrad in either preset
            for name, label, runtime, constexprs, grid in launches:
                dot = conv_mod.dot_kind(dtype, precision)
                fast = conv_mod.fast_path(name, {**runtime, **constexprs}, arch, dot)
                assert fast == ("conv1" not in label), label  # conv1: the flat walk, gathered
                for rank, cfg in enumerate(config_table(arch if fast else conv_mod.GATHER, dot)[name]):
                    config = (conv_mod._config_name(cfg) + conv_mod._path_suffix(dot, fast)
                              + ("_tf32" if dtype == torch.float32 else ""))
                    spec = index[(_KERNELS[name].__name__, config, dtype_name, label)]
                    assert arch in spec.extra["archs"] and spec.extra["autotune_rank"][arch] == rank
                    assert spec.extra["grid"] == grid(cfg)
    for spec in real:
        fn = spec.fn
        assert set(spec.args) | set(spec.constexprs) == set(fn.arg_names)
        assert spec.expects_mma and spec.dtype in ("fp16", "bf16", "fp32")
        channel_strides = [v for k, v in spec.args.items() if k in ("sx_c", "sw_c", "sg_k", "sy_k")]
        assert channel_strides and all(v == 1 for v in channel_strides), spec.shape
        per_group = spec.args.get("C_PER_GROUP", spec.args.get("K_PER_GROUP"))
        if "conv1" not in spec.shape:
            assert per_group % 16 == 0, spec.shape
            image_major = spec.constexprs.get("IMAGE_ROWS", spec.constexprs.get("IMAGE_LANES"))
            assert image_major, (spec.kernel, spec.config, spec.shape)  # batch 128: a multiple of every block
        if "EVEN_K" in spec.constexprs:
            assert spec.constexprs["EVEN_K"] == (per_group % spec.constexprs["BLOCK_K"] == 0), spec.shape


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


# --------------------------------------------------------------------------------------
# Autocast, device guard, autotuner per batch and layout (issue 14)
# --------------------------------------------------------------------------------------

conv_mod = importlib.import_module("alexnet_fast.kernels.conv2d_relu")  # kernels.conv2d_relu is the function


class ConvLaunchSpy:
    """Records each Triton launch of the conv module: kernel, the dtype of every tensor
    argument handed to it, the device of the device_guard in force (None: unguarded) and
    the tuner object with the batch it was made for."""

    def __init__(self, monkeypatch):
        self.launches: list[dict] = []
        self._guard: list[torch.device] = []
        real_autotuned, real_guard = conv_mod.autotuned, conv_mod.device_guard
        spy = self

        @contextlib.contextmanager
        def guard(t):
            spy._guard.append(t.device)
            with real_guard(t):
                yield
            spy._guard.pop()

        def autotuned(kernel, *args, batch, **kwargs):
            tuned = real_autotuned(kernel, *args, batch=batch, **kwargs)

            class Launch:
                def __getitem__(self, grid):
                    def run(**kw):
                        spy.launches.append({
                            "kernel": kernel.__name__, "tuner": tuned, "batch": batch, "key": args[3],
                            "dtypes": {k: v.dtype for k, v in kw.items() if isinstance(v, torch.Tensor)},
                            "guard": spy._guard[-1] if spy._guard else None,
                        })
                        return tuned[grid](**kw)
                    return run
            return Launch()

        monkeypatch.setattr(conv_mod, "autotuned", autotuned)
        monkeypatch.setattr(conv_mod, "device_guard", guard)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_autocast_runs_every_kernel_in_the_autocast_dtype(monkeypatch, channels_last):
    """Inside torch.autocast (fp16; the interpreter has no bf16 arithmetic) the forward,
    dgrad and wgrad kernels receive fp16 operands (only wgrad's fp32 partial sums stay
    fp32), the output is fp16 and the fp32 leaves get fp32 gradients -- as F.conv2d under
    autocast. Before the autocast registration the kernels ran in fp32. A mixed fp16
    activation / fp32 weight (the model-parallel gather) is accepted inside autocast and
    refused outside it."""
    spy = ConvLaunchSpy(monkeypatch)
    x, weight, bias = make_inputs(1, 4, 6, 5, 6, 3, 3, 2, torch.float32, channels_last=channels_last)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    with torch.autocast("cpu", dtype=torch.float16):
        y = conv2d_relu(*leaves, stride=1, padding=1, groups=2)
        y_mixed = conv2d_relu(x.half(), weight, bias, stride=1, padding=1, groups=2)
    assert y.dtype == torch.float16 and y_mixed.dtype == torch.float16
    y.float().sum().backward()
    assert [t.grad.dtype for t in leaves] == [torch.float32] * 3
    assert [launch["kernel"] for launch in spy.launches] == [
        "conv2d_relu_fwd_kernel", "conv2d_relu_fwd_kernel", "conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel"]
    for launch in spy.launches:
        operands = {k: v for k, v in launch["dtypes"].items() if not k.endswith("_partial_ptr")}
        assert set(operands.values()) == {torch.float16}, launch
        assert launch["guard"] == torch.device("cpu"), "launch outside device_guard"
    refs = [t.detach().half().double().requires_grad_() for t in (x, weight, bias)]
    y_ref = F.relu(F.conv2d(*refs, 1, 1, 1, 2))
    y_ref.sum().backward()
    assert_close_ref(y, y_ref, torch.float16, 18, "autocast forward")
    assert_close_ref(y_mixed, y_ref, torch.float16, 18, "autocast mixed-dtype forward")
    for got, ref, what in zip(leaves, refs, ("dx", "dweight", "dbias")):
        assert_close_ref(got.grad, ref.grad, torch.float16, 30, f"autocast {what}")
    with pytest.raises(TypeError, match="differs from x dtype"):
        conv2d_relu(x.half(), weight, bias, stride=1, padding=1, groups=2)


def test_one_tuner_per_batch_and_layout_key(monkeypatch):
    """The autotuner is chosen per batch (autotuned(batch=N)), and its key holds the
    channel strides that tell NCHW from channels-last, so a config tuned at batch 1 or in
    one layout is never reused for another."""
    spy = ConvLaunchSpy(monkeypatch)
    weight = torch.randn(6, 2, 3, 3)
    for n, channels_last in ((1, False), (2, False), (2, True)):
        x = torch.randn(n, 4, 5, 5)
        conv2d_relu(x.to(memory_format=torch.channels_last) if channels_last else x, weight, None, 1, 1, 2)
    tuners = [launch["tuner"] for launch in spy.launches]
    assert [launch["batch"] for launch in spy.launches] == [1, 2, 2]
    assert tuners[0] is not tuners[1]
    for key in conv_mod._AUTOTUNE_KEYS.values():
        assert any(k in key for k in ("sx_c", "sg_k")) and any(k in key for k in ("sw_c", "sx_c"))
    assert tuners[1].keys == conv_mod._AUTOTUNE_KEYS["fwd"]
