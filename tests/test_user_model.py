"""`alexnet-fast bench --model module:callable`: loading and validating a user's factory, and
the harness running it end to end (eager timed, triton interpreted) with the same checks."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from alexnet_fast.cli import main
from alexnet_fast.user_model import ModelSpecError, load_model

HERE = __name__  # this module is importable under this name: the factories below are specs


def tiny_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)), (3, 8, 8)


def no_size():
    return tiny_cnn()[0]


def returns_list():
    return [nn.Linear(2, 2)]


def raises():
    raise RuntimeError("no weights here")


def bad_size():
    return nn.Linear(2, 2), (3, 0, 8)


def wrong_output():
    return nn.Conv2d(3, 2, 3), 8


NOT_CALLABLE = 3


class Zoo:
    @staticmethod
    def cnn():
        return tiny_cnn()


def test_load_model_gives_a_fresh_model_and_its_input_shape():
    user = load_model(f"{HERE}:tiny_cnn")
    assert user.input_shape == (3, 8, 8) and user.num_classes() == 5
    a, b = user.build(), user.build()
    assert isinstance(a, nn.Module) and a is not b
    assert load_model(f"{HERE}:Zoo.cnn", input_size=10).input_shape == (3, 10, 10)  # dotted; --input-size wins
    assert load_model(f"{HERE}:no_size", input_size=8).input_shape == (3, 8, 8)
    assert load_model("alexnet_fast.examples:small_flat_alexnet").num_classes() == 10


@pytest.mark.parametrize("spec, message", [
    ("tiny_cnn", "expected module:callable"),
    (f"{HERE}:", "expected module:callable"),
    ("no_such_module_xyz:factory", "no module named 'no_such_module_xyz'"),
    ("alexnet_fast.no_such_module:factory", "no module named 'alexnet_fast.no_such_module'"),
    (f"{HERE}:missing", "has no attribute 'missing'"),
    (f"{HERE}:Zoo.missing", "has no attribute 'Zoo.missing'"),
    (f"{HERE}:NOT_CALLABLE", "is a int, not callable"),
    (f"{HERE}:returns_list", "returned list, not an nn.Module"),
    (f"{HERE}:raises", "calling the factory failed: RuntimeError: no weights here"),
    (f"{HERE}:no_size", "no input size"),
    (f"{HERE}:bad_size", "is not S, \\(H, W\\) or \\(C, H, W\\)"),
])
def test_bad_specs_are_named(spec, message):
    with pytest.raises(ModelSpecError, match=message):
        load_model(spec)


def test_model_that_gives_no_logits_is_named():
    with pytest.raises(ModelSpecError, match=r"returns \(1, 2, 6, 6\) for a batch of 1"):
        load_model(f"{HERE}:wrong_output").num_classes()


def test_bench_refuses_bad_model_flags(capsys):
    assert main(["bench", "--model", f"{HERE}:returns_list", "--device", "cpu"]) == 2
    assert "returned list, not an nn.Module" in capsys.readouterr().err
    assert main(["bench", "--model", f"{HERE}:tiny_cnn", "--layer", "pool5", "--device", "cpu"]) == 2
    assert "--layer" in capsys.readouterr().err
    assert main(["bench", "--model", f"{HERE}:tiny_cnn", "--width-mult", "0.5", "--device", "cpu"]) == 2
    assert "--width-mult size this project's AlexNet" in capsys.readouterr().err


def test_bench_runs_a_users_model_end_to_end(tmp_path, capsys):
    """eager timed, triton interpreted at the model's own size (the flat example AlexNet,
    width 1/8 at 67x67, batch 1), both checked against eager fp32/fp64."""
    rc = main(["bench", "--model", "alexnet_fast.examples:small_flat_alexnet", "--variant", "eager,triton",
               "--batch-size", "1", "--check-batch-size", "1", "--pass", "inference", "--repeats", "1",
               "--warmup", "0", "--output-dir", str(tmp_path), "--no-progress", "--device", "cpu",
               "--peak-gemm-n", "64", "--peak-copy-mib", "1", "--strict"])
    err = capsys.readouterr().err
    assert rc == 0, err
    # what triton replaced (conv2 with its LRN, where an LRN follows its ReLU)
    assert re.search(r"conv2: conv2d_relu(_lrn)? -> Conv2dReLU(LRN|\(relu=True\)) \(absorbs F\.relu", err), err
    rows = [r for r in json.loads((tmp_path / "results.json").read_text()) if r["scope"] == "model"]
    by_variant = {r["variant"]: r for r in rows}
    assert set(by_variant) == {"eager", "triton"}
    for r in rows:
        assert r["preset"] == "model alexnet_fast.examples:small_flat_alexnet" and r["input_size"] == 67
        assert r["equivalent"] is True
    eager, triton = by_variant["eager"], by_variant["triton"]
    assert eager["status"] == "ok" and eager["median_ms"] > 0
    # FLOPs from FlopCounterMode on the user's model, not this project's AlexNet's
    from torch.utils.flop_counter import FlopCounterMode

    model, _ = __import__("alexnet_fast.examples", fromlist=["x"]).small_flat_alexnet()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.randn(1, 3, 67, 67))
    assert eager["flops"] == counter.get_total_flops()
    assert triton["status"] == "interpreted" and triton.get("median_ms") is None
    assert triton["check_size"] == "model size b1" and "model's own size" in triton["note"]
