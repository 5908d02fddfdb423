"""The preflight (defect 6): what a run needs, found missing in one line before any cell --
a C compiler and Python.h for Triton's launcher on a GPU, inductor's C++ compiler on a CPU,
a usable compute mode -- simulated here; and the record of a machine that has them."""

from pathlib import Path

import pytest

from alexnet_fast.profiling import preflight as pf

HEADERS_OK = {"python_h": "/usr/include/python3/Python.h", "python_h_wanted": "/usr/include/python3/Python.h"}


def test_a_missing_c_compiler_is_named():
    tools = pf.toolchain(env={"CC": "/nonexistent/gcc"})
    assert tools["cc"] is None and tools["cc_wanted"] == "$CC=/nonexistent/gcc"
    problems = pf.toolchain_problems({**tools, **HEADERS_OK}, "cuda")
    assert len(problems) == 1 and "no C compiler ($CC=/nonexistent/gcc not found)" in problems[0]
    no_gcc = pf.toolchain(env={}, which=lambda name: None)  # neither gcc nor clang on PATH
    assert no_gcc["cc"] is None and "gcc or clang not found" in pf.toolchain_problems({**no_gcc, **HEADERS_OK}, "cuda")[0]


def test_a_missing_python_h_is_named(tmp_path):
    tools = pf.toolchain(include_dir=str(tmp_path))
    assert tools["python_h"] is None
    problems = pf.toolchain_problems({**tools, "cc": "/usr/bin/gcc"}, "cuda")
    assert len(problems) == 1 and f"no Python.h (looked for {Path(tmp_path) / 'Python.h'})" in problems[0]
    (tmp_path / "Python.h").write_text("")
    assert pf.toolchain_problems({**pf.toolchain(include_dir=str(tmp_path)), "cc": "/usr/bin/gcc"}, "cuda") == []


def test_cpu_needs_a_cxx_compiler_only_for_inductor():
    tools = pf.toolchain(env={"CXX": "/nonexistent/g++"})
    assert "no C++ compiler (/nonexistent/g++ not found)" in pf.toolchain_problems(tools, "cpu", "inductor")[0]
    assert pf.toolchain_problems(tools, "cpu", "aot_eager") == []


def test_failed_preflight_is_one_line_and_launches_nothing():
    tools = {**pf.toolchain(), "cxx": None, "cxx_wanted": "/nonexistent/g++"}
    record = pf.preflight("cpu", tools=tools)
    assert not record["ok"] and not any(c["name"].startswith("tiny") for c in record["checks"])
    line = pf.summary(record)
    assert line.startswith("preflight failed: no C++ compiler") and "\n" not in line


def test_a_prohibited_compute_mode_fails(monkeypatch):
    monkeypatch.setattr(pf, "_device", lambda device: {"type": "cuda", "name": "GPU", "compute_mode": "prohibited"})
    record = pf.preflight("cpu", launch=False)
    assert not record["ok"] and "compute mode is Prohibited" in pf.summary(record)


def test_the_record_of_a_machine_that_has_what_it_needs():
    record = pf.preflight("cpu", compile_backend="eager")
    assert record["ok"], record["problems"]
    assert {c["name"] for c in record["checks"]} == {"versions", "device properties", "tiny Triton kernel",
                                                     "tiny torch.compile"}
    assert record["versions"]["torch"] and record["device"]["type"] == "cpu" and record["device"]["cores"] >= 1
    assert record["seconds"] < pf.BUDGET_S * 6  # the 10 s limit is the GPU's; a loaded CI CPU gets room
    assert pf.summary(record).startswith("preflight ok in")


@pytest.mark.gpu
def test_preflight_on_the_gpu():
    record = pf.preflight("cuda")
    assert record["ok"], record["problems"]
    d = record["device"]
    assert d["sms"] > 0 and d["l2_bytes"] > 0 and d["smem_per_block_optin_bytes"] > 0
    assert record["seconds"] <= pf.BUDGET_S
