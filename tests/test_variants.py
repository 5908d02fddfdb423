"""build_variant: every variant computes what eager computes and keeps the state_dict."""

import importlib.util

import pytest
import torch
from torch import nn

from alexnet_fast import alexnet, build_variant
from alexnet_fast.variants import VARIANTS

HAS_KERNELS = importlib.util.find_spec("alexnet_fast.kernels.conv2d_relu") is not None
needs_kernels = pytest.mark.skipif(not HAS_KERNELS, reason="Triton ops not present in kernels/")

# A small paper AlexNet the interpreter runs in seconds: 12/32/48/48/32 filters, 67x67 input
# (the smallest the layers take), dropout off so every variant sees the same function.
SMALL = dict(preset="paper", num_classes=10, width_mult=0.125, input_size=67, dropout=0.0)


def small_model():
    torch.manual_seed(0)
    m = alexnet(**SMALL)
    # paper init (N(0, 0.01)) makes tiny logits; a larger scale keeps the comparison meaningful
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() > 1:
                p.mul_(10.0)
    return m


def test_unknown_names():
    m = small_model()
    with pytest.raises(ValueError, match="unknown variant 'fast'"):
        build_variant(m, "fast")
    with pytest.raises(ValueError, match="unknown compile mode"):
        build_variant(m, "compile", compile_mode="turbo")
    with pytest.raises(TypeError, match="nn.Module"):
        build_variant("alexnet", "eager")
    # any nn.Module is taken (kernels.apply); one with nothing to replace keeps its modules
    assert type(build_variant(nn.Linear(2, 2), "triton")) is nn.Linear


@pytest.mark.parametrize("name", VARIANTS)
def test_state_dict_keys_and_values_kept(name):
    if name.startswith("triton") and not HAS_KERNELS:
        pytest.skip("Triton ops not present in kernels/")
    m = small_model()
    v = build_variant(m, name)
    assert v is not m
    ref, got = m.state_dict(), v.state_dict()
    assert list(got) == list(ref)
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    # any checkpoint loads into any variant
    v.load_state_dict(alexnet(**SMALL).state_dict())


def test_compile_matches_eager():
    m = small_model().eval()
    c = build_variant(m, "compile")
    x = torch.randn(2, 3, 67, 67)
    with torch.no_grad():
        torch.testing.assert_close(c(x), m(x), atol=1e-5, rtol=1e-4)


@needs_kernels
def test_triton_swaps_by_role():
    from alexnet_fast.kernels.nn import Conv2dReLU, Conv2dReLULRN, LRNMaxPool2d, MaxPool2d

    v = build_variant(small_model(), "triton", fuse_conv_lrn=False)
    f = v.features
    for i in range(1, 6):
        assert isinstance(getattr(f, f"conv{i}"), Conv2dReLU)
        assert isinstance(getattr(f, f"relu{i}"), nn.Identity)
    for i in (1, 2):
        assert isinstance(getattr(f, f"lrn{i}"), LRNMaxPool2d)
        assert isinstance(getattr(f, f"pool{i}"), nn.Identity)
    assert isinstance(f.pool5, MaxPool2d)
    f = build_variant(small_model(), "triton").features  # the default: conv -> ReLU -> LRN as one op
    for i in (1, 2):
        assert type(getattr(f, f"conv{i}")) is Conv2dReLULRN and type(getattr(f, f"lrn{i}")) is nn.Identity
        assert type(getattr(f, f"pool{i}")) is MaxPool2d
    assert type(f.conv3) is Conv2dReLU


def _loss_and_grads(model, x, target):
    model.zero_grad(set_to_none=True)
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, target)
    loss.backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


@needs_kernels
@pytest.mark.slow
@pytest.mark.parametrize("name", ["triton", "triton+compile"])
def test_triton_model_matches_eager(name):
    """Logits and every parameter gradient of the whole paper AlexNet (small width, fp32,
    interpreter on CPU) agree with eager, then one SGD step lands on the same weights.

    Tolerances: fp32 end to end through 8 layers; the kernels accumulate in fp32 in a
    different order than eager, so we allow rtol 1e-4 and atol 1e-5 x the largest
    magnitude of each compared tensor."""
    eager = small_model()
    variant = build_variant(eager, name)
    x = torch.randn(2, 3, 67, 67)
    target = torch.tensor([3, 7])

    ref_logits, ref_grads = _loss_and_grads(eager, x, target)
    got_logits, got_grads = _loss_and_grads(variant, x, target)

    def close(a, b, what):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * b.abs().max().item(), msg=lambda m: f"{what}: {m}")

    close(got_logits, ref_logits, "logits")
    assert set(got_grads) == set(ref_grads)
    for n in ref_grads:
        assert ref_grads[n].abs().max() > 0, f"{n}: zero reference gradient makes the check vacuous"
        close(got_grads[n], ref_grads[n], f"grad {n}")

    for model in (eager, variant):
        torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4).step()
    for (n, a), (_, b) in zip(variant.named_parameters(), eager.named_parameters()):
        close(a.detach(), b.detach(), f"weight {n} after one SGD step")


@needs_kernels
def test_triton_variant_runs_channels_last_without_layout_conversions():
    """The triton variant: conv weights KRSC, every feature layer gets and gives
    channels-last tensors (no conversion between layers), logits equal eager's (NCHW);
    eager keeps its NCHW weights."""
    eager = small_model().eval()
    variant = build_variant(eager, "triton").eval()
    for name, p in variant.named_parameters():
        if p.dim() == 4:
            assert p.is_contiguous(memory_format=torch.channels_last), name
    assert all(p.is_contiguous() for p in eager.parameters())
    seen = []

    def record(module, args, out):
        seen.append((type(module).__name__, args[0], out))

    for module in variant.features.children():
        module.register_forward_hook(record)
    x = torch.randn(1, 3, 67, 67)
    with torch.no_grad():
        got, ref = variant(x), eager(x)
    assert len(seen) == len(list(variant.features.children()))
    for kind, inp, out in seen:
        for t in (inp, out):
            # channels innermost (a 1x1 map is both NCHW and NHWC)
            assert t.is_contiguous(memory_format=torch.channels_last) and t.stride(1) == 1, kind
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-5 * ref.abs().max().item())
