"""LRN, max-pool and fused LRN + max-pool (kernels/lrn.py, max_pool.py, lrn_max_pool.py):
precision and device state, and no silent wrong answers.

- autocast: inside ``torch.autocast("cpu", dtype)`` every op runs its Triton kernels (forward
  and backward) in ``dtype``, as PyTorch's conv2d does (lower precision), returns ``dtype``
  and gives an fp32 leaf an fp32 gradient; the same rule is registered for CUDA.
- every launch runs inside ``device_guard`` of its tensors' device; autotuners are per
  (kernel, layout, batch).
Seen inside the kernel launch by the ``launch_spy`` fixture (helpers.LaunchSpy): the dtypes of
the tensors handed to the kernel and the device guard in force.
"""

from __future__ import annotations

import contextlib
import importlib

import pytest
import torch

import alexnet_fast.kernels._common as common
from alexnet_fast.kernels import configs
from alexnet_fast.kernels.lrn import local_response_norm, lrn_fwd
from alexnet_fast.kernels.lrn_max_pool import lrn_max_pool2d, lrn_max_pool2d_fwd
from alexnet_fast.kernels.max_pool import max_pool2d, max_pool2d_fwd

# the op files (kernels.max_pool2d etc. are the functions: kernels/__init__.py)
lrn_mod = importlib.import_module("alexnet_fast.kernels.lrn")
pool_mod = importlib.import_module("alexnet_fast.kernels.max_pool")
fused_mod = importlib.import_module("alexnet_fast.kernels.lrn_max_pool")

OPS = {
    "lrn": (lrn_mod, lambda x: local_response_norm(x, 3, 0.5, 0.75, 2.0)),
    "max_pool2d": (pool_mod, lambda x: max_pool2d(x, 3, 2, 1)),
    "lrn_max_pool2d": (fused_mod, lambda x: lrn_max_pool2d(x, 3, 0.5, 0.75, 2.0, 3, 2, 1)),
}
FORWARD_OPS = {"lrn": lrn_fwd, "max_pool2d": max_pool2d_fwd, "lrn_max_pool2d": lrn_max_pool2d_fwd}


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16), ids=str)
@pytest.mark.parametrize("name", OPS)
def test_autocast_runs_kernels_in_lower_precision(launch_spy, name, dtype):
    """fp32 input inside torch.autocast("cpu", dtype): the forward AND backward kernels see
    only ``dtype`` tensors, the output is ``dtype`` and equals the op on the input cast to
    ``dtype`` outside autocast; the fp32 leaf gets an fp32 gradient equal to the one of
    the cast input (autograd records the cast). The interpreter runs these bf16 kernels:
    they load and store bf16 and compute in fp32."""
    module, op = OPS[name]
    spy = launch_spy(module)
    x = (torch.randn(1, 6, 7, 7) * 2).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        y = op(x)
    assert y.dtype == dtype
    y.float().backward(torch.ones(y.shape))
    assert x.grad.dtype == torch.float32
    assert len(spy.launches) == 2, spy.kernels()  # forward kernel, then backward kernel
    assert spy.kernels()[0].endswith("fwd_kernel") and spy.kernels()[1].endswith("bwd_kernel")
    assert all(launch["dtypes"] == {dtype} for launch in spy.launches), spy.launches

    x_low = x.detach().to(dtype).requires_grad_()
    y_low = op(x_low)
    y_low.float().backward(torch.ones(y_low.shape))
    assert torch.equal(y, y_low)
    assert torch.equal(x.grad, x_low.grad.float())


@pytest.mark.parametrize("name", OPS)
def test_autocast_leaves_the_op_alone_outside_autocast_and_for_fp32_regions(launch_spy, name):
    """No autocast region: the kernels run in the input's dtype (fp32 here)."""
    module, op = OPS[name]
    spy = launch_spy(module)
    y = op(torch.randn(1, 4, 6, 6))
    assert y.dtype == torch.float32 and spy.launches[0]["dtypes"] == {torch.float32}


