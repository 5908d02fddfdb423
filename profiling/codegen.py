"""Static code-generation check: compile every Triton kernel config for sm_80 / sm_90 with no GPU.

Every module of the ``kernels`` package that defines ``@triton.jit`` kernels provides
``codegen_specs() -> list[kernels._common.KernelSpec]``, one spec per (kernel, launch config,
dtype). This module finds those modules (pkgutil; ``_common``, ``configs`` and ``nn`` are not op
modules), compiles each spec for each requested NVIDIA arch with ``triton.compile`` (no GPU or
driver needed) and reads from the result:

- ``registers``, ``stack_bytes``, ``smem_static_bytes``: ``cuobjdump --dump-resource-usage``
  (REG, STACK, SHARED);
- ``smem_dynamic_bytes``: ``metadata.shared``, the dynamic shared memory Triton launches with;
  ``smem_bytes`` is static + dynamic, what one block needs;
- ``spill_store_bytes`` / ``spill_load_bytes``: bytes moved by the local-memory instructions
  (STL / LDL, width from the opcode suffix) in the SASS. Triton puts nothing but spills in local
  memory, and these sums equal ptxas ``-v``'s "bytes spill stores / loads" (checked on a
  spilling 256x256 dot kernel for sm_80 and sm_90 with TRITON_DUMP_PTXAS_LOG=1). Reading them
  from the cubin works the same whether Triton compiled the kernel now or served it from its
  cache (~/.triton/cache);
- ``hmma`` / ``hgmma``: tensor-core MMA instructions in the SASS (HMMA: mma.sync, sm_80+;
  HGMMA: wgmma, sm_90);
- ``ptx_bytes``, ``compile_s`` and ``cache_hit`` (from Triton's compilation listener);
- ``buffers_a`` / ``buffers_b``, ``wgmma_pendings``: shared-memory copies of the dot's A and B
  tiles (leading dim of ``ttg.local_alloc``) and the largest ``warp_group_dot_wait`` pendings,
  from the TTGIR (``ttgir_figures``);
- ``ldgsts`` (+ widest / narrowest bytes), ``utmaldg``, ``ldg`` (+ widths), ``wgmma_wait_depth``
  (``WARPGROUP.DEPBAR.LE gsb0, N``): asynchronous copies, TMA loads, plain global loads and the
  wgmma wait depth, from the SASS (``sass_memory_figures``);
- ``loop_*``: the main loop -- the SASS from the target of the backward branch that closes the
  innermost loop holding an MMA to that branch, one K-step (``main_loop``) -- its instruction
  count and mix (integer / memory / MMA / sync / other, ``instruction_class``) and the MMA work
  of one iteration (``loop_figures``); ``mma_cycles``, ``issue_cycles``, ``issue_ceiling``: tensor
  cycles per K-step over issue cycles per K-step per sub-partition (``issue_figures``, constants
  ``TENSOR_FLOP_PER_CLOCK`` and ``WARP_SCHEDULERS_PER_SM``);
- ``ctas``, ``ctas_per_sm*``, ``waves``, ``last_wave_fill``: a launch-faithful row's grid
  (``spec.extra["grid"]``) on the modelled GPU (``occupancy_figures``).

Checks per row (``check_row``): compiled; no spills; ``smem_bytes`` within the arch's
per-block limit (``SHARED_LIMIT_BYTES``); ``expects_mma`` -> at least one HMMA/HGMMA; a spec's
``extra["min_load_bytes"]`` -> a global load at least that wide. Across rows
(``apply_reference_gates``): a launch-faithful tensor-core row against the reference GEMM of its
tile, warps, stages and dtype (``profiling/reference_gemm.py``, compiled alongside): no fewer A
or B buffers, some asynchronous copy, wgmma wait depth >= 1 on sm_90, at most
``REGISTER_RATIO_LIMIT`` x its registers, a main loop of at most ``LOOP_RATIO_LIMIT`` x its
instructions and -- for the first ``AUTOTUNE_FIRST`` entries of an autotune table on
``ISSUE_CEILING_ARCHS`` -- an issue ceiling of at least ``ISSUE_CEILING_MIN`` (``loop_failures``);
``extra["pipeline_exception"]`` turns these failures into a documented exception note. A spec
with ``extra["archs"]`` is compiled for those archs only (a per-arch autotune table's config).

Compiles run in worker processes started with ``spawn`` and TRITON_INTERPRET unset, so the
kernel modules are imported there with real ``JITFunction`` kernels even when the calling
process runs Triton's interpreter (the tests do). Workers receive (module, index) references
and call ``codegen_specs()`` themselves (reference rows: ``reference_gemm.spec_for(config)``);
nothing unpicklable crosses the process boundary.

Two kinds of spec (``kernels._common.KernelSpec``). Generic: ``signature`` + ``constexprs``;
pointer arguments are marked 16-byte aligned, as Triton's JIT does for torch tensors at launch,
integer arguments only where named in ``spec.extra["divisible_by_16"]``. Launch-faithful:
``spec.args`` holds the argument values of a real launch and ``launch_specialization`` derives
signature, constexprs and attributes with Triton's own launcher code, exactly as
``JITFunction.run`` would. ``spec.extra["in_use"] = False`` marks a config that only the
exhaustive CLI sweep compiles (the unit test compiles the configs in use).

One cohesive thing, kept in one file (~1,600 lines; issue 22 splits it into a package: SASS
parsing, compiling, gates and report are separate functions already): the code-generation check -- spec
discovery, launch-faithful specialization, compiling, reading TTGIR/SASS, the gates and the
report are one pipeline whose parts change together (a new figure is read, gated and reported).
The reference GEMM it compares against lives apart (``profiling/reference_gemm.py``).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import multiprocessing
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Iterable, Sequence

KERNEL_PACKAGE = "alexnet_fast.kernels"
NOT_OP_MODULES = frozenset({"_common", "configs", "nn"})
DEFAULT_ARCHS = (80, 90)
DEFAULT_OUTPUT_DIR = "reports"

# Most shared memory (static + dynamic) one thread block may use, by SM arch: the device's
# cudaDevAttrMaxSharedMemoryPerBlockOptin. A100 (sm_80): 164 KB of shared memory per SM, of
# which a block may opt in to 163 KB = 166,912 B (1 KB per block is reserved by the system).
# H100 (sm_90): 228 KB per SM, 227 KB = 232,448 B per block. Both from the CUDA C++
# Programming Guide, "Technical Specifications per Compute Capability".
SHARED_LIMIT_BYTES = {80: 166_912, 90: 232_448}

# Columns of the table, in order (one row per spec x arch).
COLUMNS = [
    "op", "kernel", "config", "dtype", "shape", "launch", "arch", "num_warps", "num_stages", "expects_mma",
    "divisible_by_16", "specialized_to_constexpr", "compiled", "registers", "spill_store_bytes", "spill_load_bytes", "stack_bytes",
    "smem_static_bytes", "smem_dynamic_bytes", "smem_bytes", "smem_limit_bytes",
    "hmma", "hgmma", "mma_instructions", "mma_kind",
    "buffers_a", "buffers_b", "ldgsts", "ldgsts_max_bytes", "ldgsts_min_bytes", "utmaldg",
    "wgmma_pendings", "wgmma_wait_depth", "ldg", "ldg_max_bytes", "ldg_min_bytes", "ldg_widths",
    "loop_instructions", "loop_integer", "loop_memory", "loop_mma", "loop_sync", "loop_other", "loop_mma_macs",
    "mma_cycles", "issue_cycles", "issue_ceiling", "autotune_rank",
    "grid", "ctas", "ctas_per_sm_regs", "ctas_per_sm_smem", "ctas_per_sm", "waves", "last_wave_fill",
    "gemm_tile", "input_precision", "min_load_bytes", "reference", "ref_buffers", "ref_registers",
    "ref_ldgsts_max_bytes", "ref_loop_instructions", "loop_ratio", "ref_issue_ceiling", "exception",
    "ptx_bytes", "compile_s", "cache_hit",
    "passed", "failures", "notes", "error", "module",
]

# One SASS instruction line: "/*0a70*/  @!P0 STL.64 [R1+0x8], R4 ;" -> opcode "STL.64"
_SASS_OPCODE = re.compile(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)",
                          re.MULTILINE)
# Byte width of a local load/store from its suffixes; no width suffix means 32 bits.
_ACCESS_BYTES = {"U8": 1, "S8": 1, "U16": 2, "S16": 2, "32": 4, "64": 8, "128": 16}
# cuobjdump --dump-resource-usage: " Function name:\n  REG:40 STACK:0 SHARED:0 LOCAL:0 ..."
_RESOURCE_LINE = re.compile(r"Function\s+(\S+?):\s*\n\s*(REG:.*)")


class CodegenToolError(RuntimeError):
    """A CUDA binary tool Triton ships (cuobjdump) cannot be found or run."""


# ---------------------------------------------------------------------------------------
# discovery and coverage
# ---------------------------------------------------------------------------------------

def spec_id(spec) -> str:
    """``op/kernel/config/dtype`` of a KernelSpec or SpecRef, ``@shape`` appended for a
    launch-faithful spec: names one spec (unique across the kernels package)."""
    base = f"{spec.op}/{spec.kernel}/{spec.config}/{spec.dtype}"
    return f"{base}@{spec.shape}" if spec.shape else base


@dataclass(frozen=True)
class SpecRef:
    """Where a worker process finds a spec: ``importlib.import_module(module).codegen_specs()[index]``.

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


def _triton_function_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(wrapper types to unwrap via ``.fn``, jit function types), imported lazily."""
    from triton.runtime.autotuner import Autotuner, Heuristics
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    return (Autotuner, Heuristics), (JITFunction, InterpretedFunction)


def jit_object(obj: Any):
    """``obj`` without its ``@triton.autotune`` / ``@triton.heuristics`` wrappers."""
    wrappers, _ = _triton_function_types()
    while isinstance(obj, wrappers):
        obj = obj.fn
    return obj


def python_function(obj: Any):
    """The Python function under a ``@triton.jit`` object (compiled or interpreted, possibly
    autotuned); None for anything else."""
    _, jit_types = _triton_function_types()
    obj = jit_object(obj)
    return obj.fn if isinstance(obj, jit_types) else None


def jit_functions(module: ModuleType) -> dict[str, Any]:
    """``@triton.jit`` functions defined in ``module`` (not those it imports), by name."""
    found = {}
    for name, obj in vars(module).items():
        fn = python_function(obj)
        if fn is not None and getattr(fn, "__module__", None) == module.__name__:
            found[name] = fn
    return found


def _referenced_jit_functions(fn) -> list:
    """Python functions of the ``@triton.jit`` functions that ``fn``'s body names
    (``helper(...)``, ``module.helper(...)``, or passed as a value)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    scope = {**fn.__globals__, **inspect.getclosurevars(fn).nonlocals}

    def resolve(node):
        if isinstance(node, ast.Name):
            return scope.get(node.id)
        if isinstance(node, ast.Attribute):
            base = resolve(node.value)
            return getattr(base, node.attr, None) if base is not None else None
        return None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)):
            inner = python_function(resolve(node))
            if inner is not None and inner is not fn:
                found.append(inner)
    return found


