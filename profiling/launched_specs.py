"""The suite's ``codegen`` cell: which codegen specs compile the kernels a run launched
(:func:`codegen_selection`: per launched (kernel, shape, dtype) the launch-faithful spec of the
config the autotuner chose, one spec per kernel before any gets a second, then a cap) and
their compile for the device's arch (:func:`compile_launched`)."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from alexnet_fast.profiling.cell_types import TRITON_KERNELS

__all__ = ["CODEGEN_KERNEL_ORDER", "codegen_selection", "compile_launched", "ROW_FIELDS"]


def _shape_parts(label: str) -> tuple[str, str, int | None]:
    """(preset, layer, batch) of a launch-faithful spec's shape label ("paper conv2 b128 NHWC",
    "paper lrn1+pool1 96x55x55 NHWC": no batch, it is no kernel argument)."""
    words = label.split()
    batch = next((int(w[1:]) for w in words[2:] if re.fullmatch(r"b\d+", w)), None)
    return words[0], words[1], batch


def _label_layer(unit_name: str) -> str:
    """The codegen label's layer name of a unit: conv2+relu2 -> conv2; others as they are."""
    return unit_name.split("+")[0] if unit_name.startswith("conv") else unit_name


def _config_matches(spec, config: Mapping[str, Any]) -> bool:
    tiles = {k: v for k, v in config.items() if k.isupper()}
    return (spec.num_warps == config.get("num_warps") and spec.num_stages == config.get("num_stages")
            and all(spec.constexprs.get(k) == v for k, v in tiles.items()))


# the order in which each kernel gets its first spec compiled (then its second, ...)
CODEGEN_KERNEL_ORDER = ["conv2d_relu_fwd_kernel", "conv2d_relu_dgrad_kernel", "conv2d_relu_wgrad_kernel",
                        "lrn_max_pool2d_fwd_kernel", "lrn_fwd_kernel", "max_pool2d_fwd_kernel",
                        "lrn_max_pool2d_bwd_kernel", "lrn_bwd_kernel", "max_pool2d_bwd_kernel"]


def codegen_selection(found: Sequence[tuple[Any, Any]], launched: Sequence[Mapping[str, Any]],
                      chosen: Sequence[Mapping[str, Any]], cap: int,
                      arch: int | None = None) -> tuple[list, list[str], list[str]]:
    """Which codegen specs (``profiling.codegen.specs.collect_specs`` pairs) compile the kernels the
    run launched: per launched (kernel, shape, dtype) -- the shape's preset and layer as
    launched, the nearest batch the codegen check lists -- the launch-faithful spec of the
    config the autotuner chose for it (else of the first config of its table, what a short
    run tries first). Every kernel gets one spec before any gets a second (round robin in
    the order forward, dgrad, wgrad, fused LRN+pool, LRN, pool, then their backwards), then
    ``cap`` cuts. ``arch``: only specs compiled for it (a per-arch table's configs are compiled
    for their archs only). Returns (selected refs, spec ids left out by the cap, launches with
    no launch-faithful spec)."""
    by_kernel: dict[str, list] = {}
    for ref, spec in found:  # a per-arch table's spec only for its archs
        if ref.shape and (arch is None or getattr(ref, "compiles_for", lambda a: True)(arch)):
            by_kernel.setdefault(ref.kernel, []).append((ref, spec))
    slots: dict[str, list] = {}
    unmatched: list[str] = []
    seen: set[str] = set()
    for entry in launched:
        layer = _label_layer(entry["unit"])
        for pass_ in entry["passes"]:
            for kernel in TRITON_KERNELS[entry["op"]][pass_]:
                cands = [(r, s) for r, s in by_kernel.get(kernel, [])
                         if r.dtype == entry["dtype"] and _shape_parts(r.shape)[:2] == (entry["preset"], layer)]
                if not cands:
                    if not (kernel == "conv2d_relu_dgrad_kernel" and layer == "conv1"):
                        unmatched.append(f"{kernel} {entry['preset']} {layer} {entry['dtype']}")
                    continue
                batches = sorted({_shape_parts(r.shape)[2] for r, _ in cands}, key=lambda b: (b is None, abs((b or 0) - entry["batch"])))
                cands = [(r, s) for r, s in cands if _shape_parts(r.shape)[2] == batches[0]]
                tuned = [c for c in chosen if c.get("kernel") == kernel and c.get("dtype") in (None, entry["dtype"])]
                pick = next(((r, s) for r, s in cands for c in tuned if _config_matches(s, c.get("config") or {})),
                            cands[0])
                if pick[0].spec_id not in seen:
                    seen.add(pick[0].spec_id)
                    slots.setdefault(kernel, []).append(pick[0])
    order = CODEGEN_KERNEL_ORDER + [k for k in slots if k not in CODEGEN_KERNEL_ORDER]
    picked: list = []
    depth = max((len(v) for v in slots.values()), default=0)
    for i in range(depth):
        for kernel in order:
            if i < len(slots.get(kernel, ())):
                picked.append(slots[kernel][i])
    return picked[:cap], [r.spec_id for r in picked[cap:]], unmatched


# the columns of a codegen row the suite's results keep (codegen.csv has them all)
ROW_FIELDS = ("op", "kernel", "config", "dtype", "shape", "arch", "registers", "spill_store_bytes", "spill_load_bytes",
              "smem_bytes", "mma_kind", "mma_instructions", "buffers_a", "buffers_b", "ldgsts", "wgmma_wait_depth",
              "compiled", "passed", "failures", "notes", "compile_s")


def compile_launched(launched: Sequence[Mapping[str, Any]], chosen: Sequence[Mapping[str, Any]], max_specs: int,
                     arch: int, out_dir: Path | None) -> tuple[list[dict], dict]:
    """Compile, with the codegen check (its worker processes), the specs
    :func:`codegen_selection` picks for ``launched`` for ``arch`` (the nearest arch the check
    knows at or below it); ``codegen.csv`` into ``out_dir``. Returns (result rows, meta: the
    specs left out by the cap and the launches no spec matched)."""
    from alexnet_fast.profiling.codegen.arch import SHARED_LIMIT_BYTES
    from alexnet_fast.profiling.codegen.compile import compile_refs
    from alexnet_fast.profiling.codegen.report import results_table
    from alexnet_fast.profiling.codegen.specs import collect_specs, kernel_module_names

    arch = arch if arch in SHARED_LIMIT_BYTES else max(a for a in SHARED_LIMIT_BYTES if a <= arch)
    modules = [importlib.import_module(m) for m in kernel_module_names()]
    refs, left_out, unmatched = codegen_selection(collect_specs(modules), launched, chosen, max_specs, arch)
    meta = {"codegen_left_out": left_out, "codegen_unmatched": sorted(set(unmatched))}
    if not refs:
        return [], meta
    compiled = compile_refs(refs, [arch], jobs=max(1, min(8, os.cpu_count() or 1, len(refs))))
    if out_dir is not None:
        from alexnet_fast.io import atomic_path

        with atomic_path(out_dir / "codegen.csv") as tmp:
            results_table(compiled).to_csv(tmp, index=False)
    return compiled, meta
