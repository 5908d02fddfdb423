"""Version-compatibility shims for the oldest supported Triton (pyproject: triton>=3.6).

Applied once on ``import kernels``; each shim names the versions it is for and does nothing
elsewhere. ``make compat-check`` (profiling/compat.py) is what finds the need for one.

* Triton < 3.7, interpreter only: a scalar kernel argument used as an index (``range(size)``
  in a nested ``@triton.jit`` function) is converted with ``int(a)`` on a 1-element array,
  which NumPy >= 2.4 rejects ("only 0-dimensional arrays can be converted to Python
  scalars"); Triton 3.7+ converts ``int(a.squeeze())``. The shim installs that same
  conversion. Compiled (GPU) kernels never take this path.
"""

from __future__ import annotations

import os

import triton


def triton_version() -> tuple[int, int]:
    major, minor = triton.__version__.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def interpreter_scalar_index() -> bool:
    """Install Triton 3.7's ``__index__`` of interpreted tensors on older Triton; True if installed."""
    if triton_version() >= (3, 7) or not _interpreting():
        return False
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor
    if getattr(original, "alexnet_fast_shim", False):
        return True

    def patch_lang_tensor(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    patch_lang_tensor.alexnet_fast_shim = True
    interpreter._patch_lang_tensor = patch_lang_tensor
    return True


APPLIED = {"interpreter_scalar_index": interpreter_scalar_index()}
