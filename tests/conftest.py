"""Test set-up. Runs before any project import: with no CUDA device, Triton must run its
CPU interpreter, and TRITON_INTERPRET has to be set before triton is imported."""

import os
import sys

import torch  # importing torch does not import triton

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    assert "triton" not in sys.modules, "triton was imported before conftest could set TRITON_INTERPRET"
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402


def _inductor_cache_for_this_kernels_version() -> None:
    """torch.compile's on-disk caches key a compiled backward on the traced forward graph, not
    on the Python autograd formula of a custom op, so after a change to kernels/ a warm cache
    replays a stale backward (seen: a compiled graph calling conv2d_relu_wgrad with the 8
    arguments of its previous signature). The tests get an inductor cache of their own per
    content of kernels/ (unless TORCHINDUCTOR_CACHE_DIR is set), shared by the xdist workers."""
    import hashlib
    import tempfile
    from pathlib import Path

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return
    digest = hashlib.sha256()
    for path in sorted((Path(__file__).resolve().parent.parent / "kernels").rglob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tempfile.gettempdir()) /
                                                f"alexnet-fast-inductor-{digest.hexdigest()[:16]}")


_inductor_cache_for_this_kernels_version()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (none found; Triton runs interpreted here)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # the mark, not a keyword: a checkout in a folder named gpu
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def launch_spy():
    """``spy = launch_spy(module, ...)`` starts a :class:`helpers.LaunchSpy` on those op
    modules (none: all); every spy started is taken off at teardown."""
    import contextlib

    from helpers import LaunchSpy

    with contextlib.ExitStack() as stack:
        yield lambda *modules: stack.enter_context(LaunchSpy(*modules))
