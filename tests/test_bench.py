"""`alexnet-fast bench` (profiling/bench.py and the engine it runs): equivalence before
timing, failed and interpreted rows, the flags, the CLI."""

import argparse
import json
import math
import os

import pandas as pd
import pytest
import torch

from alexnet_fast.cli import main
from alexnet_fast.variants import build_variant
from alexnet_fast.profiling import bench, engine, judge as J, layout_bench, plan as P
from alexnet_fast.profiling.interrupts import Interrupted
from alexnet_fast.profiling.results import read_results

TINY = dict(preset="paper", width_mult=0.125, input_size=67)


def tiny_plan(variants, passes=("inference",), layers=(), batch_sizes=(2,)):
    return P.BenchPlan(device="cpu", variants=[P.VariantSpec(*v) if isinstance(v, tuple) else P.VariantSpec(v)
                                                for v in variants],
                       precisions=["fp32"], batch_sizes=list(batch_sizes), passes=list(passes),
                       layers=list(layers), layer_batch_size=2, warmup=1, repeats=2, threads=1,
                       peak_gemm_n=256, peak_copy_mib=8, **TINY)


def wrong_variant(model, name, *, compile_mode="default", copy_model=True):
    """A deliberately wrong "compile" variant: every output 10% too large."""
    model = build_variant(model, "eager", copy_model=copy_model)
    if name == "compile":
        model.register_forward_hook(lambda m, args, out: out * 1.1)
    return model


def interpreted_triton_stand_in(model, name, *, compile_mode="default", copy_model=True):
    """Stands in for the Triton variants: eager math, so the interpreted path is exercised
    without the interpreter's cost."""
    return build_variant(model, "eager", copy_model=copy_model)


def by(rows, **match):
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def test_failed_variant_is_reported_and_not_timed(tmp_path):
    plan = tiny_plan(["eager", "compile"], passes=("inference", "train"), layers=("conv1+relu1", "fc8"))
    rows = bench.Harness(plan, tmp_path, progress=False, build_variant=wrong_variant).run()
    eager = by(rows, scope="model", variant="eager")
    assert [r["status"] for r in eager] == ["ok", "ok"]
    assert all(r["median_ms"] > 0 and r["images_per_s"] > 0 for r in eager)
    assert eager[0]["max_rel_err"] == 0.0 and eager[1]["grad_max_rel_err"] == 0.0
    wrong = by(rows, scope="model", variant="compile")
    assert [r["status"] for r in wrong] == ["failed", "failed"]
    assert all("median_ms" not in r for r in wrong)  # never timed
    assert wrong[0]["max_rel_err"] == pytest.approx(0.1, rel=1e-3)
    assert wrong[1]["grad_max_rel_err"] > J.TOLERANCES["fp32"][1]
    assert wrong[0]["fp64_err"] > wrong[0]["tolerance"] and wrong[1]["fp64_err"] > wrong[1]["tolerance"]
    layers = by(rows, scope="layer", variant="compile")
    assert {r["layer"]: r["status"] for r in layers} == {"conv1+relu1": "failed", "fc8": "failed"}
    ok_layers = by(rows, scope="layer", variant="eager")
    assert all(r["status"] == "ok" and r["gflops_per_s"] > 0 and r["intensity"] > 0 for r in ok_layers)
    # what was written: every row carries the environment, failed rows have no time
    table = read_results(tmp_path)
    assert len(table) == len(rows)
    for col in ("device", "threads", "torch", "python", "git_commit", "machine"):
        assert table[col].notna().all(), col
    assert (table.threads == 1).all()
    failed = table[table.status == "failed"]
    assert failed.median_ms.isna().all() and len(failed) == 4
    peaks = table[table.scope == "peak"]
    assert set(peaks.layer) == {"gemm", "copy"} and (peaks.gflops_per_s.fillna(peaks.gbytes_per_s) > 0).all()


