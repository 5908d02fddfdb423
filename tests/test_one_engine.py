"""One runner: only the engine's cell code (profiling/engine.py, and the ranks of its two-rank
cells, profiling/layout_bench.py) calls the timer and the judge, and no module defines a
second runner of cells. Plus the engine's budget, its subprocess timeouts, the pytest
cell's timeout and junit file, and the kernel time of the timer's CUDA branch (with the
CUDA calls replaced)."""

from __future__ import annotations

import ast
import subprocess
import textwrap
from pathlib import Path

import pytest
import torch

from alexnet_fast.profiling import engine, suites, timers
from alexnet_fast.profiling import estimates
from alexnet_fast.profiling.cell_types import Cell

REPO = Path(__file__).resolve().parents[1]
# the one timer and the one judge, and who may call them
GUARDED = {"measure", "measure_paired", "time_first_call", "judge"}
ALLOWED = {"profiling/engine.py", "profiling/layout_bench.py"}
# profiler.py times its unprofiled steps with the timer: allowed until `profile` runs as a cell of
# the engine (it then calls the timer through the engine and leaves this set)
ALLOWED |= {"profiling/profiler.py"}
# modules that own the timer and judge (they define them; roofline measures peaks through the engine's cell)
OWNERS = {"profiling/timers.py", "profiling/judge.py", "profiling/roofline.py"}


def guarded_calls(source: str) -> set[str]:
    """Names of GUARDED functions a module's source calls (plain or attribute calls)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in GUARDED:
                found.add(name)
    return found


def cell_runners(source: str) -> list[str]:
    """Classes that run cells of their own: a method named ``_cell_*`` / ``cell_*``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            methods = [n.name for n in node.body if isinstance(n, ast.FunctionDef)]
            if any(m.startswith(("_cell_", "cell_")) for m in methods):
                out.append(node.name)
    return out


def _sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for d in ("profiling", "alexnet_fast", "kernels")
            for p in sorted((REPO / d).rglob("*.py"))}


def test_only_the_engine_calls_the_timer_and_the_judge():
    offenders = {path: sorted(guarded_calls(src)) for path, src in _sources().items()
                 if path not in ALLOWED | OWNERS and guarded_calls(src)}
    assert offenders == {}, f"a second implementation of a measured cell: {offenders}"


def test_the_engine_is_the_only_runner_of_cells():
    runners = {path: cell_runners(src) for path, src in _sources().items() if cell_runners(src)}
    assert runners == {"profiling/engine.py": ["Engine"]}, runners


def test_the_rule_would_have_caught_the_old_gpu_suite():
    """The old profiling/gpu_suite.py (SuiteRun: its own per-layer cell, timing and judge,
    beside the engine) fails both checks."""
    old = subprocess.run(["git", "show", "6629786:profiling/gpu_suite.py"], cwd=REPO, capture_output=True, text=True)
    if old.returncode != 0:
        pytest.skip("the old tree is not in this clone's history")
    assert guarded_calls(old.stdout) == {"judge", "time_first_call", "measure"}
    assert cell_runners(old.stdout) == ["SuiteRun"]


def test_bench_layer_rows_and_suite_layer_rows_are_the_same_cell():
    from alexnet_fast.profiling.plan import BenchPlan, VariantSpec, plan_cells

    plan = BenchPlan(device="cpu", variants=[VariantSpec("eager")], precisions=["fp32"], batch_sizes=[1],
                     passes=["inference"], layers=["pool5"], layer_passes=["fwd", "bwd"], width_mult=0.125,
                     input_size=67)
    bench = [c for c in plan_cells(plan) if c.kind == "layer"]
    suite = [c for c in suites.build_cells(suites.get_suite("gpu-quick", smoke=True)) if c.kind == "layer"]
    assert {c.kind for c in bench} == {c.kind for c in suite} == {"layer"}
    assert set(bench[0].params) >= {"unit", "impl", "precision", "passes", "batch_size", "preset", "width_mult"}
    assert set(bench[0].params) - {"compile_mode", "check_size"} == set(suite[0].params)


# ------------------------------------------------------------------ budget and subprocess timeouts
class _Out:
    dir = None

    def __init__(self):
        self.writes = 0

    def write(self, e):
        self.writes += 1


