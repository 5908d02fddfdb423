"""Compiling specs for sm_80 / sm_90 with no GPU (profiling/codegen/compile.py), on the fixture kernels
(tests/codegen_fixture_kernels.py): MMA, spills, failed and invalid specs, and the launch-faithful
rows against their reference GEMM. Compiles run in one spawned worker pool per module."""

from __future__ import annotations

import dataclasses

import pytest

import codegen_fixture_kernels as fixture
from codegen_helpers import FIXTURE, fixture_ref, fixture_refs, pool  # noqa: F401 (pool: a fixture)
from alexnet_fast.profiling.codegen.compile import compile_refs, compile_spec, validate_spec
from alexnet_fast.profiling.codegen.gates import LOOP_RATIO_LIMIT, REGISTER_RATIO_LIMIT
from alexnet_fast.profiling.codegen.specs import SpecRef


@pytest.fixture(scope="module")
def rows(pool):
    """Fixture compiles: the dot and elementwise kernels for sm_80 and sm_90, the spilling one for sm_80."""
    both = [r for r in fixture_refs().values() if r.op in ("fixture_matmul", "fixture_relu")]
    done = compile_refs(both, [80, 90], pool=pool)
    done += compile_refs([fixture_ref("fixture_spill", "b16384_w1")], [80], pool=pool)
    return {(row["config"], row["arch"]): row for row in done}


def _assert_sane(row):
    assert row["compiled"], row["error"]
    assert 0 < row["registers"] <= 255
    assert row["ptx_bytes"] > 1000
    assert row["compile_s"] >= 0 and isinstance(row["cache_hit"], bool)
    assert row["smem_bytes"] == row["smem_static_bytes"] + row["smem_dynamic_bytes"] <= row["smem_limit_bytes"]
    assert row["module"] == FIXTURE


def test_pipelined_fp16_dot_uses_hmma_on_sm80(rows):
    row = rows[("m128n64k32_w4_s3", 80)]
    _assert_sane(row)
    assert row["hmma"] > 0 and row["hgmma"] == 0 and row["mma_kind"] == "HMMA"
    assert row["spill_store_bytes"] == row["spill_load_bytes"] == 0
    # software-pipelined: at least two stages of the A (128x32) and B (32x64) fp16 tiles in smem
    assert row["smem_dynamic_bytes"] >= 2 * (128 * 32 + 32 * 64) * 2
    assert row["passed"] and row["failures"] == ""
    assert row["divisible_by_16"] == "M,N,K" and row["smem_limit_bytes"] == 166_912


def test_wgmma_eligible_dot_uses_hgmma_on_sm90(rows):
    row = rows[("m128n64k32_w4_s3", 90)]
    _assert_sane(row)
    assert row["hgmma"] > 0 and row["mma_kind"].startswith("HGMMA")
    assert row["smem_dynamic_bytes"] > 0 and row["smem_limit_bytes"] == 232_448
    assert row["passed"], row["failures"]


def test_small_dot_on_sm90_falls_back_to_hmma_and_the_report_says_so(rows):
    row = rows[("m32n32k32_w2_s2", 90)]
    _assert_sane(row)
    assert row["hmma"] > 0 and row["hgmma"] == 0 and row["mma_kind"] == "HMMA"
    assert row["passed"] and "not wgmma" in row["notes"]


@pytest.mark.parametrize("arch", [80, 90])
def test_fp32_elementwise_kernel_has_no_mma(rows, arch):
    row = rows[("b1024_w4", arch)]
    _assert_sane(row)
    assert row["mma_instructions"] == row["hmma"] == row["hgmma"] == 0 and row["mma_kind"] == "none"
    assert row["smem_dynamic_bytes"] == 0 and row["spill_store_bytes"] == 0
    assert row["passed"] and row["notes"] == ""


def test_register_hungry_config_spills_and_fails(rows):
    row = rows[("b16384_w1", 80)]
    assert row["compiled"], row["error"]
    # 512 live fp32 values per thread cannot fit in 255 registers
    assert row["spill_store_bytes"] > 0 and row["spill_load_bytes"] > 0 and row["stack_bytes"] > 0
    assert not row["passed"] and "spills registers" in row["failures"]


def test_kernel_that_does_not_compile_is_a_failed_row(pool):
    (row,) = compile_refs([fixture_ref("fixture_broken", "b1000_w4")], [80], pool=pool)
    assert not row["compiled"] and not row["passed"]
    assert "arange" in row["error"]
    assert row["failures"] == "does not compile: CompilationError at 3:38: arange's range must be a power of 2"


def test_invalid_spec_and_stale_reference_are_failed_rows(pool):
    bad_signature = fixture_ref("fixture_broken", "no_n")
    stale = dataclasses.replace(fixture_ref("fixture_relu", "b1024_w4"), config="renamed")
    missing = SpecRef("no_such_module_for_codegen", 0, "a", "b", "c", "fp32")
    signature_row, stale_row, missing_row = compile_refs([bad_signature, stale, missing], [90], pool=pool)
    assert "ValueError" in signature_row["error"] and "missing: ['n']" in signature_row["error"]
    assert "same order" in stale_row["error"]
    assert "ModuleNotFoundError" in missing_row["error"]
    assert not any(r["passed"] for r in (signature_row, stale_row, missing_row))