@pytest.mark.parametrize("name", FORWARD_OPS)
def test_autocast_rule_registered_for_cuda_and_cpu(name):
    """The same lower-precision rule is a kernel of the op's AutocastCUDA and AutocastCPU keys
    (CUDA cannot run here; the registration is what the dispatcher uses there)."""
    qualname = FORWARD_OPS[name]._opoverload._schema.name
    for key in ("AutocastCUDA", "AutocastCPU"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(qualname, key), (qualname, key)


@pytest.mark.slow
def test_autocast_under_torch_compile(launch_spy):
    """torch.compile(fullgraph=True) of an autocast region: the compiled graph runs the fused
    kernel forward and backward in fp16 too, and matches eager."""
    spy = launch_spy(fused_mod)
    _, op = OPS["lrn_max_pool2d"]

    def f(x):
        with torch.autocast("cpu", dtype=torch.float16):
            return op(x)

    x = torch.randn(1, 6, 7, 7).requires_grad_()
    y = torch.compile(f, fullgraph=True)(x)
    y.float().sum().backward()
    assert y.dtype == torch.float16 and x.grad.dtype == torch.float32
    assert spy.kernels() == ["lrn_max_pool2d_fwd_kernel", "lrn_max_pool2d_bwd_kernel"]
    assert all(launch["dtypes"] == {torch.float16} for launch in spy.launches)
    x_eager = x.detach().clone().requires_grad_()
    y_eager = f(x_eager)
    y_eager.float().sum().backward()
    assert torch.equal(y, y_eager) and torch.equal(x.grad, x_eager.grad)


def test_register_autocast_refuses_a_plain_function():
    with pytest.raises(TypeError, match="custom_op"):
        common.register_autocast(lambda x: x)


# ---------------------------------------------------------------------------------------
# Device guard and autotune keys
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OPS)
def test_needs_cuda_or_the_interpreter(monkeypatch, name):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1"):
        OPS[name][1](torch.randn(1, 4, 7, 7))


@pytest.mark.parametrize("name", OPS)
def test_every_launch_runs_inside_a_device_guard(launch_spy, name):
    """Forward and backward launches each run inside device_guard of the op's tensors."""
    module, op = OPS[name]
    spy = launch_spy(module)
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    op(x).sum().backward()
    assert len(spy.launches) == 2
    assert all(launch["guard"] == x.device for launch in spy.launches), spy.launches


def test_device_guard_selects_the_tensors_cuda_device(monkeypatch):
    """For a CUDA tensor the guard is torch.cuda.device(tensor.device) (here with a stand-in
    tensor: no GPU); for a CPU tensor it changes nothing."""
    entered = []

    @contextlib.contextmanager
    def fake_cuda_device(device):
        entered.append(device)
        yield

    monkeypatch.setattr(torch.cuda, "device", fake_cuda_device)

    class OnCuda1:
        device = torch.device("cuda:1")

    with common.device_guard(OnCuda1()):
        pass
    assert entered == [torch.device("cuda:1")]
    with common.device_guard(torch.zeros(1)):
        pass
    assert entered == [torch.device("cuda:1")]


@pytest.mark.parametrize("name", OPS)
def test_autotuner_per_batch_and_layout(launch_spy, monkeypatch, name):
    """A config tuned at one batch size or layout is never reused at another: each op's
    launches at batch 1 and 2, NCHW and NHWC, use four different autotuners, and a repeat
    call reuses its own."""
    module, op = OPS[name]
    monkeypatch.setattr(common, "_TUNED", {})
    spy = launch_spy(module)
    x = torch.randn(2, 4, 6, 6)
    for batch in (x[:1], x):
        for fmt in (torch.contiguous_format, torch.channels_last):
            op(batch.contiguous(memory_format=fmt))
    op(x[:1])
    tuners = [launch["tuner"] for launch in spy.launches]
    assert len({id(t) for t in tuners[:4]}) == 4
    assert tuners[4] is tuners[0]


def test_autotuned_refuses_key_names_that_are_not_kernel_arguments():
    """Triton silently drops unknown key names from its cache key; the wrapper refuses them."""
    with pytest.raises(ValueError, match="not arguments of lrn_fwd_kernel"):
        common.autotuned(lrn_mod.lrn_fwd_kernel, configs.LRN_CONFIGS, configs.LRN_INTERPRETER, "nchw",
                         ("C", "N"), batch=1)


def test_register_budget_is_per_arch_and_reaches_the_triton_config(monkeypatch):
    """A table entry's ``maxnreg`` ({arch: registers}) applies on that arch only: the autotuner
    built for a B200 (sm_100) launches with it, one for an H100 (sm_90) or the CPU without."""
    cfg = configs.LRN_MAX_POOL2D_FWD_CONFIGS["nhwc"][0]
    assert common.register_budget(cfg, 100) == 160 and common.register_budget(cfg, 90) is None
    assert common.device_arch(torch.device("cpu")) is None and common.device_arch(None) is None
    monkeypatch.setattr(common, "is_interpreting", lambda: False)
    tuned = {}
    for arch in (100, 90):
        monkeypatch.setattr(common, "device_arch", lambda device, arch=arch: arch)
        tuned[arch] = common.autotuned(fused_mod.lrn_max_pool2d_fwd_kernel, configs.LRN_MAX_POOL2D_FWD_CONFIGS,
                                       configs.LRN_MAX_POOL2D_INTERPRETER, "nhwc", fused_mod._KEY, batch=12345,
                                       device=torch.device("cuda"))
    assert [c.maxnreg for c in tuned[100].configs] == [160, 160, 160]
    assert [c.maxnreg for c in tuned[90].configs] == [None, None, None] and tuned[90] is not tuned[100]