def test_a_cell_that_would_end_past_the_budget_is_skipped_and_recorded():
    out = _Out()
    eng = engine.Engine("cpu", out, budget_s=60.0, progress=False)
    cells = [Cell("peaks", "first", 1.0, {"gemm_n": 32, "copy_mib": 1, "precisions": ["fp32"]}),
             Cell("autotune", "too long", 600.0), Cell("peaks", "fits", 1.0, {"gemm_n": 32, "copy_mib": 1})]
    eng.run(cells)
    assert [r["status"] for r in eng.records] == ["done", "skipped", "done"]
    assert eng.records[1]["note"].startswith("budget: ~600 s needed")
    assert out.writes >= 2 * 2 + 1  # "running" and the result of every cell run, and the skip


def test_subprocesses_get_the_budget_left_as_their_timeout(monkeypatch):
    """Defect 4: a layout cell's ranks and the pytest cell wait at most the budget left (the
    old layout cells waited their 300 s default whatever was left)."""
    from alexnet_fast.profiling import layout_bench

    seen = {}

    def bench_layout(*args, timeout_s, autotune_max_configs, **kw):
        seen.update(timeout_s=timeout_s, autotune_max_configs=autotune_max_configs)
        return {"equivalent": True, "max_abs_err": 0.0, "max_rel_err": 0.0}

    monkeypatch.setattr(layout_bench, "bench_layout", bench_layout)
    eng = engine.Engine("cpu", _Out(), budget_s=100.0, progress=False, autotune_max_configs=2)
    eng.started -= 40.0  # 60 s left
    eng.run([Cell("layout", "mp", 1.0, {"variant": "eager", "precision": "fp32", "batch_size": 2, "pass": "train",
                                         "layout": "model_parallel", "preset": "paper", "width_mult": 0.125,
                                         "input_size": 67, "share_gpu": True})])
    assert seen["autotune_max_configs"] == 2
    assert 50 <= seen["timeout_s"] <= 60 - estimates.WRITE_MARGIN_S
    assert engine.Engine("cpu", _Out()).subprocess_timeout(300.0) == 300.0  # no budget: the default


def test_pytest_cell_times_out_at_the_budget_and_still_leaves_a_junit_file(tmp_path):
    """Defect 3: at its timeout the pytest subprocess gets SIGINT and writes its junit file
    (a test that sleeps past the cut); the cell reports the timeout."""
    slow = tmp_path / "test_slow.py"
    slow.write_text(textwrap.dedent("""
        import time

        def test_quick():
            pass

        def test_sleeps():
            time.sleep(120)
    """))
    bundle = tmp_path / "bundle"
    bundle.mkdir()

    class Out(_Out):
        dir = bundle

    eng = engine.Engine("cpu", Out(), budget_s=estimates.WRITE_MARGIN_S + 15.0, progress=False)
    rows = eng.cell_pytest({"tests": [[f"{slow}::test_quick", 0.5], [f"{slow}::test_sleeps", 0.5]], "cap_s": 60.0})
    row = rows[0]
    assert row["selected"] == 2 and row["status"] == "timeout" and row["timed_out"] and row["timeout_s"] <= 15.0
    assert (bundle / "pytest-gpu.xml").is_file() and (bundle / "pytest-gpu.log").is_file()
    assert row["tests"] >= 1 and "test_slow.py::test_quick" in row["command"] and " tests" not in row["command"]


# ------------------------------------------------------------------ kernel time (the timer's CUDA branch)
class _FakeEvent:
    def __init__(self, enable_timing=False):
        self.t = None

    def record(self, stream=None):
        self.t = _Clock.now

    def elapsed_time(self, other):
        return other.t - self.t


class _Clock:
    now = 0.0


class _FakeGraph:
    replays = 0

    def replay(self):
        _FakeGraph.replays += 1
        _Clock.now += 0.25  # the kernels alone: 0.25 ms


def _fake_cuda(monkeypatch, capture_fails=False):
    class Graph(_FakeGraph):
        pass

    class graph_ctx:
        def __init__(self, g, stream=None):
            self.g = g

        def __enter__(self):
            if capture_fails:
                raise RuntimeError("operation not permitted when stream is capturing")
            return self.g

        def __exit__(self, *exc):
            return False

    class Stream:
        def __init__(self, name="new"):
            self.name = name

        def wait_stream(self, other):
            pass

    side, default = Stream("side"), Stream("default")
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: side)
    monkeypatch.setattr(torch.cuda, "default_stream", lambda device=None: default)
    monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph_ctx)

    class stream_ctx:
        def __init__(self, s):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(torch.cuda, "stream", stream_ctx)
    monkeypatch.setattr(timers, "_CudaClock", _make_clock())


