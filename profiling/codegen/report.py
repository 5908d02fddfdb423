"""The code-generation check's report: the tidy table (``codegen.csv``, one row per spec x
arch, ``gates.COLUMNS``), its provenance (triton, ptxas per arch, commit) and ``codegen.md``:
the main-loop summary, the configs each autotune table tries first, every compile, the
tensor-core rows beside their reference GEMM, every launch's grid, exceptions and failures."""

from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from alexnet_fast.profiling.codegen.arch import (MAX_BLOCKS_PER_SM, MAX_WARPS_PER_SM, REGISTER_ALLOCATION_UNIT,
                                                 REGISTERS_PER_SM, SHARED_LIMIT_BYTES, SHARED_PER_SM_BYTES,
                                                 SHARED_RESERVED_PER_BLOCK, SMS, TENSOR_FLOP_PER_CLOCK,
                                                 TENSOR_RATE_SOURCES, WARP_SCHEDULERS_PER_SM)
from alexnet_fast.profiling.codegen.gates import (AUTOTUNE_FIRST, COLUMNS, ISSUE_CEILING_ARCHS, ISSUE_CEILING_MIN,
                                                  LOOP_RATIO_LIMIT, REGISTER_RATIO_LIMIT, present)
from alexnet_fast.profiling.codegen.sass import LOOP_CLASSES
from alexnet_fast.profiling.codegen.specs import REFERENCE_MODULE, spec_id


def results_table(rows: Iterable[dict[str, Any]]):
    """Tidy pandas DataFrame (``COLUMNS``), one row per spec x arch, sorted."""
    import pandas as pd

    table = pd.DataFrame(list(rows), columns=COLUMNS)
    return table.sort_values(["op", "kernel", "config", "dtype", "shape", "arch"], kind="stable").reset_index(drop=True)


def provenance() -> dict[str, str]:
    """Versions and commit that produced a report (ptxas per arch: the one Triton runs)."""
    import triton
    from triton.backends.nvidia.compiler import get_ptxas

    info = {"triton": triton.__version__}
    for arch in SHARED_LIMIT_BYTES:
        with contextlib.suppress(Exception):
            tool = get_ptxas(arch)
            info[f"ptxas sm_{arch}"] = f"{os.path.basename(tool.path)} {tool.version}"
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
    return info


def _md_table(header: Sequence[str], lines: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v).replace("|", "/") for v in line) + " |" for line in lines]
    return out


def _fmt(row, col, scale=1, digits=0) -> str:
    v = row[col]
    if v is None or v != v or v == "":
        return "-"
    return f"{v / scale:.{digits}f}" if digits else f"{int(v)}"


def _buffers(row) -> str:
    if not row["compiled"] or not present(row["buffers_a"]):
        return "-"
    return f"A{_fmt(row, 'buffers_a')} B{_fmt(row, 'buffers_b')}"


def _async_copies(row) -> str:
    if not row["compiled"]:
        return "-"
    parts = []
    if row["ldgsts"]:
        width = _fmt(row, "ldgsts_max_bytes")
        if row["ldgsts_min_bytes"] != row["ldgsts_max_bytes"]:
            width = f"{_fmt(row, 'ldgsts_min_bytes')}-{width}"
        parts.append(f"{_fmt(row, 'ldgsts')}x{width}B")
    if row["utmaldg"]:
        parts.append(f"TMA {_fmt(row, 'utmaldg')}")
    return " + ".join(parts) or "0"


def _arch_list_text() -> str:
    return ", ".join(f"sm_{a}" for a in SHARED_LIMIT_BYTES)


