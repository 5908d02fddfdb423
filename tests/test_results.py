"""Results files: atomic writes (a crash mid-write leaves the old file), environment columns."""

import json
import os

import pandas as pd
import pytest

from alexnet_fast.profiling import results as R


def test_crash_mid_json_write_keeps_both_old_files(tmp_path, monkeypatch):
    R.write_results([{"scope": "model", "variant": "eager", "median_ms": 1.0}], tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in (R.RESULTS_CSV, R.RESULTS_JSON)}
    real_dumps = json.dumps

    def crash_in_json(obj, **kw):
        if isinstance(obj, list):
            raise RuntimeError("killed mid-write")
        return real_dumps(obj, **kw)

    monkeypatch.setattr(R.json, "dumps", crash_in_json)
    with pytest.raises(RuntimeError, match="killed mid-write"):
        R.write_results([{"scope": "model", "variant": "compile", "median_ms": 2.0}], tmp_path)
    # the CSV was already replaced (each file is atomic on its own); the JSON is the old one, whole
    assert json.loads((tmp_path / R.RESULTS_JSON).read_bytes()) == json.loads(before[R.RESULTS_JSON])
    assert sorted(os.listdir(tmp_path)) == sorted(before)  # no temporary file left behind


def test_write_results_crash_keeps_both_old_files(tmp_path, monkeypatch):
    R.write_results([{"scope": "model", "variant": "eager", "median_ms": 1.0}], tmp_path)
    before = {p: (tmp_path / p).read_bytes() for p in (R.RESULTS_CSV, R.RESULTS_JSON)}

    def broken_to_csv(self, path, **kw):
        with open(path, "w") as f:
            f.write("scope,variant\nmodel,")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken_to_csv)
    with pytest.raises(OSError, match="disk full"):
        R.write_results([{"scope": "model", "variant": "compile", "median_ms": 2.0}], tmp_path)
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    assert sorted(os.listdir(tmp_path)) == sorted(before)


def test_rows_round_trip_with_columns_in_order(tmp_path):
    rows = [{"scope": "model", "variant": "eager", "precision": "fp32", "batch_size": 4, "pass": "train",
             "status": "ok", "median_ms": 12.5, "extra_column": "kept"},
            {"scope": "model", "variant": "triton", "precision": "fp32", "batch_size": 2, "pass": "train",
             "status": "interpreted", "median_ms": float("nan")}]
    csv_path, json_path = R.write_results(rows, tmp_path)
    records = json.loads(json_path.read_text())
    assert records[1]["median_ms"] is None  # NaN is written as null, the JSON stays valid
    table = R.read_results(tmp_path)
    assert list(table.columns[:len(R.COLUMNS)]) == R.COLUMNS and table["extra_column"][0] == "kept"
    assert R.read_results(csv_path)["median_ms"][0] == 12.5


def test_environment_describes_the_machine():
    env = R.environment("cpu", threads=3)
    assert env["device_type"] == "cpu" and env["threads"] == 3 and env["machine"].endswith("-3t")
    assert env["torch"] and env["python"] and env["git_commit"]
    assert env["git_commit"] != "unknown"  # the tests run inside the repository
