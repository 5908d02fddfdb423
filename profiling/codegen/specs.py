"""The codegen check's specs: the one place that knows both the model and the ops.

Each op module of ``kernels/`` gives generic ``codegen_specs(...)`` taking launch shapes; this
module finds the op modules (pkgutil; ``_common``, ``configs`` and ``nn`` are not op modules),
reads AlexNet's layer shapes from ``alexnet_fast.model`` and hands each op the launches the model
variants make (``OP_SHAPES``), so launch-faithful rows compile what a launch at that layer
compiles. Worker processes rebuild the specs the same way (``module_specs``) and find one by its
(module, index) reference (``SpecRef``)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterable, Sequence

from alexnet_fast.profiling.codegen.arch import SMS

KERNEL_PACKAGE = "alexnet_fast.kernels"
NOT_OP_MODULES = frozenset({"_common", "configs", "nn"})


def spec_id(spec) -> str:
    """``op/kernel/config/dtype`` of a KernelSpec or SpecRef, ``@shape`` appended for a
    launch-faithful spec: names one spec (unique across the kernels package)."""
    base = f"{spec.op}/{spec.kernel}/{spec.config}/{spec.dtype}"
    return f"{base}@{spec.shape}" if spec.shape else base


@dataclass(frozen=True)
class SpecRef:
    """Where a worker process finds a spec: ``module_specs(importlib.import_module(module))[index]``.

    The names (op, kernel, config, dtype) are checked in the worker, so a ``codegen_specs()``
    that is not deterministic fails loudly instead of compiling the wrong spec.
    """

    module: str
    index: int
    op: str
    kernel: str
    config: str
    dtype: str
    in_use: bool = True
    shape: str = ""
    reference: str = ""  # config of the reference GEMM row this spec is checked against ("": none)
    archs: tuple[int, ...] = ()  # the archs it is compiled for (spec.extra["archs"]; (): every arch)

    @property
    def spec_id(self) -> str:
        return spec_id(self)

    def compiles_for(self, arch: int) -> bool:
        return not self.archs or arch in self.archs


def kernel_module_names(package: str = KERNEL_PACKAGE) -> list[str]:
    """Op modules of ``package`` (sorted full names), skipping ``_common``, ``configs``, ``nn``."""
    pkg = importlib.import_module(package)
    return sorted(f"{package}.{info.name}" for info in pkgutil.iter_modules(pkg.__path__)
                  if info.name not in NOT_OP_MODULES)


# Real launches compiled by the codegen check: every conv layer of both presets at these batch
# sizes, channels-last activations and KRSC weights (what the triton variants run).
CODEGEN_BATCHES = (128,)


def alexnet_conv_layers() -> list[tuple]:
    """(preset, layer, input (C, H, W), weight shape, stride, padding, groups) of every conv
    layer of both AlexNet presets (``alexnet_fast.model``)."""
    from alexnet_fast.model import PRESETS, feature_shapes

    layers = []
    for preset, config in PRESETS.items():
        shapes = feature_shapes(config)
        names = list(shapes)
        for i, conv in enumerate(config.convs, 1):
            c, h, w = shapes[names[names.index(f"conv{i}") - 1]]
            groups = config.conv_groups(i)
            weight = (conv.out_channels, c // groups, conv.kernel_size, conv.kernel_size)
            layers.append((preset, f"conv{i}", (c, h, w), weight, conv.stride, conv.padding, groups))
    return layers


def alexnet_lrn_conv_layers() -> list[tuple]:
    """The conv layers of :func:`alexnet_conv_layers` whose ReLU feeds an LRN (paper conv1, conv2),
    each with that LRN's (size, alpha, beta, k): the launches of kernels.conv2d_relu_lrn."""
    from alexnet_fast.model import PRESETS

    return [(*layer, (lrn.size, lrn.alpha, lrn.beta, lrn.k)) for layer in alexnet_conv_layers()
            if (lrn := PRESETS[layer[0]].lrn) is not None and int(layer[1][4:]) in PRESETS[layer[0]].lrn_after]


