"""The suite's bounded ``pytest -m gpu`` run in a subprocess: its log streamed to a file as it
runs, SIGINT at the timeout (pytest then writes its junit file), SIGKILL 15 s later, and a
junit file made from the log when pytest was killed before it could write one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["run_gpu_tests", "junit_counts"]

REPO = Path(__file__).resolve().parents[1]


def run_gpu_tests(tests: list[str], *, out_dir: Path, timeout_s: float, autotune_max_configs: int | None) -> dict:
    """Run the pytest node ids ``tests`` from the checkout with at most ``timeout_s``;
    ``pytest-gpu.log`` and ``pytest-gpu.xml`` go to ``out_dir``. Returns the row's fields:
    status (ok, failed, timeout), returncode, timed_out, elapsed_s, junit, summary, command and
    the junit counts."""
    from alexnet_fast.profiling.autotune_limit import ENV_MAX_CONFIGS

    junit, log = out_dir / "pytest-gpu.xml", out_dir / "pytest-gpu.log"
    env = dict(os.environ)
    if autotune_max_configs:
        env[ENV_MAX_CONFIGS] = str(autotune_max_configs)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "-o", "addopts=",
           "-p", "alexnet_fast.profiling.autotune_limit", f"--junitxml={junit}", *tests]
    if junit.exists():
        junit.unlink()
    rc, timed_out, elapsed = _run_logged(cmd, cwd=REPO, env=env, log=log, timeout_s=timeout_s)
    if not junit.exists():
        _junit_from_log(junit, log, tests, timeout_s, rc)
    counts = junit_counts(junit) or {}
    text = log.read_text(errors="replace") if log.exists() else ""
    status = "timeout" if timed_out else ("ok" if rc == 0 else "failed")
    return dict(status=status, returncode=rc, timed_out=timed_out, elapsed_s=round(elapsed, 1), junit=junit.name,
                summary=_pytest_summary(text), command=" ".join(cmd[1:]), **counts)


def _run_logged(cmd: list[str], *, cwd: Path, env: dict, log: Path, timeout_s: float) -> tuple[int | None, bool, float]:
    """Run ``cmd`` with its output streamed into ``log``; at the timeout, SIGINT (pytest then
    writes its junit file and exits), then SIGKILL after 15 s. Interrupted itself (SIGTERM),
    the child is stopped the same way before the interrupt goes on."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
        try:
            return proc.wait(timeout=timeout_s), False, time.perf_counter() - start
        except subprocess.TimeoutExpired:
            _stop(proc)
            return proc.returncode, True, time.perf_counter() - start
        except BaseException:
            _stop(proc)
            raise


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _junit_from_log(junit: Path, log: Path, tests: list[str], timeout_s: float, rc: int | None) -> None:
    """A junit file for a pytest that did not write one (killed): each selected test an
    error naming the cut, the log's tail as the message."""
    from xml.sax.saxutils import escape, quoteattr

    from alexnet_fast.io import atomic_write_text

    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    why = f"pytest ended without a junit file (exit {rc}, timeout {timeout_s:.0f} s)"
    cases = "".join(f'<testcase classname="pytest-gpu" name={quoteattr(t)}><error message={quoteattr(why)}>'
                    f"{escape(tail)}</error></testcase>" for t in tests)
    atomic_write_text(junit, f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" '
                             f'tests="{len(tests)}" errors="{len(tests)}" failures="0" skipped="0">{cases}'
                             f"</testsuite></testsuites>\n")


def _pytest_summary(text: str) -> str:
    lines = [ln.strip("= ").strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if any(w in ln for w in ("passed", "failed", "skipped", "error", "no tests ran")):
            return ln
    return lines[-1] if lines else ""


def junit_counts(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return None
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
