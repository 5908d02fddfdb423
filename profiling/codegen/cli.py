"""``alexnet-fast codegen`` (also ``python -m alexnet_fast.profiling.codegen``): find the specs,
compile them for the requested archs in worker processes, apply the gates, write
``codegen.csv`` and ``codegen.md``; exit 1 on a failed check or coverage problem, 2 on bad input."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from alexnet_fast.profiling.codegen.arch import DEFAULT_ARCHS, SHARED_LIMIT_BYTES
from alexnet_fast.profiling.codegen.compile import compile_refs, compile_tasks, cuobjdump_path
from alexnet_fast.profiling.codegen.coverage import coverage_problems
from alexnet_fast.profiling.codegen.report import RowId, provenance, results_table, write_reports
from alexnet_fast.profiling.codegen.sass import CodegenToolError
from alexnet_fast.profiling.codegen.specs import collect_specs, kernel_module_names, reference_refs, spec_id

DEFAULT_OUTPUT_DIR = "reports"


def _split_list(values: Sequence[str] | None) -> list[str]:
    """Repeated and/or comma-separated option values, in order, without duplicates."""
    items = [item.strip() for value in values or () for item in value.split(",")]
    return list(dict.fromkeys(item for item in items if item))


def _arch_list(values: Sequence[str] | None) -> list[int]:
    archs = []
    for part in _split_list(values) or [str(a) for a in DEFAULT_ARCHS]:
        arch = part.removeprefix("sm_")
        if not arch.isdigit() or int(arch) not in SHARED_LIMIT_BYTES:
            raise ValueError(f"--arch {part!r}: supported archs are {', '.join(map(str, SHARED_LIMIT_BYTES))}")
        archs.append(int(arch))
    return list(dict.fromkeys(archs))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", metavar="80,90",
                        help="SM archs to compile for, comma-separated or repeated (default: 80,90)")
    parser.add_argument("--op", action="append", metavar="NAME",
                        help="only the specs of this op, comma-separated or repeated, e.g. conv2d_relu")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="where codegen.csv and codegen.md go (default: reports/)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="compile processes (default: min(2, CPUs))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from alexnet_fast.io import writable_dir

    try:
        archs = _arch_list(args.arch)
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        writable_dir(args.output_dir)  # one line before minutes of compiling, not after
        cuobjdump_path()
    except (ValueError, CodegenToolError) as e:
        print(f"codegen: {e}", file=sys.stderr)
        return 2
    modules = [importlib.import_module(name) for name in kernel_module_names()]
    found = collect_specs(modules)
    ops = _split_list(args.op)
    if ops:
        known = sorted({ref.op for ref, _ in found})
        unknown = [op for op in ops if op not in known]
        if unknown:
            print(f"codegen: no specs for op {', '.join(unknown)}; ops with specs: {', '.join(known) or 'none'}",
                  file=sys.stderr)
            return 2
        found = [(ref, spec) for ref, spec in found if ref.op in ops]
        modules = [m for m in modules if m.__name__ in {ref.module for ref, _ in found}]
    problems = coverage_problems(modules)
    refs = [ref for ref, _ in found]
    if not refs:
        print(f"codegen: no codegen_specs() found in kernels/ (no op modules yet?); nothing to compile",
              file=sys.stderr)
    references = reference_refs(refs)
    refs += references
    print(f"codegen: {len(refs) - len(references)} specs from {len(modules)} modules + {len(references)} reference "
          f"GEMMs for {', '.join(f'sm_{a}' for a in archs)} (each for the archs of its tables) = "
          f"{len(compile_tasks(refs, archs))} compiles, {args.jobs} processes", file=sys.stderr)
    rows = compile_refs(refs, archs, jobs=args.jobs, progress=not args.no_progress)
    table = results_table(rows)
    csv_path, md_path = write_reports(table, args.output_dir, problems, provenance())
    failed = table[~table["passed"].astype(bool)]
    for _, r in failed.iterrows():
        print(f"FAIL {spec_id(RowId(r))} sm_{r['arch']}: {r['failures']}")
    for problem in problems:
        print(f"COVERAGE {problem}")
    print(f"{len(table)} compiles, {len(failed)} failed, {len(problems)} coverage problems; "
          f"wrote {csv_path} and {md_path}")
    return 1 if len(failed) or problems else 0
