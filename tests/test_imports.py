"""Imports point one way -- kernels/ (the ops) <- alexnet_fast/ (model, variants, layouts,
training) <- profiling/ (the harness) -- with no cycle, and every module imports on its own.

The graph counts every import statement, including those inside functions (a deferred
import is still a dependency: ``launch`` and the layouts' benchmark used to import each
other that way). The CLI's command table (alexnet_fast/cli.py) names the modules of its
subcommands as data, imported by name when one runs: a registry, not a dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("alexnet_fast", "kernels", "profiling")
# the folders' installed names (pyproject's package-dir): kernels/ is alexnet_fast.kernels
INSTALLED = {"alexnet_fast": "alexnet_fast", "kernels": "alexnet_fast.kernels", "profiling": "alexnet_fast.profiling"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            parts[0] = INSTALLED[parts[0]]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:  # a.b.attr -> a.b
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


# the layers, lowest first: a module may import its own layer and the ones below it
LAYERS = ("kernels", "alexnet_fast", "profiling")


def layer_of(module: str) -> str:
    """The folder (layer) of an installed module name: alexnet_fast.kernels.lrn -> kernels."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ("kernels", "profiling") else parts[0]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) pairs where a module imports from a layer above its own."""
    rank = lambda name: LAYERS.index(layer_of(name))  # noqa: E731
    return {(a, b) for a, targets in graph.items() for b in targets if rank(b) > rank(a)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert "alexnet_fast.profiling.layout_bench" in graph["alexnet_fast.profiling.engine"]  # the walker sees real edges
    assert "alexnet_fast.launch" in graph["alexnet_fast.profiling.layout_bench"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_finds_an_upward_import():
    assert upward_imports({"alexnet_fast.kernels.x": {"alexnet_fast.model"}, "alexnet_fast.model": {"alexnet_fast.kernels.y"},
                           "alexnet_fast.kernels.y": set(), "alexnet_fast.profiling.p": {"alexnet_fast.kernels.y", "alexnet_fast.model"}}) == \
        {("alexnet_fast.kernels.x", "alexnet_fast.model")}
    assert upward_imports({"alexnet_fast.a": {"alexnet_fast.profiling.b"}, "alexnet_fast.profiling.b": set()}) == {("alexnet_fast.a", "alexnet_fast.profiling.b")}


def test_imports_point_down_the_layers():
    graph = import_graph()
    assert "alexnet_fast.kernels._common" in graph and "alexnet_fast.profiling.engine" in graph  # the walker sees the modules
    assert "alexnet_fast.model" in graph["alexnet_fast.profiling.codegen.specs"]  # ... and function-level imports
    upward = upward_imports(graph)
    assert upward == set(), f"imports from a layer above: {sorted(upward)}"


@pytest.mark.parametrize("module", ["alexnet_fast.precision", "alexnet_fast.checkpoint", "alexnet_fast.profiling.judge", "alexnet_fast.profiling.engine",
                                    "alexnet_fast.profiling.render.suite", "alexnet_fast.profiling.estimates",
                                    "alexnet_fast.profiling.layout_bench", "alexnet_fast.profiling.report", "alexnet_fast.launch",
                                    "alexnet_fast.profiling.codegen"])
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(ROOT), "TRITON_INTERPRET": "1",
                                            "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
