"""`alexnet-fast regress` on recorded pytest-benchmark files."""

import copy
import re
import json
from pathlib import Path

import pytest

from alexnet_fast.cli import main
from profiling.regress import DEFAULT_THRESHOLD_PCT, BenchmarkFileError, load_run

REPO = Path(__file__).resolve().parents[1]
RECORDED = sorted((REPO / "reports" / "benchmarks").glob("*.json"))


def synthetic_run():
    """The layout pytest-benchmark writes (--benchmark-json), two kernels."""
    def bench(kernel, shape, provider, median):
        return {"group": f"{kernel} fp32", "name": f"test_kernel[{kernel}-fp32-{provider}]",
                "fullname": f"tests/benchmarks/test_bench_kernels.py::test_kernel[{kernel}-fp32-{provider}]",
                "params": {"case": kernel, "provider": provider},
                "stats": {"min": median * 0.9, "max": median * 1.2, "mean": median, "stddev": median * 0.05,
                          "median": median, "rounds": 5, "iterations": 1},
                "extra_info": {"kernel": kernel, "shape": shape, "dtype": "fp32", "provider": provider,
                               "machine": "cpu-test-2t"}}
    return {"machine_info": {"node": "test", "cpu": {"brand_raw": "Test CPU"}},
            "commit_info": {"id": "abc"}, "datetime": "2026-01-01T00:00:00", "version": "5.1.0",
            "benchmarks": [bench("conv1+relu1", "8x3x227x227", "torch", 0.050),
                           bench("lrn1+pool1", "8x96x55x55", "torch", 0.010)]}


@pytest.fixture(params=["synthetic"] + [p.name for p in RECORDED])
def baseline(request, tmp_path):
    """A synthetic run, and every committed baseline under reports/benchmarks/."""
    data = synthetic_run() if request.param == "synthetic" else \
        json.loads((REPO / "reports" / "benchmarks" / request.param).read_text())
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(data))
    return path, data


def slowed(data, factor, index=0):
    out = copy.deepcopy(data)
    out["benchmarks"][index]["stats"]["median"] *= factor
    out["datetime"] = "2026-02-01T00:00:00"
    return out


def test_twenty_percent_slower_fails_naming_the_kernel(baseline, tmp_path, capsys):
    path, data = baseline
    current = tmp_path / "current.json"
    current.write_text(json.dumps(slowed(data, 1.2)))
    assert main(["regress", str(current), "--baseline", str(path)]) == 1
    out, err = capsys.readouterr()
    kernel = load_run(path).benchmarks[data["benchmarks"][0]["fullname"]].kernel
    assert "REGRESSION" in err and kernel in err and "+20.0%" in err
    slower = [ln for ln in out.splitlines() if "SLOWER" in ln]
    assert len(slower) == 1 and kernel in slower[0]


