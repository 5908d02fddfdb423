"""The FLOP / byte model against torch.utils.flop_counter on the eager model."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from alexnet_fast import alexnet
from alexnet_fast.model import make_config
from alexnet_fast.profiling.flops import backward_cost, bytes_model_for, layer_units, lrn_max_pool2d_traffic, model_cost, unit_cost


def counted_flops(model, x, backward=False):
    """FlopCounterMode totals: whole model and per module name."""
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    per_module = {k.removeprefix("AlexNet."): sum(v.values()) for k, v in counter.get_flop_counts().items()}
    return counter.get_total_flops(), per_module


@pytest.mark.parametrize("preset, gflop", [("paper", 1.449), ("torchvision", 1.428)])
def test_forward_flops_match_flop_counter(preset, gflop):
    model = alexnet(preset).eval()
    size = model.config.input_size
    with torch.no_grad():
        total, per_module = counted_flops(model, torch.randn(1, 3, size, size))
    assert model_cost(model.config, 1).mac_flops == total
    assert round(total / 1e9, 3) == gflop
    for unit in layer_units(model.config):
        if unit.op in ("conv2d_relu", "fc_relu", "fc"):
            name = f"{unit.container}.{unit.modules[0]}"
            assert unit_cost(unit, 1).mac_flops == per_module[name], unit.name
        else:
            assert unit_cost(unit, 1).mac_flops == 0


def test_batch_scales_flops_and_activation_bytes():
    config = make_config("paper")
    conv1 = layer_units(config)[0]
    one, four = unit_cost(conv1, 1), unit_cost(conv1, 4)
    assert four.mac_flops == 4 * one.mac_flops
    weights = 4 * (96 * 3 * 11 * 11 + 96)
    # activations scale with the batch, weights are read once per batch
    assert four.bytes_fused - weights == 4 * (one.bytes_fused - weights)
    assert unit_cost(conv1, 1, "fp16").bytes_fused * 2 == one.bytes_fused


@pytest.mark.parametrize("preset, groups", [("torchvision", None), ("paper", 1)])
def test_training_flops_match_flop_counter(preset, groups):
    """Training MACs = 3 x forward - conv1's input grad. Ungrouped nets only: FlopCounterMode
    (torch 2.14) overcounts the backward of grouped convolutions (see profiling/flops.py)."""
    model = alexnet(preset, groups=groups, width_mult=0.25, input_size=67 if preset == "paper" else 64)
    model.eval()  # no dropout: the backward sees every unit
    size = model.config.input_size
    total, _ = counted_flops(model, torch.randn(2, 3, size, size), backward=True)
    assert model_cost(model.config, 2, pass_="train", input_size=size).mac_flops == total


def test_fused_bytes_and_intensity():
    config = make_config("paper")
    units = {u.name: u for u in layer_units(config)}
    assert list(units) == ["conv1+relu1", "lrn1", "pool1", "lrn1+pool1", "conv2+relu2", "lrn2", "pool2",
                           "lrn2+pool2", "conv3+relu3", "conv4+relu4", "conv5+relu5", "pool5", "fc6+relu6",
                           "fc7+relu7", "fc8"]
    s = 4
    x, y = 96 * 55 * 55, 96 * 27 * 27
    lrn_pool = unit_cost(units["lrn1+pool1"], 1)
    assert lrn_pool.bytes_fused == s * (x + y)  # read the activation once, write the pooled map
    lrn, pool = unit_cost(units["lrn1"], 1), unit_cost(units["pool1"], 1)
    assert lrn_pool.bytes_separate == lrn.bytes_separate + pool.bytes_separate
    assert lrn.bytes_separate > 7 * lrn.bytes_fused  # F.local_response_norm: ~15 passes vs 2
    conv = unit_cost(units["conv1+relu1"], 1)
    assert conv.bytes_separate - conv.bytes_fused == s * 2 * x  # the separate ReLU pass
    assert conv.intensity("fused") > conv.intensity("separate") > lrn.intensity("separate")
    assert bytes_model_for("eager") == "separate" and bytes_model_for("triton+compile") == "fused"
    whole = model_cost(config, 1)
    # the fused model moves the fused pairs' bytes instead of their separate LRN and pool
    parts = [u for u in units.values() if not u.fused_pair]
    assert whole.bytes_separate == sum(unit_cost(u, 1).bytes_separate for u in parts)
    assert whole.bytes_fused == sum(unit_cost(u, 1).bytes_fused for u in parts
                                    if u.op not in ("local_response_norm", "max_pool2d") or u.name == "pool5") \
        + lrn_pool.bytes_fused + unit_cost(units["lrn2+pool2"], 1).bytes_fused


def test_torchvision_units_and_bad_input():
    units = [u.name for u in layer_units(make_config("torchvision"))]
    assert "avgpool" in units and not any(u.startswith("local_response_norm") for u in units)
    conv1 = layer_units(make_config("paper"))[0]
    with pytest.raises(ValueError, match="batch_size"):
        unit_cost(conv1, 0)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        unit_cost(conv1, 1, "fp8")
    with pytest.raises(ValueError, match="unknown pass"):
        model_cost(make_config("paper"), 1, pass_="backward")


def test_fused_lrn_pool_traffic_matches_its_docstring_and_the_unit_cost():
    t1 = lrn_max_pool2d_traffic(96, 55, 55)  # lrn1 + pool1, fp16, training
    assert (t1["separate_fwd"], t1["fused_fwd"]) == (1_952_352, 790_752)
    assert (t1["separate_bwd"], t1["fused_bwd"]) == (2_533_152, 1_371_552)
    t2 = lrn_max_pool2d_traffic(256, 27, 27)
    assert (t2["separate_fwd"], t2["fused_fwd"], t2["separate_bwd"], t2["fused_bwd"]) == (
        1_249_536, 503_040, 1_622_784, 876_288)
    saved = sum(t[f"separate_{p}"] - t[f"fused_{p}"] for t in (t1, t2) for p in ("fwd", "bwd"))
    assert saved == 3_816_192
    assert sum(t[f"separate_{p}"] - t[f"fused_{p}"] for t in (lrn_max_pool2d_traffic(96, 55, 55, itemsize=4),
               lrn_max_pool2d_traffic(256, 27, 27, itemsize=4)) for p in ("fwd", "bwd")) == 7_632_384
    unit = next(u for u in layer_units(make_config("paper")) if u.name == "lrn1+pool1")
    no_idx = lrn_max_pool2d_traffic(96, 55, 55, itemsize=2, with_indices=False)
    assert unit_cost(unit, 3, "fp16").bytes_fused == 3 * no_idx["fused_fwd"]
    assert backward_cost(unit, 3, "fp16")[1] == 3 * no_idx["fused_bwd"]


def test_conv_lrn_pool_traffic_moves_the_round_trip_rather_than_removing_it():
    """Paper conv1 / conv2 chains at batch 128 in bf16: LRN in the conv's epilogue moves exactly as
    many bytes as conv + ReLU then the fused LRN + pool, in inference and in a training step (its
    stored ReLU output pays for the read its fused LRN + ReLU backward saves); the pool in the
    epilogue too would save 2 activations forward and 4 in training; eager's separate ops move the most."""
    from alexnet_fast.model import make_config
    from alexnet_fast.profiling.flops import CONV_LRN_PIPELINES, conv_lrn_rows

    rows = conv_lrn_rows(make_config("paper"), 128, "bf16")
    assert [r["pipeline"] for r in rows] == list(CONV_LRN_PIPELINES) * 2
    conv_out = {"conv1+relu1+lrn1+pool1": 128 * 96 * 55 * 55 * 2, "conv2+relu2+lrn2+pool2": 128 * 256 * 27 * 27 * 2}
    for r in rows:
        e = conv_out[r["layer"]]
        if r["pipeline"] == "conv+relu+lrn|pool":
            assert r["saved_vs_apart_inference"] == 0 and r["saved_vs_apart_train"] == 0
        if r["pipeline"] == "conv+relu+lrn+pool (not built)":
            assert r["saved_vs_apart_inference"] == 2 * e and r["saved_vs_apart_train"] == 4 * e
        if r["pipeline"] == "eager":
            assert r["saved_vs_apart_inference"] < -5 * e
    assert conv_out["conv1+relu1+lrn1+pool1"] == 74_342_400  # the 74 MB