def _constants_text() -> list[str]:
    """The per-arch constants of the issue ceiling and the launch figures, with their sources."""
    lines = ["Issue ceiling = tensor cycles per K-step / issue cycles per K-step per SM sub-partition. Tensor "
             "cycles = the loop's MMA FLOPs (from the SASS MMA shapes, else the tile) / dense FLOP per clock per SM; "
             f"issue cycles = loop instructions x warps / {WARP_SCHEDULERS_PER_SM} (one warp scheduler per "
             "sub-partition, one instruction per clock). Dense tensor FLOP per clock per SM (16-bit / TF32):"]
    for arch, rates in TENSOR_FLOP_PER_CLOCK.items():
        lines.append(f"- sm_{arch}: {rates['16bit']:,} / {rates['tf32']:,} -- {TENSOR_RATE_SOURCES.get(arch, '')}")
    lines += ["", "Launch figures (the grid table): CTAs per SM allowed by registers (" +
              ", ".join(f"sm_{a} {n // 1024}K" for a, n in REGISTERS_PER_SM.items()) +
              f" per SM, allocated per warp in units of {REGISTER_ALLOCATION_UNIT}) and by shared memory (" +
              ", ".join(f"sm_{a} {n:,} B" for a, n in SHARED_PER_SM_BYTES.items()) +
              f" per SM, {SHARED_RESERVED_PER_BLOCK} B reserved per block), at most "
              f"{MAX_BLOCKS_PER_SM} blocks and {MAX_WARPS_PER_SM[90]} warps (CUDA C++ Programming Guide, "
              "compute capability table); waves on " +
              ", ".join(f"{n} SMs (sm_{a})" for a, n in SMS.items()) + "."]
    return lines


def _loop_mix(r) -> str:
    if not present(r.get("loop_instructions")):
        return "-"
    return "/".join(_fmt(r, f"loop_{c}") for c in LOOP_CLASSES)


def _span(values) -> str:
    values = [v for v in values if present(v)]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    fmt = (lambda v: f"{v:.2f}") if any(isinstance(v, float) and v != int(v) for v in values) else (lambda v: f"{int(v)}")
    return fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}"


def loop_summary_lines(table) -> list[str]:
    """One line per (op, kernel, dtype, arch) of the launch-faithful tensor-core rows that have a
    reference GEMM (documented exceptions apart): their main loops beside the reference's, the
    largest ratio, and the issue ceilings (of the configs tried first, and of all)."""
    gated = table[table["reference"].fillna("").astype(bool) & table["compiled"].astype(bool)
                  & ~table["exception"].fillna("").astype(bool)]
    if not len(gated):
        return []
    lines = ["", "## Main loop: instructions per K-step beside the reference GEMM", "",
             f"Launch-faithful tensor-core rows (documented exceptions apart) by kernel, dtype and arch, over their "
             f"configs and layers: SASS instructions of the main loop (gate: at most {LOOP_RATIO_LIMIT}x the "
             f"reference GEMM's at the same tile), the mix of the largest loop (integer/memory/MMA/sync/other) and "
             f"the issue ceiling (gate on {', '.join(f'sm_{a}' for a in ISSUE_CEILING_ARCHS)}: at least "
             f"{ISSUE_CEILING_MIN} for the first {AUTOTUNE_FIRST} entries of each autotune table)."]
    body = []
    for (op, kernel, dtype, arch), group in gated.groupby(["op", "kernel", "dtype", "arch"], sort=True):
        first = group[group["autotune_rank"].apply(lambda v: present(v) and v < AUTOTUNE_FIRST)]
        widest = group.loc[group["loop_instructions"].fillna(0).idxmax()]
        body.append([kernel, dtype, f"sm_{arch}", group["config"].nunique(), group["shape"].nunique(),
                     _span(group["loop_instructions"]), _span(group["ref_loop_instructions"]),
                     _span(group["loop_ratio"]), _loop_mix(widest), _span(first["issue_ceiling"]),
                     _span(group["issue_ceiling"]), "ok" if group["passed"].all() else "FAIL"])
    return lines + [""] + _md_table(["kernel", "dtype", "arch", "configs", "shapes", "loop", "ref loop",
                                     "ratio", "mix (largest)", "ceiling, first 2", "ceiling, all", "result"], body)


