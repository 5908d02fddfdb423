"""One row of the code-generation check (``COLUMNS``: one spec compiled for one arch): the
figures derived from the compiled ones (issue ceiling, occupancy and waves) and the gates --
per row (``check_row``: compiles, no spills, shared memory within the limit, tensor cores where
expected, wide enough loads) and against the reference GEMM row of the same tile, warps, stages
and dtype (``apply_reference_gates``: buffers, asynchronous copies, wgmma wait depth, registers,
main-loop length and, for the configs an autotune table tries first, the issue ceiling)."""

from __future__ import annotations

from typing import Any

from alexnet_fast.profiling.codegen.arch import (MAX_BLOCKS_PER_SM, MAX_WARPS_PER_SM, REGISTER_ALLOCATION_UNIT,
                                                 REGISTERS_PER_SM, SHARED_PER_SM_BYTES, SHARED_RESERVED_PER_BLOCK, SMS,
                                                 TENSOR_FLOP_PER_CLOCK, WARP_SCHEDULERS_PER_SM)
from alexnet_fast.profiling.codegen.specs import REFERENCE_MODULE

# Columns of the table, in order (one row per spec x arch).
COLUMNS = [
    "op", "kernel", "config", "dtype", "shape", "launch", "arch", "num_warps", "num_stages", "expects_mma",
    "divisible_by_16", "specialized_to_constexpr", "compiled", "registers", "spill_store_bytes", "spill_load_bytes", "stack_bytes",
    "smem_static_bytes", "smem_dynamic_bytes", "smem_bytes", "smem_limit_bytes",
    "hmma", "hgmma", "mma_instructions", "mma_kind",
    "buffers_a", "buffers_b", "ldgsts", "ldgsts_max_bytes", "ldgsts_min_bytes", "utmaldg",
    "wgmma_pendings", "wgmma_wait_depth", "ldg", "ldg_max_bytes", "ldg_min_bytes", "ldg_widths",
    "loop_instructions", "loop_integer", "loop_memory", "loop_mma", "loop_sync", "loop_other", "loop_mma_macs",
    "mma_cycles", "issue_cycles", "issue_ceiling", "autotune_rank",
    "grid", "ctas", "ctas_per_sm_regs", "ctas_per_sm_smem", "ctas_per_sm", "waves", "last_wave_fill",
    "gemm_tile", "input_precision", "min_load_bytes", "reference", "ref_buffers", "ref_registers",
    "ref_ldgsts_max_bytes", "ref_loop_instructions", "loop_ratio", "ref_issue_ceiling", "exception",
    "ptx_bytes", "compile_s", "cache_hit",
    "passed", "failures", "notes", "error", "module",
]


# A tensor-core row may use at most this many times the registers of its reference GEMM row.
REGISTER_RATIO_LIMIT = 1.3
# ... and a main loop of at most this many times the reference's SASS instructions per K-step.
LOOP_RATIO_LIMIT = 1.25
# The configs a short GPU run tries first -- the first AUTOTUNE_FIRST of each autotune table (the
# GPU suite's autotune limit) -- must have an issue ceiling of at least ISSUE_CEILING_MIN on
# these archs (sm_80 rows report theirs: its tensor cores are half as fast per clock, so the same
# loop has twice the ceiling).
AUTOTUNE_FIRST = 2
ISSUE_CEILING_MIN = 0.85
ISSUE_CEILING_ARCHS = (90,)


def mma_kind_of(dtype: str, input_precision: str | None) -> str | None:
    """The tensor-core rate class of a dot: "16bit" (fp16/bf16), "tf32" (fp32 as TF32), None (FMA)."""
    if dtype in ("fp16", "bf16"):
        return "16bit"
    if dtype == "fp32" and input_precision in ("tf32", "tf32x3"):
        return "tf32"
    return None


