"""The row figures and gates (profiling/codegen/gates.py) on hand-made rows: limits, tensor cores,
the reference-GEMM gates, documented exceptions, the issue ceiling, occupancy and waves."""

from __future__ import annotations

from alexnet_fast.profiling.codegen.arch import SHARED_LIMIT_BYTES
from alexnet_fast.profiling.codegen.gates import COLUMNS, apply_reference_gates, finish_row
from alexnet_fast.profiling.codegen.report import markdown_summary, results_table
from alexnet_fast.profiling.codegen.specs import REFERENCE_MODULE


def _row(**overrides):
    row = dict.fromkeys(COLUMNS)
    row.update(op="o", kernel="k", config="c", dtype="fp16", arch=80, expects_mma=False, compiled=True,
               registers=40, spill_store_bytes=0, spill_load_bytes=0, stack_bytes=0, smem_static_bytes=0,
               smem_dynamic_bytes=0, smem_limit_bytes=SHARED_LIMIT_BYTES[80], hmma=0, hgmma=0, error="")
    row.update(overrides)
    return finish_row(row)


def test_checks_shared_memory_limit_exactly():
    assert _row(smem_dynamic_bytes=166_912)["passed"]
    over = _row(smem_dynamic_bytes=166_912 - 1024, smem_static_bytes=1025)
    assert not over["passed"] and "166913 B > 166912 B" in over["failures"]


def test_checks_mma_where_expected():
    assert "no tensor-core MMA" in _row(expects_mma=True)["failures"]
    assert _row(expects_mma=True, hmma=8)["passed"]
    assert "though expects_mma is False" in _row(hgmma=2, arch=90)["notes"]


def _gemm_row(**overrides):
    fields = dict(op="conv", kernel="k", config="c", arch=90, expects_mma=True, reference="128x64x32 w4 s3",
                  module="m", hgmma=8, registers=100, buffers_a=3, buffers_b=3, ldgsts=6, ldgsts_max_bytes=16,
                  ldgsts_min_bytes=16, utmaldg=0, wgmma_wait_depth=1, ldg_widths="", exception="",
                  num_warps=4, gemm_tile="128x64x32", loop_instructions=80, loop_integer=50, loop_mma_macs=None)
    return _row(**{**fields, **overrides})


def _reference_row(**overrides):
    return _gemm_row(**{"op": "reference_gemm", "module": REFERENCE_MODULE, "config": "128x64x32 w4 s3",
                        "reference": "", **overrides})


def test_reference_gates_each_fail_on_their_own():
    cases = {
        "A tile in 1 shared-memory buffer(s), the reference GEMM of this tile gets 3": {"buffers_a": 1},
        "B tile in 2 shared-memory buffer(s)": {"buffers_b": 2},
        "no asynchronous copies": {"ldgsts": 0},
        "synchronous wgmma": {"wgmma_wait_depth": 0},
        "131 registers > 1.3 x the reference GEMM's 100": {"registers": 131},
        "main loop of 101 instructions > 1.25 x the reference GEMM's 80 (50 integer)": {"loop_instructions": 101},
        "no tensor-core main loop in the SASS": {"loop_instructions": None},
    }
    for message, change in cases.items():
        rows = [_gemm_row(**change), _reference_row()]
        apply_reference_gates(rows)
        assert not rows[0]["passed"] and message in rows[0]["failures"], (change, rows[0]["failures"])
        assert rows[0]["failures"].count(";") == 0  # only the gate that was broken
    rows = [_gemm_row(registers=130, utmaldg=2, ldgsts=0, loop_instructions=100), _reference_row()]
    apply_reference_gates(rows)
    assert rows[0]["passed"] and rows[0]["ref_buffers"] == "A3 B3" and rows[0]["ref_registers"] == 100
    assert rows[0]["loop_ratio"] == 1.25 and rows[0]["ref_loop_instructions"] == 80
    rows = [_gemm_row()]
    apply_reference_gates(rows)
    assert "no reference GEMM row 128x64x32 w4 s3 fp16 sm_90" in rows[0]["failures"]


