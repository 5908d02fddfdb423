"""The project installs one top-level name: kernels/ and profiling/ become alexnet_fast.kernels
and alexnet_fast.profiling (pyproject's package-dir), in the wheel and in a bare checkout, and
no module imports the top-level names ``kernels`` or ``profiling`` (they belong to other
PyPI packages)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"alexnet_fast": "alexnet_fast", "kernels": "alexnet_fast.kernels", "profiling": "alexnet_fast.profiling"}


def _packages_in_tree() -> set[str]:
    found = set()
    for folder, name in FOLDERS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *rel)))
    return found


def test_pyproject_lists_every_package_of_the_tree():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(config["packages"]) == _packages_in_tree()
    assert config["package-dir"] == {"alexnet_fast.kernels": "kernels", "alexnet_fast.profiling": "profiling"}


def test_no_module_imports_the_top_level_names():
    offenders = []
    for folder in ("alexnet_fast", "kernels", "profiling", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
                offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in ("kernels", "profiling")]
    assert offenders == []


def test_the_wheel_holds_one_top_level_package(tmp_path):
    """Built from this tree (setuptools, no isolation: no download), the wheel has
    alexnet_fast/kernels/... and alexnet_fast/profiling/data/*.json, and nothing else at the top."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next(tmp_path.glob("alexnet_fast-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"alexnet_fast"}
    assert "alexnet_fast/kernels/lrn.py" in names and "alexnet_fast/kernels/nn/conv.py" in names
    assert any(n.startswith("alexnet_fast/profiling/data/") and n.endswith(".json") for n in names)


def test_a_bare_checkout_finds_the_subpackages(tmp_path):
    """No install: PYTHONPATH=<checkout>, run from elsewhere (the GPU machine's way)."""
    code = ("import alexnet_fast.kernels.configs as c, alexnet_fast.profiling.stats as s, sys; "
            "print(c.__file__); print(s.__file__); print('kernels' in sys.modules, 'profiling' in sys.modules)")
    # -S: no site processing, so no .pth file (this venv's editable install) maps the names; the
    # environment's site-packages come through PYTHONPATH, after the checkout
    site = [p for p in sys.path if p.endswith("site-packages")]
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": os.pathsep.join([str(ROOT), *site]),
                                            "PATH": "/usr/bin:/bin", "TRITON_INTERPRET": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    kernels_file, stats_file, loaded = done.stdout.split("\n")[:3]
    assert Path(kernels_file) == ROOT / "kernels" / "configs.py"
    assert Path(stats_file) == ROOT / "profiling" / "stats.py"
    assert loaded == "False False"
