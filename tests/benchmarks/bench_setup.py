"""Shared set-up of the pytest-benchmark tests (run with ``pytest --benchmark-only``).

Every benchmark goes through :func:`run_benchmark`: a fixed number of rounds after warm-up
(``benchmark.pedantic``), a CUDA-synchronising target on a GPU (so a round times the kernels,
not their launch), and ``extra_info`` with FLOPs, bytes, GFLOP/s, GB/s, device, dtype, shape
(and the machine name ``alexnet-fast regress`` uses to pick a baseline). A provider other
than eager also gets its speedup over eager the study's one way (``baseline``): paired
interleaved rounds of both (:func:`alexnet_fast.profiling.timers.measure_paired`), the
speedup, its 95% interval, rounds and ``target_met`` in ``extra_info``.
"""

from __future__ import annotations

import os

import torch

from alexnet_fast.vocabulary import PRECISIONS as ALL_PRECISIONS
from alexnet_fast.profiling.results import device_name, machine_slug
from alexnet_fast.profiling.timers import measure_paired

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
# CPU threads while benchmarking (fixed, so runs on one machine compare; part of the machine
# name baselines are stored under). 1 by default: on a shared machine more threads than idle
# cores makes OpenMP wait at every barrier (see profiling.plan.idle_cores).
THREADS = None if CUDA else int(os.environ.get("ALEXNET_BENCH_THREADS", "1"))
# rounds (timed) and warm-up rounds per benchmark kind. Every round's time is kept
# (stats.data) and `alexnet-fast regress` tests them (Mann-Whitney U): 3 rounds against 3 can
# never be significant, and at 15% noise per round 10 rounds find a 20% slowdown twice as
# often as 5 (tests/test_regress.py), hence 10 per kernel and 5 per model on a CPU.
ROUNDS = {"kernel": (50, 10) if CUDA else (10, 1), "model": (20, 5) if CUDA else (5, 1)}
# precisions measured: CPU fp32 only (PyTorch has no fp16/bf16 LRN on CPU)
PRECISIONS = list(ALL_PRECISIONS) if CUDA else ["fp32"]
BATCH = {"kernel": 128 if CUDA else 8, "model": 128 if CUDA else 8}
# paired rounds against eager: stop at a 3% half-width or after this many seconds per benchmark
PAIR_CAP_S = {"kernel": 5.0, "model": 20.0}


def skip_triton_reason(op: str) -> str | None:
    """Why the Triton benchmark of ``op`` cannot run here, or None."""
    if not CUDA:
        return "Triton runs in its CPU interpreter here: interpreted speed means nothing"
    return None


def _sync():
    if CUDA:
        torch.cuda.synchronize()


def run_benchmark(benchmark, fn, *, kind: str, group: str, flops: int, nbytes: int | None, dtype: str,
                  shape: str, kernel: str, provider: str, baseline=None):
    """Time ``fn`` with pytest-benchmark and record what it did; with ``baseline`` (eager's
    call) also the speedup over it from paired rounds (module docstring)."""
    rounds, warmup = ROUNDS[kind]

    def target():
        fn()
        _sync()

    _sync()
    benchmark.group = group
    benchmark.pedantic(target, rounds=rounds, warmup_rounds=warmup, iterations=1)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(
        kernel=kernel, provider=provider, dtype=dtype, shape=shape, device=device_name(DEVICE),
        machine=machine_slug(DEVICE, torch.get_num_threads()), threads=torch.get_num_threads(), flops=flops,
        gflops_per_s=flops / median / 1e9,
        timer="perf_counter + torch.cuda.synchronize" if CUDA else "perf_counter",
    )
    if nbytes:
        benchmark.extra_info.update(bytes=nbytes, gb_per_s=nbytes / median / 1e9)
    if baseline is not None:
        paired = measure_paired(baseline, fn, device=DEVICE, warmup=warmup, time_cap_s=PAIR_CAP_S[kind])
        benchmark.extra_info.update(paired.rounds.columns(), baseline_median_ms=paired.baseline.median_ms,
                                    paired_median_ms=paired.variant.median_ms, timer_paired=paired.variant.method)