def coverage_problems(modules: Sequence[ModuleType]) -> list[str]:
    """What would let a kernel escape the check, one message each (empty: all covered).

    A ``@triton.jit`` function defined in one of ``modules`` is covered when a spec compiles it
    or when a covered function calls it (a device helper compiled inside its caller). Also
    reported: a module with jit functions and no ``codegen_specs()``, a ``codegen_specs()`` that
    raises or returns something else than KernelSpecs of jit functions, duplicate spec ids.
    """
    from alexnet_fast.kernels._common import KernelSpec

    problems: list[str] = []
    defined: dict[Any, str] = {}  # python function -> "module.name"
    seeds: list = []
    seen_ids: dict[str, str] = {}
    for module in modules:
        jitted = jit_functions(module)
        if not hasattr(module, "codegen_specs"):  # one message for the module, not one per function
            if jitted:
                problems.append(f"{module.__name__}: defines @triton.jit functions ({', '.join(sorted(jitted))}) "
                                "but no codegen_specs(); the codegen check cannot see them")
            continue
        defined.update({fn: f"{module.__name__}.{name}" for name, fn in jitted.items()})
        try:
            specs = list(module.codegen_specs())
        except Exception as e:  # a broken codegen_specs is a finding, not a crash of the check
            hint = (" (codegen_specs() must work under TRITON_INTERPRET=1 too, where @triton.jit gives an "
                    "InterpretedFunction: use fn.arg_names, not JITFunction-only attributes)"
                    if "InterpretedFunction" in str(e) else "")
            problems.append(f"{module.__name__}.codegen_specs() raised {type(e).__name__}: {e}{hint}")
            continue
        for i, spec in enumerate(specs):
            if not isinstance(spec, KernelSpec):
                problems.append(f"{module.__name__}.codegen_specs()[{i}] is a {type(spec).__name__}, not a KernelSpec")
                continue
            fn = python_function(spec.fn)
            if fn is None:
                problems.append(f"{spec_id(spec)}: spec.fn is {spec.fn!r}, not a @triton.jit function")
                continue
            seeds.append(fn)
            seeds.extend(p for p in map(python_function, spec.constexprs.values()) if p is not None)
            if spec_id(spec) in seen_ids:
                problems.append(f"{spec_id(spec)}: duplicate spec id (also in {seen_ids[spec_id(spec)]})")
            seen_ids[spec_id(spec)] = module.__name__
    covered, todo = set(), list(seeds)
    while todo:
        fn = todo.pop()
        if fn not in covered:
            covered.add(fn)
            if not fn.__module__.startswith("triton."):  # tl.sum & co. are jit functions too
                todo.extend(_referenced_jit_functions(fn))
    problems += [f"{qualname}: @triton.jit function neither compiled by a codegen spec nor called by one"
                 for fn, qualname in sorted(defined.items(), key=lambda kv: kv[1]) if fn not in covered]
    return problems


REFERENCE_MODULE = "alexnet_fast.profiling.reference_gemm"
# A tensor-core row may use at most this many times the registers of its reference GEMM row.
REGISTER_RATIO_LIMIT = 1.3
# ... and a main loop of at most this many times the reference's SASS instructions per K-step.
LOOP_RATIO_LIMIT = 1.25
# The configs a short GPU run tries first -- the first AUTOTUNE_FIRST of each autotune table (the
# GPU suite's autotune limit) -- must have an issue ceiling of at least ISSUE_CEILING_MIN on
# these archs (sm_80 rows report theirs: its tensor cores are half as fast per clock, so the same
# loop has twice the ceiling).
AUTOTUNE_FIRST = 2
ISSUE_CEILING_MIN = 0.85
ISSUE_CEILING_ARCHS = (90,)


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
    return reference_config(tile, spec.num_warps, spec.num_stages, spec.dtype, input_precision_of(spec))


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
            specs = list(module.codegen_specs()) if hasattr(module, "codegen_specs") else []
        except Exception:  # coverage_problems reports it
            continue
        for index, spec in enumerate(specs):
            if isinstance(spec, KernelSpec):
                ref = SpecRef(module.__name__, index, spec.op, spec.kernel, spec.config, spec.dtype,
                              in_use=bool(spec.extra.get("in_use", True)), shape=spec.shape,
                              reference=reference_config_of(spec), archs=tuple(spec.extra.get("archs", ())))
                found.append((ref, spec))
    return found


# ---------------------------------------------------------------------------------------
# compiling one spec and reading the binary
# ---------------------------------------------------------------------------------------

def cuobjdump_path() -> str:
    """The ``cuobjdump`` Triton uses (its ``knobs.nvidia.cuobjdump``: TRITON_CUOBJDUMP_PATH,
    else the copy in triton/backends/nvidia/bin)."""
    try:
        from triton import knobs

        return knobs.nvidia.cuobjdump.path
    except (ImportError, RuntimeError) as e:
        raise CodegenToolError(
            f"cuobjdump not found ({e}). The triton wheel ships it in triton/backends/nvidia/bin; "
            "set TRITON_CUOBJDUMP_PATH to a CUDA toolkit's cuobjdump otherwise") from e


def sass_figures(sass: str) -> dict[str, int]:
    """MMA instruction counts and local-memory (spill) bytes from SASS text (cuobjdump -sass)."""
    out = {"hmma": 0, "hgmma": 0, "spill_store_bytes": 0, "spill_load_bytes": 0}
    for opcode in _SASS_OPCODE.findall(sass):
        base, *suffixes = opcode.split(".")
        if base == "HMMA":
            out["hmma"] += 1
        elif base == "HGMMA":
            out["hgmma"] += 1
        elif base in ("STL", "LDL"):
            width = next((_ACCESS_BYTES[s] for s in suffixes if s in _ACCESS_BYTES), 4)
            out["spill_store_bytes" if base == "STL" else "spill_load_bytes"] += width
    return out


# "!ttg.memdesc<3x128x32xf16, #shared1, #smem, mutable>" -> ("3x128x32", "f16", "#shared1")
_MEMDESC = re.compile(r"!ttg\.memdesc<((?:\d+x)*)(\w+),\s*(#[\w.]+)")
_DOT_OP_IDX = re.compile(r"#ttg\.dot_op<\{opIdx = (\d)")
_PENDINGS = re.compile(r"pendings = (\d+)")
# "WARPGROUP.DEPBAR.LE gsb0, 0x1 ;" -> 1: how many wgmma groups may still run after the wait
_DEPBAR = re.compile(r"WARPGROUP\.DEPBAR\.LE\s+gsb\d+,\s*0x([0-9a-f]+)")


def _memdescs(line: str) -> list[tuple[tuple[int, ...], str, str]]:
    return [(tuple(int(d) for d in dims.split("x") if d), elem, enc) for dims, elem, enc in _MEMDESC.findall(line)]


def ttgir_figures(ttgir: str) -> dict[str, Any]:
    """Shared-memory buffering of the dot operands and the wgmma wait depth, from TTGIR.

    ``buffers_a`` / ``buffers_b``: how many copies of the A (opIdx 0) and B (opIdx 1) tile the
    kernel keeps in shared memory -- the leading dimension of an empty ``ttg.local_alloc`` that
    the software pipeliner made (``memdesc<3x128x32xf16>``: 3 stages), 1 for a tile stored from
    registers (``ttg.local_alloc %x``), 0 when the operand never goes through shared memory. An
    allocation feeds an operand when its shared encoding reaches the dot (``ttng.warp_group_dot``
    operand, or a ``ttg.local_load`` into a ``dot_op`` layout) through ``ttg.memdesc_*`` views;
    two operands with the same encoding are told apart by their tile shape (A holds the result's
    M rows, B its N columns). None when the kernel has no dot. ``wgmma_pendings``: the largest
    ``pendings`` of a ``ttng.warp_group_dot_wait`` (0: every wgmma is waited for at once), None
    without wgmma.
    """
    parent: dict[str, str] = {}

    def find(e):
        while parent.setdefault(e, e) != e:
            e = parent[e]
        return e

    allocs, operand_encs, dots = [], {0: set(), 1: set()}, []
    pendings = []
    for line in ttgir.splitlines():
        if "ttg.local_alloc" in line:
            descs = _memdescs(line)
            if descs:
                shape, elem, enc = descs[-1]
                head = line.split("ttg.local_alloc", 1)[1].split(":", 1)[0]
                from_registers = "%" in head
                buffers = shape[0] if (not from_registers and len(shape) >= 3) else 1
                tile = shape[1:] if (not from_registers and len(shape) >= 3) else shape
                allocs.append((enc, buffers, tile, elem))
        elif "memdesc_" in line and ("ttg.memdesc_" in line or "ttng.memdesc_" in line):
            encs = [d[2] for d in _memdescs(line)]
            for other in encs[1:]:
                parent[find(other)] = find(encs[0])
        if "ttg.local_load" in line and "dot_op" in line:
            descs, idx = _memdescs(line), _DOT_OP_IDX.search(line)
            if descs and idx and int(idx.group(1)) in operand_encs:
                operand_encs[int(idx.group(1))].add(descs[0][2])
        if "ttng.warp_group_dot " in line or " tt.dot " in line:
            types = line.rsplit(" : ", 1)[-1]
            operands, _, result = types.partition("->")
            for i, part in enumerate(operands.split(" * ")[:2]):
                descs = _memdescs(part)
                if descs:
                    operand_encs[i].add(descs[0][2])
            dims = re.search(r"tensor<(\d+)x(\d+)x", result)
            if dims:
                dots.append((int(dims.group(1)), int(dims.group(2))))
        if "ttng.warp_group_dot_wait" in line:
            found = _PENDINGS.search(line)
            if found:
                pendings.append(int(found.group(1)))
    out: dict[str, Any] = {"buffers_a": None, "buffers_b": None,
                           "wgmma_pendings": max(pendings) if pendings else None}
    if not dots:
        return out
    rows = {m for m, _ in dots}
    cols = {n for _, n in dots}
    roots = {i: {find(e) for e in encs} for i, encs in operand_encs.items()}
    for i, key in ((0, "buffers_a"), (1, "buffers_b")):
        candidates = [a for a in allocs if find(a[0]) in roots[i] and a[3] != "i64"]
        if roots[0] & roots[1]:  # shared encoding: keep the allocations whose tile has this operand's dim
            dims = rows if i == 0 else cols
            narrowed = [a for a in candidates if any(d in a[2] for d in dims)]
            candidates = narrowed or candidates
        out[key] = max((a[1] for a in candidates), default=0)
    return out


