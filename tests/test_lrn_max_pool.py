"""Fused LRN + max-pool (kernels/lrn_max_pool.py) vs float64 PyTorch
(F.max_pool2d(F.local_response_norm(x))), under the interpreter on CPU.

The fused op compares LRN values in fp32, the reference in float64, so two values of a
window closer than fp32 rounding may pick different (equally maximal) elements. The
check therefore: (1) the output matches; (2) our argmax equals PyTorch's except at such
near-ties, where our pick is still a maximum within fp32 error, and never differs on an
exact tie (first element wins, as in PyTorch); (3) dx equals the float64 gradient of
LRN + pool routed through our argmax (the exact derivative of what we computed)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_close_ref
from alexnet_fast.kernels import configs
from alexnet_fast.kernels.lrn import local_response_norm
from alexnet_fast.kernels.lrn_max_pool import codegen_specs, lrn_max_pool2d, lrn_max_pool2d_bwd, lrn_max_pool2d_fwd
from alexnet_fast.profiling.codegen.specs import alexnet_channel_layers
from alexnet_fast.kernels.max_pool import max_pool2d
from alexnet_fast.kernels.nn.pooling import LRNMaxPool2d
from pooling_reference import (LAYOUTS, assert_layout, in_layout, use_interpreter_tile, window_to_flat,
                               windows_per_input)

DTYPES = (torch.float32, torch.float16)
PAPER = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
FP32_LRN_RTOL = 4e-6  # |LRN in fp32 - LRN in float64| / |LRN|, with margin (exp2/log2 pow)


def run_and_check(x, size, alpha, beta, k, kernel, stride, padding, layout, dtype):
    x = in_layout(x.to(dtype), layout)
    out, idx = lrn_max_pool2d_fwd(x, size, alpha, beta, k, kernel, kernel, stride, stride, padding, padding,
                                  True)
    grad = torch.randn(out.shape).to(dtype)
    out.backward(grad)

    x64 = x.detach().double().requires_grad_()
    y64 = F.local_response_norm(x64, size, alpha, beta, k)
    ref_out, ref_flat = F.max_pool2d(y64, kernel, stride, padding, return_indices=True)
    assert out.dtype == dtype and x.grad.dtype == dtype
    assert_layout(out, layout)
    assert_layout(x.grad, layout)
    assert_close_ref(out, ref_out.detach(), dtype, size, "out")

    ours = window_to_flat(idx, x.shape[-1], kernel, stride, padding)
    y_flat = y64.detach().flatten(2)
    ours_val = y_flat.gather(2, ours.flatten(2)).view_as(ref_out)
    differ = ours != ref_flat
    torch.testing.assert_close(ours_val, ref_out.detach(), rtol=FP32_LRN_RTOL, atol=0.0,
                               msg=lambda m: f"our argmax is not a window maximum: {m}")
    assert (ours_val[differ] != ref_out.detach()[differ]).all(), "an exact tie went to another element"
    assert differ.sum() <= 1 + differ.numel() // 1000, f"{differ.sum()} argmax differ from PyTorch's"

    g_y = torch.zeros_like(y_flat).scatter_add_(2, ours.flatten(2), grad.double().flatten(2))
    (ref_dx,) = torch.autograd.grad(y64, x64, g_y.view_as(y64))
    assert_close_ref(x.grad, ref_dx, dtype, size * windows_per_input(kernel, stride), "dx")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chw", [(96, 55, 55), (256, 27, 27)], ids=lambda s: "x".join(map(str, s)))
def test_alexnet_lrn_pool(chw, layout, dtype):
    """lrn1+pool1 / lrn2+pool2 at batch 1: the paper's constants, pool 3x3 stride 2,
    post-ReLU input (exact zero ties) scaled so the window sum matters."""
    run_and_check(torch.randn(1, *chw).relu() * 20, **PAPER, kernel=3, stride=2, padding=0,
                  layout=layout, dtype=dtype)


# (size, alpha, beta, k, kernel, stride, padding)
SWEEP = [(5, 1.0, 0.75, 2.0, 3, 2, 0), (1, 0.5, 0.75, 1.0, 2, 2, 0), (2, 1.0, 0.5, 1.0, 3, 1, 1),
         (3, 2.0, 1.0, 0.5, 2, 3, 1), (4, 0.3, 1.5, 1.0, 3, 3, 0), (6, 1.0, 0.75, 2.0, 2, 1, 0),
         (7, 3.0, 0.25, 3.0, 3, 2, 1)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size,alpha,beta,k,kernel,stride,padding", SWEEP)
def test_sweep(size, alpha, beta, k, kernel, stride, padding, layout, dtype):
    """LRN sizes 1-7 with pools 2-3 / strides 1-3 / padding 0-1 on odd 9x7 pixels, 70
    channels (crosses the interpreter's 64-channel tile), half the input zero (ties)."""
    run_and_check(torch.randn(1, 70, 9, 7).relu() * 2, size, alpha, beta, k, kernel, stride, padding,
                  layout, dtype)


_GPU_TILES = [(layout, tile) for table in (configs.LRN_MAX_POOL2D_FWD_CONFIGS, configs.LRN_MAX_POOL2D_BWD_CONFIGS)
              for layout, tiles in table.items() for tile in tiles]


@pytest.mark.parametrize("layout,tile", [t for i, t in enumerate(_GPU_TILES) if t not in _GPU_TILES[:i]], ids=str)
def test_gpu_tiles(monkeypatch, layout, tile):
    """Every GPU tile config, run by the interpreter: channel halos across small tiles."""
    use_interpreter_tile(monkeypatch, "LRN_MAX_POOL2D_INTERPRETER", tile)
    run_and_check(torch.randn(1, 37, 9, 7).relu(), 5, 1.0, 0.75, 2.0, 3, 2, 0, layout, torch.float32)


def test_nan_propagates():
    """A NaN spreads through LRN to its window's channels, then through the pool."""
    x = torch.rand(1, 8, 9, 9)
    x[0, 3, 4, 4] = float("nan")
    out = lrn_max_pool2d(x, 3, 1.0, 0.75, 2.0, 3, 2)
    ref = F.max_pool2d(F.local_response_norm(x.double(), 3, 1.0, 0.75, 2.0), 3, 2)
    assert torch.equal(out.isnan(), ref.isnan()) and out.isnan().sum() == 3 * 4
    torch.testing.assert_close(out.double(), ref, equal_nan=True, rtol=1.3e-6, atol=1e-4)


def test_equals_separate_ops_and_module():
    x = torch.randn(2, 6, 11, 11).relu() * 5
    lrn, pool = nn.LocalResponseNorm(5, 5e-4, 0.75, 2.0), nn.MaxPool2d(3, 2)
    mod = LRNMaxPool2d.from_modules(lrn, pool)
    assert len(mod.state_dict()) == 0 and len(list(mod.parameters())) == 0
    assert (mod.size, mod.kernel_size, mod.stride, mod.padding) == (5, 3, 2, 0)
    fused = mod(x)
    assert torch.equal(fused, max_pool2d(local_response_norm(x, 5, 5e-4, 0.75, 2.0), 3, 2))
    torch.testing.assert_close(fused, pool(lrn(x)))
    with pytest.raises(ValueError, match="dilation"):
        LRNMaxPool2d.from_modules(lrn, nn.MaxPool2d(3, 2, dilation=2))
    with pytest.raises(ValueError, match="ceil_mode"):
        LRNMaxPool2d.from_modules(lrn, nn.MaxPool2d(3, 2, ceil_mode=True))
    with pytest.raises(TypeError, match="nn.MaxPool2d"):
        LRNMaxPool2d.from_modules(lrn, nn.AvgPool2d(3))
    with pytest.raises(TypeError, match="nn.LocalResponseNorm"):
        LRNMaxPool2d.from_modules(pool, pool)


@pytest.mark.parametrize("call,error,match", [
    (lambda x: lrn_max_pool2d(x[0], 5, 1e-4, 0.75, 1.0, 3), ValueError, "4-D"),
    (lambda x: lrn_max_pool2d(x.double(), 5, 1e-4, 0.75, 1.0, 3), TypeError, "float64"),
    (lambda x: lrn_max_pool2d(x, 0, 1e-4, 0.75, 1.0, 3), ValueError, "size must be >= 1"),
    (lambda x: lrn_max_pool2d(x, 5, None, 0.75, 1.0, 3), TypeError, "alpha must be a float"),
    (lambda x: lrn_max_pool2d(x, 5, 1e-4, 0.75, 0.0, 3), ValueError, "k > 0"),
    (lambda x: lrn_max_pool2d(x, 5, 1e-4, 0.75, 1.0, 3, 2, 2), ValueError, "at most half"),
    (lambda x: lrn_max_pool2d(x, 5, 1e-4, 0.75, 1.0, 3, 0), ValueError, "stride must be >= 1"),
    (lambda x: lrn_max_pool2d(x, 5, 1e-4, 0.75, 1.0, 9), ValueError, "output size is too small"),
    (lambda x: lrn_max_pool2d(torch.randn(1, 4, 12, 12, requires_grad=True), 5, 1e-4, 0.75, 1.0, 12),
     ValueError, "int8"),
    (lambda x: lrn_max_pool2d_bwd(torch.randn(1, 4, 2, 2), torch.zeros(1, 4, 3, 3, dtype=torch.int8), x,
                                  5, 1e-4, 0.75, 1.0, 3, 3, 2, 2, 0, 0), ValueError, "grad has shape"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.randn(1, 4, 7, 7))


@pytest.mark.slow
def test_torch_compile_fullgraph_all_ops():
    """torch.compile(fullgraph=True) traces the three ops (LRN, max-pool, fused) forward and
    backward with no graph break; results equal eager's."""
    def f(x):
        fused = lrn_max_pool2d(x * 2.0, 3, 1.0, 0.75, 2.0, 3, 2)
        separate = max_pool2d(local_response_norm(x * 2.0, 3, 1.0, 0.75, 2.0), 3, 2)
        return fused.square() + separate

    x = in_layout(torch.randn(2, 6, 9, 9).relu(), "nhwc")
    x_ref = x.detach().clone().requires_grad_()
    out = torch.compile(f, fullgraph=True)(x)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref = f(x_ref)
    ref.backward(grad)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(x.grad, x_ref.grad)
    assert x.grad.abs().sum() > 0


def test_opcheck():
    x = in_layout(torch.randn(2, 6, 7, 7).relu(), "nhwc")
    torch.library.opcheck(lrn_max_pool2d_fwd, (x, 3, 0.5, 0.75, 2.0, 3, 3, 2, 2, 1, 1, True))


def test_codegen_specs():
    specs = codegen_specs(alexnet_channel_layers("lrn+pool"))
    tiles = sum(len(t) for table in (configs.LRN_MAX_POOL2D_FWD_CONFIGS, configs.LRN_MAX_POOL2D_BWD_CONFIGS)
                for t in table.values())
    generic = [spec for spec in specs if not spec.shape]  # then the launch-faithful ones (a shape label)
    assert len(generic) == tiles * 3  # each kernel x its table's tiles x (fp32, fp16, bf16)
    assert all(spec.config.startswith("nhwc") for spec in specs if spec.shape)
    for spec in generic:
        assert list(spec.signature) == spec.fn.arg_names and not spec.expects_mma
        assert spec.constexprs["KH"] == 3 and spec.constexprs["SH"] == 2
        assert {n for n, t in spec.signature.items() if t == "constexpr"} == set(spec.constexprs)
