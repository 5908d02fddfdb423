"""Triton LRN (kernels/lrn.py) vs float64 F.local_response_norm, under the interpreter on CPU.

Tolerances: the shared ones (tests/helpers.py) with the window length ``size`` as the
reduction length, forward and backward."""

import pytest

import torch
import torch.nn.functional as F
from torch import nn

from helpers import assert_close_ref
from alexnet_fast.kernels import configs
from alexnet_fast.kernels.lrn import codegen_specs, local_response_norm, lrn_bwd, lrn_fwd
from alexnet_fast.profiling.codegen.specs import alexnet_channel_layers
from alexnet_fast.kernels.nn.pooling import LocalResponseNorm
from pooling_reference import LAYOUTS, assert_layout, in_layout, lrn_reference, use_interpreter_tile

DTYPES = (torch.float32, torch.float16)
PAPER = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)  # the paper's LRN in PyTorch's alpha/n convention


def run_and_check(x, size, alpha, beta, k, layout, dtype):
    """LRN of ``x`` (cast to dtype, in layout) forward and backward against float64 PyTorch."""
    x = in_layout(x.to(dtype), layout)
    y = local_response_norm(x, size, alpha, beta, k)
    grad = torch.randn(y.shape).to(dtype)
    y.backward(grad)
    ref_y, ref_dx = lrn_reference(x, size, alpha, beta, k, grad)
    assert y.dtype == dtype and x.grad.dtype == dtype
    assert_layout(y, layout)
    assert_layout(x.grad, layout)
    assert_close_ref(y, ref_y, dtype, size, "y")
    assert_close_ref(x.grad, ref_dx, dtype, size, "dx")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chw", [(96, 55, 55), (256, 27, 27)], ids=lambda s: "x".join(map(str, s)))
def test_alexnet_lrn(chw, layout, dtype):
    """lrn1 / lrn2 with the paper's constants on post-ReLU activations scaled so that the
    window sum moves the result by several percent (a wrong window would show)."""
    batch = 2 if dtype == torch.float32 else 1
    run_and_check(torch.randn(batch, *chw).relu() * 20, **PAPER, layout=layout, dtype=dtype)


# (size, alpha, beta, k): every size 1-7, odd and even, with varied constants
SWEEP = [(1, 1e-4, 0.75, 1.0), (2, 0.5, 0.75, 2.0), (3, 1.0, 0.5, 1.0), (4, 2.0, 1.0, 0.5),
         (5, 1.0, 0.75, 2.0), (6, 0.3, 1.5, 1.0), (7, 3.0, 0.25, 3.0)]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("size,alpha,beta,k", SWEEP)
def test_sweep(size, alpha, beta, k, layout, dtype):
    """130 channels cross the interpreter's 64-channel tiles twice (windows straddle them); odd
    5x7 pixels; signed input."""
    run_and_check(torch.randn(1, 130, 5, 7) * 2, size, alpha, beta, k, layout, dtype)


@pytest.mark.parametrize("layout,tile", [(layout, tile) for layout, tiles in configs.LRN_CONFIGS.items()
                                          for tile in tiles], ids=str)
def test_gpu_tiles(monkeypatch, layout, tile):
    """Every GPU tile config, run by the interpreter: channel halos across small tiles,
    partial tiles in both dimensions, sizes 5 and 4 (even: asymmetric window)."""
    use_interpreter_tile(monkeypatch, "LRN_INTERPRETER", tile)
    run_and_check(torch.randn(1, 37, 5, 7), 5, 1.0, 0.75, 2.0, layout, torch.float32)
    run_and_check(torch.randn(1, 37, 5, 7), 4, 1.0, 0.75, 2.0, layout, torch.float32)


def test_defaults_nan_non_dense_and_empty():
    x = torch.randn(2, 9, 4, 6) * 3
    torch.testing.assert_close(local_response_norm(x, 3), F.local_response_norm(x, 3))
    x[0, 4, 1, 1] = float("nan")  # NaN spreads to the channels whose window holds it
    y, ref = local_response_norm(x, 3), F.local_response_norm(x, 3)
    assert torch.equal(y.isnan(), ref.isnan()) and y.isnan().sum() == 3
    torch.testing.assert_close(y, ref, equal_nan=True)
    view = torch.randn(2, 9, 4, 12)[..., ::2]  # strided view: computed as NCHW
    torch.testing.assert_close(local_response_norm(view, 5), F.local_response_norm(view, 5))
    assert local_response_norm(torch.randn(0, 3, 4, 4), 3).shape == (0, 3, 4, 4)


