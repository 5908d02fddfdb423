"""alexnet_fast.kernels.apply: the Triton ops go into any nn.Module where its dataflow graph proves it safe,
and the numbers (logits, every parameter gradient) stay eager's under the float64 judge."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from alexnet_fast import kernels
from alexnet_fast import alexnet, build_variant
from alexnet_fast.kernels.nn import Conv2dReLU, LocalResponseNorm, LRNMaxPool2d, MaxPool2d
from alexnet_fast.profiling.judge import TOLERANCES, Reference, judge


class FlatAlexNet(nn.Module):
    """AlexNet written the common flat way: attributes called one by one in forward, no
    Sequential; relu1 in place, conv2's ReLU functional, one shared pool module, torch.relu
    after conv5, an in-place ReLU module shared by the FC layers."""

    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(3, w, 11, stride=4, padding=2)
        self.relu1 = nn.ReLU(inplace=True)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        self.conv2 = nn.Conv2d(w, 2 * w, 5, padding=2, groups=2)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.maxpool2 = nn.MaxPool2d(3, 2)
        self.conv3 = nn.Conv2d(2 * w, 3 * w, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.conv4 = nn.Conv2d(3 * w, 3 * w, 3, padding=1)
        self.relu4 = nn.ReLU(inplace=True)
        self.conv5 = nn.Conv2d(3 * w, 2 * w, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2)  # called twice: after conv5 and as pool6
        self.fc6 = nn.Linear(2 * w, 32)
        self.fc7 = nn.Linear(32, 32)
        self.relu = nn.ReLU(inplace=True)  # shared by fc6 and fc7
        self.fc8 = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.lrn1(self.relu1(self.conv1(x))))
        x = F.relu(self.conv2(x))
        x = self.maxpool2(self.lrn2(x))
        x = self.relu3(self.conv3(x))
        x = self.relu4(self.conv4(x))
        x = self.pool(torch.relu(self.conv5(x)))  # 131x131 input: 7x7 -> 3x3
        x = self.pool(x)  # 3x3 -> 1x1
        x = torch.flatten(x, 1)
        x = self.relu(self.fc6(x))
        x = self.relu(self.fc7(x))
        return self.fc8(x)


def _scaled(model: nn.Module, scale: float = 10.0) -> nn.Module:
    """Larger weights where an init makes logits tiny (keeps the comparison meaningful)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(scale)
    return model


def _logits_and_grads(model: nn.Module, x: torch.Tensor, target: torch.Tensor):
    model.eval()  # dropout off: the same function in every run
    logits = model(x)
    F.cross_entropy(logits, target).backward()
    return logits.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


def _apply_and_check(model: nn.Module, input_size: int, expected: list[tuple[str, str]], batch: int = 1,
                     fuse_conv_lrn: bool = False):
    """alexnet_fast.kernels.apply on a copy of ``model``: the expected replacement list, the same parameters
    (the very objects) and state_dict, then logits and every parameter gradient equivalent to
    eager under the harness's float64 judge. Returns the replaced model and the report."""
    torch.manual_seed(1)
    x = torch.randn(batch, 3, input_size, input_size)
    target = torch.randint(0, 10, (batch,))
    eager = copy.deepcopy(model)
    ref32 = _logits_and_grads(copy.deepcopy(model), x, target)
    ref64 = _logits_and_grads(copy.deepcopy(model).double(), x.double(), target)

    params_before = {n: p for n, p in model.named_parameters()}
    keys_before = list(model.state_dict())
    replaced, report = kernels.apply(model, return_report=True, fuse_conv_lrn=fuse_conv_lrn)
    assert replaced is model  # in place
    assert report.summary == expected, str(report)
    assert list(replaced.state_dict()) == keys_before
    assert {n: p for n, p in replaced.named_parameters()}.keys() == params_before.keys()
    for n, p in replaced.named_parameters():
        assert p is params_before[n], f"{n} is a new Parameter: not shared"
    for k, v in eager.state_dict().items():
        assert torch.equal(replaced.state_dict()[k], v), k

    got = _logits_and_grads(replaced, x, target)
    logits = judge({"logits": got[0]}, Reference({"logits": ref32[0]}, {"logits": ref64[0]}), TOLERANCES["fp32"][0])
    assert logits["equivalent"], logits
    for n, g in ref64[1].items():
        assert g.abs().max() > 0, f"{n}: zero reference gradient makes the check vacuous"
    grads = judge(got[1], Reference(ref32[1], ref64[1]), TOLERANCES["fp32"][1])
    assert grads["equivalent"], grads
    return replaced, report


