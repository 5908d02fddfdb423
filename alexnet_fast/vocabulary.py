"""The study's vocabulary, defined once: what a measured cell can be.

Every other module (variants, layouts, the bench engine and its CLI, the report, the
benchmarks, training) imports these names from here; none writes the lists out again.

* :data:`VARIANTS`: how a model is built (:func:`alexnet_fast.build_variant`).
* :data:`COMPILE_MODES`: torch.compile's modes for the compiled variants.
* :data:`PRECISIONS`: the precision policies of :mod:`alexnet_fast.precision`.
* :data:`PASSES`: ``inference`` (one forward, no grad) and ``train`` (forward, loss,
  backward, optimizer step).
* :data:`LAYOUTS`: where the model runs (:mod:`alexnet_fast.layouts`): one device, or two
  ranks splitting the batch (``data_parallel``) or the model (``model_parallel``).
* :data:`TRITON_OPS`: the Triton ops, named as their kernels name themselves
  (``kernels/<file>.OP``, a test checks): also the ``op`` of the per-layer units they run
  (:func:`profiling.flops.layer_units`), whose other ops are :data:`OTHER_LAYER_OPS`.
* :data:`LAYER_PASSES`: a per-layer unit's forward (``fwd``) and backward (``bwd``).
* :data:`IMPLS`: how a per-layer unit runs (:data:`profiling.cell_types.LAYER_IMPLS`: a variant in
  a memory format) -- the baselines :data:`BASELINE_IMPLS` and the Triton kernels
  :data:`TRITON_IMPLS`; the pytest benchmarks' providers are these names too.
"""

from __future__ import annotations

__all__ = ["VARIANTS", "COMPILE_MODES", "PRECISIONS", "PASSES", "LAYOUTS", "TRITON_OPS", "OTHER_LAYER_OPS",
           "LAYER_OPS", "LAYER_PASSES", "BASELINE_IMPLS", "TRITON_IMPLS", "IMPLS", "layer_passes_of", "variant_label", "VARIANT_LABELS",
           "choose"]

VARIANTS = ("eager", "compile", "triton", "triton+compile")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
PASSES = ("inference", "train")
LAYOUTS = ("single", "data_parallel", "model_parallel")
TRITON_OPS = ("conv2d_relu", "local_response_norm", "max_pool2d", "lrn_max_pool2d", "conv2d_relu_lrn")
OTHER_LAYER_OPS = ("fc_relu", "fc", "avgpool")  # run by PyTorch in every variant
LAYER_OPS = TRITON_OPS + OTHER_LAYER_OPS
LAYER_PASSES = ("fwd", "bwd")
BASELINE_IMPLS = ("eager-nchw", "eager-nhwc", "compile")
TRITON_IMPLS = ("triton", "triton+compile", "triton-lrn-apart")
IMPLS = BASELINE_IMPLS + TRITON_IMPLS


def layer_passes_of(pass_: str) -> tuple[str, ...]:
    """The per-layer passes a model pass runs: ``inference`` the forward, ``train`` both."""
    return LAYER_PASSES[:1] if pass_ == "inference" else LAYER_PASSES


def variant_label(variant: str, compile_mode: str = "default") -> str:
    """One name per measured line: ``compile``, ``compile[max-autotune]``, ``triton`` ..."""
    if variant.endswith("compile") and compile_mode != "default":
        return f"{variant}[{compile_mode}]"
    return variant


# every label in plotting order: each variant, then its compile modes
VARIANT_LABELS = tuple(dict.fromkeys(variant_label(v, m) for v in VARIANTS for m in COMPILE_MODES))


def choose(value: str, allowed: tuple[str, ...], what: str) -> str:
    """``value`` if it is one of ``allowed``; ValueError naming it and the choices otherwise."""
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return value