def test_within_threshold_passes_and_history_is_drawn(baseline, tmp_path, capsys):
    path, data = baseline
    current = tmp_path / "current.json"
    current.write_text(json.dumps(slowed(data, 1.05)))
    plot = tmp_path / "history.png"
    assert main(["regress", str(current), "--baseline", str(path), "--history", str(path),
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "SLOWER" not in out and "+5.0%" in out and f"threshold +{DEFAULT_THRESHOLD_PCT:g}%" in out
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # a looser threshold lets the 20% slower run pass too
    current.write_text(json.dumps(slowed(data, 1.2)))
    assert main(["regress", str(current), "--baseline", str(path), "--threshold", "25"]) == 0


def test_new_and_missing_benchmarks_are_listed_not_failed(tmp_path, capsys):
    data = synthetic_run()
    base, current = tmp_path / "b.json", tmp_path / "c.json"
    base.write_text(json.dumps(data))
    fewer = copy.deepcopy(data)
    fewer["benchmarks"] = fewer["benchmarks"][:1]
    current.write_text(json.dumps(fewer))
    assert main(["regress", str(current), "--baseline", str(base)]) == 0
    assert "missing" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    (json.dumps({"results": []}), "has no 'benchmarks' list"),
    (json.dumps({"benchmarks": [{"name": "k", "stats": {"mean": 1.0}}]}), "benchmark #0 (k) has no positive stats.median"),
    (json.dumps([1, 2]), "has no 'benchmarks' list"),
    (json.dumps({"benchmarks": [{"name": "k", "stats": {"median": 1.0}, "extra_info": ["k"]}]}),
     "benchmark #0 (k) has extra_info of type list, expected an object"),
    (json.dumps({"benchmarks": [synthetic_run()["benchmarks"][0]] * 2}),
     "benchmark #1 repeats the name 'tests/benchmarks/test_bench_kernels.py::test_kernel[conv1+relu1-fp32-torch]'"),
])
def test_malformed_baseline_is_a_clear_error(tmp_path, capsys, content, message):
    bad, current = tmp_path / "bad.json", tmp_path / "current.json"
    bad.write_text(content)
    current.write_text(json.dumps(synthetic_run()))
    assert main(["regress", str(current), "--baseline", str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.json" in err
    with pytest.raises(BenchmarkFileError, match=re.escape(message)):
        load_run(bad)


def test_missing_baseline_is_a_clear_error(tmp_path, capsys):
    current = tmp_path / "current.json"
    current.write_text(json.dumps(synthetic_run()))
    assert main(["regress", str(current), "--baseline", str(tmp_path / "nope.json")]) == 2
    assert "nope.json does not exist" in capsys.readouterr().err


def test_default_baseline_is_the_current_machines(tmp_path, monkeypatch, capsys):
    import profiling.regress as regress

    monkeypatch.setattr(regress, "BASELINE_DIR", tmp_path / "baselines")
    (tmp_path / "baselines").mkdir()
    data = synthetic_run()
    (tmp_path / "baselines" / "cpu-test-2t.json").write_text(json.dumps(data))  # the machine in extra_info
    current = tmp_path / "current.json"
    current.write_text(json.dumps(slowed(data, 1.2, index=1)))
    assert main(["regress", str(current)]) == 1
    assert "lrn1+pool1" in capsys.readouterr().err


@pytest.mark.parametrize("threshold", ["nan", "inf", "-inf", "0", "-5"])
def test_threshold_must_be_finite_and_positive(tmp_path, capsys, threshold):
    """A NaN threshold compares False with every change (nothing ever fails), inf lets any
    slowdown pass, 0 or less calls every run slower: all refused with one line, exit 2."""
    data = synthetic_run()
    base, current = tmp_path / "b.json", tmp_path / "c.json"
    base.write_text(json.dumps(data))
    current.write_text(json.dumps(slowed(data, 100.0)))
    assert main(["regress", str(current), "--baseline", str(base), f"--threshold={threshold}"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "--threshold must be a finite positive percentage" in err
    assert out == ""


def _empty(data):
    out = copy.deepcopy(data)
    out["benchmarks"] = []
    return out


def _renamed(data):
    out = copy.deepcopy(data)
    for b in out["benchmarks"]:
        b["fullname"] = b["fullname"].replace("test_kernel", "test_kernel_v2")
    return out


@pytest.mark.parametrize("case, make_current, make_baseline, message", [
    ("empty current run", _empty, lambda d: d, "current run {current} holds no benchmarks: nothing to compare"),
    ("empty baseline", lambda d: d, _empty, "baseline {baseline} holds no benchmarks: nothing to compare"),
    ("all renamed", _renamed, lambda d: d, "no benchmark of the current run {current} (2) is in the baseline "
                                           "{baseline} (2): nothing compared"),
])
def test_a_check_that_compares_nothing_fails(tmp_path, capsys, case, make_current, make_baseline, message):
    """Nothing compared is not a pass: exit 2 with one line saying why (the current run was
    100x slower, so a pass would hide it)."""
    data = slowed(synthetic_run(), 100.0)
    base, current = tmp_path / "b.json", tmp_path / "c.json"
    base.write_text(json.dumps(make_baseline(synthetic_run())))
    current.write_text(json.dumps(make_current(data)))
    assert main(["regress", str(current), "--baseline", str(base)]) == 2, case
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(current=current, baseline=base) in err