def test_triton_without_gpu_is_interpreted_at_reduced_size(tmp_path):
    plan = tiny_plan(["triton"], passes=("inference", "train"), layers=("lrn1+pool1", "fc8"))
    plan.width_mult, plan.input_size = 0.25, 99  # the timed size; the check runs at plan.check
    plan.check = P.ReducedSize(width_mult=0.125, input_size=67, batch_size=1)
    rows = bench.Harness(plan, tmp_path, progress=False, build_variant=interpreted_triton_stand_in).run()
    model_rows = by(rows, scope="model")
    assert [(r["pass"], r["status"]) for r in model_rows] == [("inference", "interpreted"), ("train", "interpreted")]
    for r in model_rows + by(rows, scope="layer", layer="lrn1+pool1"):
        assert r["status"] == "interpreted" and r["equivalent"] and r["compile_s"] is None
        assert "median_ms" not in r and (r["input_size"], r["width_mult"], r["batch_size"]) == (67, 0.125, 1)
        assert r["check_size"] == "w0.125@67 b1"
    fc8 = by(rows, scope="layer", layer="fc8")[0]  # no Triton kernel in it: timed at the real size
    assert fc8["status"] == "ok" and fc8["median_ms"] > 0 and fc8["check_size"] == "full" and fc8["batch_size"] == 2


def test_wrong_interpreted_triton_is_failed_without_a_time(tmp_path):
    """An interpreted cell that fails its check keeps no interpreter time (no compile_s)."""
    def wrong_triton(model, name, *, compile_mode="default", copy_model=True):
        model = build_variant(model, "eager", copy_model=copy_model)
        model.register_forward_hook(lambda m, args, out: out * 1.1)
        return model

    plan = tiny_plan(["triton"], layers=("lrn1+pool1",))
    plan.check = P.ReducedSize(width_mult=0.125, input_size=67, batch_size=1)
    rows = bench.Harness(plan, tmp_path, progress=False, build_variant=wrong_triton).run()
    checked = by(rows, scope="model") + by(rows, scope="layer")
    assert [r["status"] for r in checked] == ["failed", "failed"]
    assert all(r["compile_s"] is None and "median_ms" not in r for r in checked)


def test_real_eager_and_compile_agree(tmp_path):
    plan = tiny_plan(["eager", "compile"], batch_sizes=(1,))
    rows = bench.Harness(plan, tmp_path, progress=False).run()
    compiled = by(rows, scope="model", variant="compile")[0]
    assert compiled["status"] == "ok", compiled.get("note")
    assert compiled["max_rel_err"] <= J.TOLERANCES["fp32"][0]
    assert compiled["compile_s"] > 0 and compiled["median_ms"] > 0
    assert compiled["label"] == "compile" and compiled["compile_mode"] == "default"


def test_verdict_allows_what_eager_fp32_itself_misses():
    """An ill-conditioned tensor: eager fp32 is 1e-2 from fp64; a variant as far passes, one
    O(1) away fails, and a well-conditioned tensor keeps the tight floor."""
    torch.manual_seed(0)
    exact = {"conv1.weight": torch.randn(1000, dtype=torch.float64), "fc8.weight": torch.randn(1000, dtype=torch.float64)}
    eager = {"conv1.weight": (exact["conv1.weight"] + 1e-2 * torch.randn(1000, dtype=torch.float64)).float(),
             "fc8.weight": exact["fc8.weight"].float()}
    ref = J.Reference(eager, exact)
    assert ref.eager_err["conv1.weight"] == pytest.approx(1e-2, rel=0.1)
    close = {"conv1.weight": (exact["conv1.weight"] + 2e-2 * torch.randn(1000, dtype=torch.float64)).float(),
             "fc8.weight": exact["fc8.weight"].float()}
    verdict = J.judge(close, ref, floor=1e-3)
    assert verdict["equivalent"] and verdict["worst_tensor"] == "conv1.weight"
    assert verdict["rel"] > 1e-3  # far from eager fp32 in max-norm, yet as accurate as eager is
    wrong = dict(close, **{"conv1.weight": (exact["conv1.weight"] * 0.5).float()})
    assert not J.judge(wrong, ref, floor=1e-3)["equivalent"]
    off_by_1e3 = dict(eager, **{"fc8.weight": (exact["fc8.weight"] * 1.002).float()})
    verdict = J.judge(off_by_1e3, ref, floor=1e-3)
    assert not verdict["equivalent"] and verdict["worst_tensor"] == "fc8.weight"
    assert verdict["tolerance"] == pytest.approx(1e-3, rel=0.01)


