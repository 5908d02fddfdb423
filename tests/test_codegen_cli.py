"""`alexnet-fast codegen` (profiling/codegen/cli.py) on the fixture kernels: reports, exit codes,
bad arguments and a missing cuobjdump."""

from __future__ import annotations

import os

import pytest

from codegen_helpers import fixture_discovery, run_codegen  # noqa: F401 (fixture_discovery: a fixture)
from alexnet_fast.profiling.codegen.compile import cuobjdump_path
from alexnet_fast.profiling.codegen.gates import COLUMNS
from alexnet_fast.profiling.codegen.sass import CodegenToolError


def test_missing_cuobjdump_is_a_clear_error(tmp_path, fixture_discovery, monkeypatch, capsys):
    from triton.knobs import nvidia_knobs

    # where Triton looks: $TRITON_CUOBJDUMP_PATH, else its bundled copy
    monkeypatch.setattr(vars(nvidia_knobs)["cuobjdump"], "default_path", str(tmp_path / "no-cuobjdump"))
    monkeypatch.delenv("TRITON_CUOBJDUMP_PATH", raising=False)
    with pytest.raises(CodegenToolError, match="TRITON_CUOBJDUMP_PATH"):
        cuobjdump_path()
    assert run_codegen("--output-dir", str(tmp_path)) == 2
    assert "cuobjdump not found" in capsys.readouterr().err


def test_cli_refuses_an_output_dir_it_cannot_use(tmp_path, fixture_discovery, capsys):
    a_file = tmp_path / "report.txt"
    a_file.write_text("")
    assert run_codegen("--output-dir", str(a_file)) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"codegen: --output-dir {a_file} is a file, not a directory"
    assert run_codegen("--output-dir", str(a_file / "sub")) == 2
    assert "cannot be created" in capsys.readouterr().err


def test_cli_writes_csv_and_md_and_fails_on_spills(tmp_path, fixture_discovery, capsys):
    import pandas as pd

    ops = ["--op", "fixture_matmul,fixture_relu", "--op", "fixture_spill"]
    assert run_codegen(*ops, "--arch", "80", "--output-dir", str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "FAIL fixture_spill/fixture_normalize_kernel/b16384_w1/fp32 sm_80: spills registers" in out
    table = pd.read_csv(tmp_path / "codegen.csv")
    assert list(table.columns) == COLUMNS and len(table) == 4 and set(table["arch"]) == {80}
    assert table.set_index("op")["passed"].groupby(level=0).all().to_dict() == {
        "fixture_matmul": True, "fixture_relu": True, "fixture_spill": False}
    md = (tmp_path / "codegen.md").read_text()
    assert md.count("\n| fixture_") == 4 and "1 failed checks" in md and "Failed by op: fixture_spill 1/1." in md
    assert "## Failures" in md
    assert sorted(os.listdir(tmp_path)) == ["codegen.csv", "codegen.md"]  # no temp files left


def test_cli_exits_zero_when_every_check_passes(tmp_path, fixture_discovery):
    assert run_codegen("--op", "fixture_relu", "--arch", "80,sm_90", "--output-dir", str(tmp_path)) == 0
    md = (tmp_path / "codegen.md").read_text()
    assert "2 compiles (2 compiled), 0 failed checks, 0 documented exceptions, 0 coverage problems" in md


@pytest.mark.parametrize("args, message", [
    (["--arch", "75"], "supported archs are 80, 90"),
    (["--op", "no_such_op"], "no specs for op no_such_op; ops with specs: fixture_broken, fixture_load_width, "
                             "fixture_matmul, fixture_pipeline"),
    (["--jobs", "0"], "--jobs must be >= 1"),
])
def test_cli_rejects_bad_arguments(tmp_path, fixture_discovery, capsys, args, message):
    assert run_codegen(*args, "--output-dir", str(tmp_path)) == 2
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)
