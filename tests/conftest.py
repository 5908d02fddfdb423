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
