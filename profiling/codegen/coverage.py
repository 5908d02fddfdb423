"""What would let a Triton kernel escape the code-generation check: every ``@triton.jit``
function of an op module must be compiled by a spec or called by one (a device helper compiles
inside its caller); a module with jit functions needs ``codegen_specs()``, which must return
KernelSpecs of jit functions with unique ids. Also the helpers that see through Triton's
wrappers (autotune, heuristics, the interpreter) to the Python function."""

from __future__ import annotations

import ast
import inspect
import textwrap
from types import ModuleType
from typing import Any, Sequence

from alexnet_fast.profiling.codegen.specs import module_specs, spec_id


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
            specs = module_specs(module)
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
