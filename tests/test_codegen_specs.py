"""Spec discovery and references (profiling/codegen/specs.py) and coverage (coverage.py): which
modules are ops, the AlexNet launches each op gets, and every jit function compiled or called."""

from __future__ import annotations

import dataclasses

import pytest

import codegen_fixture_kernels as fixture
from codegen_helpers import FIXTURE, fixture_refs
from alexnet_fast.profiling.codegen.compile import compile_tasks
from alexnet_fast.profiling.codegen.coverage import coverage_problems, jit_functions
from alexnet_fast.profiling.codegen.specs import (OP_SHAPES, SpecRef, alexnet_channel_layers, alexnet_conv_layers,
                                                  alexnet_lrn_conv_layers,
                                                  kernel_module_names, module_specs, reference_refs)


def test_in_use_flag_is_read_from_spec_extra():
    refs = fixture_refs()
    assert refs["fixture_matmul/fixture_matmul_kernel/m128n64k32_w4_s3/fp16"].in_use
    assert not refs["fixture_matmul/fixture_matmul_kernel/m32n32k32_w2_s2/fp16"].in_use


def test_specs_compile_only_for_the_archs_of_their_tables():
    a, b = SpecRef("m", 0, "o", "k", "c", "fp16", archs=(90,)), SpecRef("m", 1, "o", "k", "d", "fp16")
    assert compile_tasks([a, b], [80, 90]) == [(a, 90), (b, 80), (b, 90)]
    refs = reference_refs([dataclasses.replace(a, reference="128x64x32 w8 s3"),
                           dataclasses.replace(a, index=2, config="e", reference="128x64x32 w8 s3", archs=(80,))])
    assert [r.archs for r in refs] == [(80, 90)]


def test_discovery_skips_shared_modules(tmp_path, monkeypatch):
    pkg = tmp_path / "codegen_discovery_pkg"
    (pkg / "nn").mkdir(parents=True)
    for name in ("__init__.py", "_common.py", "configs.py", "nn/__init__.py", "op_b.py", "op_a.py"):
        (pkg / name).write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert kernel_module_names(pkg.name) == [f"{pkg.name}.op_a", f"{pkg.name}.op_b"]
    shared = {"alexnet_fast.kernels._common", "alexnet_fast.kernels.configs", "alexnet_fast.kernels.nn"}
    assert not shared & set(kernel_module_names())


def test_fixture_is_fully_covered_helper_through_its_caller():
    assert "_relu" in jit_functions(fixture)
    assert coverage_problems([fixture]) == []


def test_coverage_fails_for_jit_module_without_codegen_specs(monkeypatch):
    monkeypatch.delattr(fixture, "codegen_specs")
    (problem,) = coverage_problems([fixture])
    assert FIXTURE in problem and "no codegen_specs()" in problem and "fixture_matmul_kernel" in problem


def test_coverage_names_each_jit_function_that_escapes(monkeypatch):
    specs = fixture.codegen_specs()
    monkeypatch.setattr(fixture, "codegen_specs", lambda: [s for s in specs if s.kernel != "fixture_relu_kernel"])
    problems = coverage_problems([fixture])
    assert sorted(p.split(":")[0] for p in problems) == [f"{FIXTURE}._relu", f"{FIXTURE}.fixture_relu_kernel"]


def test_coverage_reports_duplicate_ids_and_broken_codegen_specs(monkeypatch):
    specs = fixture.codegen_specs()
    monkeypatch.setattr(fixture, "codegen_specs", lambda: specs + specs[:1])
    assert any("duplicate spec id" in p for p in coverage_problems([fixture]))

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(fixture, "codegen_specs", broken)
    assert any("raised RuntimeError: boom" in p for p in coverage_problems([fixture]))


def test_ops_are_generic_and_the_check_gives_them_the_alexnet_launches():
    """kernels/ knows no model: an op's codegen_specs() alone gives generic specs only; the check
    (OP_SHAPES) hands each op the launches of AlexNet's layers, labelled by preset and layer."""
    import importlib

    assert set(OP_SHAPES) <= set(kernel_module_names())  # no entry for a module that is gone
    expected = {"alexnet_fast.kernels.conv2d_relu": {f"{p} {layer} b128 NHWC" for p, layer, *_ in alexnet_conv_layers()},
                "alexnet_fast.kernels.lrn": {label for label, _ in alexnet_channel_layers("lrn")},
                "alexnet_fast.kernels.lrn_max_pool": {label for label, _ in alexnet_channel_layers("lrn+pool")},
                "alexnet_fast.kernels.max_pool": {label for label, _ in alexnet_channel_layers("pool")},
                "alexnet_fast.kernels.conv2d_relu_lrn": {f"{p} {layer} b128 NHWC" for p, layer, *_ in
                                                         alexnet_lrn_conv_layers()}
                | {label.replace(" lrn", " conv+relu+lrn", 1) for label, _ in alexnet_channel_layers("lrn")}}
    assert set(expected) == set(OP_SHAPES)
    for name, labels in expected.items():
        module = importlib.import_module(name)
        assert not [s for s in module.codegen_specs() if s.args is not None or s.shape], name
        shapes = {s.shape.split(" split ")[0] for s in module_specs(module) if s.args is not None}
        assert shapes == labels and labels, name
    assert len(alexnet_conv_layers()) == 10 and {p for p, *_ in alexnet_conv_layers()} == {"paper", "torchvision"}


def test_conv_launch_specs_need_the_sm_count_of_every_config_arch():
    import importlib

    conv2d_relu = importlib.import_module("alexnet_fast.kernels.conv2d_relu")  # the module (the package exports the op)
    with pytest.raises(ValueError, match=r"conv2d_relu: real_shape_specs needs the SM count of config archs \[90, 100\]"):
        conv2d_relu.real_shape_specs(alexnet_conv_layers()[:1], (128,), {80: 108})