def alexnet_channel_layers(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """(shape label, sizes) of the real AlexNet layers an LRN / pool kernel runs at, from the
    model's presets: ``kind`` "lrn+pool" (the fused op: paper lrn1/pool1, lrn2/pool2), "pool"
    (paper pool5; torchvision pool1, pool2, pool5) or "lrn" (paper lrn1, lrn2, which the variants
    run fused; listed for the LRN op alone). Sizes: C, H, W, HW, the pool output OH, OW and, for
    LRN layers, the LRN arguments size, alpha_over_size, beta, k as the launchers pass them. The
    batch size is no kernel argument, so these hold for every batch."""
    from alexnet_fast.model import PRESETS, feature_shapes

    layers = []
    for preset, config in PRESETS.items():
        shapes = feature_shapes(config)
        for i in range(1, len(config.convs) + 1):
            c, h, w = shapes[f"conv{i}"]
            has_lrn, has_pool = i in config.lrn_after, i in config.pool_after
            if kind == "lrn" and has_lrn:
                name = f"lrn{i}"
            elif kind == "lrn+pool" and has_lrn and has_pool:
                name = f"lrn{i}+pool{i}"
            elif kind == "pool" and has_pool and not has_lrn:
                name = f"pool{i}"
            else:
                continue
            _, oh, ow = shapes.get(f"pool{i}", (c, h, w))
            label = f"{preset} {name} {c}x{h}x{w} NHWC"
            sizes = {"C": c, "H": h, "W": w, "HW": h * w, "OH": oh, "OW": ow}
            if has_lrn and kind != "pool":
                lrn = config.lrn
                sizes.update(size=lrn.size, alpha_over_size=lrn.alpha / lrn.size, beta=lrn.beta, k=lrn.k)
            layers.append((label, sizes))
    return layers


# The keyword arguments of each op module's codegen_specs(): the AlexNet launches of that op.
# A module not named here (a test's fixture module) gets codegen_specs() with no arguments.
OP_SHAPES: dict[str, Callable[[], dict[str, Any]]] = {
    f"{KERNEL_PACKAGE}.conv2d_relu": lambda: {"layers": alexnet_conv_layers(), "batches": CODEGEN_BATCHES, "sms": SMS},
    f"{KERNEL_PACKAGE}.conv2d_relu_lrn": lambda: {"layers": alexnet_lrn_conv_layers(), "batches": CODEGEN_BATCHES,
                                                  "launches": alexnet_channel_layers("lrn")},
    f"{KERNEL_PACKAGE}.lrn": lambda: {"launches": alexnet_channel_layers("lrn")},
    f"{KERNEL_PACKAGE}.lrn_max_pool": lambda: {"launches": alexnet_channel_layers("lrn+pool")},
    f"{KERNEL_PACKAGE}.max_pool": lambda: {"launches": alexnet_channel_layers("pool")},
}


def module_specs(module: ModuleType) -> list:
    """``module.codegen_specs()`` at the AlexNet launches of its op (``OP_SHAPES``), in order:
    what the check compiles, here and in every worker process."""
    shapes = OP_SHAPES.get(module.__name__)
    return list(module.codegen_specs(**shapes()) if shapes else module.codegen_specs())


REFERENCE_MODULE = "alexnet_fast.profiling.reference_gemm"


def gemm_tile(spec) -> tuple[int, int, int] | None:
    """(BLOCK_M, BLOCK_N, BLOCK_K) of a tensor-core spec: ``extra["gemm_tile"]``, else its
    BLOCK_M / BLOCK_N / BLOCK_K constexprs; None for a kernel without a GEMM tile."""
    tile = spec.extra.get("gemm_tile")
    if tile is None and all(k in spec.constexprs for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K")):
        tile = tuple(spec.constexprs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
    return tuple(int(v) for v in tile) if tile is not None else None


def input_precision_of(spec) -> str | None:
    """The ``tl.dot`` input precision of a tensor-core spec (Triton's default, tf32, for fp32)."""
    if not spec.expects_mma:
        return None
    return (spec.extra.get("input_precision") or spec.constexprs.get("INPUT_PRECISION")
            or ("tf32" if spec.dtype == "fp32" else "ieee"))


def reference_config_of(spec) -> str:
    """The reference GEMM config a spec is gated against: launch-faithful tensor-core specs with
    a GEMM tile (not the reference rows themselves); "" for every other spec."""
    from alexnet_fast.profiling.reference_gemm import reference_config

    tile = gemm_tile(spec)
    if spec.args is None or not spec.expects_mma or tile is None or spec.extra.get("is_reference"):
        return ""
    return reference_config(tile, spec.num_warps, spec.num_stages, spec.dtype, input_precision_of(spec),
                            spec.extra.get("out_dtype"))


def reference_refs(refs: Iterable[SpecRef]) -> list[SpecRef]:
    """The reference GEMM rows that ``refs`` are checked against, once each, in order."""
    from alexnet_fast.profiling import reference_gemm

    needed: dict[tuple[str, str], set[int] | None] = {}
    for r in refs:
        if r.reference:
            archs = needed.setdefault((r.reference, r.dtype), set())
            if archs is not None:  # None: every arch
                needed[(r.reference, r.dtype)] = archs | set(r.archs) if r.archs else None
    return [SpecRef(REFERENCE_MODULE, -1, reference_gemm.OP, reference_gemm.KERNEL, config, dtype,
                    shape=f"M=N=K={reference_gemm.SIZE} row-major", archs=tuple(sorted(archs or ())))
            for (config, dtype), archs in needed.items()]


def collect_specs(modules: Sequence[ModuleType]) -> list[tuple[SpecRef, Any]]:
    """(reference, spec) for every spec of every module that has ``codegen_specs()``, in order."""
    from alexnet_fast.kernels._common import KernelSpec

    found = []
    for module in modules:
        try:
            specs = module_specs(module) if hasattr(module, "codegen_specs") else []
        except Exception:  # coverage_problems reports it
            continue
        for index, spec in enumerate(specs):
            if isinstance(spec, KernelSpec):
                ref = SpecRef(module.__name__, index, spec.op, spec.kernel, spec.config, spec.dtype,
                              in_use=bool(spec.extra.get("in_use", True)), shape=spec.shape,
                              reference=reference_config_of(spec), archs=tuple(spec.extra.get("archs", ())))
                found.append((ref, spec))
    return found
