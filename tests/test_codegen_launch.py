"""Launch specialization (profiling/codegen/compile.py): Triton's own launcher code applied to a
spec's argument values, and the checks of launch-faithful specs."""

from __future__ import annotations

import dataclasses

import pytest

import codegen_fixture_kernels as fixture
from alexnet_fast.profiling.codegen.compile import (check_given_signature, launch_specialization, specialized_names,
                                                   validate_spec)


def _copy_spec(**args):
    base = next(s for s in fixture.codegen_specs() if s.op == "fixture_load_width")
    return dataclasses.replace(base, args={**base.args, **args})


def test_launch_specialization_follows_the_launcher():
    import torch

    misaligned = torch.empty(16, dtype=torch.float16)[1:]  # 2 bytes past an aligned start
    spec = _copy_spec(x_ptr=misaligned, stride=1)
    special = launch_specialization(spec, 90)
    assert special.signature == {"x_ptr": "*fp16", "y_ptr": "*fp16", "n": "i32", "stride": "constexpr",
                                 "n_out": "i32", "BLOCK": "constexpr"}
    assert special.constexprs == {(3,): 1, (5,): 1024}
    assert ["tt.divisibility", 16] not in special.attrs.get((0,), [])  # misaligned tensor
    assert special.attrs[(1,)] == [["tt.divisibility", 16]]  # a dtype: an allocator tensor
    assert specialized_names(spec, special) == (["n"], ["stride"])  # n_out: do_not_specialize
    for stride, expect in ((48, (["n", "stride"], [])), (7, (["n"], [])), (2**31 + 1, (["n"], []))):
        special = launch_specialization(_copy_spec(stride=stride), 80)
        assert specialized_names(_copy_spec(stride=stride), special) == expect
    assert launch_specialization(_copy_spec(stride=2**31 + 1), 80).signature["stride"] == "i64"


@pytest.mark.gpu
def test_launch_specialization_equals_a_real_launch_on_this_gpu():
    """What the check compiles is what ``kernel.warmup`` (a launch minus running it) compiles."""
    import torch
    from triton.compiler import ASTSource

    x = torch.empty(4096, dtype=torch.float16, device="cuda")
    spec = _copy_spec(x_ptr=x[1:], y_ptr=x, stride=48)
    major, minor = torch.cuda.get_device_capability()
    compiled = spec.fn.warmup(*spec.args.values(), grid=(1,), **spec.constexprs, num_warps=spec.num_warps,
                              num_stages=spec.num_stages)
    special = launch_specialization(spec, major * 10 + minor)
    ours = ASTSource(fn=spec.fn, signature=special.signature, constexprs=special.constexprs, attrs=special.attrs)
    assert (compiled.src.signature, compiled.src.constexprs, compiled.src.attrs) == (
        ours.signature, ours.constexprs, ours.attrs)
    assert compiled.src.hash() == ours.hash()


def test_launch_faithful_spec_problems_are_named():
    spec = _copy_spec()
    validate_spec(spec)
    with pytest.raises(ValueError, match=r"missing: \['stride'\]"):
        validate_spec(dataclasses.replace(spec, args={k: v for k, v in spec.args.items() if k != "stride"}))
    with pytest.raises(ValueError, match=r"not runtime arguments: \['BLOCK'\]"):
        validate_spec(dataclasses.replace(spec, args={**spec.args, "BLOCK": 4}))
    with pytest.raises(ValueError, match=r"constexprs must give .* \(missing: \['BLOCK'\]"):
        validate_spec(dataclasses.replace(spec, constexprs={}))
    with pytest.raises(ValueError, match="give ints, floats, None"):
        validate_spec(dataclasses.replace(spec, args={**spec.args, "x_ptr": "fp16"}))
    with pytest.raises(ValueError, match="for generic specs"):
        validate_spec(dataclasses.replace(spec, extra={"divisible_by_16": ("n",)}))
    typed = dataclasses.replace(spec, signature={"n": "fp32"})
    with pytest.raises(ValueError, match="types 'n' as 'fp32', but a launch with these args gives 'i32'"):
        check_given_signature(typed, launch_specialization(typed, 80))
    typed = dataclasses.replace(spec, signature={"n": "i32", "stride": "i32"})  # stride 1 -> constexpr is fine
    check_given_signature(typed, launch_specialization(typed, 80))


def test_reference_gemm_config_names_round_trip():
    from alexnet_fast.profiling import reference_gemm as rg

    name = rg.reference_config((128, 64, 32), 8, 3, "fp32", "tf32")
    assert name == "128x64x32 w8 s3 tf32" and rg.reference_config((64, 64, 32), 4, 4, "fp16", "ieee") == "64x64x32 w4 s4"
    spec = rg.spec_for(name, "fp32")
    assert spec.constexprs["BLOCK_SIZE_M"] == 128 and spec.num_warps == 8 and spec.num_stages == 3
    assert spec.constexprs["INPUT_PRECISION"] == "tf32" and spec.args["stride_ak"] == 1
    validate_spec(spec)
    with pytest.raises(ValueError, match="no reference GEMM config"):
        rg.spec_for("128x64 w8", "fp16")
