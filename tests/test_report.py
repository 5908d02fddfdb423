"""`alexnet-fast report` renders plots and REPORT.md from saved results, honestly."""

import json

import pytest

from alexnet_fast.cli import main
from alexnet_fast.profiling.report import render
from alexnet_fast.profiling.results import read_results, to_frame, write_results

ENV = dict(device="Test CPU", device_type="cpu", machine="cpu-test-2t", threads=2, cpu_count=4, torch="2.x", triton="3.x",
           python="3.11", git_commit="abc123", run_id="r1", load_avg_1m=0.5, layout="single", preset="paper")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def model_row(label, batch, pass_, status, ms=None, **kw):
    variant = label.split("[")[0]
    row = dict(ENV, scope="model", layer="model", op="model", variant=variant, label=label, precision="fp32",
               batch_size=batch, status=status, **{"pass": pass_, "check_size": "full", **kw})
    if ms is not None:
        flops = 1.449e9 * batch * (3 if pass_ == "train" else 1)
        row.update(median_ms=ms, p20_ms=ms * 0.9, p80_ms=ms * 1.1, images_per_s=batch / ms * 1e3,
                   gflops_per_s=flops / ms / 1e6, flops=flops, bytes=flops / 4, intensity=4.0)
    return row


def results_rows():
    rows = [dict(ENV, scope="peak", layer="gemm", op="gemm", precision="fp32", status="peak", gflops_per_s=100.0,
                 note="measured: test"),
            dict(ENV, scope="peak", layer="copy", op="copy", precision="-", status="peak", gbytes_per_s=10.0,
                 note="measured: test")]
    # paired rounds: batch 8 a clear 2.5x; batch 1's interval contains 1 (the blocks' 40 -> 20 ms says 2x)
    paired = {1: dict(speedup=1.02, speedup_ci_low=0.95, speedup_ci_high=1.1, baseline_median_ms=20.4, rounds=40,
                      target_met=False, interference="yes", interference_why="load average 5.00 > 4 cores"),
              8: dict(speedup=2.5, speedup_ci_low=2.4, speedup_ci_high=2.6, baseline_median_ms=200.0, rounds=12,
                      target_met=True, interference="no", interference_why="")}
    for batch, eager_ms, compile_ms in ((1, 40.0, 20.0), (8, 200.0, 80.0)):
        rows.append(model_row("eager", batch, "inference", "ok", eager_ms, max_rel_err=0.0, tolerance=1e-4,
                              equivalent=True, interference="no"))
        rows.append(model_row("compile", batch, "inference", "ok", compile_ms, max_rel_err=2e-7, tolerance=1e-4,
                              equivalent=True, compile_s=5.0, **paired[batch]))
    rows.append(model_row("compile[max-autotune]", 8, "inference", "failed", max_rel_err=0.3, tolerance=1e-4,
                          equivalent=False, note="wrong on purpose"))
    rows.append(model_row("triton", 2, "inference", "interpreted", max_rel_err=3e-6, tolerance=1e-4,
                          equivalent=True, check_size="w0.125@67 b2"))
    rows.append(model_row("eager", 8, "train", "ok", 900.0, grad_max_rel_err=0.0, tolerance=1e-3, equivalent=True))
    rows.append(model_row("compile", 8, "train", "ok", 300.0, grad_max_rel_err=1e-6, tolerance=1e-3,
                          equivalent=True))
    for variant, ms, ai in (("eager", 30.0, 30.0), ("compile", 20.0, 50.0)):
        rows.append(dict(ENV, scope="layer", layer="conv1+relu1", op="conv2d_relu", variant=variant, label=variant,
                         precision="fp32", batch_size=8, status="ok", median_ms=ms, gflops_per_s=1.7e3 / ms,
                         gbytes_per_s=1.7e3 / ms / ai, intensity=ai, max_rel_err=0.0, **{"pass": "inference"}))
    rows.append(dict(ENV, scope="layer", layer="lrn1+pool1", op="lrn_max_pool2d", variant="triton", label="triton",
                     precision="fp32", batch_size=2, status="interpreted", max_rel_err=1e-6, intensity=2.4,
                     **{"pass": "inference"}))
    return rows


