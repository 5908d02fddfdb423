"""The GPU suite's Python without a GPU: plan, estimate, budget order, dry run, report
rendering from the recorded fixture, autotune pruning and the chosen-config record."""

import json
import math
from pathlib import Path

import pytest
import torch

from profiling import gpu_report, suites
from profiling.autotune_limit import chosen_configs, limit_autotune_configs

FIXTURE = Path(__file__).parent / "fixtures" / "gpu_quick_h100_results.json"


def test_gpu_quick_estimate_is_under_ten_minutes_on_an_h100():
    spec = suites.get_suite("gpu-quick")
    cells = suites.build_cells(spec)
    total = suites.estimate(cells)
    assert total < 600, suites.describe_plan(spec, cells, spec.budget_s, "H100")
    assert total <= spec.budget_s < 600  # the run's own budget also fits the ten minutes
    assert all(c.estimate_s > 0 for c in cells)
    # the estimate is the sum of the stated constants: doubling a constant moves it
    assert suites.estimate(cells) == pytest.approx(suites.PROCESS_START_S + sum(c.estimate_s for c in cells), abs=0.1)


def test_gpu_quick_cells_cover_the_questions_in_informative_order():
    cells = suites.build_cells("gpu-quick")
    kinds = [c.kind for c in cells]
    assert kinds[0] == "peaks" and kinds[-1] == "pytest"
    assert set(kinds) == set(suites.KINDS)
    layer = [c.params for c in cells if c.kind == "layer"]
    assert {p["precision"] for p in layer} == {"bf16", "fp16"}
    assert {p["impl"] for p in layer} == {"triton", "eager-nchw", "eager-nhwc", "compile"}
    assert {p["op"] for p in layer} == {"conv_relu", "lrn", "pool", "lrn_pool"}
    assert all(p["passes"] == ["fwd", "bwd"] and p["batch_size"] == 128 for p in layer)
    assert {p["unit"] for p in layer if p["op"] == "conv_relu"} == {f"conv{i}+relu{i}" for i in range(1, 6)}
    # bf16 first, Triton first within a precision; the model before the layouts and the tests
    assert layer[0]["precision"] == "bf16" and layer[0]["impl"] == "triton"
    first_fp16 = next(i for i, p in enumerate(layer) if p["precision"] == "fp16")
    assert all(p["precision"] == "bf16" for p in layer[:first_fp16])
    models = [c.params for c in cells if c.kind == "model"]
    assert {(m["variant"], m["pass"]) for m in models} == {
        (v, p) for v in ("eager", "compile", "triton", "triton+compile") for p in ("inference", "train")}
    assert all(m["precision"] == "bf16" and m["batch_size"] == 128 for m in models)
    assert kinds.index("layout") > max(i for i, k in enumerate(kinds) if k == "model")
    assert {c.params["layout"] for c in cells if c.kind == "layout"} == {"data_parallel", "model_parallel"}


def test_triton_cells_pay_compilation_once_per_op_dtype_and_pass():
    cells = [c for c in suites.build_cells("gpu-quick") if c.kind == "layer" and c.params["impl"] == "triton"]
    conv = [c for c in cells if c.params["op"] == "conv_relu" and c.params["precision"] == "bf16"]
    assert conv[0].estimate_s > conv[1].estimate_s == conv[2].estimate_s  # conv1 compiles, conv2.. reuse
    spec = suites.get_suite("gpu-quick")
    assert spec.autotune_max_configs is not None and spec.autotune_max_configs < suites.TRITON_CONFIGS_PER_TABLE


def test_unknown_suite_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown suite 'nope'.*gpu-quick"):
        suites.get_suite("nope")


def test_full_gpu_default_estimate_and_order():
    from profiling.gpu_suite import plan_jobs
    from profiling.plan import default_plan

    jobs = plan_jobs(default_plan("cuda"))
    whats = [w for w, _ in jobs]
    total = suites.estimate_jobs(whats)
    assert total > 3600, "the full default compiles ~160 cells cold: hours, and the estimate must say so"
    ordered = [w for w, _ in suites.order_jobs(jobs)]
    assert sorted(map(str, ordered)) == sorted(map(str, whats))  # a permutation
    assert ordered[0]["scope"] == "peak"
    head = ordered[1]
    assert head["precision"] == "bf16" and head.get("batch_size") == 128 and head["scope"] == "model"
    assert head.get("compile_mode") in ("-", "default")
    ma = [i for i, w in enumerate(ordered) if w.get("compile_mode") == "max-autotune"]
    default_bf16 = [i for i, w in enumerate(ordered) if w.get("precision") == "bf16" and w.get("compile_mode") != "max-autotune"]
    assert min(ma) > max(default_bf16)


