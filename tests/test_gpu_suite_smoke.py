"""``alexnet-fast bench --suite gpu-quick --smoke`` on this CPU: every cell kind of the GPU
suite end to end through the same code at toy size (Triton interpreted), a row for every
kind and none ``error``; the compiles each cell makes match the estimate's assumption
(dynamo's counter); the bundle fits what a borrowed GPU machine returns (at most 8 files,
each under 16 MB, none deeper than DIR/a/b/file). Also: SIGTERM ends a run with its results
and report written, and a failed preflight ends it in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alexnet_fast.profiling import suites
from alexnet_fast.profiling.cell_types import KINDS, TRITON_KERNELS
from alexnet_fast.profiling.gpu_suite import BUNDLE_FILES

REPO = Path(__file__).resolve().parents[1]
MAX_FILES, MAX_BYTES, MAX_DEPTH = 8, 16 * 2**20, 3  # DIR/a/b/file: 3 parts below DIR


def _bench(out: Path, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "alexnet_fast", "bench", "--suite", "gpu-quick", "--smoke", "--output-dir", str(out),
           "--no-progress", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "bundle"
    start = time.perf_counter()
    proc = _bench(out)
    log, _ = proc.communicate(timeout=1500)
    elapsed = time.perf_counter() - start
    print(f"smoke run: {elapsed:.0f} s")
    assert proc.returncode == 0, log[-6000:]
    return out, json.loads((out / "results.json").read_text()), log, elapsed


def test_smoke_runs_every_cell_kind_and_none_errors(smoke):
    out, results, log, elapsed = smoke
    cells, rows = results["cells"], results["rows"]
    assert {c["kind"] for c in cells} == set(KINDS)
    assert [c for c in cells if c["status"] != "done"] == [], log[-4000:]
    kinds_with_rows = {r["cell_kind"] for r in rows}
    assert kinds_with_rows == set(KINDS), set(KINDS) - kinds_with_rows
    assert [r for r in rows if r.get("status") in ("error", "failed")] == []
    scopes = {r["scope"] for r in rows}
    assert scopes >= {"preflight", "peak", "layer", "model", "dispatch", "autotune", "codegen", "pytest"}
    layer = [r for r in rows if r["scope"] == "layer"]
    assert {r["pass"] for r in layer} == {"fwd", "bwd"} and {r["op"] for r in layer} >= set(TRITON_KERNELS)
    assert {r["status"] for r in layer if r["impl"] == "triton"} == {"interpreted"}
    assert all(r["median_ms"] > 0 for r in layer if r["status"] == "ok")
    anchor = [r for r in rows if r["cell_kind"] == "anchor"]
    assert anchor and all(r["model"].endswith("small_kernelbench_alexnet") for r in anchor)
    assert any(r["variant"] == "eager" and r["tf32_cudnn"] is True and r["tf32_matmul"] is False for r in anchor)
    layout = [r for r in rows if r["cell_kind"] == "layout"]
    assert layout and all(r["equivalent"] and r["world_size"] == 2 for r in layout)
    print(f"smoke run: {elapsed:.0f} s, {len(cells)} cells, {len(rows)} rows")


def test_smoke_compiles_what_the_estimate_assumes(smoke):
    """Defect 4: every cell's torch.compile frames, counted by dynamo, are the number the
    estimate assumes (a compiled training cell compiles twice, a compiled per-layer cell twice)."""
    cells = smoke[1]["cells"]
    counted = [c for c in cells if c["compiles_assumed"] is not None]
    assert any(c["compiles_assumed"] >= 2 for c in counted)
    wrong = [(c["name"], c["compiles_assumed"], c["compiles"]) for c in counted if c["compiles"] != c["compiles_assumed"]]
    assert wrong == []


def test_smoke_codegen_compiles_every_kernel_kind_it_launched(smoke):
    """Defect 1: the codegen cell runs (it always errored: ``kernels.kernels.<op>``) and its
    specs follow what was launched: forward, dgrad and wgrad convs, LRN, pool and the fused
    kernel, all compiled for sm_90, within the cap."""
    out, results = smoke[0], smoke[1]
    rows = [r for r in results["rows"] if r["scope"] == "codegen"]
    kernels = {r["kernel"] for r in rows}
    assert {"conv2d_relu_fwd_kernel", "conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel", "lrn_fwd_kernel",
            "max_pool2d_fwd_kernel", "lrn_max_pool2d_fwd_kernel"} <= kernels
    assert len(rows) <= suites.get_suite("gpu-quick", smoke=True).codegen_max_specs
    assert all(r["compiled"] and r["arch"] == 90 and r["shape"].startswith("paper ") for r in rows)
    assert all(r["dtype"] == "fp16" for r in rows)  # what the interpreted Triton cells launched
    assert (out / "codegen.csv").is_file()


def test_smoke_profiles_model_cells_into_one_archive(smoke):
    """Each profiled whole-model cell has a profile row right after it (compiled ones reused:
    no compile) and its folder in profile.tar.gz, whose eager trace names the layers; the timed
    rows carry peak memory."""
    import io
    import tarfile

    out, results = smoke[0], smoke[1]
    cells = [c for c in results["cells"] if c["kind"] == "profile"]
    rows = [r for r in results["rows"] if r["scope"] == "profile"]
    spec = suites.get_suite("gpu-quick", smoke=True)
    assert len(cells) == len(rows) == len(spec.profile_only)
    assert {r["status"] for r in rows if r["variant"].startswith("triton")} == {"interpreted"}
    assert {r["status"] for r in rows if not r["variant"].startswith("triton")} == {"profiled"}
    assert all("the model cell's compiled model" in r["note"] for r in rows if r["variant"].endswith("compile"))
    with tarfile.open(out / "profile.tar.gz") as tar:
        names = set(tar.getnames())
        member = next(n for n in names if n.startswith("profile/eager-fp32-b1-inference/trace.json"))
        data = tar.extractfile(member).read()
    if member.endswith(".gz"):
        import gzip

        data = gzip.decompress(data)
    trace = json.load(io.BytesIO(data))
    assert {"step 0", "conv1+relu1", "lrn1+pool1", "fc8"} <= {e.get("name") for e in trace["traceEvents"]}
    assert {"profile/PROFILE.md", "profile/layers.png", "profile/profile.json"} <= names
    assert results["meta"]["profile_traces_left_out"] == []
    timed = [r for r in results["rows"] if r["scope"] in ("model", "layer") and r.get("status") == "ok"]
    assert any(r["layout"] == "model_parallel" for r in timed) and all(r["peak_memory_mb"] > 0 for r in timed)


def test_smoke_dispatch_rows_stub_the_launch_and_compare_with_aten(smoke):
    rows = [r for r in smoke[1]["rows"] if r["scope"] == "dispatch"]
    pairs = {(r["layer"], r["pass"], r["impl"]) for r in rows}
    for unit in suites.SMOKE_UNITS:
        for pass_ in ("fwd", "bwd"):
            assert {(unit, pass_, "triton"), (unit, pass_, "aten")} <= pairs
    assert all(r["median_us"] > 0 for r in rows)
    assert all(r["launches_per_call"] >= 1 for r in rows if r["impl"] == "triton")


def test_smoke_bundle_fits_what_a_borrowed_machine_returns(smoke):
    out = smoke[0]
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= MAX_FILES, files
    assert all(p.stat().st_size < MAX_BYTES for p in files)
    assert all(len(p.relative_to(out).parts) <= MAX_DEPTH for p in files)
    assert {p.name for p in files} == set(BUNDLE_FILES)
    report = (out / "REPORT.md").read_text()
    assert "SMOKE RUN" in report and "## Cells" in report and "## Codegen of the launched kernels" in report
    junit = (out / "pytest-gpu.xml").read_text()
    assert "testsuite" in junit
    preflight = json.loads((out / "preflight.json").read_text())
    assert preflight["ok"] and {c["name"] for c in preflight["checks"]} >= {"tiny Triton kernel", "tiny torch.compile"}


def _wait_for(path: Path, predicate, timeout_s: float) -> dict:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            data = json.loads(path.read_text())
            if predicate(data):
                return data
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} never showed the state waited for")


def test_sigterm_ends_the_run_with_results_and_report_written(tmp_path):
    """Defect 4: SIGTERM mid-cell: exit 143, the cell in progress ``interrupted``, the rest
    ``not run``, results.json and REPORT.md written."""
    out = tmp_path / "bundle"
    proc = _bench(out, "--kinds", "pytest")
    try:
        _wait_for(out / "results.json",
                  lambda d: any(c["kind"] == "pytest" and c["status"] == "running" for c in d["cells"]), 240)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        log, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, log[-3000:]
    assert "stopped by SIGTERM" in log and "results and report written" in log
    results = json.loads((out / "results.json").read_text())
    assert [c["status"] for c in results["cells"]] == ["done", "interrupted"]
    assert results["meta"]["interrupted"] == "SIGTERM"
    assert "Stopped by SIGTERM" in (out / "REPORT.md").read_text()


def test_failed_preflight_ends_the_run_in_one_line(tmp_path):
    """Defect 6: a missing compiler stops the run before its first cell, one line naming it."""
    out = tmp_path / "bundle"
    proc = _bench(out, "--compile-backend", "inductor", env={"CXX": "/nonexistent/g++"})
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, log[-3000:]
    line = [ln for ln in log.splitlines() if "preflight failed" in ln]
    assert len(line) == 1 and "/nonexistent/g++" in line[0] and "C++ compiler" in line[0]
    results = json.loads((out / "results.json").read_text())
    assert results["cells"][0]["status"] == "failed"
    assert {c["status"] for c in results["cells"][1:]} == {"not run"}
    assert json.loads((out / "preflight.json").read_text())["ok"] is False
