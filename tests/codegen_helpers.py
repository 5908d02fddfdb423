"""What the codegen check's tests share: the fixture kernels' spec references, one pool of
spawned compile workers per test module (the interpreter off there), discovery narrowed to the
fixture module, and ``alexnet-fast codegen`` run in-process. Test modules import the fixtures
(``pool``, ``fixture_discovery``) by name, which is how pytest finds them."""

from __future__ import annotations

import pytest

import codegen_fixture_kernels as fixture
from alexnet_fast.profiling.codegen import cli
from alexnet_fast.profiling.codegen.compile import compile_pool
from alexnet_fast.profiling.codegen.specs import KERNEL_PACKAGE, SpecRef, collect_specs

FIXTURE = fixture.__name__


def fixture_refs() -> dict[str, SpecRef]:
    return {ref.spec_id: ref for ref, _ in collect_specs([fixture])}


def fixture_ref(op: str, config: str) -> SpecRef:
    (ref,) = [r for r in fixture_refs().values() if r.op == op and r.config == config]
    return ref


@pytest.fixture(scope="module")
def pool():
    with compile_pool(1) as executor:
        yield executor


@pytest.fixture
def fixture_discovery(monkeypatch):
    """The CLI finds the fixture module only (its discovery is what ``cli.run`` calls)."""
    monkeypatch.setattr(cli, "kernel_module_names", lambda package=KERNEL_PACKAGE: [FIXTURE])


def run_codegen(*args):
    from alexnet_fast.cli import main

    return main(["codegen", "--jobs", "1", "--no-progress", *args])