def issue_figures(row: dict[str, Any]) -> dict[str, Any]:
    """Per K-step of a row's main loop: tensor-core cycles (the loop's MMA FLOPs -- from the SASS
    shapes, else the GEMM tile -- over the arch's dense FLOP per clock per SM), issue cycles per
    sub-partition (loop instructions x warps / WARP_SCHEDULERS_PER_SM) and the issue ceiling, their
    ratio: the fraction of tensor peak the loop's instruction issue allows, before any memory
    stall (> 1: the loop issues faster than the tensor cores compute). None where it does not apply."""
    out = {"mma_cycles": None, "issue_cycles": None, "issue_ceiling": None}
    rates = TENSOR_FLOP_PER_CLOCK.get(row["arch"], {})
    kind = mma_kind_of(row["dtype"], row.get("input_precision"))
    if not row.get("loop_instructions") or kind not in rates:
        return out
    macs = row.get("loop_mma_macs")
    if not present(macs) and present(row.get("gemm_tile")):
        m, n, k = (int(v) for v in str(row["gemm_tile"]).split("x"))
        macs = m * n * k
    if not present(macs):
        return out
    mma_cycles = 2 * macs / rates[kind]
    issue_cycles = row["loop_instructions"] * row["num_warps"] / WARP_SCHEDULERS_PER_SM
    return {"mma_cycles": round(mma_cycles, 1), "issue_cycles": round(issue_cycles, 1),
            "issue_ceiling": round(mma_cycles / issue_cycles, 3)}


