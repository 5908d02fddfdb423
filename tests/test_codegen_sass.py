"""SASS / TTGIR / cuobjdump text parsing (profiling/codegen/sass.py): recorded listings, no compile."""

from __future__ import annotations

import pytest

from alexnet_fast.profiling.codegen.sass import CodegenToolError, instruction_class, loop_figures, main_loop, mma_macs, resource_usage, sass_figures, sass_instructions, sass_memory_figures, ttgir_figures


def test_sass_figures_count_mma_and_spill_widths():
    sass = """
        /*0100*/                   HMMA.16816.F32 R4, R8, R12, R4 ;          /* 0x000000080c04723c */
        /*0110*/              @!P0 STL.64 [R1+0x8], R4 ;                      /* 0x0000080401008387 */
        /*0120*/                   STL [R1], R2 ;                             /* 0x0000000201007387 */
        /*0130*/                   LDL.LU.128 R4, [R1+0x10] ;                 /* 0x0000100001047983 */
        /*0140*/                   LDL.S16 R5, [R1+0x20] ;                    /* 0x0000200001057983 */
        /*0150*/                   HGMMA.64x64x16.F32 R24, gdesc[UR4], R24 ;  /* 0x0000000418187df0 */
        /*0160*/                   STG.E [R2.64], R4 ;                        /* 0x0000000402007986 */
    """
    assert sass_figures(sass) == {"hmma": 1, "hgmma": 1, "spill_store_bytes": 12, "spill_load_bytes": 18}


def test_resource_usage_picks_the_named_function():
    dump = (" Function other:\n  REG:10 STACK:0 SHARED:0 LOCAL:0 CONSTANT[0]:400\n"
            " Function kern:\n  REG:96 STACK:16 SHARED:1024 LOCAL:0 CONSTANT[0]:584 TEXTURE:0\n")
    usage = resource_usage(dump, "kern")
    assert (usage["REG"], usage["STACK"], usage["SHARED"]) == (96, 16, 1024)
    with pytest.raises(CodegenToolError, match="missing"):
        resource_usage(dump, "missing")


_SASS_LOOPS = """
        /*0100*/                   MOV R1, c[0x0][0x28] ;
        /*0110*/                   IMAD R2, R3, R4, RZ ;
        /*0120*/                   IADD3 R5, R5, 0x1, RZ ;
        /*0130*/                   ISETP.GE.AND P0, PT, R5, 0x4, PT ;
        /*0140*/               @!P0 BRA 0x120 ;
        /*0150*/                   DEPBAR.LE SB0, 0x1 ;
        /*0160*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0170*/                   LDGSTS.E.BYPASS.128 [R7], desc[UR4][R8.64] ;
        /*0180*/                   LDSM.16.M88.4 R12, [R9] ;
        /*0190*/                   HMMA.16816.F32 R20, R12, R16, R20 ;
        /*01a0*/                   HMMA.16816.F32 R24, R12, R18, R24 ;
        /*01b0*/                   UIADD3 UR4, UR4, 0x1, URZ ;
        /*01c0*/                   FADD R3, R3, R4 ;
        /*01d0*/                @P1 BRA 0x150 ;
        /*01e0*/                   EXIT ;
        /*01f0*/                   BRA 0x1f0;
"""