@pytest.mark.parametrize("module", (lrn_mod, pool_mod, fused_mod), ids=lambda m: m.__name__)
def test_autotune_keys_are_kernel_arguments(module):
    """Every key of every op names an argument of its kernels (forward and backward)."""
    kernels = [v for k, v in vars(module).items() if k.endswith("_kernel") and hasattr(v, "arg_names")]
    assert len(kernels) == 2
    for kernel in kernels:
        assert set(module._KEY) <= set(kernel.arg_names), kernel.__name__


# ---------------------------------------------------------------------------------------
# Every tensor argument honours its strides (else: silent wrong answers)
# ---------------------------------------------------------------------------------------

def _channel_step(t):
    big = torch.zeros((t.shape[0], 2 * t.shape[1], *t.shape[2:]), dtype=t.dtype)
    big[:, ::2] = t
    return big[:, ::2]


def _width_step(t):
    big = torch.zeros((*t.shape[:3], 2 * t.shape[3]), dtype=t.dtype)
    big[..., ::2] = t
    return big[..., ::2]


def _nhwc_channel_slice(t):
    big = torch.zeros((t.shape[0], t.shape[1] + 2, *t.shape[2:]), dtype=t.dtype)
    big = big.contiguous(memory_format=torch.channels_last)
    big[:, 1:-1] = t
    return big[:, 1:-1]


# Views with the values of ``t`` (a batch of two equal images) and other strides: each op
# must give exactly what it gives for the contiguous tensor.
VIEWS = {
    "channel_step": _channel_step,                                           # NCHW, every 2nd channel
    "width_step": _width_step,                                               # every 2nd column
    "transposed_hw": lambda t: t.transpose(2, 3).contiguous().transpose(2, 3),
    "nhwc_offset": lambda t: torch.cat([t[:1], t]).contiguous(memory_format=torch.channels_last)[1:],
    "nhwc_channel_slice": _nhwc_channel_slice,                               # not dense
    "expanded_batch": lambda t: t[:1].expand(t.shape),                       # batch stride 0
}


def _twin(t: torch.Tensor) -> torch.Tensor:
    """A batch of two equal images (so that a batch-expanded view has the same values)."""
    return t[:1].expand(2, *t.shape[1:]).contiguous()


LRN_HYPER = (3, 0.5, 0.75, 2.0)
POOL_GEOMETRY = (3, 3, 2, 2, 1, 1)


def _input():
    return _twin(torch.randn(1, 6, 7, 7) * 2)


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("name", FORWARD_OPS)
def test_forward_honours_input_strides(name, view):
    x = _input()
    v = VIEWS[view](x)
    assert torch.equal(v, x) and v.stride() != x.stride()
    args = {"lrn": LRN_HYPER, "max_pool2d": POOL_GEOMETRY + (True,),
            "lrn_max_pool2d": LRN_HYPER + POOL_GEOMETRY + (True,)}[name]
    expected, got = FORWARD_OPS[name](x, *args), FORWARD_OPS[name](v, *args)
    for e, g in zip(expected if isinstance(expected, tuple) else (expected,),
                    got if isinstance(got, tuple) else (got,)):
        assert torch.equal(g, e)


def _backward_case(name):
    """(backward op, its contiguous arguments, the names of its tensor arguments)."""
    x = _input()
    if name == "lrn":
        grad = _twin(torch.randn(1, 6, 7, 7))
        return lrn_mod.lrn_bwd, [grad, x, *LRN_HYPER], ("grad", "x")
    if name == "max_pool2d":
        out, idx = max_pool2d_fwd(x, *POOL_GEOMETRY, True)
        grad = _twin(torch.randn(out[:1].shape))
        return pool_mod.max_pool2d_bwd, [grad, idx, 7, 7, *POOL_GEOMETRY, False], ("grad", "idx")
    out, idx = lrn_max_pool2d_fwd(x, *LRN_HYPER, *POOL_GEOMETRY, True)
    grad = _twin(torch.randn(out[:1].shape))
    return fused_mod.lrn_max_pool2d_bwd, [grad, idx, x, *LRN_HYPER, *POOL_GEOMETRY], ("grad", "idx", "x")


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("name", FORWARD_OPS)
def test_backward_honours_strides_of_every_tensor_argument(name, view):
    """The backward op with one tensor argument at a time (upstream gradient, saved input,
    saved int8 argmax) as a strided / offset / expanded view: the same dx."""
    backward, args, names = _backward_case(name)
    expected = backward(*args)
    assert expected.abs().sum() > 0
    for i, arg in enumerate(names):
        strided = list(args)
        strided[i] = VIEWS[view](args[i])
        assert torch.equal(strided[i], args[i])
        assert torch.equal(backward(*strided), expected), arg


