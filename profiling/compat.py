"""`make compat-check`: the project on the oldest torch / triton it declares (pyproject).

GPU machines come with their own CUDA build of PyTorch (seen: torch 2.11.0, triton 3.6.0,
torchvision 0.26); the pins here are newer (constraints.txt). Run with the Python of a second
environment holding those old versions (``make compat-check`` creates ``.venv-compat``, or
``COMPAT_VENV=/path``), from the checkout (PYTHONPATH), it runs:

1. the versions: torch, triton, torchvision must be the oldest tested (:data:`EXPECTED`);
2. the kernels' interpreter tests (every Triton op forward and backward against PyTorch);
3. the codegen check on a sample (one op compiled for sm_90 with that triton's ptxas);
4. the GPU suite's CPU path: ``bench --suite gpu-quick --dry-run`` and tests/test_gpu_suite.py.

and writes the command, pass/fail counts and duration of each step to
``reports/compat-check.md`` (+ ``.json``). Exit status 1 if any step failed.
Too big for CI (a second ~3 GB torch download), so it is run by hand before a change to
kernels/ or the harness lands, and its last result is committed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXPECTED = {"torch": "2.11.0", "triton": "3.6.0", "torchvision": "0.26.0"}
KERNEL_TESTS = ["tests/test_lrn.py", "tests/test_max_pool.py", "tests/test_lrn_max_pool.py",
                "tests/test_conv2d_relu.py", "tests/test_kernels_api.py"]
CODEGEN_SAMPLE = ["codegen", "--op", "max_pool2d", "--arch", "90", "--no-progress"]


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int | None, str, float]:
    start = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out + f"\nTIMED OUT after {timeout:.0f} s", time.perf_counter() - start


def _last_line(text: str, *words: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if any(w in line for w in words):
            return line.strip("= ").strip()
    return ""


def steps(python: str, work: Path, jobs: int) -> list[tuple[str, list[str], float]]:
    """(name, command, timeout s) of every step."""
    versions = ("import torch, triton, torchvision, sys; "
                "print(f'torch {torch.__version__} triton {triton.__version__} torchvision {torchvision.__version__} "
                "python {sys.version.split()[0]}')")
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return [
        ("versions", [python, "-c", versions], 120),
        ("kernel interpreter tests", pytest + ["-n", str(jobs), f"--junitxml={work / 'alexnet_fast.kernels.xml'}"] + KERNEL_TESTS,
         3600),
        ("codegen sample (max_pool2d, sm_90)", [python, "-m", "alexnet_fast"] + CODEGEN_SAMPLE
         + ["--output-dir", str(work / "codegen")], 1200),
        ("gpu-quick dry run", [python, "-m", "alexnet_fast", "bench", "--suite", "gpu-quick", "--dry-run",
                               "--output-dir", str(work / "dry-run")], 300),
        ("GPU suite tests (CPU part)", pytest + [f"--junitxml={work / 'gpu_suite.xml'}", "tests/test_gpu_suite.py"],
         900),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexnet_fast.profiling.compat", description=__doc__.split("\n")[0])
    parser.add_argument("--output", default=str(REPO / "reports" / "compat-check.md"))
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "compat-check"))
    parser.add_argument("--jobs", type=int, default=2, help="pytest-xdist workers for the interpreter tests")
    args = parser.parse_args(argv)
    from alexnet_fast.io import atomic_write_json, atomic_write_text
    from alexnet_fast.profiling.gpu_tests import junit_counts as _junit_counts

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.pop("TRITON_INTERPRET", None)  # the tests' conftest sets it; codegen must compile
    results, ok = [], True
    for name, cmd, timeout in steps(sys.executable, work, args.jobs):
        print(f"compat-check: {name} ...", file=sys.stderr, flush=True)
        rc, out, seconds = _run(cmd, env, timeout)
        xml = next((Path(c.split("=", 1)[1]) for c in cmd if c.startswith("--junitxml=")), None)
        counts = _junit_counts(xml) if xml else None
        summary = (_last_line(out, "passed", "failed", "error") if "pytest" in cmd else
                   _last_line(out, " failed,", "rendered") or (out.strip().splitlines() or [""])[-1])
        passed = rc == 0
        if name == "versions":
            got = dict(zip(out.split()[0::2], out.split()[1::2]))
            wrong = {k: got.get(k) for k, v in EXPECTED.items() if not (got.get(k) or "").startswith(v)}
            if wrong:
                passed, summary = False, f"{summary} -- expected {EXPECTED}, got {wrong}"
        ok &= passed
        results.append({"step": name, "command": " ".join(Path(c).name if c == sys.executable else c for c in cmd),
                        "passed": passed, "returncode": rc, "seconds": round(seconds, 1), "summary": summary,
                        "counts": counts})
        atomic_write_text(work / f"{name.split()[0]}.log", out)
        print(f"  {'ok' if passed else 'FAILED'} in {seconds:.0f} s: {summary}", file=sys.stderr)
    report = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "python": sys.executable,
              "expected": EXPECTED, "passed": ok, "steps": results}
    lines = ["# Compatibility check: oldest supported torch / triton", "",
             f"{report['when']}, `{sys.executable}` ({'PASSED' if ok else 'FAILED'}). Command: `make compat-check` "
             "(or `PYTHONPATH=. <compat python> -m alexnet_fast.profiling.compat`).", "",
             "| step | command | result | counts (junit) | seconds |", "|---|---|---|---|---|"]
    for r in results:
        counts = r["counts"] or {}
        cnt = ", ".join(f"{k} {v}" for k, v in counts.items()) if counts else "-"
        lines.append(f"| {r['step']} | `{r['command']}` | {'ok' if r['passed'] else '**FAILED**'}: "
                     f"{r['summary'].replace('|', '/')} | {cnt} | {r['seconds']} |")
    out = Path(args.output)
    atomic_write_text(out, "\n".join(lines) + "\n")
    atomic_write_json(out.with_suffix(".json"), report)
    print(f"compat-check: {'passed' if ok else 'FAILED'}; wrote {out}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