def test_flat_alexnet_functional_and_inplace_relus():
    torch.manual_seed(0)
    model = _scaled(FlatAlexNet(), 3.0)
    replaced, report = _apply_and_check(model, 131, [
        ("conv1", "conv2d_relu"), ("lrn1", "lrn_max_pool2d"), ("conv2", "conv2d_relu"), ("lrn2", "lrn_max_pool2d"),
        ("conv3", "conv2d_relu"), ("conv4", "conv2d_relu"), ("conv5", "conv2d_relu"), ("pool", "max_pool2d")])
    assert report.method == "fx" and report.left == []
    by_name = {r.module: r for r in report.replaced}
    assert by_name["conv2"].absorbed == ("F.relu (node relu)",)
    assert by_name["conv5"].absorbed == ("torch.relu (node relu_1)",)
    assert by_name["conv1"].absorbed == ("relu1 (ReLU)",)
    for i in range(1, 6):
        assert type(getattr(replaced, f"conv{i}")) is Conv2dReLU and getattr(replaced, f"conv{i}").relu
    assert type(replaced.lrn1) is LRNMaxPool2d and type(replaced.lrn2) is LRNMaxPool2d
    # ReLU / pool modules called only where they were absorbed become Identity ...
    for name in ("relu1", "maxpool1", "maxpool2", "relu3", "relu4"):
        assert type(getattr(replaced, name)) is nn.Identity, name
    # ... the shared pool becomes the Triton op, the ReLU shared by the FC layers stays
    assert type(replaced.pool) is MaxPool2d and type(replaced.relu) is nn.ReLU
    # the functional ReLUs are gone from the forward (the traced graph's code, on this instance)
    assert report.forward_rewritten and "forward" in vars(replaced)
    assert "relu(" not in report.forward_source.replace("self.relu(", "")
    assert "fc7" in report.forward_source


def test_torchvision_alexnet():
    torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed")
    torch.manual_seed(0)
    model = torchvision.models.alexnet(num_classes=10)
    # torchvision's own (full) widths at its smallest input, 63x63, batch 1: the smallest
    # torchvision AlexNet the interpreter runs
    replaced, report = _apply_and_check(model, 63, [
        ("features.0", "conv2d_relu"), ("features.2", "max_pool2d"), ("features.3", "conv2d_relu"), ("features.5", "max_pool2d"),
        ("features.6", "conv2d_relu"), ("features.8", "conv2d_relu"), ("features.10", "conv2d_relu"),
        ("features.12", "max_pool2d")])
    assert report.method == "fx" and report.left == [] and not report.forward_rewritten
    assert "forward" not in vars(replaced)  # the user's forward, with ReLUs as Identity modules
    assert all(type(replaced.features[i]) is nn.Identity for i in (1, 4, 7, 9, 11))


