"""The one precision policy of the study: autocast over fp32 master weights.

Every measured cell (the bench engine, the two-rank layouts, the pytest benchmarks) and
training take their precision from :data:`POLICY`:

=======  =============================  ==================  ============================
name     convolutions / matmuls in      TF32 flags (CUDA)   loss scaling
=======  =============================  ==================  ============================
fp32     float32                        off                 none
tf32     float32 storage, TF32 math     on (cuBLAS, cuDNN)  none
fp16     float16 (``torch.autocast``)   off                 dynamic (:data:`LOSS_SCALE`)
bf16     bfloat16 (``torch.autocast``)  off                 none (bf16 has fp32's range)
=======  =============================  ==================  ============================

Why autocast, not the whole model cast to the dtype:

* It is how low-precision training is done (``torch.amp``; torchvision's reference scripts
  with ``--amp``), so a cell times what a user of the model runs, and training, benchmarks
  and layouts measure the same thing.
* Weights, gradients and optimizer state stay fp32 ("master weights"). A model cast to fp16
  updates its weights in fp16, where ``lr * grad`` below 2^-11 of a weight is rounded away.
* Autocast keeps the ops that need range in fp32 (softmax and cross-entropy, the LRN's
  ``avg_pool3d`` on CPU). A model cast to fp16 or bf16 cannot even run on CPU (measured
  here, torch 2.14: ``"avg_pool3d_out_frame" not implemented for 'Half'``); under autocast it
  runs on CPU and GPU alike.
* The Triton custom ops carry autocast rules like PyTorch's conv2d (lower precision:
  ``kernels._common.register_autocast``), so an autocast cell runs the kernels in the dtype
  it is labelled with.

The price: every forward casts the fp32 weights to the compute dtype. Real training pays it
too, so the times include it.

Scope of the state: :meth:`Precision.flags` sets the TF32 flags for a whole step (forward,
backward and optimizer, restored after); :meth:`Precision.autocast` wraps the forward and
the loss only, as PyTorch advises (the backward runs in the dtypes the forward chose).

Loss scaling, one rule (:data:`LOSS_SCALE`, PyTorch's ``GradScaler`` defaults): fp16 starts
at 2^16, halves on a step whose gradients overflow (the step is skipped) and doubles after
2000 good steps. Timed training steps and training use :meth:`Precision.grad_scaler`; the
equivalence check's single backward applies the same rule (:func:`scaled_grads`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from alexnet_fast.vocabulary import PRECISIONS, choose

__all__ = ["Precision", "POLICY", "LOSS_SCALE", "BACKEND_DEFAULT_FP32", "policy", "scaled_grads", "tf32_flags"]

# PyTorch's GradScaler defaults (what torchvision's --amp uses): the one loss-scale rule
LOSS_SCALE = {"init_scale": 2.0**16, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000}


@contextlib.contextmanager
def tf32_flags(enabled: bool, cudnn: bool | None = None) -> Iterator[None]:
    """cuBLAS (matmul) TF32 flag set to ``enabled`` and cuDNN's to ``cudnn`` (default: the
    same) for the block, restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled if cudnn is None else cudnn
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@dataclass(frozen=True)
class Precision:
    """How one precision runs (module docstring). ``dtype``: what convolutions and matmuls
    compute in (the autocast dtype), float32 for fp32 and tf32."""

    name: str
    dtype: torch.dtype
    tf32: bool = False
    cudnn_tf32: bool | None = None  # cuDNN's TF32 flag when it differs from the matmul one (tf32)

    @property
    def mixed(self) -> bool:
        """Autocast to a lower precision (fp16, bf16)."""
        return self.dtype != torch.float32

    @property
    def scaled(self) -> bool:
        """The loss is scaled (fp16 only: its gradients underflow without it)."""
        return self.dtype == torch.float16

    def flags(self) -> contextlib.AbstractContextManager:
        """TF32 flags of this precision, for a whole step (backward and optimizer included)."""
        return tf32_flags(self.tf32, self.cudnn_tf32)

    def flag_columns(self) -> dict:
        """The TF32 flags this precision holds, as result-table columns."""
        return {"tf32_matmul": self.tf32, "tf32_cudnn": self.tf32 if self.cudnn_tf32 is None else self.cudnn_tf32}

    def autocast(self, device: torch.device | str) -> contextlib.AbstractContextManager:
        """Autocast to :attr:`dtype` on ``device`` for the forward and the loss (nothing for
        fp32/tf32)."""
        if not self.mixed:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(device).type, dtype=self.dtype)

    @contextlib.contextmanager
    def context(self, device: torch.device | str) -> Iterator[None]:
        """:meth:`flags` and :meth:`autocast` together (a forward pass with its loss)."""
        with self.flags(), self.autocast(device):
            yield

    def grad_scaler(self, device: torch.device | str, init_scale: float | None = None) -> torch.amp.GradScaler:
        """The GradScaler of :data:`LOSS_SCALE` (disabled unless fp16); ``init_scale`` overrides
        the start (e.g. the scale :func:`scaled_grads` settled on)."""
        settings = dict(LOSS_SCALE, **({} if init_scale is None else {"init_scale": init_scale}))
        return torch.amp.GradScaler(torch.device(device).type, enabled=self.scaled, **settings)

    def check_device(self, device: torch.device | str) -> None:
        """ValueError if this precision cannot run on ``device``."""
        device = torch.device(device)
        if self.tf32 and device.type != "cuda":
            raise ValueError(f"precision tf32 needs a CUDA device (Ampere or newer); this run is on {device.type}")
        if device.type == "cuda" and self.dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
            raise ValueError("precision bf16 needs a GPU with bfloat16 support (Ampere or newer)")


