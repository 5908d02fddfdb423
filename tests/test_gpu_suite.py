"""The GPU suite's plan without a GPU: its cells, the estimate and its constants, the budget
order, the dry run (H100, H200, B200), the report rendered from the recorded example, the
codegen cell's spec selection, the pytest cell's bounded selection, autotune pruning and
the chosen-config record. The cells themselves run in test_gpu_suite_smoke.py."""

import importlib
import json
import math

import pytest
import torch

from alexnet_fast.vocabulary import BASELINE_IMPLS
from alexnet_fast.profiling import suites
from alexnet_fast.profiling.launched_specs import CODEGEN_KERNEL_ORDER, codegen_selection
from alexnet_fast.profiling.cell_types import KINDS
from alexnet_fast.profiling import estimates
from alexnet_fast.profiling.render import suite as suite_report
from alexnet_fast.profiling.autotune_limit import chosen_configs, limit_autotune_configs
from alexnet_fast.profiling.gpu_suite import EXAMPLE


def test_gpu_quick_estimate_is_under_its_budget_of_at_most_480_s():
    spec = suites.get_suite("gpu-quick")
    cells = suites.build_cells(spec)
    total = estimates.estimate(cells)
    assert total < spec.budget_s <= 480, suites.describe_plan(spec, cells, spec.budget_s, "H100")
    assert all(c.estimate_s > 0 for c in cells)
    # the estimate is the sum of the stated constants: doubling a constant moves it
    assert total == pytest.approx(estimates.PROCESS_START_S + sum(c.estimate_s for c in cells), abs=0.1)
    assert all(c.value > 0 and len(c.derivation) > 30 for c in estimates.CONSTANTS.values())


def test_the_estimate_counts_every_compile_a_cell_makes():
    """A compiled training cell compiles twice (the eval-mode check, the train-mode step) and
    a compiled per-layer cell twice (no-grad forward; forward with grad + backward): the
    estimate pays each (the real counts are checked on CPU by the smoke test)."""
    cells = {c.name: c for c in suites.build_cells("gpu-quick")}
    train, inference = cells["compile bf16 b128 train"], cells["compile bf16 b128 inference"]
    assert (inference.compiles, train.compiles) == (1, 2)
    assert train.estimate_s >= 2 * estimates.COMPILE_MODEL_TRAIN_S
    assert cells["triton+compile bf16 b128 train"].compiles == 3  # + the frame of the channels-last pre-hook
    layer = cells["lrn1+pool1 bf16 compile"]
    assert layer.compiles == 2 and layer.estimate_s >= 2 * estimates.COMPILE_LAYER_FRAME_S
    assert cells["conv2+relu2 bf16 triton"].compiles == 0
    interpreted = {c.name: c for c in suites.build_cells("gpu-quick", interpreted=True)}
    assert interpreted["triton+compile bf16 b128 train"].compiles == 2  # checked, not timed: no train frame


def test_gpu_quick_cells_cover_the_questions_in_informative_order():
    cells = suites.build_cells("gpu-quick")
    kinds = [c.kind for c in cells]
    assert kinds[:2] == ["preflight", "peaks"]
    assert set(kinds) == set(KINDS)
    layer = [c.params for c in cells if c.kind == "layer"]
    assert {p["precision"] for p in layer} == {"bf16"}  # fp16's path is bf16's: pytest checks its numerics
    assert {p["impl"] for p in layer} == {"triton", "eager-nchw", "eager-nhwc", "compile", "triton-lrn-apart"}
    assert {p["op"] for p in layer} == {"conv2d_relu", "local_response_norm", "max_pool2d", "lrn_max_pool2d",
                                        "conv2d_relu_lrn"}
    # paper conv2 -> ReLU -> LRN -> pool, one unit: LRN in the conv's epilogue (triton) vs conv + ReLU then
    # LRN + pool (triton-lrn-apart) vs eager, both passes
    chain = {p["impl"] for p in layer if p["unit"] == "conv2+relu2+lrn2+pool2"}
    assert chain == {"triton", "triton-lrn-apart", "eager-nhwc"}
    assert all(p["passes"] == ["fwd", "bwd"] and p["batch_size"] == 128 for p in layer)
    assert {p["unit"] for p in layer if p["op"] == "conv2d_relu"} == {f"conv{i}+relu{i}" for i in range(1, 6)}
    assert layer[0]["precision"] == "bf16" and layer[0]["impl"] == "triton"
    models = [c.params for c in cells if c.kind == "model"]
    assert {(m["variant"], m["pass"]) for m in models} == {
        (v, p) for v in ("eager", "compile", "triton", "triton+compile") for p in ("inference", "train")}
    anchors = [c.params for c in cells if c.kind == "anchor"]
    assert [a["variant"] for a in anchors] == ["eager", "compile", "triton"]  # what KernelBench publishes + ours
    assert all(a["model"] == "alexnet_fast.examples:kernelbench_alexnet" and a["batch_size"] == 1024
               and a["precision"] == "fp32" and a["tf32"] == "defaults" for a in anchors)
    order = {k: kinds.index(k) for k in KINDS}
    assert order["anchor"] < order["model"] < order["dispatch"] < order["autotune"] < order["codegen"] < order["layout"]
    layout = next(c for c in cells if c.kind == "layout")
    assert layout.params["share_gpu"] and layout.compiles is None