def test_this_projects_alexnet_is_matched_on_its_fx_graph():
    """AlexNet.forward skips its input-shape check (Python control flow on the shape) while
    torch.fx traces it, so apply matches on the traced graph, not the nn.Sequential fallback,
    with the same replacements; the user's forward stays, shape check included."""
    torch.manual_seed(0)
    model = _scaled(alexnet(preset="paper", num_classes=10, width_mult=0.125, input_size=67, dropout=0.0))
    replaced, report = _apply_and_check(model, 67, [
        ("features.conv1", "conv2d_relu"), ("features.lrn1", "lrn_max_pool2d"), ("features.conv2", "conv2d_relu"),
        ("features.lrn2", "lrn_max_pool2d"), ("features.conv3", "conv2d_relu"), ("features.conv4", "conv2d_relu"),
        ("features.conv5", "conv2d_relu"), ("features.pool5", "max_pool2d")])
    assert report.method == "fx" and report.trace_error is None, str(report)
    assert report.left == [] and not report.forward_rewritten
    assert "forward" not in vars(replaced)  # AlexNet.forward, with ReLUs and pools as Identity modules
    with pytest.raises(ValueError, match="built for 67x67 inputs"):
        replaced(torch.randn(1, 3, 99, 99))  # the eager check still runs


def test_conv_relu_lrn_chains_become_one_op():
    """The default: conv1 and conv2 (conv -> ReLU -> LRN) become Conv2dReLULRN, their ReLU and LRN
    Identity, the pools after them the Triton max-pool; logits and every gradient as eager's. A
    conv whose channels one program cannot hold keeps conv + ReLU, with the reason as its note."""
    from alexnet_fast.kernels.nn import Conv2dReLULRN

    torch.manual_seed(0)
    model = _scaled(alexnet(preset="paper", num_classes=10, width_mult=0.125, input_size=67, dropout=0.0))
    replaced, report = _apply_and_check(model, 67, [
        ("features.conv1", "conv2d_relu_lrn"), ("features.pool1", "max_pool2d"), ("features.conv2", "conv2d_relu_lrn"),
        ("features.pool2", "max_pool2d"), ("features.conv3", "conv2d_relu"), ("features.conv4", "conv2d_relu"),
        ("features.conv5", "conv2d_relu"), ("features.pool5", "max_pool2d")], fuse_conv_lrn=True)
    f = replaced.features
    assert type(f.conv1) is Conv2dReLULRN and type(f.conv2) is Conv2dReLULRN and f.conv1.size == 5
    assert all(type(getattr(f, n)) is nn.Identity for n in ("relu1", "lrn1", "relu2", "lrn2"))
    wide = nn.Sequential(nn.Conv2d(3, 300, 3), nn.ReLU(), nn.LocalResponseNorm(5), nn.MaxPool2d(2))
    _, report = kernels.apply(wide, return_report=True)
    assert report.summary == [("0", "conv2d_relu"), ("2", "lrn_max_pool2d")]
    assert "LRN not fused: 300 channels need a 512-wide tile" in report.replaced[0].note


class TwoConsumers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3, 2)

    def forward(self, x):
        y = self.conv1(x)
        a = F.relu(y)  # conv1's output feeds the ReLU and the residual add
        z = F.relu(self.conv2(a))
        return self.pool(z + y)


def test_conv_with_two_consumers_is_not_fused():
    torch.manual_seed(0)
    model = TwoConsumers()
    x = torch.randn(2, 3, 9, 9)
    ref = model(x)
    replaced, report = kernels.apply(model, return_report=True)
    assert report.summary == [("conv1", "conv2d"), ("conv2", "conv2d_relu"), ("pool", "max_pool2d")]
    conv1 = next(r for r in report.replaced if r.module == "conv1")
    assert "kept its ReLU apart" in conv1.note and "2 nodes" in conv1.note and "add" in conv1.note
    assert replaced.conv1.relu is False and replaced.conv2.relu is True
    # conv1's F.relu stays in the (rewritten) forward; conv2's is gone
    assert report.forward_source.count("torch.nn.functional.relu") == 1
    torch.testing.assert_close(replaced(x), ref, rtol=1e-5, atol=1e-6)
    # the rewritten forward goes with the model: deep copies and whole-model pickles keep it
    buffer = io.BytesIO()
    torch.save(replaced, buffer)
    buffer.seek(0)
    for other in (copy.deepcopy(replaced), torch.load(buffer, weights_only=False)):
        assert other.forward.module is other and other.forward.source == replaced.forward.source
        assert other.conv1.weight is not replaced.conv1.weight
        torch.testing.assert_close(other(x), ref, rtol=1e-5, atol=1e-6)