def test_dry_run_prints_plan_estimate_and_renders_the_fixture(tmp_path, capsys):
    from alexnet_fast.cli import main

    assert main(["bench", "--suite", "gpu-quick", "--dry-run", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "suite gpu-quick" in out and "estimate:" in out and "min" in out
    assert "pytest -m gpu" in out and "conv1+relu1 bf16 triton" in out
    report = (tmp_path / "gpu" / "dry-run" / "REPORT.md").read_text()
    assert "NVIDIA H100 80GB HBM3" in report and "no number in it was measured by this run" in report


def test_dry_run_of_the_full_default_prints_its_estimate(tmp_path, capsys):
    from alexnet_fast.cli import main

    assert main(["bench", "--dry-run", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "full GPU default" in out and " h " in out + " " and "most informative first" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_suite_without_cuda_says_so(tmp_path, capsys):
    from alexnet_fast.cli import main

    assert main(["bench", "--suite", "gpu-quick", "--output-dir", str(tmp_path)]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "gpu").exists()


def _fixture() -> dict:
    return json.loads(FIXTURE.read_text())


def test_report_from_the_recorded_fixture():
    results = _fixture()
    assert results["meta"]["device"] == "NVIDIA H100 80GB HBM3"
    text = gpu_report.render(results)
    assert text.startswith("# GPU run: NVIDIA H100 80GB HBM3 -- suite gpu-quick")
    # NVML fields as columns and values
    assert "| SM MHz | W | C | throttle |" in text and "1,980" in text
    # the throttled row is flagged in its table line and in the answers
    line = next(ln for ln in text.splitlines() if ln.startswith("| conv2+relu2 | fwd | bf16 | triton |"))
    assert "THROTTLED (sw_power_cap)" in line and "1,410" in line
    assert "1 measured THROTTLED: conv2+relu2 fwd bf16 triton" in text
    # one answer line per (op, pass, precision), with the ratio and the fraction of peak
    answers = [ln for ln in text.split("## Answers")[1].split("##")[0].splitlines() if ln.startswith("- **")]
    for kernel in ("conv2d_relu", "local_response_norm", "max_pool2d", "lrn_max_pool2d"):
        for pass_ in ("fwd", "bwd"):
            for prec in ("bf16", "fp16"):
                hits = [a for a in answers if a.startswith(f"- **{kernel} {pass_} {prec}**")]
                assert len(hits) == 1, (kernel, pass_, prec)
                assert "x its speed" in hits[0] and "% of" in hits[0]
    assert "NOT EQUIVALENT on pool5" in text
    assert "equivalence + CUDA code path only, not a two-GPU speed" in text
    assert "skipped: budget" in text
    assert "96 passed" in text


def test_report_answer_numbers_follow_the_rows():
    results = _fixture()
    rows = [r for r in results["rows"] if r.get("scope") == "layer" and r["op"] == "conv_relu"
            and r["pass"] == "fwd" and r["precision"] == "fp16"]
    ratios = []
    for unit in {r["layer"] for r in rows}:
        mine = {r["impl"]: r for r in rows if r["layer"] == unit}
        best = min(mine[b]["median_ms"] for b in gpu_report.BASELINES if b in mine)
        ratios.append(best / mine["triton"]["median_ms"])
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
    line = next(a for a in gpu_report.layer_answers(results["rows"]) if "conv2d_relu fwd fp16" in a)
    assert f"{geomean:.2f}x its speed" in line
    # making Triton twice as fast flips the verdict
    for r in rows:
        if r["impl"] == "triton":
            r["median_ms"] /= 4
    line = next(a for a in gpu_report.layer_answers(results["rows"]) if "conv2d_relu fwd fp16" in a)
    assert "FASTER than" in line


def test_report_of_a_cut_off_run_renders():
    results = {"meta": {"device": "NVIDIA H100 80GB HBM3", "suite": "gpu-quick", "budget_s": 570},
               "cells": [{"kind": "peaks", "name": "peaks", "estimate_s": 2, "status": "done", "elapsed_s": 0.1},
                         {"kind": "layer", "name": "conv1+relu1 bf16 triton", "estimate_s": 15, "status": "pending"}],
               "rows": [], "autotune": [], "codegen": [], "pytest": None}
    text = gpu_report.render(results)
    assert "per layer: no rows" in text and "conv1+relu1 bf16 triton (pending)" in text


def test_backward_cost():
    from alexnet_fast.model import make_config
    from profiling.flops import layer_units, unit_cost
    from profiling.gpu_suite import _needs_input_grad, backward_cost

    units = {u.name: u for u in layer_units(make_config("paper"))}
    conv1, conv2, pool1 = units["conv1+relu1"], units["conv2+relu2"], units["pool1"]
    assert not _needs_input_grad(conv1) and _needs_input_grad(conv2)
    f1 = unit_cost(conv1, 4, "bf16")
    f2 = unit_cost(conv2, 4, "bf16")
    assert backward_cost(conv1, 4, "bf16", input_grad=False)[0] == f1.mac_flops + f1.other_flops
    assert backward_cost(conv2, 4, "bf16", input_grad=True)[0] == 2 * f2.mac_flops + f2.other_flops
    x = 4 * 96 * 55 * 55
    y = 4 * 96 * 27 * 27
    assert backward_cost(pool1, 4, "bf16", input_grad=True)[1] == 2 * (2 * x + y)


def _autotuner(n):
    import triton
    import triton.language as tl

    @triton.jit
    def kernel(x_ptr, BLOCK: tl.constexpr):
        pass

    return triton.autotune(configs=[triton.Config({"BLOCK": 16 * (i + 1)}, num_warps=4) for i in range(n)],
                           key=["n"])(kernel)


def test_autotune_limit_prunes_and_restores():
    tuner = _autotuner(3)
    assert len(tuner.prune_configs({})) == 3
    with limit_autotune_configs(2):
        assert [c.kwargs["BLOCK"] for c in tuner.prune_configs({})] == [16, 32]
        later = _autotuner(3)  # autotuners built inside the block are pruned too
        assert len(later.prune_configs({})) == 2
    assert len(tuner.prune_configs({})) == 3
    with limit_autotune_configs(None):
        assert len(tuner.prune_configs({})) == 3
    with pytest.raises(ValueError, match="max_configs"):
        with limit_autotune_configs(0):
            pass


def test_chosen_configs_lists_each_key():
    tuner = _autotuner(2)
    tuner.cache[(4096, "torch.bfloat16")] = tuner.configs[1]
    rows = [r for r in chosen_configs() if r["key"] == "(4096, torch.bfloat16)"]
    assert len(rows) == 1
    row = rows[0]
    assert row["kernel"] == "kernel" and row["dtype"] == "bf16" and row["candidates"] == 2
    assert row["config"]["BLOCK"] == 32 and row["config"]["num_warps"] == 4


def test_layout_ranks_may_share_one_gpu(monkeypatch):
    from alexnet_fast.layouts import comm

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv(comm.SHARE_GPU_ENV, raising=False)
    assert comm.choose_device(2).type == "cpu"
    with pytest.raises(ValueError, match="need 2 GPU"):
        comm.choose_device(2, "cuda")
    monkeypatch.setenv(comm.SHARE_GPU_ENV, "1")
    assert comm.choose_device(2).type == "cuda"
    assert comm.choose_device(2, "cuda").type == "cuda"


def test_layer_cells_run_judge_and_write_on_cpu(tmp_path):
    """The per-layer cell's code path on CPU (eager in both layouts, Triton interpreted) at
    batch 2: reference, judge, timer, rates, results.json and REPORT.md after each row. On
    CPU these timings mean nothing; the test checks the plumbing, not speed."""
    from dataclasses import replace

    from profiling.gpu_suite import SuiteRun

    spec = replace(suites.get_suite("gpu-quick"), layer_batch=2, layer_precisions=("fp32",),
                   layer_ops=("pool",), layer_impls=("triton", "eager-nchw", "eager-nhwc"), warmup=0, repeats=1)
    run = SuiteRun(spec, tmp_path, device="cpu", progress=False)
    run.results["meta"] = {**run._meta(), "peaks_gflops": {"fp32": 1000.0}, "peak_gbytes_per_s": 100.0}
    from profiling.telemetry import Telemetry

    run.telemetry = Telemetry("cpu", quiet=True)
    cells = [c for c in run.cells if c.kind == "layer" and c.params["unit"] == "pool5"]
    assert [c.params["impl"] for c in cells] == ["triton", "eager-nchw", "eager-nhwc"]
    for cell in cells:
        run._cell_layer(cell)
    rows = run.results["rows"]
    assert len(rows) == 6 and {r["pass"] for r in rows} == {"fwd", "bwd"}
    assert all(r["status"] == "ok" and r["equivalent"] for r in rows), rows
    assert {r["layout"] for r in rows} == {"nchw", "nhwc"}
    assert all(r["bound"] == "memory" and r["pct_peak"] > 0 and r["median_ms"] > 0 for r in rows)
    saved = json.loads((run.run_dir / "results.json").read_text())
    assert len(saved["rows"]) == 6
    report = (run.run_dir / "REPORT.md").read_text()
    assert "- **max_pool2d fwd fp32**: Triton" in report and "x its speed" in report