def test_validate_spec_names_the_problem():
    good = next(s for s in fixture.codegen_specs() if s.op == "fixture_relu")
    validate_spec(good)
    with pytest.raises(ValueError, match=r"missing: \['n'\]"):
        validate_spec(dataclasses.replace(good, signature={k: v for k, v in good.signature.items() if k != "n"}))
    with pytest.raises(ValueError, match="constexprs"):
        validate_spec(dataclasses.replace(good, constexprs={}))
    with pytest.raises(ValueError, match="not an integer argument"):
        validate_spec(dataclasses.replace(good, extra={"divisible_by_16": ("x_ptr",)}))
    with pytest.raises(ValueError, match="tuple of argument names"):
        validate_spec(dataclasses.replace(good, extra={"divisible_by_16": "n"}))
    with pytest.raises(ValueError, match="power of two"):
        validate_spec(dataclasses.replace(good, num_warps=3))
    with pytest.raises(TypeError, match="@triton.jit"):
        validate_spec(dataclasses.replace(good, fn=print))


def test_compile_spec_refuses_unknown_arch_and_interpreted_kernels():
    spec = next(s for s in fixture.codegen_specs() if s.op == "fixture_relu")
    with pytest.raises(ValueError, match="sm_75"):
        compile_spec(spec, 75)
    from triton.runtime.interpreter import InterpretedFunction

    if not isinstance(spec.fn, InterpretedFunction):
        pytest.skip("kernels are compiled JITFunctions in this process (TRITON_INTERPRET is off)")
    with pytest.raises(TypeError, match="TRITON_INTERPRET=1"):
        compile_spec(spec, 80)


@pytest.fixture(scope="module")
def pipeline_rows(pool):
    """The plain GEMM, the strided gather and the GEMM with a division in its loop at a real
    launch, sm_80 and sm_90 (their reference GEMM compiled alongside): 8 compiles."""
    refs = [r for r in fixture_refs().values() if r.op == "fixture_pipeline"]
    done = compile_refs(refs, [80, 90], pool=pool)
    return {(row["kernel"], row["arch"]): row for row in done}


@pytest.mark.parametrize("arch", [80, 90])
def test_plain_gemm_pipelines_like_the_reference_gemm(pipeline_rows, arch):
    row = pipeline_rows[("fixture_matmul_kernel", arch)]
    assert row["passed"], row["failures"]
    assert row["launch"] == "faithful" and row["reference"] == "128x64x32 w4 s3"
    # M, N, K at the launch are multiples of 16: the JIT marks them so
    assert row["divisible_by_16"] == "M,N,K" and row["specialized_to_constexpr"] == ""
    stages = 3 if arch == 90 else 2  # sm_80's pipeliner keeps num_stages - 1 tiles in flight
    assert (row["buffers_a"], row["buffers_b"]) == (stages, stages)
    assert row["ref_buffers"] == f"A{stages} B{stages}"
    assert row["ldgsts"] > 0 and row["ldgsts_max_bytes"] == 16 and row["ldg"] == 0
    assert row["registers"] <= REGISTER_RATIO_LIMIT * row["ref_registers"]
    if arch == 90:
        assert row["hgmma"] > 0 and row["wgmma_wait_depth"] >= 1 and row["wgmma_pendings"] >= 1
    else:
        assert row["wgmma_wait_depth"] is None and row["hmma"] > 0


@pytest.mark.parametrize("arch", [80, 90])
def test_division_in_the_loop_fails_the_loop_gate_only(pipeline_rows, arch):
    """The GEMM that recomputes its A rows through a division by a runtime value every K-step
    pipelines as the plain one does but issues far more instructions per K-step."""
    row, plain = pipeline_rows[("fixture_div_matmul_kernel", arch)], pipeline_rows[("fixture_matmul_kernel", arch)]
    assert row["compiled"] and not row["passed"]
    assert (row["buffers_a"], row["buffers_b"], row["ldgsts_max_bytes"]) == (plain["buffers_a"], plain["buffers_b"], 16)
    assert row["failures"].startswith("main loop of ") and "; " not in row["failures"], row["failures"]
    assert row["loop_ratio"] > LOOP_RATIO_LIMIT >= plain["loop_ratio"]
    assert row["loop_integer"] > plain["loop_integer"] + 50


@pytest.mark.parametrize("arch", [80, 90])
def test_strided_gather_along_the_reduction_fails_the_pipeline_gates(pipeline_rows, arch):
    row = pipeline_rows[("fixture_gather_matmul_kernel", arch)]
    assert row["compiled"] and not row["passed"]
    assert row["buffers_a"] == 1 and "A tile in 1 shared-memory buffer(s)" in row["failures"]
    assert row["ldg_widths"].startswith("2B:")  # every A element a 16-bit load of its own
    if arch == 90:
        assert row["wgmma_wait_depth"] == 0 and "synchronous wgmma" in row["failures"]


def test_memory_bound_kernel_with_2_byte_loads_fails_the_width_gate(pool):
    refs = [r for r in fixture_refs().values() if r.op == "fixture_load_width"]
    rows = {row["shape"]: row for row in compile_refs(refs, [80], pool=pool)}
    unit, strided = rows["stride 1"], rows["stride 3"]
    # stride 1 is a constexpr at launch: contiguous, 16-byte loads
    assert unit["specialized_to_constexpr"] == "stride" and unit["ldg_max_bytes"] == 16 and unit["passed"]
    assert strided["ldg_max_bytes"] == 2 and not strided["passed"]
    assert "widest global load 2 B < 8 B per access" in strided["failures"]
    # do_not_specialize=["n_out"]: no divisibility for n_out although 65536 % 16 == 0, unlike n
    assert unit["divisible_by_16"] == strided["divisible_by_16"] == "n"
