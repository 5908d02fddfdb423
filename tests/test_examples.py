"""KernelBench's level-3 AlexNet (``alexnet_fast.examples:kernelbench_alexnet``), the external
anchor: its layer table as the authors describe it, what ``kernels.apply`` replaces in it, and
the small variant through ``alexnet-fast bench --model`` (eager timed, triton interpreted), rows
carrying the TF32 flags they ran under."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from alexnet_fast import kernels
from alexnet_fast.cli import main
from alexnet_fast.examples import KernelBenchAlexNet, kernelbench_alexnet, small_kernelbench_alexnet

# (name, out channels, in channels per filter, kernel, output side at 224) -- 5_AlexNet.py
CONVS = [("conv1", 96, 3, 11, 55), ("conv2", 256, 96, 5, 27), ("conv3", 384, 256, 3, 13),
         ("conv4", 384, 384, 3, 13), ("conv5", 256, 384, 3, 13)]
FCS = [("fc1", 4096, 256 * 6 * 6), ("fc2", 4096, 4096), ("fc3", 1000, 4096)]
POOL_SIDES = {"maxpool1": 27, "maxpool2": 13, "maxpool3": 6}


def _meta_model() -> nn.Module:
    with torch.device("meta"):  # 62M parameters without allocating them
        model, size = kernelbench_alexnet()
    assert size == 224
    return model


def test_layer_table_parameters_and_flops_at_224():
    model = _meta_model()
    sides: dict[str, int] = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            m.register_forward_hook(lambda _m, _a, out, name=name: sides.__setitem__(name, out.shape[-1]))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        logits = model(torch.empty(1, 3, 224, 224, device="meta"))
    assert tuple(logits.shape) == (1, 1000)
    assert sides == {**{n: s for n, _, _, _, s in CONVS}, **POOL_SIDES}
    for name, k, c, r, _ in CONVS:
        conv = getattr(model, name)
        assert (conv.out_channels, conv.in_channels, conv.kernel_size[0], conv.groups) == (k, c, r, 1), name
    assert (model.conv1.stride, model.conv1.padding) == ((4, 4), (2, 2))
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())
    assert all(m.p == 0.0 for m in model.modules() if isinstance(m, nn.Dropout))
    params = sum(k * c * r * r + k for _, k, c, r, _ in CONVS) + sum(o * i + o for _, o, i in FCS)
    assert params == 62_378_344 == sum(p.numel() for p in model.parameters())
    flops = sum(2 * k * c * r * r * s * s for _, k, c, r, s in CONVS) + sum(2 * o * i for _, o, i in FCS)
    assert flops == counter.get_total_flops() == 2_270_512_192  # ~2.27 GFLOP/img, groups=1


def test_kernels_apply_replaces_every_conv_relu_and_pool():
    _, report = kernels.apply(_meta_model(), return_report=True)
    assert report.method == "fx" and report.left == []
    assert report.summary == [("conv1", "conv2d_relu"), ("maxpool1", "max_pool2d"), ("conv2", "conv2d_relu"),
                              ("maxpool2", "max_pool2d"), ("conv3", "conv2d_relu"), ("conv4", "conv2d_relu"),
                              ("conv5", "conv2d_relu"), ("maxpool3", "max_pool2d")]
    assert {r.module: r.absorbed for r in report.replaced}["conv5"] == ("relu5 (ReLU)",)


def test_small_variant_keeps_every_layer():
    model, size = small_kernelbench_alexnet()
    assert size == 63 and model.conv1.out_channels == 6 and model.fc1.in_features == 16 * 1 * 1
    assert tuple(model(torch.randn(2, 3, 63, 63)).shape) == (2, 10)
    with pytest.raises(ValueError, match="input_size 62 is too small"):
        KernelBenchAlexNet(input_size=62)


@pytest.fixture
def backend_tf32_defaults():
    """PyTorch's default TF32 flags (KernelBench's fp32), whatever an earlier test left:
    cuDNN TF32 on, matmul TF32 off -- the cuDNN one the opposite of the fp32 policy's."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _bench(tmp_path, capsys, *args: str) -> dict:
    rc = main(["bench", "--model", "alexnet_fast.examples:small_kernelbench_alexnet", "--repeats", "1",
               "--warmup", "0", "--output-dir", str(tmp_path), "--no-progress", "--device", "cpu",
               "--peak-gemm-n", "64", "--peak-copy-mib", "1", "--strict", *args])
    err = capsys.readouterr().err
    assert rc == 0, err
    return {(r["variant"], r["pass"]): r for r in json.loads((tmp_path / "results.json").read_text())
            if r["scope"] == "model"}


def test_bench_model_small_kernelbench_eager_and_interpreted_triton(tmp_path, capsys):
    rows = _bench(tmp_path, capsys, "--variant", "eager,triton", "--batch-size", "2", "--check-batch-size", "1",
                  "--pass", "inference")
    assert set(rows) == {("eager", "inference"), ("triton", "inference")}
    for (variant, _), r in rows.items():
        assert r["equivalent"] is True and r["input_size"] == 63
        assert r["status"] == ("ok" if variant == "eager" else "interpreted")
    assert isinstance(rows["eager", "inference"]["tf32_cudnn"], bool)  # timed: the flags it ran under
    assert rows["triton", "inference"]["tf32_cudnn"] is None  # not timed: no flags to report


def test_bench_model_training_step_records_the_policys_tf32_flags(tmp_path, capsys, backend_tf32_defaults):
    row = _bench(tmp_path, capsys, "--variant", "eager", "--batch-size", "1", "--pass", "train")["eager", "train"]
    assert row["status"] == "ok" and (row["tf32_matmul"], row["tf32_cudnn"]) == (False, False)


def test_bench_model_inference_times_under_the_precision_flags(tmp_path, capsys, backend_tf32_defaults):
    row = _bench(tmp_path, capsys, "--variant", "eager", "--batch-size", "1", "--pass", "inference")
    assert (row["eager", "inference"]["tf32_matmul"], row["eager", "inference"]["tf32_cudnn"]) == (False, False)
