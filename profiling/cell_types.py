"""What a run is made of: :class:`Cell` (one unit of work of the engine: kind, parameters,
estimate, assumed compiles), the per-layer implementations (:data:`LAYER_IMPLS`: a variant
in a memory format, named by :data:`alexnet_fast.vocabulary.IMPLS`) and the Triton kernels
each op launches per pass (:data:`TRITON_KERNELS`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cell", "KINDS", "LayerImpl", "LAYER_IMPLS", "IMPL_OF_VARIANT", "TRITON_KERNELS"]

# Triton kernels each op launches per pass
TRITON_KERNELS = {
    "conv2d_relu": {"fwd": ("conv2d_relu_fwd_kernel",), "bwd": ("conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel")},
    "local_response_norm": {"fwd": ("lrn_fwd_kernel",), "bwd": ("lrn_bwd_kernel",)},
    "max_pool2d": {"fwd": ("max_pool2d_fwd_kernel",), "bwd": ("max_pool2d_bwd_kernel",)},
    "lrn_max_pool2d": {"fwd": ("lrn_max_pool2d_fwd_kernel",), "bwd": ("lrn_max_pool2d_bwd_kernel",)},
    # a conv -> ReLU -> LRN -> pool chain (profiling.flops.chain_units) as the triton variant runs it
    "conv2d_relu_lrn": {"fwd": ("conv2d_relu_lrn_fwd_kernel", "max_pool2d_fwd_kernel"),
                        "bwd": ("max_pool2d_bwd_kernel", "lrn_relu_bwd_kernel", "conv2d_relu_dgrad_kernel",
                                "conv2d_relu_wgrad_kernel")},
}



@dataclass(frozen=True)
class LayerImpl:
    """One way a per-layer cell runs a unit: a variant of ``build_variant`` in a memory format,
    with ``options`` for build_variant (its keyword arguments)."""

    variant: str
    memory_format: str  # "nchw" or "nhwc": the input's and the weights' layout
    description: str
    options: tuple[tuple[str, Any], ...] = ()


LAYER_IMPLS: dict[str, LayerImpl] = {
    "eager-nchw": LayerImpl("eager", "nchw", "PyTorch eager (cuDNN for conv), NCHW"),
    "eager-nhwc": LayerImpl("eager", "nhwc", "PyTorch eager (cuDNN for conv), channels-last"),
    "compile": LayerImpl("compile", "nchw", "torch.compile, NCHW"),
    "triton": LayerImpl("triton", "nhwc", "Triton kernels (kernels/), channels-last"),
    "triton+compile": LayerImpl("triton+compile", "nhwc", "Triton kernels under torch.compile, channels-last"),
    "triton-lrn-apart": LayerImpl("triton", "nhwc", "Triton kernels, conv + ReLU then LRN + pool (no LRN in the "
                                  "conv's epilogue), channels-last", (("fuse_conv_lrn", False),)),
}
# the per-layer implementation the bench's variants run (alexnet-fast bench --layer)
IMPL_OF_VARIANT = {"eager": "eager-nchw", "compile": "compile", "triton": "triton", "triton+compile": "triton+compile"}
KINDS = ("preflight", "peaks", "layer", "anchor", "model", "profile", "dispatch", "autotune", "codegen", "layout",
         "pytest")


@dataclass(frozen=True)
class Cell:
    """One unit of work of a run: ``kind`` names the engine's method (``cell_<kind>``),
    ``params`` its arguments, ``estimate_s`` its estimated duration, ``compiles`` the
    torch.compile frames it is assumed to compile in this process (None: not counted, e.g.
    the compiles happen in subprocesses), ``what`` the row fields describing it."""

    kind: str
    name: str
    estimate_s: float
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    compiles: int | None = 0
    what: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> str:
        return f"{self.kind:9s} {self.name:58s} ~{self.estimate_s:6.1f} s"