POLICY: dict[str, Precision] = {
    "fp32": Precision("fp32", torch.float32),
    "tf32": Precision("tf32", torch.float32, tf32=True),
    "fp16": Precision("fp16", torch.float16),
    "bf16": Precision("bf16", torch.bfloat16),
}
assert tuple(POLICY) == PRECISIONS, "the policy must cover the vocabulary's precisions, in order"

# fp32 as PyTorch's defaults run it: cuDNN convolutions in TF32 (torch.backends.cudnn.allow_tf32
# defaults to True), matmuls in full fp32 (torch.backends.cuda.matmul.allow_tf32 defaults to
# False). KernelBench times its fp32 problems so; the GPU suite's anchor cell uses it to stand
# beside their published figures. Judged like fp32 (its floors), against eager run the same way.
BACKEND_DEFAULT_FP32 = Precision("fp32", torch.float32, tf32=False, cudnn_tf32=True)


def policy(name: str) -> Precision:
    """The :class:`Precision` called ``name``; ValueError naming the choices otherwise."""
    return POLICY[choose(name, PRECISIONS, "precision")]


def scaled_grads(backward: Callable[[float], dict[str, torch.Tensor]],
                 precision: Precision) -> tuple[dict[str, torch.Tensor], float]:
    """Gradients of one backward under the loss-scale rule, unscaled; and the scale used.

    ``backward(scale)`` must clear the gradients, run forward and ``(scale * loss).backward()``
    and return the gradients by name. Unscaled precisions run it once with scale 1. fp16
    starts at ``LOSS_SCALE["init_scale"]`` and backs off (x ``backoff_factor``) while any
    gradient is not finite, as the GradScaler does over steps; below a scale of 1 it gives
    up and returns the non-finite gradients (a NaN is then the model's, not the scale's).
    ``backward`` must see the same gradients on every rank (gathered or all-reduced ones) so
    that every rank takes the same number of tries.
    """
    if not precision.scaled:
        return backward(1.0), 1.0
    scale = LOSS_SCALE["init_scale"]
    while True:
        grads = backward(scale)
        finite = all(bool(torch.isfinite(g).all()) for g in grads.values())
        if finite or scale * LOSS_SCALE["backoff_factor"] < 1.0:
            return {k: g.detach().float() / scale for k, g in grads.items()}, scale
        scale *= LOSS_SCALE["backoff_factor"]
