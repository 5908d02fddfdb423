"""Compiling the specs: one spec for one arch with ``triton.compile`` (no GPU or driver), its
launch specialization and the reading of the binary, and the pool of worker processes.

A launch-faithful spec (``spec.args``) is specialized by Triton's own launcher code
(``launch_specialization``), exactly as ``JITFunction.run`` would; a generic one compiles its
signature with 16-byte aligned pointers and the integers of ``extra["divisible_by_16"]``.
Compiles run in worker processes started with ``spawn`` and TRITON_INTERPRET unset, so the
kernel modules are imported there with real ``JITFunction`` kernels even when the calling
process runs Triton's interpreter (the tests do). Workers receive (module, index) references
and rebuild the specs themselves (``specs.module_specs``; reference rows:
``reference_gemm.spec_for(config)``); nothing unpicklable crosses the process boundary."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Iterable

from alexnet_fast.profiling.codegen.arch import SHARED_LIMIT_BYTES
from alexnet_fast.profiling.codegen.coverage import jit_object, python_function
from alexnet_fast.profiling.codegen.gates import COLUMNS, apply_reference_gates, finish_row
from alexnet_fast.profiling.codegen.sass import (CodegenToolError, loop_figures, resource_usage, sass_figures,
                                                 sass_memory_figures, ttgir_figures)
from alexnet_fast.profiling.codegen.specs import (SpecRef, gemm_tile, input_precision_of, module_specs,
                                                  reference_config_of, reference_refs, spec_id)


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
                _worker_specs[ref.module] = module_specs(importlib.import_module(ref.module))
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
