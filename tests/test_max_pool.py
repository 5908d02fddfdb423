"""Triton max-pool (kernels/max_pool.py) vs float64 PyTorch, under the interpreter on CPU.

The forward is compared exactly (a max is exact in any dtype), the argmax against
PyTorch's (first max on ties, last NaN), dx with the shared tolerances (a sum over at most
ceil(k/s)^2 windows)."""

import pytest

import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_close_ref
from alexnet_fast.kernels import configs
from alexnet_fast.kernels.max_pool import codegen_specs, max_pool2d, max_pool2d_bwd, max_pool2d_fwd
from alexnet_fast.profiling.codegen.specs import alexnet_channel_layers
from alexnet_fast.kernels.nn.pooling import MaxPool2d
from pooling_reference import (LAYOUTS, assert_layout, in_layout, pool_reference, use_interpreter_tile,
                               windows_per_input)

DTYPES = (torch.float32, torch.float16)


def run_and_check(x, kernel, stride, padding, layout, dtype):
    """Pool ``x`` (cast to dtype, in layout) forward and backward; check all against PyTorch."""
    x = in_layout(x.to(dtype), layout)
    out, idx = max_pool2d_fwd(x, kernel, kernel, stride, stride, padding, padding, True)
    grad = torch.randn(out.shape).to(dtype)
    out.backward(grad)
    ref_out, ref_idx, ref_dx = pool_reference(x, kernel, stride, padding, grad)

    assert out.dtype == dtype and x.grad.dtype == dtype
    assert_layout(out, layout)
    assert_layout(x.grad, layout)
    assert torch.equal(out.double().nan_to_num(123.0), ref_out.nan_to_num(123.0)), "max differs"
    assert torch.equal(out.isnan(), ref_out.isnan()), "NaN does not propagate like PyTorch"
    assert torch.equal(idx.long(), ref_idx), "argmax differs from PyTorch's (ties / NaN)"
    assert_close_ref(x.grad, ref_dx, dtype, windows_per_input(kernel, stride), "dx")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chw", [(96, 55, 55), (256, 27, 27), (256, 13, 13)], ids=lambda s: "x".join(map(str, s)))
def test_alexnet_pools(chw, layout, dtype):
    """AlexNet's three overlapping pools (3x3, stride 2) on post-ReLU activations."""
    batch = 2 if dtype == torch.float32 else 1
    run_and_check(torch.randn(batch, *chw).relu(), 3, 2, 0, layout, dtype)


SWEEP = [(k, s, p) for k in (2, 3) for s in (1, 2, 3) for p in (0, 1) if 2 * p <= k]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kernel,stride,padding", SWEEP)
def test_sweep_ties_and_nan(kernel, stride, padding, layout, dtype):
    """Kernels 2-3, strides 1-3, padding 0-1 on odd sizes; small integers make ties in
    most windows, and NaN (two of them in one window) must propagate like PyTorch's."""
    x = torch.randint(-2, 3, (2, 5, 9, 7)).float()
    x[0, 1, 2, 3] = x[0, 1, 3, 3] = float("nan")
    x[1, 4, 8, 6] = float("nan")
    x[1, 0, :3, :3] = float("-inf")
    run_and_check(x, kernel, stride, padding, layout, dtype)


def test_rectangular_window():
    """kernel (2, 3), stride (1, 2), padding (1, 0) against PyTorch."""
    x = torch.randn(1, 3, 7, 10).requires_grad_()
    out = max_pool2d(x, (2, 3), (1, 2), (1, 0))
    grad = torch.randn_like(out)
    out.backward(grad)
    x64 = x.detach().double().requires_grad_()
    ref = F.max_pool2d(x64, (2, 3), (1, 2), (1, 0))
    ref.backward(grad.double())
    assert torch.equal(out.double(), ref.detach())
    assert_close_ref(x.grad, x64.grad, torch.float32, 4, "dx")


@pytest.mark.parametrize("layout,tile", [(layout, tile) for layout, tiles in configs.MAX_POOL2D_CONFIGS.items()
                                          for tile in tiles], ids=str)
def test_gpu_tiles(monkeypatch, layout, tile):
    """Every GPU tile config, run by the interpreter: partial tiles in both dimensions."""
    use_interpreter_tile(monkeypatch, "MAX_POOL2D_INTERPRETER", tile)
    run_and_check(torch.randn(1, 37, 11, 9), 3, 2, 0, layout, torch.float32)


def test_all_minus_inf_windows_pick_first_valid_element():
    """With padding, a window of -inf still names its first in-bounds element (PyTorch)."""
    x = torch.full((1, 2, 5, 5), float("-inf"))
    run_and_check(x, 3, 2, 1, "nchw", torch.float32)


def test_non_dense_input_and_empty_batch():
    x = torch.randn(2, 4, 9, 14)[:, :, :, ::2]  # strided view: computed as NCHW
    assert torch.equal(max_pool2d(x, 3, 2), F.max_pool2d(x, 3, 2))
    empty = torch.randn(0, 4, 9, 9)
    assert max_pool2d(empty, 3, 2).shape == (0, 4, 4, 4)