def test_relative_error():
    ref = torch.tensor([1.0, -4.0, 0.0])
    assert J.relative_error(ref + torch.tensor([0.0, 0.4, 0.0]), ref) == pytest.approx((0.4, 0.1))
    assert J.relative_error(torch.tensor([1.0, float("nan"), 0.0]), ref) == (math.inf, math.inf)
    with pytest.raises(ValueError, match="shape"):
        J.relative_error(torch.zeros(2), ref)


def parse(argv):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_override_the_embedded_default():
    plan = P.plan_from_args(parse(["--variant", "eager,compile", "--compile-mode", "default",
                                   "--compile-mode", "max-autotune", "--batch-size", "1,8",
                                   "--batch-size", "2", "--pass", "train", "--layer", "lrn1+pool1,fc8",
                                   "--width-mult", "0.5", "--device", "cpu"]))
    assert [v.label for v in plan.variants] == ["eager", "compile", "compile[max-autotune]"]
    assert plan.batch_sizes == [1, 8, 2] and plan.passes == ["train"]
    assert plan.layers == ["lrn1+pool1", "fc8"] and plan.width_mult == 0.5
    default = P.plan_from_args(parse(["--device", "cpu"]))
    assert default.precisions == ["fp32"] and 1 <= default.threads <= os.cpu_count()
    assert "conv1+relu1" in default.layers
    assert P.plan_from_args(parse(["--layer", "none", "--device", "cpu"])).layers == []