@pytest.mark.parametrize("name", OPS)
def test_autograd_with_a_batch_expanded_input_and_gradient(name):
    """Through autograd: a batch-expanded leaf view in, a stride-0 gradient (from .sum())
    back; the leaf gradient equals the one through a contiguous copy."""
    _, op = OPS[name]
    base = torch.randn(1, 6, 7, 7).requires_grad_()
    op(base.expand(2, 6, 7, 7)).sum().backward()
    got = base.grad.clone()
    base.grad = None
    op(base.expand(2, 6, 7, 7).contiguous()).sum().backward()
    assert torch.equal(got, base.grad) and got.abs().sum() > 0


# ---------------------------------------------------------------------------------------
# NaN and inf as in PyTorch, forward and backward
# ---------------------------------------------------------------------------------------

REFERENCES = {
    "lrn": lambda t: torch.nn.functional.local_response_norm(t, *LRN_HYPER),
    "max_pool2d": lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1),
    "lrn_max_pool2d": lambda t: torch.nn.functional.max_pool2d(
        torch.nn.functional.local_response_norm(t, *LRN_HYPER), 3, 2, 1),
}


def assert_same_nonfinite(got: torch.Tensor, expected64: torch.Tensor, what: str) -> None:
    """NaN exactly where the float64 reference has NaN, the same infinities, finite values close."""
    got = got.double()
    assert torch.equal(got.isnan(), expected64.isnan()), (
        f"{what}: NaN at {got.isnan().nonzero().tolist()}, PyTorch at {expected64.isnan().nonzero().tolist()}")
    assert torch.equal(got.isinf(), expected64.isinf()), f"{what}: infinities differ"
    assert torch.equal(got[got.isinf()], expected64[expected64.isinf()]), f"{what}: signs of inf differ"
    finite = expected64.isfinite()
    torch.testing.assert_close(got[finite], expected64[finite], atol=1e-5, rtol=1e-5)


NONFINITE_WARNINGS = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # numpy, in the interpreter


@NONFINITE_WARNINGS
@pytest.mark.parametrize("special", (float("nan"), float("inf"), float("-inf")), ids=str)
@pytest.mark.parametrize("name", OPS)
def test_nonfinite_input_like_pytorch(name, special):
    """NaN / +inf / -inf in the input (inside, on an edge where padding shares the window,
    in the first channel): output and input gradient are NaN / inf exactly where PyTorch's
    are (float64 reference), with a third of the upstream gradient zero (a zero gradient
    times a NaN window is NaN in PyTorch)."""
    x = torch.randn(1, 6, 7, 7)
    x[0, 3, 2, 2] = x[0, 0, 6, 6] = x[0, 5, 0, 3] = special
    _, op = OPS[name]
    mine, ref = x.clone().requires_grad_(), x.double().requires_grad_()
    y, y_ref = op(mine), REFERENCES[name](ref)
    assert_same_nonfinite(y, y_ref.detach(), "forward")
    grad = torch.randn(y.shape)
    grad.view(-1)[::3] = 0
    y.backward(grad)
    y_ref.backward(grad.double())
    assert_same_nonfinite(mine.grad, ref.grad, "dx")


@NONFINITE_WARNINGS
@pytest.mark.parametrize("special", (float("nan"), float("inf")), ids=str)
@pytest.mark.parametrize("name", OPS)
def test_nonfinite_gradient_like_pytorch(name, special):
    x = torch.randn(1, 6, 7, 7)
    _, op = OPS[name]
    mine, ref = x.clone().requires_grad_(), x.double().requires_grad_()
    y, y_ref = op(mine), REFERENCES[name](ref)
    grad = torch.randn(y.shape)
    grad.view(-1)[::3] = 0
    grad[0, 2, 1, 1] = special
    y.backward(grad)
    y_ref.backward(grad.double())
    assert not ref.grad.isfinite().all()
    assert_same_nonfinite(mine.grad, ref.grad, "dx")