def _make_clock():
    class Clock(timers._CudaClock):
        def __init__(self, device, flush_l2):
            self.device, self.l2_flushed, self._flush, self._events, self._stream = device, flush_l2, None, [], "s"

    return Clock


def test_kernel_time_is_the_graph_replay_and_dispatch_the_rest(monkeypatch):
    """Defect 5: on CUDA the timer also measures the call replayed as a CUDA graph (no host
    work) and reports kernel_ms and dispatch_us = wall - kernel (CUDA calls replaced here)."""
    _fake_cuda(monkeypatch)

    def call():  # host dispatch 0.1 ms, then kernels 0.25 ms
        _Clock.now += 0.35

    t = timers.measure(call, device="cuda", warmup=1, repeats=4, kernel_time=True)
    assert t.median_ms == pytest.approx(0.35) and t.kernel_ms == pytest.approx(0.25)
    assert t.kernel_method == "cuda_graph" and t.dispatch_us == pytest.approx(100.0)
    cols = t.columns()
    assert cols["kernel_ms"] == pytest.approx(0.25) and cols["dispatch_us"] == pytest.approx(100.0)
    assert _FakeGraph.replays >= 4
    cpu = timers.measure(lambda: None, warmup=0, repeats=2, kernel_time=True)  # no separate kernel time on CPU
    assert cpu.kernel_ms is None and "kernel_ms" not in cpu.columns()


def test_kernel_time_falls_back_to_the_profiler_when_capture_fails(monkeypatch):
    _fake_cuda(monkeypatch, capture_fails=True)
    monkeypatch.setattr(timers, "_profiler_device_ms", lambda fn, device, repeats: 0.2)
    t = timers.measure(lambda: None, device="cuda", warmup=0, repeats=2, kernel_time=True)
    assert t.kernel_ms == 0.2 and t.kernel_method == "profiler" and "capture failed" in t.kernel_note
    monkeypatch.setattr(timers, "_profiler_device_ms", lambda fn, device, repeats: 1 / 0)
    t = timers.measure(lambda: None, device="cuda", warmup=0, repeats=2, kernel_time=True)
    assert t.kernel_ms is None and t.kernel_note.startswith("no kernel time") and "kernel_note" in t.columns()


def test_paired_rounds_use_cuda_events_per_call(monkeypatch):
    """The CUDA branch of measure_paired: each call of a round bracketed by the device's events
    (the fake clock: eager 0.5 ms, the variant 0.25 ms), the speedup 2x exactly, the variant's
    kernel time from the graph replay as in measure."""
    _fake_cuda(monkeypatch)

    def eager():
        _Clock.now += 0.5

    def variant():
        _Clock.now += 0.25

    t = timers.measure_paired(eager, variant, device="cuda", warmup=1, min_rounds=10, kernel_time=True)
    assert t.variant.method == t.baseline.method == "cuda_events" and t.rounds.rounds >= 10
    assert t.rounds.baseline_ms == pytest.approx([0.5] * t.rounds.rounds)
    assert t.rounds.variant_ms == pytest.approx([0.25] * t.rounds.rounds)
    assert t.rounds.estimate.ratio == pytest.approx(2.0) and t.rounds.target_met
    cols = t.columns()
    assert cols["speedup"] == pytest.approx(2.0) and cols["baseline_median_ms"] == pytest.approx(0.5)
    assert cols["kernel_ms"] == pytest.approx(0.25) and cols["repeats"] == t.rounds.rounds


# ------------------------------------------------------------------ the dispatch cell's stub
def test_launches_stubbed_runs_no_kernel_and_refuses_a_cold_autotuner():
    from alexnet_fast import kernels
    from alexnet_fast.profiling.dispatch import launches_stubbed

    x = torch.randn(1, 16, 9, 9)
    with launches_stubbed() as launches:
        out = kernels.max_pool2d(x, 3, 2)
    assert len(launches) == 1 and out.shape == (1, 16, 4, 4)
    assert torch.equal(kernels.max_pool2d(x, 3, 2), torch.nn.functional.max_pool2d(x, 3, 2))  # restored
    from triton.runtime.autotuner import Autotuner

    with launches_stubbed(), pytest.raises(RuntimeError, match="would benchmark with stubbed launches"):
        Autotuner._bench(None, config=None)  # an autotuner whose cache is cold for the shape