def occupancy_figures(row: dict[str, Any]) -> dict[str, Any]:
    """The launch-level figures of a row with a grid (``spec.extra["grid"]``): CTAs, CTAs per SM
    allowed by registers and by shared memory (and so resident: the smaller, within the warp and
    block limits), waves on the arch's modelled GPU (``arch.SMS``) and the fill of the last wave
    (1.0: full). None where the row has no grid or did not compile."""
    keys = ("ctas", "ctas_per_sm_regs", "ctas_per_sm_smem", "ctas_per_sm", "waves", "last_wave_fill")
    out: dict[str, Any] = dict.fromkeys(keys)
    arch = row["arch"]
    if not row["compiled"] or not row.get("grid") or arch not in REGISTERS_PER_SM or arch not in SMS:
        return out
    warps = row["num_warps"]
    per_warp = -(-row["registers"] * 32 // REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    by_regs = REGISTERS_PER_SM[arch] // per_warp // warps
    by_smem = SHARED_PER_SM_BYTES[arch] // (row["smem_bytes"] + SHARED_RESERVED_PER_BLOCK)
    per_sm = min(by_regs, by_smem, MAX_WARPS_PER_SM[arch] // warps, MAX_BLOCKS_PER_SM)
    ctas = 1
    for extent in str(row["grid"]).split("x"):
        ctas *= int(extent)
    slots = SMS[arch] * per_sm
    if not slots:
        return {**out, "ctas": ctas, "ctas_per_sm_regs": by_regs, "ctas_per_sm_smem": by_smem, "ctas_per_sm": 0}
    full = -(-ctas // slots)
    return {"ctas": ctas, "ctas_per_sm_regs": by_regs, "ctas_per_sm_smem": by_smem, "ctas_per_sm": per_sm,
            "waves": round(ctas / slots, 2), "last_wave_fill": round((ctas - (full - 1) * slots) / slots, 2)}


def error_summary(error: str) -> str:
    """One line of a compile error: Triton's CompilationError ends with the cause, after the
    source excerpt ("at 3:38:\n<source>\n ^\n<cause>"); other errors start with it."""
    lines = [line for line in (error or "unknown error").splitlines() if line.strip()]
    if lines[0].startswith("CompilationError: at ") and len(lines) > 1:
        return f"CompilationError at {lines[0].removeprefix('CompilationError: at ').rstrip(':')}: {lines[-1]}"[:300]
    return lines[0][:300]


def check_row(row: dict[str, Any]) -> list[str]:
    """Failed checks of one row, as messages (empty: it passes)."""
    if not row["compiled"]:
        return [f"does not compile: {error_summary(row['error'])}"]
    failures = []
    if row["spill_store_bytes"] or row["spill_load_bytes"]:
        failures.append(f"spills registers ({row['spill_store_bytes']} B stored, {row['spill_load_bytes']} B loaded)")
    if row["smem_bytes"] > row["smem_limit_bytes"]:
        failures.append(f"shared memory {row['smem_bytes']} B > {row['smem_limit_bytes']} B per block "
                        f"on sm_{row['arch']}")
    if row["expects_mma"] and not row["mma_instructions"]:
        failures.append("no tensor-core MMA (HMMA/HGMMA) in the SASS, though expects_mma")
    if present(row.get("min_load_bytes")) and row["ldg_max_bytes"] < row["min_load_bytes"]:
        failures.append(f"widest global load {row['ldg_max_bytes']} B < {int(row['min_load_bytes'])} B per access "
                        f"(LDG widths {row['ldg_widths'] or 'none'})")
    return failures


def present(value) -> bool:
    """A value that is there: not None, NaN (a pandas gap) or empty."""
    return value is not None and value == value and value != ""


def reference_failures(row: dict[str, Any], ref: dict[str, Any] | None) -> list[str]:
    """Why a tensor-core row is not pipelined like its reference GEMM row (empty: it is):
    fewer shared-memory buffers for A or B, no asynchronous copy (LDGSTS or UTMALDG), a
    synchronous wgmma on sm_90 (wait depth 0), more than REGISTER_RATIO_LIMIT x its registers."""
    if ref is None:
        return [f"no reference GEMM row {row['reference']} {row['dtype']} sm_{row['arch']} to compare with"]
    if not ref["compiled"]:
        return [f"reference GEMM {row['reference']} does not compile: {error_summary(ref['error'])}"]
    failures = []
    for side in ("a", "b"):
        have, want = row[f"buffers_{side}"], ref[f"buffers_{side}"]
        if (have or 0) < (want or 0):
            failures.append(f"{side.upper()} tile in {have or 0} shared-memory buffer(s), the reference GEMM "
                            f"of this tile gets {want}")
    if not row["ldgsts"] and not row["utmaldg"]:
        failures.append(f"no asynchronous copies (0 LDGSTS, 0 UTMALDG, LDG widths {row['ldg_widths'] or 'none'}), "
                        f"the reference GEMM issues {ref['ldgsts']} LDGSTS of {ref['ldgsts_max_bytes']} B")
    if row["arch"] >= 90 and row["hgmma"] and row["wgmma_wait_depth"] == 0:
        failures.append("synchronous wgmma (WARPGROUP.DEPBAR.LE gsb0, 0x0: wait depth 0), the reference GEMM "
                        f"waits with depth {ref['wgmma_wait_depth']}")
    if row["registers"] > REGISTER_RATIO_LIMIT * ref["registers"]:
        failures.append(f"{row['registers']} registers > {REGISTER_RATIO_LIMIT} x the reference GEMM's "
                        f"{ref['registers']}")
    return failures + loop_failures(row, ref)


def loop_failures(row: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Why a tensor-core row's main loop is not as lean as its reference GEMM's (empty: it is):
    no MMA loop found, more than LOOP_RATIO_LIMIT x the reference's instructions per K-step, or --
    for a config an autotune table tries first (``autotune_rank`` < AUTOTUNE_FIRST) on an arch of
    ISSUE_CEILING_ARCHS -- an issue ceiling under ISSUE_CEILING_MIN."""
    if not present(row.get("loop_instructions")):
        return ["no tensor-core main loop in the SASS (no backward branch around an MMA)"]
    failures = []
    if present(ref.get("loop_instructions")) and row["loop_instructions"] > LOOP_RATIO_LIMIT * ref["loop_instructions"]:
        failures.append(f"main loop of {row['loop_instructions']} instructions > {LOOP_RATIO_LIMIT} x the reference "
                        f"GEMM's {ref['loop_instructions']} ({row['loop_integer']} integer)")
    rank = row.get("autotune_rank")
    if (present(rank) and rank < AUTOTUNE_FIRST and row["arch"] in ISSUE_CEILING_ARCHS
            and present(row.get("issue_ceiling")) and row["issue_ceiling"] < ISSUE_CEILING_MIN):
        failures.append(f"issue ceiling {row['issue_ceiling']:.2f} < {ISSUE_CEILING_MIN} for a config the autotune "
                        f"table tries first (entry {int(rank)}): {row['issue_cycles']:.0f} issue cycles per K-step "
                        f"per sub-partition for {row['mma_cycles']:.0f} tensor cycles")
    return failures


def apply_reference_gates(rows: list[dict[str, Any]]) -> None:
    """Check every compiled row that names a reference GEMM config against that row (same
    config, dtype and arch) and record the result in place. A row whose spec declares a
    ``pipeline_exception`` keeps its figures and passes these gates, the failures going to
    its notes as an exception (the report lists them)."""
    refs = {(r["config"], r["dtype"], r["arch"]): r for r in rows
            if r["op"] == _reference_op() and r["module"] == REFERENCE_MODULE}
    for row in rows:
        if not row.get("reference") or not row["compiled"]:
            continue
        ref = refs.get((row["reference"], row["dtype"], row["arch"]))
        if ref is not None and ref["compiled"]:
            row.update(ref_buffers=f"A{ref['buffers_a']} B{ref['buffers_b']}", ref_registers=ref["registers"],
                       ref_ldgsts_max_bytes=ref["ldgsts_max_bytes"], ref_loop_instructions=ref["loop_instructions"],
                       ref_issue_ceiling=ref["issue_ceiling"])
            if present(row.get("loop_instructions")) and present(ref.get("loop_instructions")):
                row["loop_ratio"] = round(row["loop_instructions"] / ref["loop_instructions"], 3)
        found = reference_failures(row, ref)
        if not found:
            continue
        if row.get("exception"):
            note = f"exception ({row['exception']}): " + "; ".join(found)
            row["notes"] = "; ".join(filter(None, [row["notes"], note]))
        else:
            failures = [f for f in row["failures"].split("; ") if f] + found
            row.update(failures="; ".join(failures), passed=False)


def _reference_op() -> str:
    from alexnet_fast.profiling import reference_gemm

    return reference_gemm.OP


def _notes(row: dict[str, Any]) -> list[str]:
    notes = []
    if row["compiled"] and row["expects_mma"] and row["arch"] >= 90 and row["hmma"] and not row["hgmma"]:
        notes.append("sm_90 runs mma.sync (HMMA), not wgmma (HGMMA)")
    if row["compiled"] and not row["expects_mma"] and row["mma_instructions"]:
        notes.append("uses tensor cores though expects_mma is False")
    if row["compiled"] and row["stack_bytes"] and not (row["spill_store_bytes"] or row["spill_load_bytes"]):
        notes.append(f"{row['stack_bytes']} B stack frame")
    return notes


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived columns (totals, MMA kind) and the check results of a row."""
    if row["compiled"]:
        row["smem_bytes"] = row["smem_static_bytes"] + row["smem_dynamic_bytes"]
        row["mma_instructions"] = row["hmma"] + row["hgmma"]
        row["mma_kind"] = "+".join(k.upper() for k in ("hgmma", "hmma") if row[k]) or "none"
        row.update(issue_figures(row))
        row.update(occupancy_figures(row))
    failures = check_row(row)
    row.update(failures="; ".join(failures), passed=not failures, notes="; ".join(_notes(row)))
    return row