@pytest.mark.parametrize("call,error,match", [
    (lambda x: local_response_norm(x[0], 5), ValueError, "4-D"),
    (lambda x: local_response_norm(x.double(), 5), TypeError, "float64"),
    (lambda x: local_response_norm(x.long(), 5), TypeError, "int64"),
    (lambda x: local_response_norm(x.tolist(), 5), TypeError, "torch.Tensor"),
    (lambda x: local_response_norm(x, 0), ValueError, "size must be >= 1"),
    (lambda x: local_response_norm(x, 2.5), TypeError, "size must be an int"),
    (lambda x: local_response_norm(x, True), TypeError, "size must be an int"),
    (lambda x: local_response_norm(x, 5, alpha="big"), TypeError, "alpha must be a float"),
    (lambda x: local_response_norm(x, 5, beta=float("inf")), ValueError, "beta must be finite"),
    (lambda x: local_response_norm(x, 5, k=float("nan")), ValueError, "k must be finite"),
    (lambda x: local_response_norm(x, 5, alpha=1.0, beta=1.0, k=-1.0), ValueError, "k > 0"),
    (lambda x: local_response_norm(x, 5, alpha=-1e-4), ValueError, "alpha >= 0"),
    (lambda x: lrn_bwd(x[:, :2], x, 5, 1e-4, 0.75, 1.0), ValueError, "grad has shape"),
    (lambda x: lrn_bwd(x.half(), x, 5, 1e-4, 0.75, 1.0), TypeError, "grad has dtype"),
])
def test_bad_inputs(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.randn(1, 4, 3, 3))


def test_module():
    ref = nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)
    mod = LocalResponseNorm.from_module(ref)
    assert isinstance(mod, nn.LocalResponseNorm) and len(mod.state_dict()) == 0
    assert (mod.size, mod.alpha, mod.beta, mod.k) == (5, 5e-4, 0.75, 2.0)
    x = torch.randn(1, 7, 5, 5) * 10
    assert_close_ref(mod(x), ref(x.double()), torch.float32, 5, "module")
    with pytest.raises(TypeError, match="nn.LocalResponseNorm"):
        LocalResponseNorm.from_module(nn.ReLU())


def test_opcheck():
    """Schema, fake tensor and autograd registration agree with the real op (the
    torch.compile test of all three ops is in test_lrn_max_pool.py)."""
    x = in_layout(torch.randn(2, 6, 3, 5), "nhwc")
    torch.library.opcheck(lrn_fwd, (x, 3, 0.5, 0.75, 2.0))


def test_codegen_specs():
    specs = codegen_specs(alexnet_channel_layers("lrn"))
    generic = [spec for spec in specs if not spec.shape]
    tiles = sum(len(t) for t in configs.LRN_CONFIGS.values())
    assert len(generic) == 2 * tiles * 3  # (fwd, bwd) x tiles x (fp32, fp16, bf16)
    # launch-faithful: (fwd, bwd) x AlexNet layers x NHWC tiles x dtypes, 8-byte loads in 16-bit
    layers = alexnet_channel_layers("lrn")
    real = [spec for spec in specs if spec.shape]
    assert len(real) == 2 * len(layers) * len(configs.LRN_CONFIGS["nhwc"]) * 3
    assert all(spec.args and "NHWC" in spec.shape for spec in real)
    assert {spec.extra.get("min_load_bytes") for spec in real if spec.dtype != "fp32"} == {8}
    for spec in generic:
        assert list(spec.signature) == spec.fn.arg_names and not spec.expects_mma
        ptr = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}[spec.dtype]
        assert spec.signature["x_ptr"] == ptr and spec.signature["beta"] == "fp32"
        assert {n for n, t in spec.signature.items() if t == "constexpr"} == set(spec.constexprs)