def test_documented_exception_keeps_its_figures_in_the_notes():
    rows = [_gemm_row(buffers_a=1, ldgsts=0, exception="C=3: flat reduction of 363"), _reference_row()]
    apply_reference_gates(rows)
    assert rows[0]["passed"]
    assert rows[0]["notes"].startswith("exception (C=3: flat reduction of 363): A tile in 1 shared-memory")
    assert "no asynchronous copies" in rows[0]["notes"]
    md = markdown_summary(results_table(rows))
    assert "1 documented exceptions" in md and "## Documented exceptions" in md


def test_issue_ceiling_is_tensor_cycles_over_issue_cycles():
    # 128x64x32 on sm_90: 128*64*32*2 / 4096 = 128 tensor cycles; 80 instructions x 8 warps / 4
    # schedulers = 160 issue cycles: 0.8 (the tutorial GEMM's figure); sm_80 has half the rate
    row = _gemm_row(num_warps=8, loop_instructions=80)
    assert (row["mma_cycles"], row["issue_cycles"], row["issue_ceiling"]) == (128.0, 160.0, 0.8)
    assert _gemm_row(num_warps=8, loop_instructions=80, arch=80)["issue_ceiling"] == 1.6
    # TF32 runs at half the 16-bit rate; the SASS's own MMA work wins over the tile when known
    assert _gemm_row(num_warps=8, dtype="fp32", input_precision="tf32")["issue_ceiling"] == 1.6
    assert _gemm_row(num_warps=8, loop_mma_macs=2 * 128 * 64 * 32)["issue_ceiling"] == 1.6
    assert _gemm_row(dtype="fp32", input_precision="ieee")["issue_ceiling"] is None  # FMA: no tensor rate


def test_issue_ceiling_gate_holds_for_the_configs_tried_first_on_sm90_only():
    low = dict(num_warps=8, loop_instructions=100)  # ceiling 128 / 200 = 0.64
    for rank, arch, fails in ((0, 90, True), (1, 90, True), (2, 90, False), (None, 90, False), (0, 80, False)):
        rows = [_gemm_row(autotune_rank=rank, arch=arch, **low),
                _reference_row(arch=arch, num_warps=8, loop_instructions=90)]
        apply_reference_gates(rows)
        assert ("issue ceiling 0.64 < 0.85" in rows[0]["failures"]) == fails, (rank, arch, rows[0]["failures"])


def test_occupancy_and_waves_of_a_launch():
    # 128 regs x 256 threads = 32K of 64K registers: 2 CTAs; 99 KB + 1 KB of 228 KB: 2 CTAs; 507 CTAs
    # on 132 SMs x 2 = 264 slots: 1.92 waves, the last 92% full
    row = _gemm_row(num_warps=8, registers=128, smem_dynamic_bytes=99328, grid="169x3x1")
    assert {k: row[k] for k in ("ctas", "ctas_per_sm_regs", "ctas_per_sm_smem", "ctas_per_sm", "waves",
                                "last_wave_fill")} == {"ctas": 507, "ctas_per_sm_regs": 2, "ctas_per_sm_smem": 2,
                                                        "ctas_per_sm": 2, "waves": 1.92, "last_wave_fill": 0.92}
    # registers round up per warp to 256: 129 -> 136 per thread, 1 CTA; sm_80 has 108 SMs, 164 KB
    row = _gemm_row(num_warps=8, registers=129, smem_dynamic_bytes=99328, grid="169x3x1", arch=80)
    assert (row["ctas_per_sm_regs"], row["ctas_per_sm_smem"], row["waves"]) == (1, 1, 4.69)
    assert _gemm_row()["ctas"] is None  # no grid: a generic row


def test_every_arch_table_covers_the_archs_the_check_compiles_for():
    """Adding an arch is adding its entry to every table of arch.py: one missing fails here."""
    from alexnet_fast.profiling.codegen import arch

    tables = ("SMS", "TENSOR_FLOP_PER_CLOCK", "TENSOR_RATE_SOURCES", "REGISTERS_PER_SM", "SHARED_PER_SM_BYTES",
              "MAX_WARPS_PER_SM")
    for name in tables:
        assert set(getattr(arch, name)) == set(arch.SHARED_LIMIT_BYTES), name
    assert set(arch.DEFAULT_ARCHS) <= set(arch.SHARED_LIMIT_BYTES)
    assert all(set(rates) == {"16bit", "tf32"} for rates in arch.TENSOR_FLOP_PER_CLOCK.values())
