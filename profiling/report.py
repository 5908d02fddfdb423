"""`alexnet-fast report`: re-render the reports from saved results.

Reads one or more results tables written by ``alexnet-fast bench`` and writes REPORT.md and
its plots under the output directory (:mod:`profiling.render.bench`), atomically. An input
whose columns hold values of the wrong type (text where a number belongs, a number where a
name belongs) is refused with one line naming the file, the column, the row and the value
(:func:`check_column_types`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from alexnet_fast.io import writable_dir
from alexnet_fast.profiling.render.bench import render
from alexnet_fast.profiling.results import read_results

__all__ = ["add_arguments", "run", "render", "check_column_types"]


# ---------------------------------------------------------------------- input columns
# The columns the report reads, by the type their non-empty values must have.
NUMBER_COLUMNS = (
    "batch_size", "width_mult", "input_size", "median_ms", "p20_ms", "p80_ms", "min_ms", "repeats", "warmup",
    "compile_s", "images_per_s", "flops", "bytes", "intensity", "gflops_per_s", "gbytes_per_s", "max_abs_err",
    "max_rel_err", "grad_max_abs_err", "grad_max_rel_err", "fp64_err", "eager_fp64_err", "tolerance", "comm_ms",
    "comm_bytes", "sm_clock_mhz", "mem_clock_mhz", "power_w", "temperature_c", "threads", "cpu_count",
    "load_avg_1m")
WHOLE_NUMBER_COLUMNS = ("batch_size", "input_size", "repeats", "warmup", "threads", "cpu_count")
TEXT_COLUMNS = ("scope", "layer", "op", "variant", "label", "precision", "pass", "layout", "status", "device",
                "machine", "bytes_model", "check_size", "worst_tensor", "timer", "throttle_reasons")
FLAG_COLUMNS = ("equivalent", "throttled")
_FLAGS = {True: True, False: False, 1: True, 0: False, "True": True, "False": False, "true": True,
          "false": False}


def _present(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def check_column_types(frame: pd.DataFrame, source: str | Path) -> pd.DataFrame:
    """``frame`` with its number columns as floats and flag columns as booleans, or a
    ValueError naming ``source``, the first column with a value of the wrong type, the row
    and the value. Empty cells are allowed everywhere."""
    def refuse(column: str, kind: str, row: int, value) -> ValueError:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        return ValueError(f"results file {source}: column {column!r} must hold {kind}; row {row} has "
                          f"{shown} ({type(value).__name__})")

    frame = frame.copy()
    for column in NUMBER_COLUMNS:
        if column not in frame.columns:
            continue
        values = frame[column]
        numbers = pd.to_numeric(values.map(lambda v: None if isinstance(v, bool) else v), errors="coerce")
        for row, (value, number) in enumerate(zip(values, numbers)):
            if _present(value) and pd.isna(number):
                raise refuse(column, "numbers", row, value)
            if column in WHOLE_NUMBER_COLUMNS and _present(value) and math.isfinite(number) and number != int(number):
                raise refuse(column, "whole numbers", row, value)
        frame[column] = numbers.astype(float)
    for column in TEXT_COLUMNS:
        if column not in frame.columns:
            continue
        for row, value in enumerate(frame[column]):
            if _present(value) and not isinstance(value, str):
                raise refuse(column, "text", row, value)
    for column in FLAG_COLUMNS:
        if column not in frame.columns:
            continue
        flags = []
        for row, value in enumerate(frame[column]):
            if not _present(value):
                flags.append(None)
            elif isinstance(value, (bool, int, float, str)) and value in _FLAGS:
                flags.append(_FLAGS[value])
            else:
                raise refuse(column, "true/false", row, value)
        frame[column] = pd.Series(flags, index=frame.index, dtype=object)
    return frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", metavar="PATH",
                        help="results.json / results.csv or a directory holding one; repeatable "
                             "(default: the output directory)")
    parser.add_argument("--output-dir", default="reports", help="where the PNGs and REPORT.md go (default: reports)")


def run(args: argparse.Namespace) -> int:
    inputs = args.input or [args.output_dir]
    try:
        frames = [check_column_types(read_results(p), p) for p in inputs]
        writable_dir(args.output_dir)
    except ValueError as e:
        print(f"alexnet-fast report: {e}", file=sys.stderr)
        return 2
    path = render(frames, args.output_dir)
    print(f"wrote {path} and its plots", file=sys.stderr)
    return 0
