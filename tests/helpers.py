"""Shared test helpers: tolerances scaled by reduction length (engineering.md)."""

from __future__ import annotations

import torch

# rtol by input dtype (FlagGems' convention); atol = ATOL_PER_TERM * reduction length
RTOL = {torch.float32: 1.3e-6, torch.float16: 1e-3, torch.bfloat16: 1.6e-2}
ATOL_PER_TERM = 1e-4


def tolerances(dtype: torch.dtype, reduce_dim: int) -> dict[str, float]:
    """atol/rtol for a result of ``dtype`` that sums ``reduce_dim`` products."""
    return {"atol": ATOL_PER_TERM * max(1, reduce_dim), "rtol": RTOL[dtype]}


def assert_close_ref(actual: torch.Tensor, expected64: torch.Tensor, dtype: torch.dtype,
                     reduce_dim: int, what: str = "") -> None:
    """Compare a result of ``dtype`` with a float64 reference."""
    torch.testing.assert_close(
        actual.double(), expected64.double(), **tolerances(dtype, reduce_dim),
        msg=lambda m: f"{what}: {m}",
    )