def test_smoke_spec_runs_every_kind_at_toy_size():
    spec = suites.get_suite("gpu-quick", smoke=True)
    cells = suites.build_cells(spec, interpreted=True)
    assert {c.kind for c in cells} == set(KINDS)
    assert spec.layer_batch <= 2 and spec.width_mult <= 0.125 and spec.anchor_batch <= 2
    assert "bf16" not in {c.params.get("precision") for c in cells}  # the interpreter has no bf16
    assert spec.compile_backend == "aot_eager"


def test_unknown_suite_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown suite 'nope'.*gpu-quick"):
        suites.get_suite("nope")


def test_full_gpu_default_estimate_and_order():
    from alexnet_fast.profiling.plan import default_plan, plan_cells

    cells = plan_cells(default_plan("cuda"))
    total = estimates.estimate(cells)
    assert total > 3600, "the full default compiles ~160 cells cold: hours, and the estimate must say so"
    ordered = suites.order_cells(cells)
    assert sorted(c.name for c in ordered) == sorted(c.name for c in cells)  # a permutation
    assert ordered[0].kind == "peaks"
    head = ordered[1]
    assert head.what["precision"] == "bf16" and head.what.get("batch_size") == 128 and head.kind == "model"
    ma = [i for i, c in enumerate(ordered) if c.what.get("compile_mode") == "max-autotune"]
    default_bf16 = [i for i, c in enumerate(ordered)
                    if c.what.get("precision") == "bf16" and c.what.get("compile_mode") != "max-autotune"]
    assert min(ma) > max(default_bf16)


@pytest.mark.parametrize("device, label", [("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H200", "H200 SXM"),
                                           ("NVIDIA B200", "B200")])