def test_main_loop_is_the_innermost_backward_branch_around_the_mma():
    loop = main_loop(sass_instructions(_SASS_LOOPS))
    assert (loop[0].address, loop[-1].address) == (0x150, 0x1d0)  # not the MMA-free loop at 0x120
    figures = loop_figures(_SASS_LOOPS, num_warps=4)
    assert figures == {"loop_instructions": 9, "loop_integer": 1, "loop_memory": 2, "loop_mma": 2, "loop_sync": 2,
                       "loop_other": 2, "loop_mma_macs": 2 * 16 * 8 * 16 * 4}
    nested = _SASS_LOOPS.replace("@P1 BRA 0x150", "@P1 BRA 0x170").replace("EXIT ;", "@P2 BRA 0x150 ;")
    assert loop_figures(nested, 4)["loop_instructions"] == 7  # the inner loop holds the MMAs
    assert loop_figures(_SASS_LOOPS.replace("HMMA", "FFMA"), 4)["loop_instructions"] is None
    assert [instruction_class(op) for op in ("HGMMA.64x64x16.F32", "UTCHMMA", "USEL", "WARPGROUP.ARRIVE",
                                                "LDGDEPBAR", "ULDC.64", "BRA", "I2F.RP")] == [
        "mma", "mma", "integer", "sync", "memory", "memory", "other", "integer"]
    assert mma_macs("HGMMA.64x128x16.F32.BF16") == 64 * 128 * 16 and mma_macs("HMMA.1688.F32.TF32") == 16 * 8 * 8


_TTGIR_UNPIPELINED = """
    %a = ttg.local_alloc %x : (tensor<128x32xf16, #blocked>) -> !ttg.memdesc<128x32xf16, #shared, #smem> loc(#l)
    %b = ttg.local_alloc %y : (tensor<32x64xf16, #blocked1>) -> !ttg.memdesc<32x64xf16, #shared1, #smem> loc(#l)
    %bt = ttg.memdesc_trans %b {order = array<i32: 1, 0>} : !ttg.memdesc<32x64xf16, #shared1, #smem> -> !ttg.memdesc<64x32xf16, #shared2, #smem> loc(#l)
    %c = ttng.warp_group_dot %a, %bt, %acc {inputPrecision = 0 : i32} : !ttg.memdesc<128x32xf16, #shared, #smem> * !ttg.memdesc<64x32xf16, #shared2, #smem> -> tensor<128x64xf32, #mma> loc(#l)
    %d = ttng.warp_group_dot_wait %c {pendings = 0 : i32} : tensor<128x64xf32, #mma> loc(#l)
"""


def test_ttgir_figures_follow_views_and_count_register_staged_tiles_as_one_buffer():
    assert ttgir_figures(_TTGIR_UNPIPELINED) == {"buffers_a": 1, "buffers_b": 1, "wgmma_pendings": 0}
    pipelined = _TTGIR_UNPIPELINED.replace(
        "ttg.local_alloc %x : (tensor<128x32xf16, #blocked>) -> !ttg.memdesc<128x32xf16",
        "ttg.local_alloc : () -> !ttg.memdesc<4x128x32xf16")
    assert ttgir_figures(pipelined)["buffers_a"] == 4
    assert ttgir_figures("%z = arith.addf %x, %y : f32") == {"buffers_a": None, "buffers_b": None,
                                                                "wgmma_pendings": None}


def test_sass_memory_figures_read_copy_and_load_widths():
    sass = """
        /*0100*/                   LDGSTS.E.BYPASS.LTC128B.128 [R3+0x1000], desc[UR24][R22.64], P6 ;
        /*0110*/                   LDGSTS.E [R3], desc[UR24][R20.64] ;
        /*0120*/                   LDGDEPBAR ;
        /*0130*/              @!P0 LDG.E.U16 R5, desc[UR4][R2.64] ;
        /*0140*/                   LDG.E.64 R6, desc[UR4][R2.64] ;
        /*0150*/                   LDG.E.U16 R7, desc[UR4][R8.64] ;
        /*0160*/                   UTMALDG.2D [UR8], [UR4] ;
        /*0170*/                   WARPGROUP.DEPBAR.LE gsb0, 0x1 ;
        /*0180*/                   WARPGROUP.DEPBAR.LE gsb0, 0x0 ;
    """
    assert sass_memory_figures(sass) == {
        "ldgsts": 2, "ldgsts_max_bytes": 16, "ldgsts_min_bytes": 4, "utmaldg": 1, "ldg": 3, "ldg_max_bytes": 8,
        "ldg_min_bytes": 2, "ldg_widths": "8B:1 2B:2", "wgmma_wait_depth": 1}
