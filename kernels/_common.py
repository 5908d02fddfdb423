"""What every Triton op in ``kernels/`` shares: interpreter detection, input checks, and
the description of a kernel config that the code-generation check compiles.

Kept small on purpose: each op's kernels, launchers and autograd live in its own file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import torch

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def is_interpreting() -> bool:
    """True when Triton runs kernels with its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_device(*tensors: torch.Tensor, op: str) -> None:
    """Triton needs CUDA tensors, or CPU tensors under the interpreter; all on one device."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"{op}: all tensors must be on one device, got {sorted(map(str, devices))}")
    device = next(iter(devices))
    if device.type == "cuda":
        return
    if device.type == "cpu" and is_interpreting():
        return
    hint = " (CPU tensors run only under TRITON_INTERPRET=1)" if device.type == "cpu" else ""
    raise ValueError(f"{op}: Triton kernels need CUDA tensors, got device {device}{hint}")


def check_tensor(t: Any, name: str, *, op: str, ndim: int | None = None,
                 dtypes: Iterable[torch.dtype] = SUPPORTED_DTYPES) -> None:
    """TypeError for a non-tensor or unsupported dtype, ValueError for a wrong rank."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")
    dtypes = tuple(dtypes)
    if t.dtype not in dtypes:
        raise TypeError(f"{op}: {name} has dtype {t.dtype}; supported: {', '.join(map(str, dtypes))}")
    if ndim is not None and t.dim() != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {tuple(t.shape)}")


def is_channels_last(x: torch.Tensor) -> bool:
    """NHWC in memory (and not also trivially NCHW, e.g. C == 1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


@dataclass(frozen=True)
class KernelSpec:
    """One compile job for the code-generation check (``profiling/codegen.py``).

    ``signature`` maps every argument of ``fn`` to a Triton type string ("*fp16", "i32",
    "fp32", "constexpr"); ``constexprs`` gives the value of each constexpr. ``dtype`` names
    the input precision this config is for; ``expects_mma`` says whether the kernel should
    use tensor cores (HMMA on sm_80, HGMMA/HMMA on sm_90) for that dtype.
    """

    op: str
    kernel: str
    config: str
    fn: Callable
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int = 4
    num_stages: int = 2
    dtype: str = "fp32"
    expects_mma: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# dtype -> Triton pointer type string, for KernelSpec signatures
TRITON_PTR = {torch.float32: "*fp32", torch.float16: "*fp16", torch.bfloat16: "*bf16"}