def test_report_renders_every_part(tmp_path):
    write_results(results_rows(), tmp_path)
    assert main(["report", "--output-dir", str(tmp_path)]) == 0
    for name in ("roofline_cpu-test-2t.png", "throughput_cpu-test-2t.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
    text = (tmp_path / "REPORT.md").read_text()
    assert "![roofline](roofline_cpu-test-2t.png)" in text and "![throughput](throughput_cpu-test-2t.png)" in text
    # eager vs compile ratio and fraction of peak: batch 8 inference 200 -> 80 ms = 2.5x;
    # eager 8 * 1.449 GFLOP / 0.2 s = 58 GFLOP/s = 58% of the 100 GFLOP/s GEMM peak, compile 145%
    assert ("| inference | fp32 | 8 | compile | 2.5x [2.4, 2.6] faster | 200 -> 80 | 12 (target met) | no | 58.0% | 145% |"
            in text.replace("144.9%", "145%"))
    # the interval contains 1: no word, whatever the separate blocks said; the flag and its reason shown
    assert ("| inference | fp32 | 1 | compile | 1.02x [0.95, 1.1] no significant difference | 20.4 -> 20 | 40 (cap) | "
            "**yes** (load average 5.00 > 4 cores) |") in text
    assert "**Measured under interference: 1 of 4 timed rows**" in text
    assert "| train | fp32 | 8 | compile | 3x (no interval: not paired) |" in text  # an old row without rounds
    # honest rows: failed and interpreted have no time, and say so
    lines = text.splitlines()
    failed = [ln for ln in lines if "| compile[max-autotune] |" in ln]
    assert failed and all("failed (not timed)" in ln or "FAIL" in ln for ln in failed)
    interpreted = [ln for ln in lines if "| triton |" in ln and "3.x" not in ln]  # not the versions table
    assert interpreted and all("interpreted" in ln for ln in interpreted)
    assert any("w0.125@67 b2" in ln for ln in interpreted)
    assert "| gemm | fp32 | 100 |" in text
    assert "Warning" not in text  # load 0.5 + 2 threads < 4 cores


def test_report_warns_about_a_loaded_cpu_and_reads_csv(tmp_path):
    rows = [dict(r, load_avg_1m=5.0) for r in results_rows()]
    write_results(rows, tmp_path)
    (tmp_path / "results.json").unlink()  # the CSV alone is enough
    report = render([read_results(tmp_path)], tmp_path)
    assert "load average at the start (5.0) plus the 2 timed threads exceeded the 4 cores" in report.read_text()


def test_missing_or_malformed_results_are_clear_errors(tmp_path, capsys):
    assert main(["report", "--output-dir", str(tmp_path)]) == 2
    assert "no results.json or results.csv" in capsys.readouterr().err
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    assert main(["report", "--input", str(bad), "--output-dir", str(tmp_path)]) == 2
    assert "malformed" in capsys.readouterr().err
    bad.write_text(json.dumps([{"scope": "model"}]))
    with pytest.raises(ValueError, match="lacks columns"):
        read_results(bad)
    assert to_frame([{"scope": "x"}]).columns[0] == "scope"


def test_speedups_pair_each_row_with_eager_of_its_own_run(tmp_path):
    from alexnet_fast.profiling.render.bench import _speedups

    paired = ("speedup", "speedup_ci_low", "speedup_ci_high", "baseline_median_ms", "rounds", "target_met")
    # results without paired rounds (an older run): eager's row of the same run is the baseline
    first = [{k: v for k, v in r.items() if k not in paired} for r in results_rows()
             if r["scope"] == "model" and r["status"] == "ok"]
    # a second run on the same machine: eager twice as slow, compile unchanged
    second = [dict(r, run_id="r2", median_ms=r["median_ms"] * (2 if r["variant"] == "eager" else 1)) for r in first]
    frame = to_frame(first + second)
    merged = _speedups(frame)
    assert len(merged) == len(frame)  # eager matched once per row, not once per run
    compile_b8 = merged[(merged["variant"] == "compile") & (merged["batch_size"] == 8) & (merged["pass"] == "inference")]
    assert dict(zip(compile_b8["run_id"], compile_b8["speedup"])) == {"r1": 2.5, "r2": 5.0}
    write_results(first, tmp_path / "a")
    write_results(second, tmp_path / "b")
    assert main(["report", "--input", str(tmp_path / "a"), "--input", str(tmp_path / "b"), "--output-dir", str(tmp_path)]) == 0
    text = (tmp_path / "REPORT.md").read_text()
    assert "| inference | fp32 | 8 | compile | 2.5x (no interval: not paired) |" in text
    assert "| inference | fp32 | 8 | compile | 5x (no interval: not paired) |" in text
    lines = text.splitlines()
    assert sum(line.startswith("| inference | fp32 | 8 | compile |") for line in lines) == 2  # one headline line per run
    model_speedups = [line.split(" | ")[-4] for line in lines if line.startswith("| single | inference | fp32 | 8 | compile |")]
    assert model_speedups == ["2.5x (no interval: not paired)", "5x (no interval: not paired)"]


_WRONG_TYPES = [
    ("batch_size", "eight", "numbers"),       # crashed in int() before
    ("batch_size", 2.5, "whole numbers"),
    ("median_ms", "fast", "numbers"),         # crashed dividing str by str
    ("intensity", "high", "numbers"),
    ("throttled", "maybe", "true/false"),
]
_WRONG_TYPES_JSON = [                         # a CSV cell has no type: "16" in a text column is text
    ("gflops_per_s", True, "numbers"),
    ("precision", 16, "text"),                # crashed joining the precisions
    ("variant", 3.0, "text"),
]


@pytest.mark.parametrize("fmt, column, value, kind", [("json", *case) for case in _WRONG_TYPES + _WRONG_TYPES_JSON]
                         + [("csv", *case) for case in _WRONG_TYPES])
def test_a_column_of_the_wrong_type_is_one_line_naming_it(tmp_path, capsys, fmt, column, value, kind):
    """Each of these made `report` die with a traceback (or render nonsense); now exit 2 and
    one line naming the file, the column, the row and the value."""
    rows = results_rows()
    rows[3] = dict(rows[3], **{column: value})
    write_results(rows, tmp_path / "in")
    (tmp_path / "in" / ("results.csv" if fmt == "json" else "results.json")).unlink()
    assert main(["report", "--input", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"column {column!r} must hold {kind}; row 3 has" in err and str(tmp_path / "in") in err
    assert not (tmp_path / "out" / "REPORT.md").exists()


def test_column_types_accept_what_bench_writes_and_empty_cells(tmp_path):
    """The bench's own tables (JSON and CSV) pass unchanged: numbers stay numbers, empty
    cells stay empty, flags are booleans."""
    from alexnet_fast.profiling.report import check_column_types

    write_results(results_rows(), tmp_path)
    for frame in (read_results(tmp_path / "results.json"), read_results(tmp_path / "results.csv")):
        checked = check_column_types(frame, tmp_path)
        assert checked["batch_size"].dropna().tolist() == frame["batch_size"].dropna().astype(float).tolist()
        assert checked["median_ms"].isna().sum() == frame["median_ms"].isna().sum()
        assert set(checked["equivalent"].dropna()) <= {True, False}


def test_report_shows_peak_memory_and_what_it_counts(tmp_path):
    from alexnet_fast.profiling.telemetry import PEAK_MEMORY_SOURCES

    rows = results_rows()
    for r in rows:
        if r["scope"] in ("model", "layer") and r["status"] == "ok":
            r.update(peak_memory_mb=12.5 if r["scope"] == "model" else 3.25, peak_memory_source=PEAK_MEMORY_SOURCES["cpu"])
    write_results(rows, tmp_path)
    text = render([read_results(tmp_path)], tmp_path).read_text()
    model_header = next(line for line in text.splitlines() if line.startswith("| layout | pass |"))
    assert "peak MiB" in model_header and "| 12.5 |" in text and "| 3.25 |" in text
    assert f"peak MiB: {PEAK_MEMORY_SOURCES['cpu']}." in text