def sass_memory_figures(sass: str) -> dict[str, Any]:
    """Global-memory traffic shape from SASS: asynchronous copies (LDGSTS, cp.async, count and
    widest/narrowest width in bytes; UTMALDG, TMA loads), plain global loads (LDG count, widest
    and narrowest width, and a width histogram "16B:4 2B:12"), and the wgmma wait depth (the
    largest N of WARPGROUP.DEPBAR.LE gsb0, N; None without one). Static instruction counts."""
    ldgsts, ldg, utmaldg = [], [], 0
    for opcode in _SASS_OPCODE.findall(sass):
        base, *suffixes = opcode.split(".")
        if base in ("LDGSTS", "LDG"):
            width = next((_ACCESS_BYTES[x] for x in suffixes if x in _ACCESS_BYTES), 4)
            (ldgsts if base == "LDGSTS" else ldg).append(width)
        elif base == "UTMALDG":
            utmaldg += 1
    depths = [int(d, 16) for d in _DEPBAR.findall(sass)]
    histogram = " ".join(f"{w}B:{ldg.count(w)}" for w in sorted(set(ldg), reverse=True))
    return {"ldgsts": len(ldgsts), "ldgsts_max_bytes": max(ldgsts, default=0),
            "ldgsts_min_bytes": min(ldgsts, default=0), "utmaldg": utmaldg,
            "ldg": len(ldg), "ldg_max_bytes": max(ldg, default=0), "ldg_min_bytes": min(ldg, default=0),
            "ldg_widths": histogram, "wgmma_wait_depth": max(depths) if depths else None}


# ---------------------------------------------------------------------------------------
# the main loop: SASS of one K-step, its instruction mix and the issue ceiling
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SassInstruction:
    """One SASS instruction: byte address, guard predicate ("" or "@!P0"), opcode, operands."""

    address: int
    predicate: str
    opcode: str
    operands: str

    @property
    def base(self) -> str:
        return self.opcode.split(".", 1)[0]


# "/*1600*/   @P3 BRA 0x1110 ;" -> (0x1600, "@P3", "BRA", "0x1110")
_SASS_INSTRUCTION = re.compile(
    r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P[T0-9]+\s+)?([A-Z][A-Z0-9_]*(?:\.[A-Za-z0-9_]+)*)([^;]*);", re.MULTILINE)
_BRANCH_TARGET = re.compile(r"0x([0-9a-f]+)")
# tensor-core MMA opcodes: mma.sync (HMMA, IMMA), wgmma (HGMMA, QGMMA: fp8), tcgen05.mma (UTC*MMA)
_MMA_BASES = frozenset({"HMMA", "IMMA", "HGMMA", "QGMMA", "IGMMA", "UTCHMMA", "UTCQMMA", "UTCIMMA", "UTCOMMA"})
# the instruction classes of the loop mix (a uniform-datapath U-form counts as its base form)
_INTEGER_BASES = frozenset({
    "IMAD", "IMUL", "IADD", "IADD3", "VIADD", "VIADDMNMX", "IMNMX", "VIMNMX", "ISETP", "ISCADD", "SEL", "LEA",
    "SHF", "SHL", "SHR", "LOP", "LOP3", "PLOP3", "IABS", "INEG", "PRMT", "MOV", "MOV32I", "SGXT", "BMSK", "BREV",
    "FLO", "POPC", "P2R", "R2P", "R2UR", "S2R", "S2UR", "CS2R", "I2F", "F2I", "I2FP", "F2IP", "I2I", "IDP",
    "BFE", "BFI", "LEPC"})
_MEMORY_BASES = frozenset({
    "LDG", "STG", "LDGSTS", "LDGDEPBAR", "LDS", "STS", "LDSM", "STSM", "LDL", "STL", "LD", "ST", "LDC", "ULDC",
    "ATOM", "ATOMG", "ATOMS", "RED", "REDG", "UTMALDG", "UTMASTG", "UTMAPF", "UBLKCP", "UTMACCTL", "UTMACMDFLUSH",
    "UTCBAR", "LDTM", "STTM", "UTCCP", "LDSMT", "CCTL"})
_SYNC_BASES = frozenset({
    "BAR", "BSYNC", "BSSY", "DEPBAR", "WARPGROUP", "WARPSYNC", "MEMBAR", "FENCE", "ERRBAR", "SYNCS", "ARRIVES",
    "NANOSLEEP", "YIELD", "ELECT", "VOTE", "VOTEU", "MATCH", "UCGABAR_ARV", "UCGABAR_WAIT", "CGAERRBAR"})
LOOP_CLASSES = ("integer", "memory", "mma", "sync", "other")


def sass_instructions(sass: str) -> list[SassInstruction]:
    """Every instruction of a SASS listing (``cuobjdump --dump-sass``), in address order."""
    return [SassInstruction(int(addr, 16), (pred or "").strip(), opcode, operands.strip())
            for addr, pred, opcode, operands in _SASS_INSTRUCTION.findall(sass)]


def instruction_class(opcode: str) -> str:
    """'mma', 'memory', 'sync', 'integer' or 'other' (branches, floating point, conversions
    of values) for an opcode; a uniform-datapath form (UIADD3, USEL, ...) counts as its base."""
    base = opcode.split(".", 1)[0]
    if base in _MMA_BASES:
        return "mma"
    for name in (base, base[1:] if base.startswith("U") else base):
        if name in _MEMORY_BASES:
            return "memory"
        if name in _SYNC_BASES:
            return "sync"
        if name in _INTEGER_BASES:
            return "integer"
    return "other"


def main_loop(instructions: Sequence[SassInstruction]) -> list[SassInstruction]:
    """The instructions of the MMA main loop: from the target of the backward branch that
    closes the innermost loop holding a tensor-core MMA, to that branch (both included).
    Of several such loops the one with the most MMA instructions (then the longest) wins;
    empty when no loop holds an MMA."""
    best: list[SassInstruction] = []
    best_key = (0, 0)
    index = {ins.address: i for i, ins in enumerate(instructions)}
    for end, ins in enumerate(instructions):
        if ins.base not in ("BRA", "JMP"):
            continue
        target = _BRANCH_TARGET.search(ins.operands)
        if not target or int(target.group(1), 16) >= ins.address or int(target.group(1), 16) not in index:
            continue
        body = list(instructions[index[int(target.group(1), 16)]:end + 1])
        mma = sum(i.base in _MMA_BASES for i in body)
        if not mma:
            continue
        # innermost: a loop nested inside the current best (shorter, same MMAs) replaces it
        key = (mma, -len(body))
        if key > best_key:
            best, best_key = body, key
    return best


# "HGMMA.64x128x16.F32..." -> (64, 128, 16); "HMMA.16816.F32" -> (16, 8, 16); "HMMA.1688..." -> (16, 8, 8)
_HGMMA_SHAPE = re.compile(r"^[A-Z]*GMMA\.(\d+)x(\d+)x(\d+)")
_HMMA_SHAPE = re.compile(r"^[HI]MMA\.(16|8)(8)(\d+)")


def mma_macs(opcode: str) -> int | None:
    """Multiply-adds of one MMA instruction, per warp (HMMA) or per warpgroup (HGMMA); None
    when the opcode does not state its shape (tcgen05's UTC*MMA)."""
    for pattern in (_HGMMA_SHAPE, _HMMA_SHAPE):
        found = pattern.match(opcode)
        if found:
            m, n, k = (int(v) for v in found.groups())
            return m * n * k
    return None


