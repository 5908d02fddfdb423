"""Tests of the conv + bias + ReLU op's interface (kernels/conv2d_relu.py, kernels/nn/conv.py):
the documented errors, the nn.Module wrapper, the custom ops under torch.compile and opcheck,
autocast and the launches (device guard, one tuner per batch and layout), in the interpreter."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_close_ref, conv_inputs as make_inputs
from alexnet_fast.kernels.conv2d_relu import conv2d_relu, relu_grad
from alexnet_fast.kernels.nn.conv import Conv2dReLU

conv_mod = importlib.import_module("alexnet_fast.kernels.conv2d_relu")  # kernels.conv2d_relu is the function

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
# Autocast, device guard, autotuner per batch and layout (issue 14)
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_autocast_runs_every_kernel_in_the_autocast_dtype(launch_spy, channels_last):
    """Inside torch.autocast (fp16; the interpreter has no bf16 arithmetic) the forward,
    dgrad and wgrad kernels receive fp16 operands (only wgrad's fp32 partial sums stay
    fp32), the output is fp16 and the fp32 leaves get fp32 gradients -- as F.conv2d under
    autocast. Before the autocast registration the kernels ran in fp32. A mixed fp16
    activation / fp32 weight (the model-parallel gather) is accepted inside autocast and
    refused outside it."""
    spy = launch_spy(conv_mod)
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
        operands = {k: v for k, v in launch["arg_dtypes"].items() if not k.endswith("_partial_ptr")}
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


def test_one_tuner_per_batch_and_layout_key(launch_spy):
    """The autotuner is chosen per batch (autotuned(batch=N)), and its key holds the
    channel strides that tell NCHW from channels-last, so a config tuned at batch 1 or in
    one layout is never reused for another."""
    spy = launch_spy(conv_mod)
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