def test_model_without_alexnet_parts_comes_back_as_is():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    children = list(model.children())
    state = copy.deepcopy(model.state_dict())
    replaced, report = kernels.apply(model, return_report=True)
    assert replaced is model and list(model.children()) == children
    assert report.replaced == [] and report.left == [] and not report.forward_rewritten
    assert "forward" not in vars(model)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k])


class Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_dilated = nn.Conv2d(3, 4, 3, dilation=2)
        self.relu = nn.ReLU()
        self.conv_reflect = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
        self.pool_ceil = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.lrn = nn.LocalResponseNorm(3)
        self.pool_indices = nn.MaxPool2d(2, return_indices=True)

    def forward(self, x):
        x = self.relu(self.conv_dilated(x))
        x = self.pool_ceil(self.conv_reflect(x))
        x = F.max_pool2d(self.lrn(x), 2)
        return self.pool_indices(x)[0]


def test_unsupported_configurations_are_left_with_their_reason(capsys):
    model = Unsupported()
    x = torch.randn(1, 3, 20, 20)
    ref = model(x)
    replaced, report = kernels.apply(model, verbose=True, return_report=True)
    left = {x.what: x.reason for x in report.left}
    assert "dilation=(2, 2)" in left["conv_dilated"]
    assert "padding_mode='reflect'" in left["conv_reflect"]
    assert "ceil_mode=True" in left["pool_ceil"]
    assert "return_indices=True" in left["pool_indices"]
    assert "functional" in left["F.max_pool2d (node max_pool2d)"]
    # the LRN feeds a functional pool: the single LRN op
    assert report.summary == [("lrn", "local_response_norm")]
    assert type(replaced.lrn) is LocalResponseNorm and type(replaced.conv_dilated) is nn.Conv2d
    assert "ceil_mode=True is not supported" in capsys.readouterr().out
    torch.testing.assert_close(replaced(x), ref, rtol=1e-5, atol=1e-6)