def test_indices_only_when_grad_is_needed():
    x = torch.randn(1, 2, 7, 7)
    out, idx = max_pool2d_fwd(x, 3, 3, 2, 2, 0, 0, False)
    assert idx.numel() == 0 and idx.dtype == torch.int8
    assert torch.equal(out, F.max_pool2d(x, 3, 2))
    # a window of 144 positions cannot be named by int8, but pools fine without a gradient
    assert torch.equal(max_pool2d(x, 7, 1), x.amax(dim=(2, 3), keepdim=True))
    with pytest.raises(ValueError, match="int8"):
        max_pool2d(torch.randn(1, 1, 12, 12, requires_grad=True), 12)
    # the op itself refuses a backward it kept nothing for
    out, _ = max_pool2d_fwd(x.requires_grad_(), 3, 3, 2, 2, 0, 0, False)
    with pytest.raises(RuntimeError, match="with_indices=False"):
        out.sum().backward()


@pytest.mark.parametrize("call,error,match", [
    (lambda x: max_pool2d(x[0], 3, 2), ValueError, "4-D"),
    (lambda x: max_pool2d(x.double(), 3, 2), TypeError, "float64"),
    (lambda x: max_pool2d(x.int(), 3, 2), TypeError, "int32"),
    (lambda x: max_pool2d(x.numpy(), 3, 2), TypeError, "torch.Tensor"),
    (lambda x: max_pool2d(x, 0), ValueError, "kernel_size must be >= 1"),
    (lambda x: max_pool2d(x, 2.0), TypeError, "kernel_size must be an int"),
    (lambda x: max_pool2d(x, (3, 3, 3)), ValueError, "pair"),
    (lambda x: max_pool2d(x, 3, 0), ValueError, "stride must be >= 1"),
    (lambda x: max_pool2d(x, 3, 2, -1), ValueError, "padding must be >= 0"),
    (lambda x: max_pool2d(x, 3, 2, 2), ValueError, "at most half"),
    (lambda x: max_pool2d(x, (2, 4), 1, (1, 3)), ValueError, "at most half"),
    (lambda x: max_pool2d(x, 9, 1), ValueError, "output size is too small"),
    (lambda x: max_pool2d_bwd(torch.randn(1, 2, 3, 3), torch.zeros(1, 2, 3, 4, dtype=torch.int8),
                              7, 7, 3, 3, 2, 2, 0, 0, False), ValueError, "indices have shape"),
    (lambda x: max_pool2d_bwd(torch.randn(1, 2, 3, 3), torch.zeros(1, 2, 3, 3),
                              7, 7, 3, 3, 2, 2, 0, 0, False), TypeError, "int8"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.randn(1, 2, 7, 7))


def test_module():
    ref = nn.MaxPool2d(3, 2)
    mod = MaxPool2d.from_module(ref)
    assert isinstance(mod, nn.MaxPool2d) and len(mod.state_dict()) == 0
    x = torch.randn(1, 3, 13, 13)
    assert torch.equal(mod(x), ref(x))
    with pytest.raises(ValueError, match="dilation"):
        MaxPool2d.from_module(nn.MaxPool2d(3, 2, dilation=2))
    with pytest.raises(ValueError, match="ceil_mode"):
        MaxPool2d(3, 2, ceil_mode=True)
    with pytest.raises(ValueError, match="return"):
        MaxPool2d(3, 2, return_indices=True)
    with pytest.raises(TypeError, match="nn.MaxPool2d"):
        MaxPool2d.from_module(nn.AvgPool2d(3))


def test_opcheck():
    """Schema, fake tensor and autograd registration agree with the real op (the
    torch.compile test of all three ops is in test_lrn_max_pool.py)."""
    x = in_layout(torch.randn(2, 3, 9, 9), "nhwc")
    torch.library.opcheck(max_pool2d_fwd, (x, 3, 3, 2, 2, 1, 1, True))


def test_codegen_specs():
    specs = codegen_specs(alexnet_channel_layers("pool"))
    generic = [spec for spec in specs if not spec.shape]
    tiles = sum(len(t) for t in configs.MAX_POOL2D_CONFIGS.values())
    assert len(generic) == 2 * tiles * 3  # (fwd, bwd) x tiles x (fp32, fp16, bf16)
    # launch-faithful: (fwd, bwd) x AlexNet layers x NHWC tiles x dtypes, 8-byte loads in 16-bit
    layers = alexnet_channel_layers("pool")
    real = [spec for spec in specs if spec.shape]
    assert len(real) == 2 * len(layers) * len(configs.MAX_POOL2D_CONFIGS["nhwc"]) * 3
    assert all(spec.args and "NHWC" in spec.shape for spec in real)
    assert {spec.extra.get("min_load_bytes") for spec in real if spec.dtype != "fp32"} == {8}
    for spec in generic:
        assert list(spec.signature) == spec.fn.arg_names
        assert spec.signature["idx_ptr"] == "*i8" and not spec.expects_mma
        ptr = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}[spec.dtype]
        assert spec.signature["dx_ptr" if "bwd" in spec.kernel else "x_ptr"] == ptr
        assert {n for n, t in spec.signature.items() if t == "constexpr"} == set(spec.constexprs)