def first_configs_lines(table) -> list[str]:
    """The configs each arch's autotune tables try first (rank < AUTOTUNE_FIRST), per kernel and
    dtype, with the figures that chose them, over the launch-faithful rows."""
    rows = table[table["autotune_rank"].apply(lambda v: present(v) and v < AUTOTUNE_FIRST)
                 & table["shape"].fillna("").astype(bool) & table["compiled"].astype(bool)]
    if not len(rows):
        return []
    lines = ["", "## The configs each autotune table tries first", "",
             f"Entries 0 and 1 of each table (what the GPU suite's autotune limit tries), over the AlexNet layers: "
             "registers, shared memory per block, CTAs per SM (the smaller of the register and shared-memory "
             "limits), the main loop's issue ceiling and the waves of the launches."]
    body = []
    for (kernel, dtype, arch, rank, config), group in rows.groupby(
            ["kernel", "dtype", "arch", "autotune_rank", "config"], sort=True):
        body.append([kernel, dtype, f"sm_{arch}", int(rank), config, _span(group["registers"]),
                     _span(group["smem_bytes"]), _span(group["ctas_per_sm"]), _span(group["issue_ceiling"]),
                     _span(group["waves"]), "ok" if group["passed"].all() else "FAIL"])
    return lines + [""] + _md_table(["kernel", "dtype", "arch", "entry", "config", "regs", "smem B", "CTAs/SM",
                                     "ceiling", "waves", "result"], body)


def grid_lines(table) -> list[str]:
    """Every launch-faithful row with a grid: CTAs, CTAs per SM by registers and by shared memory,
    waves and the fill of the last wave (wgrad's split-K is in its shape label and grid z)."""
    rows = table[table["grid"].fillna("").astype(bool) & table["compiled"].astype(bool)]
    if not len(rows):
        return []
    lines = ["", "## Grid: every launch", "",
             "Each launch-faithful row's grid (x, groups, stride phases for dgrad / splits for wgrad), its CTAs, "
             "the CTAs per SM that registers and shared memory allow, and the waves on the modelled GPU with the "
             "fill of the last wave (1.00: full)."]
    body = [[r["kernel"], r["config"], r["dtype"], r["shape"], f"sm_{r['arch']}", r["grid"], _fmt(r, "ctas"),
             _fmt(r, "ctas_per_sm_regs"), _fmt(r, "ctas_per_sm_smem"), _fmt(r, "ctas_per_sm"),
             f"{r['waves']:.2f}" if present(r["waves"]) else "-",
             f"{r['last_wave_fill']:.2f}" if present(r["last_wave_fill"]) else "-"] for _, r in rows.iterrows()]
    return lines + [""] + _md_table(["kernel", "config", "dtype", "shape", "arch", "grid", "CTAs", "CTAs/SM regs",
                                     "CTAs/SM smem", "CTAs/SM", "waves", "last wave"], body)


