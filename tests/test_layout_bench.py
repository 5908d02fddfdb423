"""Layout cells (profiling.layout_bench): refusals before any rank starts, the cell in
process, two gloo ranks, and one rule for every row: a two-rank row and a one-device row of
the same run carry the same columns, tolerance and timer."""

from __future__ import annotations

import math

import pytest
import torch

from alexnet_fast.cli import main
from alexnet_fast.layouts import local_context
from alexnet_fast.profiling.layout_bench import LayoutJob, bench_layout, run_cell
from alexnet_fast.profiling.results import read_results

SMALL = dict(width_mult=0.125, input_size=99, num_classes=10)


def test_bench_layout_refuses_bad_requests_before_starting_ranks():
    with pytest.raises(ValueError, match="unknown layout"):
        bench_layout("pipeline", "eager", "fp32", 4, "train")
    with pytest.raises(ValueError, match="unknown variant"):
        bench_layout("single", "jit", "fp32", 4, "train")
    with pytest.raises(ValueError, match="unknown precision"):
        bench_layout("single", "eager", "fp8", 4, "train")
    with pytest.raises(ValueError, match="unknown pass"):
        bench_layout("single", "eager", "fp32", 4, "forward")
    with pytest.raises(ValueError, match="do not divide"):
        bench_layout("data_parallel", "eager", "fp32", 5, "train", device="cpu")
    with pytest.raises(ValueError, match="fc8"):
        bench_layout("model_parallel", "eager", "fp32", 4, "train", num_classes=7, width_mult=0.125, input_size=99)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="tf32"):
            bench_layout("single", "eager", "tf32", 4, "train")


def test_bench_layout_single_in_process():
    threads = torch.get_num_threads()
    result = bench_layout("single", "eager", "fp32", 2, "train", width_mult=0.125, input_size=67,
                          num_classes=10, warmup=0, repeats=2, threads=1)
    assert torch.get_num_threads() == threads  # restored
    assert result["equivalent"] and result["grad_max_abs_err"] == 0.0  # eager single vs itself
    assert result["comm_bytes"] == result["comm_bytes_model"] == 0 and result["world_size"] == 1
    assert result["timer"] == "perf_counter" and result["repeats"] == 2
    assert result["median_ms"] > 0 and result["images_per_s"] == pytest.approx(2e3 / result["median_ms"])
    assert result["threads_per_rank"] == 1 and result["backend"] == "none" and result["loss_scale"] == 1.0


def test_tf32_flags_hold_for_the_whole_step_backward_included(monkeypatch):
    """The layout cell sets TF32 for forward, backward and optimizer alike (the flags are
    plain settings, so this runs on CPU), and restores them after."""
    seen = []
    real_backward = torch.Tensor.backward

    def backward(self, *args, **kwargs):
        seen.append(torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32)
        return real_backward(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "backward", backward)
    config = LayoutJob.create("single", "eager", "fp32", 2, "train", width_mult=0.125, input_size=67,
                              num_classes=10).config
    job = LayoutJob("single", "eager", "tf32", 2, "train", config, world_size=1, device="cpu", warmup=1, repeats=2)
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        result = run_cell(job, local_context("cpu"))
        after = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
    assert result["equivalent"]
    # references: eager tf32 (on), eager fp32 and fp64 (off); then the check, the first call,
    # the warm-up, every timed step and the peak-memory step with it on
    assert seen == [True, False, False] + [True] * (1 + 1 + 1 + 2 + 1), seen
    assert after == (False, False)


def test_bench_layout_model_parallel_reports_everything():
    result = bench_layout("model_parallel", "eager", "fp32", 4, "train", warmup=1, repeats=2, timeout_s=120,
                          **SMALL)
    assert result["equivalent"] and result["grad_max_rel_err"] < 1e-5, result
    assert result["fp64_err"] <= result["tolerance"]
    assert result["comm_bytes"] == result["comm_bytes_model"] > 0
    assert result["comm_calls"] == 13  # forward: 2 halos + 4 gathers + logits; backward: 2 + 4
    assert 0 < result["comm_ms"] <= result["median_ms"]  # per repeat, a rank's comm time is inside its step
    assert result["timer"] == "perf_counter" and result["repeats"] == 2 and result["compile_s"] > 0
    assert result["images_per_s"] == pytest.approx(4e3 / result["median_ms"])
    assert (result["backend"], result["world_size"], result["device_type"]) == ("gloo", 2, "cpu")
    assert result["threads_per_rank"] == 1