class Untraceable(nn.Module):
    """Data-dependent control flow in forward; one Sequential block, one conv outside it."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.LocalResponseNorm(3), nn.MaxPool2d(2))
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.block(x)
        if x.sum() > 0:
            x = -x
        return self.head(x)


def test_untraceable_forward_uses_sequential_order_only():
    model = Untraceable()
    x = torch.randn(1, 3, 9, 9)
    ref = model(x)
    replaced, report = kernels.apply(model, return_report=True, fuse_conv_lrn=False)
    assert report.method == "sequential" and "TraceError" in report.trace_error
    assert report.summary == [("block.0", "conv2d_relu"), ("block.2", "lrn_max_pool2d")]
    assert [x.what for x in report.left] == ["head"] and "nn.Sequential" in report.left[0].reason
    assert type(replaced.block[1]) is nn.Identity and type(replaced.head) is nn.Conv2d
    torch.testing.assert_close(replaced(x), ref, rtol=1e-5, atol=1e-6)
    fused, report = kernels.apply(Untraceable(), return_report=True)  # the default: conv -> ReLU -> LRN fused
    assert report.summary == [("block.0", "conv2d_relu_lrn"), ("block.3", "max_pool2d")]
    assert [type(m).__name__ for m in fused.block] == ["Conv2dReLULRN", "Identity", "Identity", "MaxPool2d"]
    fused.load_state_dict(model.state_dict())
    torch.testing.assert_close(fused(x), ref, rtol=1e-5, atol=1e-6)


class TrainBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        x = F.relu(self.conv(x))
        return x * 2 if self.training else x


def test_mode_dependent_forward_is_not_rewritten():
    """fx would bake ``self.training`` into the graph: a forward that differs between train
    and eval mode is not replaced by its trace (no Sequential here, so nothing is replaced)."""
    model = TrainBranch()
    replaced, report = kernels.apply(model, return_report=True)
    assert report.method == "sequential" and "train() and eval()" in report.trace_error
    assert report.replaced == [] and "forward" not in vars(replaced)
    assert model.training  # the modes are restored after tracing


def test_apply_twice_changes_nothing_more():
    model = FlatAlexNet()
    kernels.apply(model)
    structure = [(n, type(m)) for n, m in model.named_modules()]
    _, report = kernels.apply(model, return_report=True)
    assert report.replaced == [] and [(n, type(m)) for n, m in model.named_modules()] == structure


def test_build_variant_takes_any_module_and_bad_input():
    v = build_variant(FlatAlexNet(), "triton", fuse_conv_lrn=False)
    assert type(v.conv1) is Conv2dReLU and type(v.lrn1) is LRNMaxPool2d
    v = build_variant(FlatAlexNet(), "triton")
    assert type(v.conv1).__name__ == "Conv2dReLULRN" and type(v.lrn1) is nn.Identity
    with pytest.raises(TypeError, match="nn.Module"):
        kernels.apply("alexnet")


class SharedModules(nn.Module):
    """Modules called at several places: each gets one treatment at all of them."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 4, 3, padding=1)  # called twice, a ReLU after both: fused
        self.relu = nn.ReLU()  # after stem, conv, conv and conv_mixed
        self.lrn = nn.LocalResponseNorm(3)  # called twice, into pools of different shapes: not fused
        self.pool_a = nn.MaxPool2d(2)
        self.pool_b = nn.MaxPool2d(3, 1)
        self.conv_mixed = nn.Conv2d(4, 4, 1)  # a ReLU after one call, pool_a after the other: not fused

    def forward(self, x):
        x = self.relu(self.stem(x))
        x = self.relu(self.conv(x))
        x = self.relu(self.conv(x))
        a = self.pool_a(self.lrn(x))
        b = self.pool_b(self.lrn(x))
        y = self.relu(self.conv_mixed(a))
        z = self.pool_a(self.conv_mixed(a))
        return torch.cat([y.flatten(1), z.flatten(1), b.flatten(1)], 1)


def test_shared_modules_get_one_treatment_everywhere():
    torch.manual_seed(0)
    model = SharedModules()
    x = torch.randn(2, 3, 8, 8)
    eager = copy.deepcopy(model)
    replaced, report = kernels.apply(model, return_report=True)
    assert report.summary == [("stem", "conv2d_relu"), ("conv", "conv2d_relu"), ("lrn", "local_response_norm"), ("pool_a", "max_pool2d"),
                              ("pool_b", "max_pool2d"), ("conv_mixed", "conv2d")]
    notes = {r.module: r.note for r in report.replaced}
    assert "pools of different shapes" in notes["lrn"]
    assert "kept its ReLU apart: its output goes to pool_a" in notes["conv_mixed"]
    assert type(replaced.relu) is nn.ReLU  # still needed after conv_mixed: its fused calls leave the graph
    assert report.forward_rewritten and report.forward_source.count("self.relu(") == 1
    out, ref = replaced(x), eager(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    ref.square().sum().backward()
    for (n, p), (_, q) in zip(replaced.named_parameters(), eager.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"grad {n}: {m}")


def test_modules_with_hooks_are_left():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU())
    seen = []
    model[0].register_forward_hook(lambda m, a, out: seen.append(out.shape))
    model[3].register_forward_pre_hook(lambda m, a: seen.append("relu"))
    _, report = kernels.apply(model, return_report=True)
    assert [(x.what, "hooks" in x.reason) for x in report.left] == [("0", True)]
    conv2 = next(r for r in report.replaced if r.module == "2")
    assert conv2.kind == "conv2d" and "hooks" in conv2.note  # its ReLU (with a hook) stays a module
    model(torch.randn(1, 3, 6, 6))
    assert seen == [(1, 4, 4, 4), "relu"]  # both hooks still run