@pytest.mark.parametrize("argv, message", [
    (["--variant", "fast"], "unknown variant 'fast'"),
    (["--precision", "tf32"], "tf32 needs a CUDA device"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--batch-size", "x"], "--batch-size takes integers"),
    (["--batch-size", "0"], "batch sizes must be positive"),
    (["--layer", "conv9"], "unknown layer 'conv9'"),
    (["--layout", "pipeline"], "unknown layout 'pipeline'"),
    (["--width-mult", "0.01"], "groups=2 does not divide"),
])
def test_bad_flags_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        P.plan_from_args(parse(argv + ["--device", "cpu"]))


def test_two_device_layouts_come_from_bench_layout(tmp_path, monkeypatch):
    calls = []

    def bench_layout(layout, variant, precision, batch_size, pass_, *, preset, width_mult, input_size,
                     warmup, repeats, compile_mode, device, world_size, seed, timed, timeout_s, autotune_max_configs,
                     target_half_width, time_cap_s):
        calls.append((layout, variant, precision, batch_size, pass_, width_mult))
        assert timeout_s > 0 and autotune_max_configs is None  # no budget: the launcher's default timeout
        assert (target_half_width, time_cap_s) == (0.03, 20.0)  # the engine's pairing reaches the ranks
        return dict(median_ms=20.0, timer="perf_counter", comm_ms=3.0, comm_bytes=1000,
                    comm_bytes_model=1000, max_abs_err=1e-7, max_rel_err=1e-6, equivalent=layout != "model_parallel",
                    backend="gloo", world_size=2)

    monkeypatch.setattr(layout_bench, "bench_layout", bench_layout)
    plan = tiny_plan(["eager"])
    plan.layouts = ["data_parallel", "model_parallel"]
    rows = bench.Harness(plan, tmp_path, progress=False).run()
    dp, mp = by(rows, layout="data_parallel")[0], by(rows, layout="model_parallel")[0]
    assert calls == [("data_parallel", "eager", "fp32", 2, "inference", 0.125),
                     ("model_parallel", "eager", "fp32", 2, "inference", 0.125)]
    assert dp["status"] == "ok" and dp["median_ms"] == 20.0 and dp["comm_ms"] == 3.0 and dp["images_per_s"] == 100.0
    assert mp["status"] == "failed" and "median_ms" not in mp


def test_interpreted_layout_cells_run_at_the_check_batch(tmp_path, monkeypatch):
    """Without a GPU a triton cell on a two-device layout is checked once at the reduced size,
    batch included (the interpreter at the timed batch would take hours)."""
    calls = []

    def bench_layout(layout, variant, precision, batch_size, pass_, *, preset, width_mult, input_size,
                     warmup, repeats, compile_mode, device, world_size, seed, timed, timeout_s, autotune_max_configs,
                     target_half_width, time_cap_s):
        calls.append((layout, variant, batch_size, width_mult, input_size, timed))
        return dict(comm_bytes_model=10, max_abs_err=1e-7, max_rel_err=1e-6, equivalent=True, backend="gloo",
                    world_size=2)

    monkeypatch.setattr(layout_bench, "bench_layout", bench_layout)
    plan = tiny_plan(["triton"], batch_sizes=(16, 32))
    plan.width_mult, plan.input_size, plan.layouts = 0.25, 99, ["data_parallel"]
    plan.check = P.ReducedSize(width_mult=0.125, input_size=67, batch_size=2)
    rows = by(bench.Harness(plan, tmp_path, progress=False).run(), scope="model")
    assert calls == [("data_parallel", "triton", 2, 0.125, 67, False)]
    assert [(r["status"], r["batch_size"], r["check_size"]) for r in rows] == [("interpreted", 2, "w0.125@67 b2")]
    assert "median_ms" not in rows[0]


def test_interrupted_run_writes_what_it_has_and_closes_telemetry(tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt is not an Exception: it ends the matrix) keeps the rows
    measured so far on disk, marks the cell it stopped, and leaves the process as the run
    found it (telemetry closed, the signal handlers restored)."""
    import signal

    plan = tiny_plan(["eager"], batch_sizes=(1, 2))
    harness = bench.Harness(plan, tmp_path, progress=False)
    calls = []
    real = engine.Engine.cell_model

    def interrupted(self, p):
        calls.append(p["batch_size"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, p)

    closed = []
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(engine.Engine, "cell_model", interrupted)
    monkeypatch.setattr(harness.telemetry, "close", lambda: closed.append(True))
    with pytest.raises(KeyboardInterrupt) as info:
        harness.run()
    assert isinstance(info.value, Interrupted) and info.value.signum == signal.SIGINT
    assert closed == [True] and (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    assert [r["status"] for r in harness.records] == ["done", "done", "interrupted"]
    table = read_results(tmp_path)
    assert set(table.scope) == {"peak", "model"} and (table[table.scope == "model"].batch_size == 1).all()


def test_cli_bench_writes_results(tmp_path, capsys):
    rc = main(["bench", "--variant", "eager", "--batch-size", "1", "--pass", "inference", "--layer", "pool5",
               "--width-mult", "0.125", "--input-size", "67", "--repeats", "1", "--warmup", "0",
               "--output-dir", str(tmp_path), "--no-progress", "--device", "cpu", "--peak-gemm-n", "128",
               "--peak-copy-mib", "4"])
    assert rc == 0
    assert "wrote" in capsys.readouterr().err
    records = json.loads((tmp_path / "results.json").read_text())
    assert {r["scope"] for r in records} == {"peak", "model", "layer"}
    assert pd.read_csv(tmp_path / "results.csv").shape[0] == len(records)


@pytest.mark.slow
def test_real_triton_variant_is_equivalent_interpreted(tmp_path):
    plan = tiny_plan(["triton"], passes=("inference", "train"), layers=("conv2+relu2", "lrn1+pool1"))
    plan.check = P.ReducedSize(width_mult=0.125, input_size=67, batch_size=1)
    rows = bench.Harness(plan, tmp_path, progress=False).run()
    results = by(rows, variant="triton")
    assert len(results) == 4
    for r in results:
        assert r["status"] == "interpreted", (r["layer"], r.get("note"), r.get("max_rel_err"), r.get("grad_max_rel_err"))


def test_low_precision_cells_are_judged_against_fp64(tmp_path):
    """fp16 (with its loss scale) and bf16 on the torchvision preset (PyTorch has no CPU
    half-precision LRN): errors vs fp32 are real, the verdict uses the precision's floor."""
    plan = tiny_plan(["eager"], passes=("inference", "train"))
    plan.preset, plan.width_mult, plan.input_size, plan.precisions = "torchvision", 0.25, 64, ["fp16", "bf16"]
    rows = by(bench.Harness(plan, tmp_path, progress=False).run(), scope="model")
    assert [(r["precision"], r["pass"], r["status"]) for r in rows] == [
        ("fp16", "inference", "ok"), ("fp16", "train", "ok"), ("bf16", "inference", "ok"), ("bf16", "train", "ok")]
    fp16_logits, bf16_logits = rows[0]["max_rel_err"], rows[2]["max_rel_err"]
    assert 0 < fp16_logits < bf16_logits < J.TOLERANCES["bf16"][0]  # 10-bit vs 7-bit mantissa
    assert rows[1]["tolerance"] >= J.TOLERANCES["fp16"][1] and 0 < rows[1]["grad_max_rel_err"]


def slowed_compile(model, name, *, compile_mode="default", copy_model=True):
    """A "compile" stand-in that is eager plus a 4 ms sleep per call: a known slowdown whatever
    the machine's load (a sleep needs no CPU)."""
    import time

    model = build_variant(model, "eager", copy_model=copy_model)
    if name == "compile":
        model.register_forward_hook(lambda m, args, out: time.sleep(0.004))
    return model


def test_non_baseline_rows_are_paired_rounds_against_eager_with_an_interval(tmp_path):
    """The model and per-layer rows of a variant carry the speedup over eager from paired
    rounds in their own cell, its interval, rounds and target_met; eager's rows none; every
    timed row the interference sampled through its cell."""
    plan = tiny_plan(["eager", "compile"], layers=("fc8",))
    harness = bench.Harness(plan, tmp_path, progress=False, build_variant=slowed_compile, pair_cap_s=5.0)
    rows = harness.run()
    timed = [r for r in rows if r["scope"] in ("model", "layer") and r["status"] == "ok"]
    slowed = [r for r in timed if r["variant"] == "compile"]
    assert {r["scope"] for r in slowed} == {"model", "layer"}
    for r in slowed:
        assert r["rounds"] >= 10 and r["repeats"] == r["rounds"] and isinstance(r["target_met"], bool)
        assert r["speedup_ci_low"] <= r["speedup"] <= r["speedup_ci_high"] < 1.0, r  # slower: 4 ms more a call
        assert r["significance"] == "slower" and r["stop_reason"] in ("target", "time_cap", "max_rounds")
        assert r["baseline_median_ms"] < r["median_ms"] - 3.0  # the eager side of the same rounds
    for r in (r for r in timed if r["variant"] == "eager"):
        assert "speedup" not in r and r["repeats"] == plan.repeats
    assert all(r["interference"] in ("yes", "no", "unavailable") for r in timed)
    saved = read_results(tmp_path)
    assert {"speedup", "speedup_ci_low", "speedup_ci_high", "rounds", "target_met", "interference"} <= set(saved.columns)


def test_pairing_flags_are_checked(tmp_path, capsys):
    assert main(["bench", "--ci-target", "0", "--output-dir", str(tmp_path)]) == 2
    assert "--ci-target must be a finite positive number" in capsys.readouterr().err