def test_one_cli_runs_two_ranks_and_their_rows_match_one_device_rows(tmp_path):
    """``alexnet-fast bench --layout single,data_parallel`` (the one CLI; ranks started by
    launch()): the two-rank row has every column a one-device row has, the same tolerance
    (same rule, same eager reference) and the same timer."""
    rc = main(["bench", "--variant", "eager", "--layout", "single,data_parallel", "--batch-size", "2",
               "--pass", "train", "--layer", "none", "--width-mult", "0.125", "--input-size", "67",
               "--repeats", "2", "--warmup", "0", "--threads", "1", "--device", "cpu", "--peak-gemm-n", "64",
               "--peak-copy-mib", "1", "--no-progress", "--output-dir", str(tmp_path)])
    assert rc == 0
    rows = read_results(tmp_path)
    rows = rows[rows.scope == "model"].set_index("layout")
    single, dp = rows.loc["single"], rows.loc["data_parallel"]
    assert single.status == dp.status == "ok"

    def filled(row):
        return {c for c, v in row.items() if not (v is None or (isinstance(v, float) and math.isnan(v)))}

    one_device_only = {"sm_clock_mhz", "mem_clock_mhz", "power_w", "temperature_c", "throttle_reasons", "throttled"}
    assert filled(single) - one_device_only <= filled(dp), filled(single) - filled(dp)
    for col in ("timer", "tolerance", "eager_fp64_err", "repeats", "warmup"):
        assert single[col] == dp[col], col
    assert dp.comm_bytes == dp.comm_bytes_model > 0 and dp.world_size == 2


def _paired_on_two_ranks() -> dict:
    """One rank of two: paired rounds of a 2 ms baseline and a variant that takes 2 ms on rank
    0 and 6 ms on rank 1, each call's time the slowest rank's (the layout cells' rule)."""
    import time

    from alexnet_fast.layouts.comm import init_ranks, shutdown
    from alexnet_fast.profiling.layout_bench import _slowest
    from alexnet_fast.profiling.timers import measure_paired

    ctx = init_ranks(timeout_s=60, device="cpu", threads=1)
    try:
        slow = 0.006 if ctx.rank == 1 else 0.002
        paired = measure_paired(lambda: time.sleep(0.002), lambda: time.sleep(slow), warmup=1,
                                before_round=lambda: torch.distributed.barrier(ctx.group),
                                combine=lambda ms: _slowest(ms, ctx), agree=lambda stop: _slowest(float(stop), ctx) > 0.5,
                                time_cap_s=1.0 + ctx.rank, min_rounds=10, max_rounds=400)
        return {"variant_ms": paired.rounds.variant_ms, "speedup": paired.rounds.estimate.ratio,
                "stop": paired.rounds.stop_reason}
    finally:
        shutdown(ctx)


def test_two_ranks_pair_rounds_on_the_slowest_rank_and_stop_together():
    """gloo on CPU: both ranks see the same per-call times (all_reduce MAX: rank 1's 6 ms),
    so the same estimate (2 / 6 ms = ~0.33x) and the same number of rounds, whichever rank's
    cap comes first."""
    from alexnet_fast.launch import launch

    results = launch(_paired_on_two_ranks, world_size=2, timeout_s=120)
    r0, r1 = results[0], results[1]
    assert r0["variant_ms"] == r1["variant_ms"] and len(r0["variant_ms"]) >= 10
    assert min(r0["variant_ms"]) >= 5.9  # rank 1's sleep, not rank 0's
    assert r0["speedup"] == r1["speedup"] < 0.5
    assert {r0["stop"], r1["stop"]} <= {"target", "time_cap", "other_rank", "max_rounds"}
