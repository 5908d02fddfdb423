"""The host-side cost of a Triton op call, with the kernel launch stubbed, against aten's
dispatch of the op it replaces: what the engine's ``dispatch`` cell times.

On a GPU a small kernel's wall time includes everything the host does before the launch:
the ``torch.library`` custom-op dispatch, the launcher's input checks and output
allocations, the autotuner's cache lookup, the grid function and, for a backward, autograd
and the extra launches. FlagGems' ``libentry`` exists because this cost is real (tens of
microseconds a call, the order of AlexNet's pool and LRN kernels at batch 128). Here it is
measured alone, on any machine:

* ``triton``: the unit's Triton module (what ``build_variant(..., "triton")`` swaps in) on
  real tensors of the measured shape, with every ``@triton.jit`` kernel's ``run`` replaced
  by a no-op (:func:`launches_stubbed`): what remains is the Python path down to the
  launch. Triton's JIT binder and the driver launch are inside ``run``, so they are not in
  this figure (on a GPU the layer rows' ``dispatch_us`` = wall - kernel time holds them).
* ``aten``: the eager PyTorch modules on ``meta`` tensors: the dispatcher, the op's meta
  function (shape checks, output allocation of no memory) and autograd, no kernel.

Timed on the host clock (``perf_counter``) whatever the device: this is host work. An
autotuner that would benchmark while launches are stubbed (its cache is cold for the shape:
it would choose a config from no-op launches and cache it) raises instead, so the cell
runs after the per-layer cells that tuned these shapes.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from alexnet_fast.vocabulary import LAYER_PASSES
from alexnet_fast.profiling.cell import layer_backward, layer_forward

__all__ = ["DispatchCase", "launches_stubbed", "dispatch_cases"]


@dataclass(frozen=True)
class DispatchCase:
    """One timed host path: ``impl`` (triton / aten) of one unit's ``pass_`` (fwd / bwd)."""

    impl: str
    pass_: str
    method: str
    step: Callable[[], object]


def _jit_class():
    from alexnet_fast.kernels.max_pool import max_pool2d_fwd_kernel  # JITFunction, or InterpretedFunction under the interpreter

    return type(max_pool2d_fwd_kernel)


@contextlib.contextmanager
def launches_stubbed() -> Iterator[list[int]]:
    """Within the block every Triton kernel's ``run`` (binder + launch, or the interpreter)
    does nothing, and an autotuner that would benchmark raises. Yields a list that counts
    the stubbed launches."""
    from triton.runtime.autotuner import Autotuner

    cls = _jit_class()
    launches: list[int] = []

    def run(self, *args, **kwargs):
        launches.append(1)

    def bench(self, *args, **kwargs):
        raise RuntimeError(f"dispatch cell: the autotuner of {getattr(self, 'base_fn', self)} would benchmark with "
                           f"stubbed launches (cold cache for this shape); run the per-layer cells of this shape first")

    saved_run, saved_bench = cls.run, Autotuner._bench
    cls.run, Autotuner._bench = run, bench
    try:
        yield launches
    finally:
        cls.run, Autotuner._bench = saved_run, saved_bench


def _grad_like(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = block(x)
    return torch.ones_like(out)


def dispatch_cases(block: nn.Module, triton_block: nn.Module, x: torch.Tensor, *, input_grad: bool,
                   passes: tuple[str, ...] = LAYER_PASSES) -> list[DispatchCase]:
    """The host paths of one unit: ``triton_block`` (the Triton variant of ``block``, on
    ``x``'s device, to be called inside :func:`launches_stubbed`) and ``block`` on meta
    tensors (aten), forward and backward."""
    meta = copy.deepcopy(block).to("meta")
    xm = torch.empty_like(x, device="meta")
    cases = []
    for pass_ in passes:
        for impl, model, inp, method in (("triton", triton_block, x, "kernel launch stubbed"),
                                         ("aten", meta, xm, "meta tensors")):
            if pass_ == "fwd":
                step = layer_forward(model, inp)
            else:
                step = layer_backward(model, inp, _grad_like(model, inp), input_grad=input_grad)
            cases.append(DispatchCase(impl, pass_, method, step))
    return cases