def loop_figures(sass: str, num_warps: int) -> dict[str, Any]:
    """The main loop of a SASS listing (:func:`main_loop`): instruction count, its mix by
    class (:data:`LOOP_CLASSES`) and the multiply-adds its MMAs do for the whole CTA per
    iteration (HMMA per warp x warps, HGMMA per warpgroup x warpgroups; None for tcgen05,
    whose opcode has no shape). All None without an MMA loop."""
    loop = main_loop(sass_instructions(sass))
    out: dict[str, Any] = {"loop_instructions": None, "loop_mma_macs": None,
                           **{f"loop_{c}": None for c in LOOP_CLASSES}}
    if not loop:
        return out
    counts = {c: 0 for c in LOOP_CLASSES}
    macs, shaped = 0, True
    for ins in loop:
        counts[instruction_class(ins.opcode)] += 1
        if ins.base in _MMA_BASES:
            per = mma_macs(ins.opcode)
            if per is None:
                shaped = False
            else:
                macs += per * (num_warps // 4 if "GMMA" in ins.base else num_warps)
    out.update(loop_instructions=len(loop), loop_mma_macs=macs if shaped else None,
               **{f"loop_{c}": n for c, n in counts.items()})
    return out


# Dense tensor-core FLOP per clock per SM, by arch and the dot's input kind ("16bit": fp16 /
# bf16 with fp32 accumulation; "tf32"), from NVIDIA's peak figures over SMs x boost clock:
# sm_80, A100 SXM: 312 TFLOP/s fp16 (156 tf32) / (108 SMs x 1.41 GHz) = 2,048 (1,024) -- 4 tensor
#   cores of 256 fp16 FMA per clock (NVIDIA A100 Tensor Core GPU Architecture whitepaper, 2020);
# sm_90, H100 SXM5: 989.4 TFLOP/s fp16 (494.7 tf32) / (132 SMs x 1.83 GHz) = 4,096 (2,048) -- 4
#   tensor cores of 512 fp16 FMA per clock (NVIDIA H100 Tensor Core GPU Architecture whitepaper, 2022).
TENSOR_FLOP_PER_CLOCK = {80: {"16bit": 2048, "tf32": 1024}, 90: {"16bit": 4096, "tf32": 2048}}
# Warp schedulers per SM (sm_80, sm_90): one per sub-partition, each issuing one warp instruction
# per clock (same whitepapers: "four processing blocks (SM sub-partitions) ... one warp scheduler,
# one dispatch unit (32 threads/clk)").
WARP_SCHEDULERS_PER_SM = 4


def mma_kind_of(dtype: str, input_precision: str | None) -> str | None:
    """The tensor-core rate class of a dot: "16bit" (fp16/bf16), "tf32" (fp32 as TF32), None (FMA)."""
    if dtype in ("fp16", "bf16"):
        return "16bit"
    if dtype == "fp32" and input_precision in ("tf32", "tf32x3"):
        return "tf32"
    return None


def issue_figures(row: dict[str, Any]) -> dict[str, Any]:
    """Per K-step of a row's main loop: tensor-core cycles (the loop's MMA FLOPs -- from the SASS
    shapes, else the GEMM tile -- over the arch's dense FLOP per clock per SM), issue cycles per
    sub-partition (loop instructions x warps / WARP_SCHEDULERS_PER_SM) and the issue ceiling, their
    ratio: the fraction of tensor peak the loop's instruction issue allows, before any memory
    stall (> 1: the loop issues faster than the tensor cores compute). None where it does not apply."""
    out = {"mma_cycles": None, "issue_cycles": None, "issue_ceiling": None}
    rates = TENSOR_FLOP_PER_CLOCK.get(row["arch"], {})
    kind = mma_kind_of(row["dtype"], row.get("input_precision"))
    if not row.get("loop_instructions") or kind not in rates:
        return out
    macs = row.get("loop_mma_macs")
    if not _present(macs) and _present(row.get("gemm_tile")):
        m, n, k = (int(v) for v in str(row["gemm_tile"]).split("x"))
        macs = m * n * k
    if not _present(macs):
        return out
    mma_cycles = 2 * macs / rates[kind]
    issue_cycles = row["loop_instructions"] * row["num_warps"] / WARP_SCHEDULERS_PER_SM
    return {"mma_cycles": round(mma_cycles, 1), "issue_cycles": round(issue_cycles, 1),
            "issue_ceiling": round(mma_cycles / issue_cycles, 3)}


# Per-SM resources by arch, for the CTAs a launch can keep resident (CUDA C++ Programming Guide,
# "Technical Specifications per Compute Capability" and the occupancy calculator's constants):
# 64K 32-bit registers per SM, allocated per warp in units of 256 (8 per thread); at most 64
# resident warps and 32 blocks per SM; shared memory per SM 164 KB (sm_80) / 228 KB (sm_90), of
# which each block's 1 KB system reservation counts against it.
REGISTERS_PER_SM = {80: 65_536, 90: 65_536}
REGISTER_ALLOCATION_UNIT = 256  # registers, per warp
SHARED_PER_SM_BYTES = {80: 167_936, 90: 233_472}
SHARED_RESERVED_PER_BLOCK = 1024
MAX_WARPS_PER_SM = {80: 64, 90: 64}
MAX_BLOCKS_PER_SM = 32


def occupancy_figures(row: dict[str, Any]) -> dict[str, Any]:
    """The launch-level figures of a row with a grid (``spec.extra["grid"]``): CTAs, CTAs per SM
    allowed by registers and by shared memory (and so resident: the smaller, within the warp and
    block limits), waves on the arch's modelled GPU (kernels._common.CODEGEN_SMS) and the fill of
    the last wave (1.0: full). None where the row has no grid or did not compile."""
    from alexnet_fast.kernels._common import CODEGEN_SMS

    keys = ("ctas", "ctas_per_sm_regs", "ctas_per_sm_smem", "ctas_per_sm", "waves", "last_wave_fill")
    out: dict[str, Any] = dict.fromkeys(keys)
    arch = row["arch"]
    if not row["compiled"] or not row.get("grid") or arch not in REGISTERS_PER_SM or arch not in CODEGEN_SMS:
        return out
    warps = row["num_warps"]
    per_warp = -(-row["registers"] * 32 // REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    by_regs = REGISTERS_PER_SM[arch] // per_warp // warps
    by_smem = SHARED_PER_SM_BYTES[arch] // (row["smem_bytes"] + SHARED_RESERVED_PER_BLOCK)
    per_sm = min(by_regs, by_smem, MAX_WARPS_PER_SM[arch] // warps, MAX_BLOCKS_PER_SM)
    ctas = 1
    for extent in str(row["grid"]).split("x"):
        ctas *= int(extent)
    slots = CODEGEN_SMS[arch] * per_sm
    if not slots:
        return {**out, "ctas": ctas, "ctas_per_sm_regs": by_regs, "ctas_per_sm_smem": by_smem, "ctas_per_sm": 0}
    full = -(-ctas // slots)
    return {"ctas": ctas, "ctas_per_sm_regs": by_regs, "ctas_per_sm_smem": by_smem, "ctas_per_sm": per_sm,
            "waves": round(ctas / slots, 2), "last_wave_fill": round((ctas - (full - 1) * slots) / slots, 2)}


def resource_usage(dump: str, function: str) -> dict[str, int]:
    """REG/STACK/SHARED/LOCAL of ``function`` from ``cuobjdump --dump-resource-usage`` output."""
    for name, fields in _RESOURCE_LINE.findall(dump):
        if name == function:
            return {k: int(v) for k, v in re.findall(r"(\w+(?:\[\d+\])?):(\d+)", fields)}
    raise CodegenToolError(f"no resource usage for function {function!r} in cuobjdump output:\n{dump[:500]}")


def disassemble(cubin: bytes) -> str:
    """``cuobjdump --dump-resource-usage --dump-sass`` of a cubin: resource lines and SASS."""
    with tempfile.TemporaryDirectory(prefix="codegen-") as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        cmd = [cuobjdump_path(), "--dump-resource-usage", "--dump-sass", path]
        done = subprocess.run(cmd, capture_output=True, text=True)  # stderr: nvdisasm format warnings
    if done.returncode != 0:
        raise CodegenToolError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[:500]}")
    return done.stdout


def inspect_cubin(cubin: bytes, function: str, num_warps: int = 4) -> dict[str, Any]:
    """Registers, stack, static shared memory, spill bytes, MMA counts, global-memory figures
    and the main-loop figures (for a CTA of ``num_warps`` warps) of ``function``."""
    dump = disassemble(cubin)
    usage = resource_usage(dump, function)
    return {"registers": usage["REG"], "stack_bytes": usage["STACK"], "smem_static_bytes": usage["SHARED"],
            **sass_figures(dump), **sass_memory_figures(dump), **loop_figures(dump, num_warps)}


def validate_spec(spec) -> None:
    """Raise ValueError (TypeError for a non-jit ``fn``) naming the spec when its signature,
    constexprs, divisibility hints or launch settings do not fit the kernel."""
    fn = jit_object(spec.fn)
    if python_function(fn) is None:
        raise TypeError(f"{spec_id(spec)}: spec.fn must be a @triton.jit function, got {type(spec.fn).__name__}")
    args = list(fn.arg_names)
    if spec.args is not None:
        _validate_launch_args(spec, fn)
    elif set(spec.signature) != set(args):
        missing, extra = [a for a in args if a not in spec.signature], sorted(set(spec.signature) - set(args))
        raise ValueError(f"{spec_id(spec)}: signature does not match the arguments of {fn.__name__}"
                         f" (missing: {missing or '-'}; unknown: {extra or '-'})")
    constexpr_args = {a for a, t in spec.signature.items() if t == "constexpr"}
    if spec.args is None and set(spec.constexprs) != constexpr_args:
        raise ValueError(f"{spec_id(spec)}: constexprs {sorted(spec.constexprs)} must give exactly the arguments "
                         f"typed 'constexpr' in the signature {sorted(constexpr_args)}")
    divisible = spec.extra.get("divisible_by_16", ())
    if divisible and spec.args is not None:
        raise ValueError(f"{spec_id(spec)}: extra['divisible_by_16'] is for generic specs; a launch-faithful "
                         "spec gets its divisibility from its args, as at a launch")
    if isinstance(divisible, str) or not all(isinstance(name, str) for name in divisible):
        raise ValueError(f"{spec_id(spec)}: extra['divisible_by_16'] must be a tuple of argument names, "
                         f"got {divisible!r}")
    for name in divisible:
        if spec.signature.get(name) not in ("i32", "i64", "u32", "u64"):
            raise ValueError(f"{spec_id(spec)}: divisible_by_16 names {name!r}, which is not an integer argument")
    if not (isinstance(spec.num_warps, int) and spec.num_warps > 0 and spec.num_warps & (spec.num_warps - 1) == 0):
        raise ValueError(f"{spec_id(spec)}: num_warps must be a power of two, got {spec.num_warps!r}")
    if not (isinstance(spec.num_stages, int) and spec.num_stages >= 1):
        raise ValueError(f"{spec_id(spec)}: num_stages must be a positive int, got {spec.num_stages!r}")


def _kernel_params(fn) -> list:
    """Triton's ``KernelParam`` of each argument (constexpr-ness, defaults), built as
    ``JITFunction`` builds them, so it works for interpreted functions too."""
    from triton.runtime.jit import KernelParam

    return [KernelParam(i, param, False, False)
            for i, param in enumerate(inspect.signature(python_function(fn)).parameters.values())]


def _validate_launch_args(spec, fn) -> None:
    """A launch-faithful spec names every runtime argument in ``args`` and every constexpr in
    ``constexprs``; a signature, if given, types what the launch derives."""
    import torch

    params = {p.name: p for p in _kernel_params(fn)}
    runtime = [n for n, p in params.items() if not p.is_constexpr]
    constexpr = [n for n, p in params.items() if p.is_constexpr]
    missing = [n for n in runtime if n not in spec.args and not params[n].has_default]
    unknown = sorted(set(spec.args) - set(runtime))
    if missing or unknown:
        raise ValueError(f"{spec_id(spec)}: args must give the runtime arguments of {fn.__name__}"
                         f" (missing: {missing or '-'}; not runtime arguments: {unknown or '-'})")
    missing = [n for n in constexpr if n not in spec.constexprs and not params[n].has_default]
    unknown = sorted(set(spec.constexprs) - set(constexpr))
    if missing or unknown:
        raise ValueError(f"{spec_id(spec)}: constexprs must give the constexpr arguments of {fn.__name__}"
                         f" (missing: {missing or '-'}; not constexpr: {unknown or '-'})")
    for name, value in spec.args.items():
        if value is None or isinstance(value, (bool, int, float, torch.dtype)) or hasattr(value, "data_ptr"):
            continue
        raise ValueError(f"{spec_id(spec)}: args[{name!r}] = {value!r}: give ints, floats, None, or a pointer as "
                         "its torch.dtype or tensor")
    if spec.signature:
        for name, ty in spec.signature.items():
            if name not in params:
                raise ValueError(f"{spec_id(spec)}: signature names {name!r}, not an argument of {fn.__name__}")


@dataclass(frozen=True)
class LaunchSpecialization:
    """What ``JITFunction.run`` computes for a launch before it compiles: the Triton signature,
    constexprs and attributes (keyed by argument path, as Triton passes them to ASTSource) and
    the backend options."""

    signature: dict[str, str]
    constexprs: dict[tuple, Any]
    attrs: dict[tuple, Any]
    options: Any

    def names(self, fn, predicate) -> list[str]:
        return [p.name for p in fn.params if predicate(p)]


def launch_specialization(spec, arch: int) -> LaunchSpecialization:
    """The specialization Triton's launcher applies to ``spec.args`` on ``sm_<arch>``.

    Runs Triton's own launch code -- the binder that ``JITFunction.create_binder`` builds
    (``create_function_from_signature``, which calls ``native_specialize_impl`` per argument)
    and ``JITFunction._pack_args`` -- with the CUDA backend of the target arch, so ints equal to
    1 become constexprs, ints divisible by 16 and 16-byte aligned pointers get
    ``tt.divisibility 16`` and ``do_not_specialize`` / ``do_not_specialize_on_alignment`` are
    honoured as at a real launch. Same code path in Triton 3.6 and 3.8. A pointer given as a
    torch.dtype becomes Triton's ``MockTensor`` (what ``JITFunction.warmup`` does with dtypes): a
    16-byte aligned tensor, as the launchers' freshly allocated or ``.contiguous()`` tensors are.
    """
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import MockTensor, create_function_from_signature

    fn = _launchable(jit_object(spec.fn))
    # a torch.dtype stands for a tensor of that dtype, as in JITFunction.warmup (MockTensor: data_ptr 0)
    values = {name: MockTensor.wrap_dtype(v) for name, v in spec.args.items()}
    options = {"num_warps": spec.num_warps, "num_stages": spec.num_stages,
               "debug": bool(getattr(fn, "debug", False) or knobs.runtime.debug),
               "instrumentation_mode": knobs.compilation.instrumentation_mode}
    backend = make_backend(GPUTarget("cuda", arch, 32))
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = {**values, **spec.constexprs, **options}
    try:
        bound_args, specialization, parsed = binder(**kwargs)
    except TypeError as e:
        raise ValueError(f"{spec_id(spec)}: args/constexprs do not bind to {fn.__name__}: {e}") from None
    parsed, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound_args, specialization, parsed)
    return LaunchSpecialization(signature=dict(signature), constexprs=constexprs, attrs=attrs, options=parsed)


def check_given_signature(spec, special: LaunchSpecialization) -> None:
    """A launch-faithful spec that also states a signature must agree with the launch (an int
    the launch folds to a constexpr may be typed as an int)."""
    for name, ty in spec.signature.items():
        derived = special.signature[name]
        if ty != derived and not (derived == "constexpr" and ty in ("i32", "i64", "u32", "u64")):
            raise ValueError(f"{spec_id(spec)}: signature types {name!r} as {ty!r}, but a launch with these args "
                             f"gives {derived!r}")


def _launchable(fn):
    """``fn`` as a JITFunction: under TRITON_INTERPRET=1 ``@triton.jit`` gives an
    InterpretedFunction, rebuilt here as the JITFunction the decorator would have made (same
    Python function and decorator arguments, e.g. ``do_not_specialize``), so the launch
    specialization can be computed in any process."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    if isinstance(fn, InterpretedFunction):
        return JITFunction(fn.fn, **fn.kwargs)
    return fn


def specialized_names(spec, special: LaunchSpecialization) -> tuple[list[str], list[str]]:
    """(integer arguments the launch marks divisible by 16, runtime arguments it turns into
    constexprs: ints equal to 1 and None pointers), from a launch specialization."""
    fn = _launchable(jit_object(spec.fn))
    divisible, folded = [], []
    for i, p in enumerate(fn.params):
        if p.is_constexpr:
            continue
        if special.signature[p.name] == "constexpr":
            folded.append(p.name)
        elif not special.signature[p.name].startswith("*") and ["tt.divisibility", 16] in special.attrs.get((i,), []):
            divisible.append(p.name)
    return divisible, folded


def _row_header(spec, arch: int) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS)
    row.update(op=spec.op, kernel=spec.kernel, config=spec.config, dtype=spec.dtype, arch=arch,
               shape=spec.shape, launch="faithful" if spec.args is not None else "generic",
               num_warps=spec.num_warps, num_stages=spec.num_stages, expects_mma=bool(spec.expects_mma),
               divisible_by_16=",".join(spec.extra.get("divisible_by_16", ())),
               compiled=False, smem_limit_bytes=SHARED_LIMIT_BYTES.get(arch), error="", notes="",
               gemm_tile="x".join(map(str, gemm_tile(spec))) if gemm_tile(spec) and spec.expects_mma else None,
               input_precision=input_precision_of(spec), min_load_bytes=spec.extra.get("min_load_bytes"),
               reference=reference_config_of(spec), exception=spec.extra.get("pipeline_exception", ""),
               autotune_rank=(spec.extra.get("autotune_rank") or {}).get(arch),
               grid="x".join(map(str, spec.extra["grid"])) if spec.extra.get("grid") else None)
    return row


def compile_spec(spec, arch: int) -> dict[str, Any]:
    """Compile ``spec`` for ``sm_<arch>`` with no GPU; one table row (see ``COLUMNS``).

    A kernel that fails to compile gives a row with ``compiled=False`` and the error; an
    invalid spec raises ValueError/TypeError; a missing cuobjdump raises CodegenToolError.
    Needs compiled (not interpreted) kernels: under TRITON_INTERPRET=1 use ``compile_refs``.
    """
    if arch not in SHARED_LIMIT_BYTES:
        raise ValueError(f"unsupported arch sm_{arch}; known: {', '.join(map(str, SHARED_LIMIT_BYTES))}")
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.runtime.jit import JITFunction

    validate_spec(spec)
    fn = jit_object(spec.fn)
    if not isinstance(fn, JITFunction):
        raise TypeError(f"{spec_id(spec)}: {fn.__name__} is an interpreted function (this process runs "
                        "with TRITON_INTERPRET=1); compile with compile_refs(), whose workers import "
                        "the kernels with the interpreter off")
    row = _row_header(spec, arch)
    options = {"num_warps": spec.num_warps, "num_stages": spec.num_stages}
    if spec.args is not None:  # what JITFunction.run would compile for these argument values
        special = launch_specialization(spec, arch)
        check_given_signature(spec, special)
        divisible, folded = specialized_names(spec, special)
        row.update(divisible_by_16=",".join(divisible), specialized_to_constexpr=",".join(folded))
        source = ASTSource(fn=fn, signature=special.signature, constexprs=special.constexprs, attrs=special.attrs)
        options = dict(special.options.__dict__)
    else:
        signature = {name: spec.signature[name] for name in fn.arg_names}
        aligned = [i for i, name in enumerate(fn.arg_names)
                   if signature[name].startswith("*") or name in spec.extra.get("divisible_by_16", ())]
        source = ASTSource(fn=fn, signature=signature, constexprs=dict(spec.constexprs),
                           attrs={(i,): [["tt.divisibility", 16]] for i in aligned})
    cache_hits = []
    try:
        with knobs.compilation.scope(), contextlib.redirect_stdout(io.StringIO()):  # ptxas errors print the PTX
            knobs.compilation.listener = lambda *, cache_hit, **_: cache_hits.append(cache_hit)
            start = time.perf_counter()
            kernel = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options)
            row["compile_s"] = round(time.perf_counter() - start, 3)
    except Exception as e:  # a kernel that does not compile is a failed row, reported with its error
        row["error"] = f"{type(e).__name__}: {e}".strip()[:4000]
        return finish_row(row)
    row.update(inspect_cubin(kernel.asm["cubin"], kernel.metadata.name, spec.num_warps))
    row.update(ttgir_figures(kernel.asm["ttgir"]))
    row.update(compiled=True, cache_hit=bool(cache_hits and cache_hits[-1]),
               smem_dynamic_bytes=int(kernel.metadata.shared), ptx_bytes=len(kernel.asm["ptx"].encode()))
    return finish_row(row)


def error_summary(error: str) -> str:
    """One line of a compile error: Triton's CompilationError ends with the cause, after the
    source excerpt ("at 3:38:\n<source>\n ^\n<cause>"); other errors start with it."""
    lines = [line for line in (error or "unknown error").splitlines() if line.strip()]
    if lines[0].startswith("CompilationError: at ") and len(lines) > 1:
        return f"CompilationError at {lines[0].removeprefix('CompilationError: at ').rstrip(':')}: {lines[-1]}"[:300]
    return lines[0][:300]


def check_row(row: dict[str, Any]) -> list[str]:
    """Failed checks of one row, as messages (empty: it passes)."""
    if not row["compiled"]:
        return [f"does not compile: {error_summary(row['error'])}"]
    failures = []
    if row["spill_store_bytes"] or row["spill_load_bytes"]:
        failures.append(f"spills registers ({row['spill_store_bytes']} B stored, {row['spill_load_bytes']} B loaded)")
    if row["smem_bytes"] > row["smem_limit_bytes"]:
        failures.append(f"shared memory {row['smem_bytes']} B > {row['smem_limit_bytes']} B per block "
                        f"on sm_{row['arch']}")
    if row["expects_mma"] and not row["mma_instructions"]:
        failures.append("no tensor-core MMA (HMMA/HGMMA) in the SASS, though expects_mma")
    if _present(row.get("min_load_bytes")) and row["ldg_max_bytes"] < row["min_load_bytes"]:
        failures.append(f"widest global load {row['ldg_max_bytes']} B < {int(row['min_load_bytes'])} B per access "
                        f"(LDG widths {row['ldg_widths'] or 'none'})")
    return failures


def _present(value) -> bool:
    return value is not None and value == value and value != ""


def reference_failures(row: dict[str, Any], ref: dict[str, Any] | None) -> list[str]:
    """Why a tensor-core row is not pipelined like its reference GEMM row (empty: it is):
    fewer shared-memory buffers for A or B, no asynchronous copy (LDGSTS or UTMALDG), a
    synchronous wgmma on sm_90 (wait depth 0), more than REGISTER_RATIO_LIMIT x its registers."""
    if ref is None:
        return [f"no reference GEMM row {row['reference']} {row['dtype']} sm_{row['arch']} to compare with"]
    if not ref["compiled"]:
        return [f"reference GEMM {row['reference']} does not compile: {error_summary(ref['error'])}"]
    failures = []
    for side in ("a", "b"):
        have, want = row[f"buffers_{side}"], ref[f"buffers_{side}"]
        if (have or 0) < (want or 0):
            failures.append(f"{side.upper()} tile in {have or 0} shared-memory buffer(s), the reference GEMM "
                            f"of this tile gets {want}")
    if not row["ldgsts"] and not row["utmaldg"]:
        failures.append(f"no asynchronous copies (0 LDGSTS, 0 UTMALDG, LDG widths {row['ldg_widths'] or 'none'}), "
                        f"the reference GEMM issues {ref['ldgsts']} LDGSTS of {ref['ldgsts_max_bytes']} B")
    if row["arch"] >= 90 and row["hgmma"] and row["wgmma_wait_depth"] == 0:
        failures.append("synchronous wgmma (WARPGROUP.DEPBAR.LE gsb0, 0x0: wait depth 0), the reference GEMM "
                        f"waits with depth {ref['wgmma_wait_depth']}")
    if row["registers"] > REGISTER_RATIO_LIMIT * ref["registers"]:
        failures.append(f"{row['registers']} registers > {REGISTER_RATIO_LIMIT} x the reference GEMM's "
                        f"{ref['registers']}")
    return failures + loop_failures(row, ref)


def loop_failures(row: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """Why a tensor-core row's main loop is not as lean as its reference GEMM's (empty: it is):
    no MMA loop found, more than LOOP_RATIO_LIMIT x the reference's instructions per K-step, or --
    for a config an autotune table tries first (``autotune_rank`` < AUTOTUNE_FIRST) on an arch of
    ISSUE_CEILING_ARCHS -- an issue ceiling under ISSUE_CEILING_MIN."""
    if not _present(row.get("loop_instructions")):
        return ["no tensor-core main loop in the SASS (no backward branch around an MMA)"]
    failures = []
    if _present(ref.get("loop_instructions")) and row["loop_instructions"] > LOOP_RATIO_LIMIT * ref["loop_instructions"]:
        failures.append(f"main loop of {row['loop_instructions']} instructions > {LOOP_RATIO_LIMIT} x the reference "
                        f"GEMM's {ref['loop_instructions']} ({row['loop_integer']} integer)")
    rank = row.get("autotune_rank")
    if (_present(rank) and rank < AUTOTUNE_FIRST and row["arch"] in ISSUE_CEILING_ARCHS
            and _present(row.get("issue_ceiling")) and row["issue_ceiling"] < ISSUE_CEILING_MIN):
        failures.append(f"issue ceiling {row['issue_ceiling']:.2f} < {ISSUE_CEILING_MIN} for a config the autotune "
                        f"table tries first (entry {int(rank)}): {row['issue_cycles']:.0f} issue cycles per K-step "
                        f"per sub-partition for {row['mma_cycles']:.0f} tensor cycles")
    return failures


def apply_reference_gates(rows: list[dict[str, Any]]) -> None:
    """Check every compiled row that names a reference GEMM config against that row (same
    config, dtype and arch) and record the result in place. A row whose spec declares a
    ``pipeline_exception`` keeps its figures and passes these gates, the failures going to
    its notes as an exception (the report lists them)."""
    refs = {(r["config"], r["dtype"], r["arch"]): r for r in rows
            if r["op"] == _reference_op() and r["module"] == REFERENCE_MODULE}
    for row in rows:
        if not row.get("reference") or not row["compiled"]:
            continue
        ref = refs.get((row["reference"], row["dtype"], row["arch"]))
        if ref is not None and ref["compiled"]:
            row.update(ref_buffers=f"A{ref['buffers_a']} B{ref['buffers_b']}", ref_registers=ref["registers"],
                       ref_ldgsts_max_bytes=ref["ldgsts_max_bytes"], ref_loop_instructions=ref["loop_instructions"],
                       ref_issue_ceiling=ref["issue_ceiling"])
            if _present(row.get("loop_instructions")) and _present(ref.get("loop_instructions")):
                row["loop_ratio"] = round(row["loop_instructions"] / ref["loop_instructions"], 3)
        found = reference_failures(row, ref)
        if not found:
            continue
        if row.get("exception"):
            note = f"exception ({row['exception']}): " + "; ".join(found)
            row["notes"] = "; ".join(filter(None, [row["notes"], note]))
        else:
            failures = [f for f in row["failures"].split("; ") if f] + found
            row.update(failures="; ".join(failures), passed=False)


def _reference_op() -> str:
    from alexnet_fast.profiling import reference_gemm

    return reference_gemm.OP


def _notes(row: dict[str, Any]) -> list[str]:
    notes = []
    if row["compiled"] and row["expects_mma"] and row["arch"] >= 90 and row["hmma"] and not row["hgmma"]:
        notes.append("sm_90 runs mma.sync (HMMA), not wgmma (HGMMA)")
    if row["compiled"] and not row["expects_mma"] and row["mma_instructions"]:
        notes.append("uses tensor cores though expects_mma is False")
    if row["compiled"] and row["stack_bytes"] and not (row["spill_store_bytes"] or row["spill_load_bytes"]):
        notes.append(f"{row['stack_bytes']} B stack frame")
    return notes


def finish_row(row: dict[str, Any]) -> dict[str, Any]:
    """Fill the derived columns (totals, MMA kind) and the check results of a row."""
    if row["compiled"]:
        row["smem_bytes"] = row["smem_static_bytes"] + row["smem_dynamic_bytes"]
        row["mma_instructions"] = row["hmma"] + row["hgmma"]
        row["mma_kind"] = "+".join(k.upper() for k in ("hgmma", "hmma") if row[k]) or "none"
        row.update(issue_figures(row))
        row.update(occupancy_figures(row))
    failures = check_row(row)
    row.update(failures="; ".join(failures), passed=not failures, notes="; ".join(_notes(row)))
    return row


# ---------------------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------------------

_worker_specs: dict[str, list] = {}


def _init_worker() -> None:
    # Runs before the worker imports a kernel module (unless the parent's __main__ script did).
    os.environ.pop("TRITON_INTERPRET", None)


@contextlib.contextmanager
def _interpreter_off_for_new_processes():
    """TRITON_INTERPRET unset while worker processes are spawned (they copy the environment):
    a spawned worker re-imports the parent's __main__ script before its initializer runs, and a
    kernel module imported then must already see the interpreter off."""
    saved = os.environ.pop("TRITON_INTERPRET", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["TRITON_INTERPRET"] = saved


def compile_ref(ref: SpecRef, arch: int) -> dict[str, Any]:
    """Worker side: find the spec ``ref`` names and compile it; errors become a failed row."""
    try:
        if ref.index < 0:  # a reference row, built from its config name
            spec = importlib.import_module(ref.module).spec_for(ref.config, ref.dtype)
        else:
            if ref.module not in _worker_specs:
                _worker_specs[ref.module] = list(importlib.import_module(ref.module).codegen_specs())
            spec = _worker_specs[ref.module][ref.index]
        if spec_id(spec) != ref.spec_id:
            raise ValueError(f"{ref.module}.codegen_specs()[{ref.index}] is {spec_id(spec)}, expected {ref.spec_id}:"
                             " codegen_specs() must return the same specs in the same order every call")
        row = compile_spec(spec, arch)
    except Exception as e:  # a bad spec or module is a failed row too
        return failed_row(ref, arch, f"{type(e).__name__}: {e}")
    row["module"] = ref.module
    return row


def compile_pool(jobs: int) -> ProcessPoolExecutor:
    """Worker processes for ``compile_refs`` (spawned, TRITON_INTERPRET unset). Use as a context manager."""
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker)


def compile_refs(refs: Iterable[SpecRef], archs: Iterable[int], *, pool: Executor | None = None,
                 jobs: int = 1, progress: bool = False) -> list[dict[str, Any]]:
    """Compile every ref for every arch in worker processes; rows in (ref, arch) order.

    The reference GEMM rows that tensor-core rows are checked against (``reference_refs``) are
    compiled too when ``refs`` does not hold them, and the cross-row gates applied
    (``apply_reference_gates``); only the rows of ``refs`` are returned.

    ``pool``: an executor from ``compile_pool`` to reuse (else one with ``jobs`` workers is
    made for this call). ``progress``: a tqdm bar on stderr.
    """
    archs = list(archs)
    unknown = [a for a in archs if a not in SHARED_LIMIT_BYTES]
    if unknown:
        raise ValueError(f"unsupported arch {unknown}; known: {', '.join(map(str, SHARED_LIMIT_BYTES))}")
    refs = list(refs)
    tasks = compile_tasks(refs, archs)
    if not tasks:
        return []
    requested = len(tasks)
    given = {r.spec_id for r in refs}
    tasks += compile_tasks([ref for ref in reference_refs(refs) if ref.spec_id not in given], archs)
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(compile_pool(min(jobs, len(tasks))))
        with _interpreter_off_for_new_processes():  # the pool spawns its workers on submit
            futures = {pool.submit(compile_ref, ref, arch): i for i, (ref, arch) in enumerate(tasks)}
        rows: list[dict[str, Any] | None] = [None] * len(tasks)
        from tqdm import tqdm

        with tqdm(total=len(tasks), desc="codegen", unit="compile", disable=not progress, file=sys.stderr) as bar:
            for future in as_completed(futures):
                i = futures[future]
                try:
                    rows[i] = future.result()
                except Exception as e:  # the worker died (e.g. killed for memory): a failed row
                    ref, arch = tasks[i]
                    rows[i] = failed_row(ref, arch, f"worker process failed: {type(e).__name__}: {e}")
                bar.update()
    apply_reference_gates(rows)
    return rows[:requested]


def compile_tasks(refs: Iterable[SpecRef], archs: Iterable[int]) -> list[tuple[SpecRef, int]]:
    """(ref, arch) for every ref and every arch of ``archs`` it is compiled for (its ``archs``)."""
    archs = list(archs)
    return [(ref, arch) for ref in refs for arch in archs if ref.compiles_for(arch)]


def failed_row(ref: SpecRef, arch: int, error: str) -> dict[str, Any]:
    """The row of a spec that could not be compiled at all (bad spec, import error, dead worker)."""
    row = dict.fromkeys(COLUMNS)
    row.update(op=ref.op, kernel=ref.kernel, config=ref.config, dtype=ref.dtype, shape=ref.shape, arch=arch,
               compiled=False, module=ref.module, reference=ref.reference, exception="",
               smem_limit_bytes=SHARED_LIMIT_BYTES.get(arch), notes="", error=error.strip()[:4000])
    return finish_row(row)


# ---------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------

def results_table(rows: Iterable[dict[str, Any]]):
    """Tidy pandas DataFrame (``COLUMNS``), one row per spec x arch, sorted."""
    import pandas as pd

    table = pd.DataFrame(list(rows), columns=COLUMNS)
    return table.sort_values(["op", "kernel", "config", "dtype", "shape", "arch"], kind="stable").reset_index(drop=True)


def provenance() -> dict[str, str]:
    """Versions and commit that produced a report (ptxas per arch: the one Triton runs)."""
    import triton
    from triton.backends.nvidia.compiler import get_ptxas

    info = {"triton": triton.__version__}
    for arch in SHARED_LIMIT_BYTES:
        with contextlib.suppress(Exception):
            tool = get_ptxas(arch)
            info[f"ptxas sm_{arch}"] = f"{os.path.basename(tool.path)} {tool.version}"
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__)), timeout=10)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip()
    return info


def _md_table(header: Sequence[str], lines: Iterable[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v).replace("|", "/") for v in line) + " |" for line in lines]
    return out


def _fmt(row, col, scale=1, digits=0) -> str:
    v = row[col]
    if v is None or v != v or v == "":
        return "-"
    return f"{v / scale:.{digits}f}" if digits else f"{int(v)}"


def _buffers(row) -> str:
    if not row["compiled"] or not _present(row["buffers_a"]):
        return "-"
    return f"A{_fmt(row, 'buffers_a')} B{_fmt(row, 'buffers_b')}"


def _async_copies(row) -> str:
    if not row["compiled"]:
        return "-"
    parts = []
    if row["ldgsts"]:
        width = _fmt(row, "ldgsts_max_bytes")
        if row["ldgsts_min_bytes"] != row["ldgsts_max_bytes"]:
            width = f"{_fmt(row, 'ldgsts_min_bytes')}-{width}"
        parts.append(f"{_fmt(row, 'ldgsts')}x{width}B")
    if row["utmaldg"]:
        parts.append(f"TMA {_fmt(row, 'utmaldg')}")
    return " + ".join(parts) or "0"


def _arch_list_text() -> str:
    return ", ".join(f"sm_{a}" for a in SHARED_LIMIT_BYTES)


def _constants_text() -> list[str]:
    """The per-arch constants of the issue ceiling and the launch figures, with their sources."""
    from alexnet_fast.kernels._common import CODEGEN_SMS

    lines = ["Issue ceiling = tensor cycles per K-step / issue cycles per K-step per SM sub-partition. Tensor "
             "cycles = the loop's MMA FLOPs (from the SASS MMA shapes, else the tile) / dense FLOP per clock per SM; "
             f"issue cycles = loop instructions x warps / {WARP_SCHEDULERS_PER_SM} (one warp scheduler per "
             "sub-partition, one instruction per clock). Dense tensor FLOP per clock per SM (16-bit / TF32):"]
    sources = {80: "A100 SXM: 312 TFLOP/s fp16, 156 tf32, 108 SMs, 1.41 GHz (NVIDIA A100 Tensor Core GPU "
                   "Architecture whitepaper)",
               90: "H100 SXM5: 989.4 TFLOP/s fp16, 494.7 tf32, 132 SMs, 1.83 GHz (NVIDIA H100 Tensor Core GPU "
                   "Architecture whitepaper)"}
    for arch, rates in TENSOR_FLOP_PER_CLOCK.items():
        lines.append(f"- sm_{arch}: {rates['16bit']:,} / {rates['tf32']:,} -- {sources.get(arch, '')}")
    lines += ["", "Launch figures (the grid table): CTAs per SM allowed by registers (" +
              ", ".join(f"sm_{a} {n // 1024}K" for a, n in REGISTERS_PER_SM.items()) +
              f" per SM, allocated per warp in units of {REGISTER_ALLOCATION_UNIT}) and by shared memory (" +
              ", ".join(f"sm_{a} {n:,} B" for a, n in SHARED_PER_SM_BYTES.items()) +
              f" per SM, {SHARED_RESERVED_PER_BLOCK} B reserved per block), at most "
              f"{MAX_BLOCKS_PER_SM} blocks and {MAX_WARPS_PER_SM[90]} warps (CUDA C++ Programming Guide, "
              "compute capability table); waves on " +
              ", ".join(f"{n} SMs (sm_{a})" for a, n in CODEGEN_SMS.items()) + "."]
    return lines


def _loop_mix(r) -> str:
    if not _present(r.get("loop_instructions")):
        return "-"
    return "/".join(_fmt(r, f"loop_{c}") for c in LOOP_CLASSES)


def _span(values) -> str:
    values = [v for v in values if _present(v)]
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    fmt = (lambda v: f"{v:.2f}") if any(isinstance(v, float) and v != int(v) for v in values) else (lambda v: f"{int(v)}")
    return fmt(lo) if lo == hi else f"{fmt(lo)}-{fmt(hi)}"


def loop_summary_lines(table) -> list[str]:
    """One line per (op, kernel, dtype, arch) of the launch-faithful tensor-core rows that have a
    reference GEMM (documented exceptions apart): their main loops beside the reference's, the
    largest ratio, and the issue ceilings (of the configs tried first, and of all)."""
    gated = table[table["reference"].fillna("").astype(bool) & table["compiled"].astype(bool)
                  & ~table["exception"].fillna("").astype(bool)]
    if not len(gated):
        return []
    lines = ["", "## Main loop: instructions per K-step beside the reference GEMM", "",
             f"Launch-faithful tensor-core rows (documented exceptions apart) by kernel, dtype and arch, over their "
             f"configs and layers: SASS instructions of the main loop (gate: at most {LOOP_RATIO_LIMIT}x the "
             f"reference GEMM's at the same tile), the mix of the largest loop (integer/memory/MMA/sync/other) and "
             f"the issue ceiling (gate on {', '.join(f'sm_{a}' for a in ISSUE_CEILING_ARCHS)}: at least "
             f"{ISSUE_CEILING_MIN} for the first {AUTOTUNE_FIRST} entries of each autotune table)."]
    body = []
    for (op, kernel, dtype, arch), group in gated.groupby(["op", "kernel", "dtype", "arch"], sort=True):
        first = group[group["autotune_rank"].apply(lambda v: _present(v) and v < AUTOTUNE_FIRST)]
        widest = group.loc[group["loop_instructions"].fillna(0).idxmax()]
        body.append([kernel, dtype, f"sm_{arch}", group["config"].nunique(), group["shape"].nunique(),
                     _span(group["loop_instructions"]), _span(group["ref_loop_instructions"]),
                     _span(group["loop_ratio"]), _loop_mix(widest), _span(first["issue_ceiling"]),
                     _span(group["issue_ceiling"]), "ok" if group["passed"].all() else "FAIL"])
    return lines + [""] + _md_table(["kernel", "dtype", "arch", "configs", "shapes", "loop", "ref loop",
                                     "ratio", "mix (largest)", "ceiling, first 2", "ceiling, all", "result"], body)


def first_configs_lines(table) -> list[str]:
    """The configs each arch's autotune tables try first (rank < AUTOTUNE_FIRST), per kernel and
    dtype, with the figures that chose them, over the launch-faithful rows."""
    rows = table[table["autotune_rank"].apply(lambda v: _present(v) and v < AUTOTUNE_FIRST)
                 & table["shape"].fillna("").astype(bool) & table["compiled"].astype(bool)]
    if not len(rows):
        return []
    lines = ["", "## The configs each autotune table tries first", "",
             f"Entries 0 and 1 of each table (what the GPU suite's autotune limit tries), over the AlexNet layers: "
             "registers, shared memory per block, CTAs per SM (the smaller of the register and shared-memory "
             "limits), the main loop's issue ceiling and the waves of the launches."]
    body = []
    for (kernel, dtype, arch, rank, config), group in rows.groupby(
            ["kernel", "dtype", "arch", "autotune_rank", "config"], sort=True):
        body.append([kernel, dtype, f"sm_{arch}", int(rank), config, _span(group["registers"]),
                     _span(group["smem_bytes"]), _span(group["ctas_per_sm"]), _span(group["issue_ceiling"]),
                     _span(group["waves"]), "ok" if group["passed"].all() else "FAIL"])
    return lines + [""] + _md_table(["kernel", "dtype", "arch", "entry", "config", "regs", "smem B", "CTAs/SM",
                                     "ceiling", "waves", "result"], body)


def grid_lines(table) -> list[str]:
    """Every launch-faithful row with a grid: CTAs, CTAs per SM by registers and by shared memory,
    waves and the fill of the last wave (wgrad's split-K is in its shape label and grid z)."""
    rows = table[table["grid"].fillna("").astype(bool) & table["compiled"].astype(bool)]
    if not len(rows):
        return []
    lines = ["", "## Grid: every launch", "",
             "Each launch-faithful row's grid (x, groups, stride phases for dgrad / splits for wgrad), its CTAs, "
             "the CTAs per SM that registers and shared memory allow, and the waves on the modelled GPU with the "
             "fill of the last wave (1.00: full)."]
    body = [[r["kernel"], r["config"], r["dtype"], r["shape"], f"sm_{r['arch']}", r["grid"], _fmt(r, "ctas"),
             _fmt(r, "ctas_per_sm_regs"), _fmt(r, "ctas_per_sm_smem"), _fmt(r, "ctas_per_sm"),
             f"{r['waves']:.2f}" if _present(r["waves"]) else "-",
             f"{r['last_wave_fill']:.2f}" if _present(r["last_wave_fill"]) else "-"] for _, r in rows.iterrows()]
    return lines + [""] + _md_table(["kernel", "config", "dtype", "shape", "arch", "grid", "CTAs", "CTAs/SM regs",
                                     "CTAs/SM smem", "CTAs/SM", "waves", "last wave"], body)


def markdown_summary(table, problems: Sequence[str] = (), info: dict[str, str] | None = None) -> str:
    """``codegen.md``: the main-loop summary, the configs tried first, one line per kernel x config
    x dtype x shape x arch, the tensor-core rows beside their reference GEMM, every launch's grid;
    exceptions, failures and totals."""
    failed = table[~table["passed"].astype(bool)]
    lines = ["# Code generation check", ""]
    limits = ", ".join(f"sm_{a} {n:,} B" for a, n in SHARED_LIMIT_BYTES.items())
    lines.append(
        f"Every Triton kernel config of `kernels/` compiled ahead of time with `triton.compile` for {_arch_list_text()} "
        "(no GPU; a config of a per-arch autotune table only for its arch). *generic* rows compile a plain signature "
        "(pointers 16-byte aligned, integers with no "
        "specialization); *launch-faithful* rows (a shape given) compile what a launch at that AlexNet layer "
        "compiles: Triton's own launcher code specializes the argument values (an int equal to 1 becomes a "
        "constexpr, an int divisible by 16 gets `tt.divisibility 16`, pointers their alignment). "
        "Columns: registers and stack from cuobjdump; spills = STL/LDL bytes in SASS; smem = static + dynamic "
        f"per block (limit: {limits}); MMA = HMMA/HGMMA instructions in SASS; buffers = "
        "shared-memory copies of the A and B tiles of the dot (leading dim of `ttg.local_alloc` in TTGIR: the "
        "pipeline stages actually allocated); async = LDGSTS (cp.async) count x width and UTMALDG (TMA) in SASS; "
        "wait = wgmma wait depth (largest N of `WARPGROUP.DEPBAR.LE gsb0, N`; 0 = every wgmma waited for at "
        "once); LDG = plain global loads by width; loop = SASS instructions of the main loop (from the target of "
        "the backward branch that closes the innermost loop holding an MMA to that branch: one K-step); "
        "ceiling = its issue ceiling. compile s is ~0 where Triton's cache served it.")
    lines += ["", "Gates: compiles; no spills; smem within the limit; tensor cores where expected; a "
              "launch-faithful tensor-core row has at least the reference GEMM's buffers for A and B, some "
              "asynchronous copy, an asynchronous wgmma on sm_90 (wait depth >= 1), at most "
              f"{REGISTER_RATIO_LIMIT}x its registers and a main loop of at most {LOOP_RATIO_LIMIT}x its "
              "instructions (reference: Triton's tutorial GEMM at the same tile, warps, stages and dtype, "
              "`profiling/reference_gemm.py`), and -- for the first "
              f"{AUTOTUNE_FIRST} entries of an autotune table on {', '.join(f'sm_{a}' for a in ISSUE_CEILING_ARCHS)} "
              f"-- an issue ceiling of at least {ISSUE_CEILING_MIN}; a row with `min_load_bytes` (fp16/bf16 NHWC "
              "memory-bound kernels at real shapes) has a global load at least that wide.", ""]
    lines += _constants_text() + [""]
    if info:
        lines += [", ".join(f"{k}: {v}" for k, v in info.items()), ""]
    lines += loop_summary_lines(table) + first_configs_lines(table)

    body = []
    for _, r in table.iterrows():
        ok = bool(r["compiled"])
        mma = f"{r['mma_kind']} {int(r['mma_instructions'])}" if ok else "-"
        result = "ok" if r["passed"] else "FAIL: " + r["failures"]
        if r["notes"]:
            result += f" ({r['notes']})"
        body.append([r["op"], r["kernel"], r["config"], r["dtype"], r["shape"] or "generic", f"sm_{r['arch']}",
                     _fmt(r, "num_warps"), _fmt(r, "num_stages"), _fmt(r, "registers"),
                     f"{_fmt(r, 'spill_store_bytes')}/{_fmt(r, 'spill_load_bytes')}", _fmt(r, "smem_bytes"),
                     mma, _buffers(r), _async_copies(r), _fmt(r, "wgmma_wait_depth"),
                     (r["ldg_widths"] or "0") if ok else "-", _fmt(r, "loop_instructions"),
                     _fmt(r, "issue_ceiling", 1, 2), _fmt(r, "ptx_bytes", 1024, 1), _fmt(r, "compile_s", 1, 2), result])
    lines += ["", "## Every compile", ""]
    lines += _md_table(["op", "kernel", "config", "dtype", "shape", "arch", "warps", "stages", "regs",
                        "spill B st/ld", "smem B", "MMA", "buffers", "async", "wait", "LDG", "loop", "ceiling",
                        "PTX KB", "compile s", "result"], body)

    gated = table[table["reference"].fillna("").astype(bool) & table["compiled"].astype(bool)]
    if len(gated):
        refs = {(r["config"], r["dtype"], r["arch"]): r for _, r in table.iterrows()
                if r["module"] == REFERENCE_MODULE and r["compiled"]}
        lines += ["", "## Tensor-core rows beside the reference GEMM", "",
                  "Each launch-faithful tensor-core row next to Triton's tutorial GEMM compiled with the same tile, "
                  "warps, stages and dtype (M = N = K = 4096, unit inner strides); mix = the main loop's "
                  "integer/memory/MMA/sync/other instructions."]
        cmp_rows = []
        for _, r in gated.iterrows():
            ref = refs.get((r["reference"], r["dtype"], r["arch"]))
            cmp_rows.append([f"{r['kernel']} {r['config']}", r["dtype"], r["shape"], f"sm_{r['arch']}",
                             r["reference"], _buffers(r), _buffers(ref) if ref is not None else "-",
                             _async_copies(r), _async_copies(ref) if ref is not None else "-",
                             _fmt(r, "wgmma_wait_depth"), _fmt(ref, "wgmma_wait_depth") if ref is not None else "-",
                             _fmt(r, "registers"), _fmt(ref, "registers") if ref is not None else "-",
                             _fmt(r, "loop_instructions"), _fmt(ref, "loop_instructions") if ref is not None else "-",
                             _fmt(r, "loop_ratio", 1, 2), _loop_mix(r), _loop_mix(ref) if ref is not None else "-",
                             _fmt(r, "issue_ceiling", 1, 2), _fmt(ref, "issue_ceiling", 1, 2) if ref is not None else "-",
                             "ok" if r["passed"] else "FAIL", "exception" if "exception (" in r["notes"] else ""])
        lines += [""] + _md_table(["kernel config", "dtype", "shape", "arch", "reference tile", "buffers",
                                   "ref buffers", "async", "ref async", "wait", "ref wait", "regs", "ref regs",
                                   "loop", "ref loop", "ratio", "mix", "ref mix", "ceiling", "ref ceiling",
                                   "result", "note"], cmp_rows)
    lines += grid_lines(table)

    exceptions = table[table["notes"].fillna("").str.contains("exception (", regex=False)]
    lines += ["", f"**Totals:** {len(table)} compiles ({table['compiled'].astype(bool).sum()} compiled), "
                  f"{len(failed)} failed checks, {len(exceptions)} documented exceptions, "
                  f"{len(problems)} coverage problems."]
    if len(failed):
        per_op = [f"{op} {n}/{(table['op'] == op).sum()}" for op, n in failed.groupby("op").size().items()]
        lines[-1] += f" Failed by op: {', '.join(per_op)}."
    if len(exceptions):
        lines += ["", "## Documented exceptions", "",
                  "Rows whose spec states why a gate cannot hold; their figures are in the tables above."]
        lines += [f"- `{spec_id(_RowId(r))}` sm_{r['arch']}: {r['notes']}" for _, r in exceptions.iterrows()]
    if len(failed):
        lines += ["", "## Failures", ""]
        lines += [f"- `{spec_id(_RowId(r))}` sm_{r['arch']}: {r['failures']}" for _, r in failed.iterrows()]
    if problems:
        lines += ["", "## Coverage problems", ""] + [f"- {p}" for p in problems]
    return "\n".join(lines) + "\n"


def write_reports(table, output_dir: str, problems: Sequence[str] = (),
                  info: dict[str, str] | None = None) -> tuple[str, str]:
    """Write ``codegen.csv`` and ``codegen.md`` atomically into ``output_dir``; their paths."""
    from alexnet_fast.io import atomic_write_text  # the project's one atomic writer

    csv_path, md_path = os.path.join(output_dir, "codegen.csv"), os.path.join(output_dir, "codegen.md")
    atomic_write_text(csv_path, table.to_csv(index=False))
    atomic_write_text(md_path, markdown_summary(table, problems, info))
    return csv_path, md_path


# ---------------------------------------------------------------------------------------
# `alexnet-fast codegen`
# ---------------------------------------------------------------------------------------

def _split_list(values: Sequence[str] | None) -> list[str]:
    """Repeated and/or comma-separated option values, in order, without duplicates."""
    items = [item.strip() for value in values or () for item in value.split(",")]
    return list(dict.fromkeys(item for item in items if item))


def _arch_list(values: Sequence[str] | None) -> list[int]:
    archs = []
    for part in _split_list(values) or [str(a) for a in DEFAULT_ARCHS]:
        arch = part.removeprefix("sm_")
        if not arch.isdigit() or int(arch) not in SHARED_LIMIT_BYTES:
            raise ValueError(f"--arch {part!r}: supported archs are {', '.join(map(str, SHARED_LIMIT_BYTES))}")
        archs.append(int(arch))
    return list(dict.fromkeys(archs))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", action="append", metavar="80,90",
                        help="SM archs to compile for, comma-separated or repeated (default: 80,90)")
    parser.add_argument("--op", action="append", metavar="NAME",
                        help="only the specs of this op, comma-separated or repeated, e.g. conv2d_relu")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="where codegen.csv and codegen.md go (default: reports/)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="compile processes (default: min(2, CPUs))")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass(frozen=True)
class _RowId:
    """A table row seen by ``spec_id`` (op, kernel, config, dtype, shape)."""

    row: Any

    def __getattr__(self, name):
        value = self.row[name]
        return "" if value is None or value != value else value


def run(args: argparse.Namespace) -> int:
    from alexnet_fast.io import writable_dir

    try:
        archs = _arch_list(args.arch)
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {args.jobs}")
        writable_dir(args.output_dir)  # one line before minutes of compiling, not after
        cuobjdump_path()
    except (ValueError, CodegenToolError) as e:
        print(f"codegen: {e}", file=sys.stderr)
        return 2
    modules = [importlib.import_module(name) for name in kernel_module_names()]
    found = collect_specs(modules)
    ops = _split_list(args.op)
    if ops:
        known = sorted({ref.op for ref, _ in found})
        unknown = [op for op in ops if op not in known]
        if unknown:
            print(f"codegen: no specs for op {', '.join(unknown)}; ops with specs: {', '.join(known) or 'none'}",
                  file=sys.stderr)
            return 2
        found = [(ref, spec) for ref, spec in found if ref.op in ops]
        modules = [m for m in modules if m.__name__ in {ref.module for ref, _ in found}]
    problems = coverage_problems(modules)
    refs = [ref for ref, _ in found]
    if not refs:
        print(f"codegen: no codegen_specs() found in kernels/ (no op modules yet?); nothing to compile",
              file=sys.stderr)
    references = reference_refs(refs)
    refs += references
    print(f"codegen: {len(refs) - len(references)} specs from {len(modules)} modules + {len(references)} reference "
          f"GEMMs for {', '.join(f'sm_{a}' for a in archs)} (each for the archs of its tables) = "
          f"{len(compile_tasks(refs, archs))} compiles, {args.jobs} processes", file=sys.stderr)
    rows = compile_refs(refs, archs, jobs=args.jobs, progress=not args.no_progress)
    table = results_table(rows)
    csv_path, md_path = write_reports(table, args.output_dir, problems, provenance())
    failed = table[~table["passed"].astype(bool)]
    for _, r in failed.iterrows():
        print(f"FAIL {spec_id(_RowId(r))} sm_{r['arch']}: {r['failures']}")
    for problem in problems:
        print(f"COVERAGE {problem}")
    print(f"{len(table)} compiles, {len(failed)} failed, {len(problems)} coverage problems; "
          f"wrote {csv_path} and {md_path}")
    return 1 if len(failed) or problems else 0
