"""Shared test helpers (imported as ``from helpers import ...``): tolerances scaled by the
reduction length (engineering.md) and the one spy on Triton launches."""

from __future__ import annotations

import contextlib

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


def conv_inputs(n, c, h, w, k, r, s, groups, dtype, channels_last=False, bias=True, weight_scale=None):
    """(x, weight, bias) of a conv test: x (n, c, h, w) normal (channels_last if asked), the weight scaled
    by fan_in ** -0.5 (or ``weight_scale``), the bias 0.1 * normal (None without ``bias``)."""
    x = torch.randn(n, c, h, w, dtype=dtype)
    fan_in = c // groups * r * s
    weight = (torch.randn(k, c // groups, r, s) * (weight_scale or fan_in ** -0.5)).to(dtype)
    b = torch.randn(k, dtype=dtype) * 0.1 if bias else None
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    return x, weight, b



class LaunchSpy:
    """Records every Triton launch of the op modules it patches (default: all of them,
    :func:`kernels.op_modules`): the kernel, the autotuner used and the batch it was made for,
    the floating dtypes of the tensors handed to the kernel and the device of the
    ``device_guard`` in force (None: launched outside one). It wraps each module's
    ``autotuned`` and ``device_guard``; as a context manager it puts both back on exit (the
    ``launch_spy`` fixture of conftest.py does that at teardown)."""

    def __init__(self, *modules):
        self._modules = modules
        self.launches: list[dict] = []
        self._guards: list[torch.device] = []
        self._saved: list[tuple] = []

    def __enter__(self) -> "LaunchSpy":
        from alexnet_fast.kernels import op_modules

        for module in self._modules or op_modules():
            self._saved.append((module, module.autotuned, module.device_guard))
            module.autotuned = self._spy_autotuned(module.autotuned)
            module.device_guard = self._spy_guard(module.device_guard)
        return self

    def __exit__(self, *exc) -> None:
        for module, autotuned, guard in reversed(self._saved):
            module.autotuned, module.device_guard = autotuned, guard
        self._saved.clear()

    def _spy_guard(self, real):
        @contextlib.contextmanager
        def guard(t):
            self._guards.append(t.device)
            try:
                with real(t):
                    yield
            finally:
                self._guards.pop()
        return guard

    def _spy_autotuned(self, real):
        spy = self

        def autotuned(kernel, *args, **kwargs):
            tuned = real(kernel, *args, **kwargs)

            class Launch:
                def __getitem__(self, grid):
                    def run(*a, **kw):
                        tensors = [t for t in (*a, *kw.values()) if isinstance(t, torch.Tensor)]
                        spy.launches.append({
                            "kernel": kernel.__name__, "tuner": tuned, "batch": kwargs.get("batch"),
                            "dtypes": {t.dtype for t in tensors if t.is_floating_point()},
                            "arg_dtypes": {k: v.dtype for k, v in kw.items() if isinstance(v, torch.Tensor)},
                            "flags": {k: v for k, v in kw.items() if isinstance(v, bool)},
                            "guard": spy._guards[-1] if spy._guards else None})
                        return tuned[grid](*a, **kw)
                    return run
            return Launch()
        return autotuned

    def kernels(self) -> list[str]:
        return [launch["kernel"] for launch in self.launches]
