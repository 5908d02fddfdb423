"""One vocabulary: every list of names a cell can be made of (variants, precisions, passes,
layouts, Triton ops, layer passes, per-layer implementations) is written once, in
alexnet_fast/vocabulary.py, and every spelling of an op is its kernel's own name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from alexnet_fast import vocabulary as V

ROOT = Path(__file__).resolve().parents[1]
LISTS = {name: getattr(V, name) for name in ("VARIANTS", "COMPILE_MODES", "PRECISIONS", "PASSES", "LAYOUTS",
                                             "TRITON_OPS", "LAYER_PASSES", "BASELINE_IMPLS", "TRITON_IMPLS", "IMPLS")}


def written_lists(source: str) -> list[tuple[int, frozenset]]:
    """(line, names) of every tuple / list / set literal of two or more strings."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            found.append((node.lineno, frozenset(e.value for e in node.elts)))
    return found


def test_the_checker_finds_a_list_written_again():
    assert (1, frozenset(V.PASSES)) in written_lists('PASSES = ("inference", "train")')


def test_no_module_writes_a_vocabulary_list_again():
    sets = {frozenset(v): k for k, v in LISTS.items()}
    # production code and the benchmarks (the other tests spell out the sets they expect)
    paths = [p for d in ("alexnet_fast", "profiling", "kernels", "tests/benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]
    again = [f"{p.relative_to(ROOT)}:{line} {sets[names]}" for p in paths if p.name != "vocabulary.py"
             for line, names in written_lists(p.read_text()) if names in sets]
    assert again == [], "import these from alexnet_fast.vocabulary: " + "; ".join(again)


@pytest.mark.parametrize("op", V.TRITON_OPS)
def test_every_triton_op_is_named_as_its_kernel_names_itself(op):
    from alexnet_fast.kernels import op_modules

    ops = {m.OP for m in op_modules()}
    assert op in ops and ops == set(V.TRITON_OPS)


def test_the_layer_units_and_implementations_use_the_vocabulary():
    from alexnet_fast.model import make_config
    from alexnet_fast.profiling.flops import layer_units
    from alexnet_fast.profiling.cell_types import LAYER_IMPLS

    assert tuple(LAYER_IMPLS) == V.IMPLS
    assert V.IMPLS == V.BASELINE_IMPLS + V.TRITON_IMPLS
    for preset in ("paper", "torchvision"):
        assert {u.op for u in layer_units(make_config(preset))} <= set(V.LAYER_OPS)