def test_dry_run_prints_plan_estimate_constants_and_renders_the_example(tmp_path, capsys, device, label):
    from alexnet_fast.cli import main

    assert main(["bench", "--suite", "gpu-quick", "--dry-run", device, "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    estimate = float(out.split("estimate: ")[1].split(" s")[0])
    assert estimate < 480 and f"on {device}" in out and f"datasheet: NVIDIA {label}" in out
    assert "pytest -m gpu" in out and "conv1+relu1 bf16 triton" in out and "kernelbench_alexnet" in out
    for name in estimates.CONSTANTS:  # each constant printed with how it was derived
        assert name in out
    report = (tmp_path / "REPORT.md").read_text()
    assert "NVIDIA H100 80GB HBM3" in report and "no number in it was measured by this run" in report


def test_dry_run_of_the_full_default_prints_its_estimate(tmp_path, capsys):
    from alexnet_fast.cli import main

    assert main(["bench", "--dry-run", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "full GPU default" in out and " h " in out + " " and "most informative first" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_suite_without_cuda_says_so_and_points_at_smoke(tmp_path, capsys):
    from alexnet_fast.cli import main

    assert main(["bench", "--suite", "gpu-quick", "--output-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA device" in err and "--smoke" in err
    assert not (tmp_path / "b").exists()


def test_example_is_package_data_not_a_test_file():
    assert EXAMPLE.is_file() and "tests" not in EXAMPLE.parts
    from pathlib import Path

    source = (Path(importlib.import_module("alexnet_fast.profiling").__file__).parent / "gpu_suite.py").read_text()
    assert "tests" + "/" not in source and '"tests"' not in source


def _example() -> dict:
    return json.loads(EXAMPLE.read_text())


def test_report_from_the_recorded_example():
    results = _example()
    assert results["meta"]["device"] == "NVIDIA H100 80GB HBM3"
    text = suite_report.render(results)
    assert text.startswith("# GPU run: NVIDIA H100 80GB HBM3 -- suite gpu-quick")
    assert "| SM MHz | W | C | throttle |" in text and "1,980" in text
    line = next(ln for ln in text.splitlines() if ln.startswith("| conv2+relu2 | fwd | bf16 | triton |"))
    assert "THROTTLED (sw_power_cap)" in line and "1,410" in line
    assert "1 measured THROTTLED: conv2+relu2 fwd bf16 triton" in text
    answers = [ln for ln in text.split("## Answers")[1].split("##")[0].splitlines() if ln.startswith("- **")]
    for kernel in ("conv2d_relu", "local_response_norm", "max_pool2d", "lrn_max_pool2d"):
        for pass_ in ("fwd", "bwd"):
            hits = [a for a in answers if a.startswith(f"- **{kernel} {pass_} bf16**")]
            assert len(hits) == 1, (kernel, pass_)
            assert "x its speed" in hits[0] and "% of" in hits[0] and "by kernel time" in hits[0]
    assert "NOT EQUIVALENT on pool5" in text
    assert "equivalence + CUDA code path only, not a two-GPU speed" in text
    assert "skipped: budget" in text and "3 passed" in text
    assert "KernelBench AlexNet b1024 fp32 (TF32 matmul False, cuDNN True)" in text and "(KernelBench H100: 23.7 ms)" in text
    assert "dispatch (wall - kernel time per call)" in text and "kernel launch stubbed" in text
    assert "| kind | cell | estimate s | elapsed s | compiles (assumed / made) | status |" in text


def test_report_compares_kernels_by_kernel_time():
    results = _example()
    rows = [r for r in results["rows"] if r.get("scope") == "layer" and r["op"] == "conv2d_relu"
            and r["pass"] == "fwd" and r["precision"] == "bf16"]
    ratios = []
    for unit in {r["layer"] for r in rows}:
        mine = {r["impl"]: r for r in rows if r["layer"] == unit}
        best = min(mine[b]["kernel_ms"] for b in BASELINE_IMPLS if b in mine)
        ratios.append(best / mine["triton"]["kernel_ms"])
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios))
    line = next(a for a in suite_report.layer_answers(results["rows"]) if "conv2d_relu fwd bf16" in a)
    assert f"{geomean:.2f}x its speed" in line
    assert "faster" not in line and "slower" not in line  # two separate cells: a figure, no word
    for r in rows:  # a faster Triton kernel flips the figure, whatever its wall time
        if r["impl"] == "triton":
            r["kernel_ms"] /= 4
    line = next(a for a in suite_report.layer_answers(results["rows"]) if "conv2d_relu fwd bf16" in a)
    assert f"above 1 on {len(ratios)}/{len(ratios)} layers" in line


def test_report_words_follow_the_paired_interval():
    """Faster / slower only where the paired interval excludes 1, else no significant difference."""
    results = _example()
    tri = [r for r in results["rows"] if r.get("scope") == "layer" and r["op"] == "conv2d_relu"
           and r["pass"] == "fwd" and r["precision"] == "bf16" and r["impl"] == "triton"]
    for i, r in enumerate(tri):
        r.update(speedup=1.2, speedup_ci_low=1.1, speedup_ci_high=1.3) if i == 0 else \
            r.update(speedup=1.01, speedup_ci_low=0.97, speedup_ci_high=1.05)
    line = next(a for a in suite_report.layer_answers(results["rows"]) if "conv2d_relu fwd bf16" in a)
    assert f"faster on 1/{len(tri)} layers" in line
    assert f"no significant difference on {len(tri) - 1}/{len(tri)} layers" in line and "slower" not in line


def test_report_of_a_cut_off_run_renders():
    results = {"meta": {"device": "NVIDIA H100 80GB HBM3", "suite": "gpu-quick", "budget_s": 480,
                        "interrupted": "SIGTERM"},
               "cells": [{"kind": "peaks", "name": "peaks", "estimate_s": 2, "status": "done", "elapsed_s": 0.1},
                         {"kind": "layer", "name": "conv1+relu1 bf16 triton", "estimate_s": 15,
                          "status": "interrupted"}],
               "rows": []}
    text = suite_report.render(results)
    assert "per layer: no rows" in text and "conv1+relu1 bf16 triton (interrupted)" in text
    assert "Stopped by SIGTERM" in text


def test_backward_cost():
    from alexnet_fast.model import make_config
    from alexnet_fast.profiling.flops import backward_cost, layer_units, needs_input_grad, unit_cost

    units = {u.name: u for u in layer_units(make_config("paper"))}
    conv1, conv2, pool1 = units["conv1+relu1"], units["conv2+relu2"], units["pool1"]
    assert not needs_input_grad(conv1) and needs_input_grad(conv2)
    f1 = unit_cost(conv1, 4, "bf16")
    f2 = unit_cost(conv2, 4, "bf16")
    assert backward_cost(conv1, 4, "bf16")[0] == f1.mac_flops + f1.other_flops
    assert backward_cost(conv2, 4, "bf16")[0] == 2 * f2.mac_flops + f2.other_flops
    x = 4 * 96 * 55 * 55
    y = 4 * 96 * 27 * 27
    assert backward_cost(pool1, 4, "bf16")[1] == 2 * (2 * x + y)


# ------------------------------------------------------------------ the codegen cell's selection
def _found():
    from alexnet_fast.profiling.codegen.specs import collect_specs, kernel_module_names

    return collect_specs([importlib.import_module(m) for m in kernel_module_names()])


def test_codegen_selection_follows_the_launches_and_covers_every_kernel_kind():
    """Defect 1: the selection follows the shapes, preset and dtype launched; with a cap of 6
    the forward, dgrad and wgrad convs, the fused LRN+pool, the LRN and the pool each get one
    spec (the old selection filled its cap with one kernel's configs)."""
    launched = [{"preset": "paper", "unit": u, "op": op, "dtype": "fp16", "passes": ["fwd", "bwd"], "batch": 2}
                for u, op in (("conv2+relu2", "conv2d_relu"), ("lrn1", "local_response_norm"), ("pool5", "max_pool2d"),
                              ("lrn1+pool1", "lrn_max_pool2d"))]
    refs, left, unmatched = codegen_selection(_found(), launched, [], 6)
    assert [r.kernel for r in refs] == CODEGEN_KERNEL_ORDER[:6] and not unmatched
    assert all(r.dtype == "fp16" and r.shape.startswith("paper ") for r in refs)
    assert {r.shape.split()[1] for r in refs} == {"conv2", "lrn1+pool1", "lrn1", "pool5"}
    assert all("b128" in r.shape for r in refs if r.op == "conv2d_relu")  # the nearest batch the check lists
    assert len(left) == 3  # the three backward kernels of LRN, pool and LRN+pool, left out by the cap
    all_refs, _, _ = codegen_selection(_found(), launched, [], 100)
    assert {r.kernel for r in all_refs} == set(CODEGEN_KERNEL_ORDER)


def test_codegen_selection_takes_only_specs_compiled_for_the_devices_arch():
    """A per-arch table's spec compiles for its archs only: picked for another arch it compiles
    to nothing (the smoke run's conv rows vanished that way when the conv tables went per arch)."""
    launched = [{"preset": "paper", "unit": "conv2+relu2", "op": "conv2d_relu", "dtype": "fp16",
                 "passes": ["fwd", "bwd"], "batch": 2}]
    for arch in (80, 90, 100):
        refs, _, unmatched = codegen_selection(_found(), launched, [], 6, arch)
        assert [r.kernel for r in refs] == CODEGEN_KERNEL_ORDER[:3] and not unmatched
        assert all(r.compiles_for(arch) for r in refs), arch


def test_codegen_selection_prefers_the_autotuners_choice_and_the_launched_shape():
    launched = [{"preset": "paper", "unit": "conv3+relu3", "op": "conv2d_relu", "dtype": "bf16", "passes": ["fwd"],
                 "batch": 128}]
    found = _found()
    cands = [s for r, s in found if r.kernel == "conv2d_relu_fwd_kernel" and r.shape == "paper conv3 b128 NHWC"
             and r.dtype == "bf16"]
    assert len(cands) >= 2
    chosen = cands[1]
    config = {**{k: v for k, v in chosen.constexprs.items() if k.startswith("BLOCK")},
              "num_warps": chosen.num_warps, "num_stages": chosen.num_stages}
    refs, _, _ = codegen_selection(found, launched, [{"kernel": "conv2d_relu_fwd_kernel", "dtype": "bf16",
                                                             "config": config}], 4)
    assert [r.shape for r in refs] == ["paper conv3 b128 NHWC"] and refs[0].config == chosen.config
    none, _, unmatched = codegen_selection(found, [{**launched[0], "preset": "kernelbench"}], [], 4)
    assert none == [] and unmatched == ["conv2d_relu_fwd_kernel kernelbench conv3 bf16"]


def test_the_codegen_cell_imports_the_kernel_modules_by_their_full_names():
    from alexnet_fast.profiling.codegen.specs import kernel_module_names

    names = kernel_module_names()
    assert names and all(n.startswith("alexnet_fast.kernels.") and not n.startswith("alexnet_fast.kernels.kernels.") for n in names)
    for n in names:
        importlib.import_module(n)


# ------------------------------------------------------------------ the pytest cell's selection
def test_pytest_selection_is_a_bounded_list_that_fits_its_cap():
    """Defect 3: the cell runs named tests whose estimate fits its cap and the budget left
    (the old cell collected all of tests/ -m gpu: ~100 tests, ~150 Triton compiles in 80 s)."""
    tests = suites.PYTEST_GPU_TESTS
    assert 3 <= len(tests) <= 10 and all("::" in t for t, _ in tests)
    spec = suites.get_suite("gpu-quick")
    chosen = suites.pytest_selection(tests, spec.pytest_cap_s)
    assert chosen and estimates.PYTEST_START_S + sum(s for _, s in chosen) <= spec.pytest_cap_s
    assert chosen == [tuple(t) for t in tests[:len(chosen)]]  # a prefix: the most valuable first
    assert suites.pytest_selection(tests, estimates.PYTEST_START_S) == []
    cell = next(c for c in suites.build_cells(spec) if c.kind == "pytest")
    assert cell.estimate_s <= spec.pytest_cap_s


def test_every_listed_gpu_test_exists():
    """The bounded list names real tests (their node ids, parameters included)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    ids = [t for t, _ in suites.PYTEST_GPU_TESTS]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-o", "addopts=", *ids], cwd=repo, capture_output=True, text=True, timeout=300)
    collected = {line.strip() for line in out.stdout.splitlines() if "::" in line}
    assert set(ids) <= collected, (set(ids) - collected, out.stdout[-2000:], out.stderr[-2000:])


# ------------------------------------------------------------------ autotune limit and record
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


def test_chosen_configs_lists_each_key_and_the_untuned():
    tuner = _autotuner(2)
    tuner.cache[(4096, "torch.bfloat16")] = tuner.configs[1]
    rows = [r for r in chosen_configs() if r["key"] == "(4096, torch.bfloat16)"]
    assert len(rows) == 1
    row = rows[0]
    assert row["kernel"] == "kernel" and row["dtype"] == "bf16" and row["candidates"] == 2 and row["tuned"]
    assert row["config"]["BLOCK"] == 32 and row["config"]["num_warps"] == 4
    single = _autotuner(1)
    untuned = [r for r in chosen_configs(include_untuned=True) if not r["tuned"] and r["candidates"] == 1]
    assert untuned and untuned[-1]["note"] == "one config: run without tuning"
    del single


def test_layout_ranks_get_the_autotune_limit(monkeypatch):
    """Defect 4: the spawned ranks apply the run's autotune limit (a new process: the parent's
    patch does not reach it)."""
    from alexnet_fast.profiling import layout_bench
    from triton.runtime.autotuner import Autotuner

    seen = []
    monkeypatch.setattr(layout_bench, "init_ranks", lambda **kw: "ctx")
    monkeypatch.setattr(layout_bench, "shutdown", lambda ctx: None)
    monkeypatch.setattr(layout_bench, "run_cell",
                        lambda job, ctx: seen.append(getattr(Autotuner.prune_configs, "max_configs", None)))
    job = layout_bench.LayoutJob.create("single", "eager", "fp32", 2, "inference", width_mult=0.125, input_size=67,
                                        device="cpu", autotune_max_configs=2)
    layout_bench.run_rank_job(job)
    assert seen == [2] and not hasattr(Autotuner.prune_configs, "max_configs")
    with pytest.raises(ValueError, match="autotune_max_configs"):
        layout_bench.LayoutJob.create("single", "eager", "fp32", 2, "inference", width_mult=0.125, input_size=67,
                                      device="cpu", autotune_max_configs=0)


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