def markdown_summary(table, problems: Sequence[str] = (), info: dict[str, str] | None = None) -> str:
    """``codegen.md``: the main-loop summary, the configs tried first, one line per kernel x config
    x dtype x shape x arch, the tensor-core rows beside their reference GEMM, every launch's grid;
    exceptions, failures and totals."""
    failed = table[~table["passed"].astype(bool)]
    lines = ["# Code generation check", ""]
    limits = ", ".join(f"sm_{a} {n:,} B" for a, n in SHARED_LIMIT_BYTES.items())
    lines.append(
        f"Every Triton kernel config of `kernels/` compiled ahead of time with `triton.compile` for {_arch_list_text()} "
        "(no GPU; a config of a per-arch autotune table only for its arch). *generic* rows compile a plain signature "
        "(pointers 16-byte aligned, integers with no "
        "specialization); *launch-faithful* rows (a shape given) compile what a launch at that AlexNet layer "
        "compiles: Triton's own launcher code specializes the argument values (an int equal to 1 becomes a "
        "constexpr, an int divisible by 16 gets `tt.divisibility 16`, pointers their alignment). "
        "Columns: registers and stack from cuobjdump; spills = STL/LDL bytes in SASS; smem = static + dynamic "
        f"per block (limit: {limits}); MMA = HMMA/HGMMA instructions in SASS; buffers = "
        "shared-memory copies of the A and B tiles of the dot (leading dim of `ttg.local_alloc` in TTGIR: the "
        "pipeline stages actually allocated); async = LDGSTS (cp.async) count x width and UTMALDG (TMA) in SASS; "
        "wait = wgmma wait depth (largest N of `WARPGROUP.DEPBAR.LE gsb0, N`; 0 = every wgmma waited for at "
        "once); LDG = plain global loads by width; loop = SASS instructions of the main loop (from the target of "
        "the backward branch that closes the innermost loop holding an MMA to that branch: one K-step); "
        "ceiling = its issue ceiling. compile s is ~0 where Triton's cache served it.")
    lines += ["", "Gates: compiles; no spills; smem within the limit; tensor cores where expected; a "
              "launch-faithful tensor-core row has at least the reference GEMM's buffers for A and B, some "
              "asynchronous copy, an asynchronous wgmma on sm_90 (wait depth >= 1), at most "
              f"{REGISTER_RATIO_LIMIT}x its registers and a main loop of at most {LOOP_RATIO_LIMIT}x its "
              "instructions (reference: Triton's tutorial GEMM at the same tile, warps, stages and dtype, "
              "`profiling/reference_gemm.py`), and -- for the first "
              f"{AUTOTUNE_FIRST} entries of an autotune table on {', '.join(f'sm_{a}' for a in ISSUE_CEILING_ARCHS)} "
              f"-- an issue ceiling of at least {ISSUE_CEILING_MIN}; a row with `min_load_bytes` (fp16/bf16 NHWC "
              "memory-bound kernels at real shapes) has a global load at least that wide.", ""]
    lines += _constants_text() + [""]
    if info:
        lines += [", ".join(f"{k}: {v}" for k, v in info.items()), ""]
    lines += loop_summary_lines(table) + first_configs_lines(table)

    body = []
    for _, r in table.iterrows():
        ok = bool(r["compiled"])
        mma = f"{r['mma_kind']} {int(r['mma_instructions'])}" if ok else "-"
        result = "ok" if r["passed"] else "FAIL: " + r["failures"]
        if r["notes"]:
            result += f" ({r['notes']})"
        body.append([r["op"], r["kernel"], r["config"], r["dtype"], r["shape"] or "generic", f"sm_{r['arch']}",
                     _fmt(r, "num_warps"), _fmt(r, "num_stages"), _fmt(r, "registers"),
                     f"{_fmt(r, 'spill_store_bytes')}/{_fmt(r, 'spill_load_bytes')}", _fmt(r, "smem_bytes"),
                     mma, _buffers(r), _async_copies(r), _fmt(r, "wgmma_wait_depth"),
                     (r["ldg_widths"] or "0") if ok else "-", _fmt(r, "loop_instructions"),
                     _fmt(r, "issue_ceiling", 1, 2), _fmt(r, "ptx_bytes", 1024, 1), _fmt(r, "compile_s", 1, 2), result])
    lines += ["", "## Every compile", ""]
    lines += _md_table(["op", "kernel", "config", "dtype", "shape", "arch", "warps", "stages", "regs",
                        "spill B st/ld", "smem B", "MMA", "buffers", "async", "wait", "LDG", "loop", "ceiling",
                        "PTX KB", "compile s", "result"], body)

    gated = table[table["reference"].fillna("").astype(bool) & table["compiled"].astype(bool)]
    if len(gated):
        refs = {(r["config"], r["dtype"], r["arch"]): r for _, r in table.iterrows()
                if r["module"] == REFERENCE_MODULE and r["compiled"]}
        lines += ["", "## Tensor-core rows beside the reference GEMM", "",
                  "Each launch-faithful tensor-core row next to Triton's tutorial GEMM compiled with the same tile, "
                  "warps, stages and dtype (M = N = K = 4096, unit inner strides); mix = the main loop's "
                  "integer/memory/MMA/sync/other instructions."]
        cmp_rows = []
        for _, r in gated.iterrows():
            ref = refs.get((r["reference"], r["dtype"], r["arch"]))
            cmp_rows.append([f"{r['kernel']} {r['config']}", r["dtype"], r["shape"], f"sm_{r['arch']}",
                             r["reference"], _buffers(r), _buffers(ref) if ref is not None else "-",
                             _async_copies(r), _async_copies(ref) if ref is not None else "-",
                             _fmt(r, "wgmma_wait_depth"), _fmt(ref, "wgmma_wait_depth") if ref is not None else "-",
                             _fmt(r, "registers"), _fmt(ref, "registers") if ref is not None else "-",
                             _fmt(r, "loop_instructions"), _fmt(ref, "loop_instructions") if ref is not None else "-",
                             _fmt(r, "loop_ratio", 1, 2), _loop_mix(r), _loop_mix(ref) if ref is not None else "-",
                             _fmt(r, "issue_ceiling", 1, 2), _fmt(ref, "issue_ceiling", 1, 2) if ref is not None else "-",
                             "ok" if r["passed"] else "FAIL", "exception" if "exception (" in r["notes"] else ""])
        lines += [""] + _md_table(["kernel config", "dtype", "shape", "arch", "reference tile", "buffers",
                                   "ref buffers", "async", "ref async", "wait", "ref wait", "regs", "ref regs",
                                   "loop", "ref loop", "ratio", "mix", "ref mix", "ceiling", "ref ceiling",
                                   "result", "note"], cmp_rows)
    lines += grid_lines(table)

    exceptions = table[table["notes"].fillna("").str.contains("exception (", regex=False)]
    lines += ["", f"**Totals:** {len(table)} compiles ({table['compiled'].astype(bool).sum()} compiled), "
                  f"{len(failed)} failed checks, {len(exceptions)} documented exceptions, "
                  f"{len(problems)} coverage problems."]
    if len(failed):
        per_op = [f"{op} {n}/{(table['op'] == op).sum()}" for op, n in failed.groupby("op").size().items()]
        lines[-1] += f" Failed by op: {', '.join(per_op)}."
    if len(exceptions):
        lines += ["", "## Documented exceptions", "",
                  "Rows whose spec states why a gate cannot hold; their figures are in the tables above."]
        lines += [f"- `{spec_id(RowId(r))}` sm_{r['arch']}: {r['notes']}" for _, r in exceptions.iterrows()]
    if len(failed):
        lines += ["", "## Failures", ""]
        lines += [f"- `{spec_id(RowId(r))}` sm_{r['arch']}: {r['failures']}" for _, r in failed.iterrows()]
    if problems:
        lines += ["", "## Coverage problems", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def write_reports(table, output_dir: str, problems: Sequence[str] = (),
                  info: dict[str, str] | None = None) -> tuple[str, str]:
    """Write ``codegen.csv`` and ``codegen.md`` atomically into ``output_dir``; their paths."""
    from alexnet_fast.io import atomic_write_text  # the project's one atomic writer

    csv_path, md_path = os.path.join(output_dir, "codegen.csv"), os.path.join(output_dir, "codegen.md")
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(md_path, markdown_summary(table, problems, info))
    return csv_path, md_path


@dataclass(frozen=True)
class RowId:
    """A table row seen by ``spec_id`` (op, kernel, config, dtype, shape)."""

    row: Any

    def __getattr__(self, name):
        value = self.row[name]
        return "" if value is None or value != value else value
