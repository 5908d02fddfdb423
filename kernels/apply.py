"""``kernels.apply(model)``: put the Triton ops into any ``nn.Module`` where its dataflow proves it safe.

The model's forward is traced with ``torch.fx`` (standard ``torch.nn`` modules are leaves), and
matches are found in that graph -- by what feeds what, not by names or registration order:

* an ``nn.Conv2d`` whose output has exactly one user, a ReLU (``nn.ReLU`` module, ``F.relu``,
  ``torch.relu``, ``.relu()``, in place or not) -> :class:`kernels.nn.Conv2dReLU` with the ReLU
  fused; the ReLU is dropped;
* such a conv + ReLU whose ReLU's only user is an ``nn.LocalResponseNorm`` (AlexNet's conv1,
  conv2) -> :class:`kernels.nn.Conv2dReLULRN`, LRN in the conv's epilogue (``fuse_conv_lrn=False``
  turns it off; a conv whose channels one program cannot hold keeps the pair below, with the
  reason as the report's note); the ReLU and the LRN are dropped, the pool after it stays a pool;
* an ``nn.LocalResponseNorm`` whose only user is an ``nn.MaxPool2d`` -> the fused
  :class:`kernels.nn.LRNMaxPool2d`; the pool is dropped;
* any other ``nn.Conv2d`` / ``nn.LocalResponseNorm`` / ``nn.MaxPool2d`` -> its single Triton op
  (``Conv2dReLU(relu=False)``, ``LocalResponseNorm``, ``MaxPool2d``).

A module called at several places in the forward gets one treatment everywhere (fused only if
every call is fusable). Configurations the kernels do not implement (dilation != 1, string
padding, padding modes other than zeros, ceil_mode=True, return_indices=True, LRN alpha < 0 or
k <= 0, parameters that are not fp32/fp16/bf16), modules with hooks, subclasses (whose forward
may differ) and functional ``F.conv2d`` / ``F.max_pool2d`` / ``F.local_response_norm`` calls are
left as they are, each with its reason in the report.

The model is changed in place and returned (the same object). The numbers do not change: new
modules hold the very Parameter objects of the modules they replace, no parameter or buffer is
added or removed (state_dict keys and values are the same), and a model with nothing to
replace is not touched at all. A dropped ReLU or pool that is a module called only there becomes
``nn.Identity`` and the forward stays the user's code. A dropped ReLU or pool that cannot be
removed that way (a functional call, or a module also called elsewhere) is removed from the
traced graph, and the model's ``forward`` becomes that graph's code (a :class:`TracedForward`
set on the instance; the class is untouched; deep copies and ``torch.save(model)`` keep it).
That is done only when the traced graph is the same in train() and eval() mode, and the report
says so.

If the forward cannot be traced (data-dependent control flow, ...), the fallback reads module
order inside ``nn.Sequential`` containers only (a conv directly followed by an ``nn.ReLU``, an
LRN directly followed by an ``nn.MaxPool2d``), and the report says that it did.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from alexnet_fast.kernels._common import SUPPORTED_DTYPES, conv_problem, int_pair
from alexnet_fast.kernels.conv2d_relu import OP as CONV2D_RELU
from alexnet_fast.kernels.conv2d_relu_lrn import OP as CONV2D_RELU_LRN, fused_problem
from alexnet_fast.kernels.lrn import OP as LRN
from alexnet_fast.kernels.lrn_max_pool import OP as LRN_MAX_POOL2D
from alexnet_fast.kernels.max_pool import OP as MAX_POOL2D

__all__ = ["apply", "ApplyReport", "Replacement", "Left", "TracedForward"]

# call_function targets and call_method names that compute a ReLU of their first argument
RELU_FUNCTIONS = (F.relu, torch.relu, torch.relu_, F.relu_)
RELU_METHODS = ("relu", "relu_")
# functional ops the kernels could compute but that are only replaced as modules
FUNCTIONAL_OPS = {F.conv2d: "F.conv2d", torch.conv2d: "torch.conv2d", F.max_pool2d: "F.max_pool2d",
                  torch.max_pool2d: "torch.max_pool2d", F.local_response_norm: "F.local_response_norm"}
REPLACED_TYPES = (nn.Conv2d, nn.LocalResponseNorm, nn.MaxPool2d)


@dataclass(frozen=True)
class Replacement:
    """``module`` (qualified name) became ``new``; ``absorbed`` lists the ReLU / pool it took over."""

    module: str
    kind: str  # the op it runs: conv2d_relu, conv2d (Conv2dReLU(relu=False)), lrn_max_pool2d, ...
    new: str
    absorbed: tuple[str, ...] = ()
    note: str = ""

    def __str__(self) -> str:
        text = f"{self.module}: {self.kind} -> {self.new}"
        if self.absorbed:
            text += f" (absorbs {', '.join(self.absorbed)})"
        return text + (f"; {self.note}" if self.note else "")


@dataclass(frozen=True)
class Left:
    """``what`` (a module name or a graph node) kept as it was, and why."""

    what: str
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass
class ApplyReport:
    """What :func:`apply` did. ``method`` is ``"fx"`` (the traced graph) or ``"sequential"``
    (module order in nn.Sequential containers, after ``trace_error``)."""

    method: str
    replaced: list[Replacement] = field(default_factory=list)
    left: list[Left] = field(default_factory=list)
    trace_error: str | None = None
    forward_rewritten: bool = False
    forward_source: str | None = None

    @property
    def summary(self) -> list[tuple[str, str]]:
        """``[(module, kind), ...]`` in graph (or container) order."""
        return [(r.module, r.kind) for r in self.replaced]

    def __str__(self) -> str:
        if self.method == "fx":
            lines = ["alexnet_fast.kernels.apply: matched on the torch.fx graph of the forward"]
        else:
            lines = [f"alexnet_fast.kernels.apply: the forward could not be traced ({self.trace_error}); "
                     "fell back to module order inside nn.Sequential containers only"]
        lines.append(f"replaced ({len(self.replaced)}):")
        lines += [f"  {r}" for r in self.replaced] or ["  nothing"]
        lines.append(f"left ({len(self.left)}):")
        lines += [f"  {x}" for x in self.left] or ["  nothing"]
        if self.forward_rewritten:
            lines.append("forward: replaced (on this instance) by the traced graph without the absorbed "
                         "functional / shared ReLU and pool calls (the graph is the same in train and eval mode)")
        return "\n".join(lines)


class _Untraceable(Exception):
    pass


class _Tracer(fx.Tracer):
    """fx's tracer, also keeping this package's modules as leaves (so a second apply sees them)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return type(m).__module__.startswith("alexnet_fast.kernels.nn") or super().is_leaf_module(m, qualname)


# ------------------------------------------------------------------ what the kernels support
def _hooks(m: nn.Module) -> str | None:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    if any(getattr(m, n, None) for n in names):
        return "it has hooks registered (a replacement would not run them)"
    return None


def _dtype_problem(m: nn.Module) -> str | None:
    for p in m.parameters(recurse=False):
        if p.dtype not in SUPPORTED_DTYPES:
            return f"parameters are {p.dtype}; the kernels take float32, float16 and bfloat16"
    return None


def _conv_problem(m: nn.Conv2d) -> str | None:
    return conv_problem(m.padding, m.dilation, m.padding_mode) or _dtype_problem(m) or _hooks(m)


def _pool_problem(m: nn.MaxPool2d) -> str | None:
    try:
        _pool_key(m)
        dilation = int_pair(m.dilation, "dilation", op="max-pool", minimum=0)
    except (TypeError, ValueError) as e:  # what the kernel would refuse: left, with the reason
        return str(e)
    if dilation != (1, 1):
        return f"max-pool with dilation={m.dilation} is not supported (only 1)"
    if m.ceil_mode:
        return "max-pool with ceil_mode=True is not supported"
    if m.return_indices:
        return "max-pool with return_indices=True is not supported (the kernel keeps an int8 window argmax)"
    return _hooks(m)


def _lrn_problem(m: nn.LocalResponseNorm) -> str | None:
    if not (m.alpha >= 0 and m.k > 0):
        return f"LRN needs alpha >= 0 and k > 0 (got alpha={m.alpha}, k={m.k})"
    return _hooks(m)


_PROBLEM = {nn.Conv2d: _conv_problem, nn.MaxPool2d: _pool_problem, nn.LocalResponseNorm: _lrn_problem}


def _problem(m: nn.Module) -> str | None:
    if type(m) is nn.ReLU:
        return _hooks(m)
    return _PROBLEM[type(m)](m)


def _pool_key(m: nn.MaxPool2d) -> tuple:
    stride = m.stride if m.stride is not None else m.kernel_size
    return (int_pair(m.kernel_size, "kernel_size", op="max-pool", minimum=1),
            int_pair(stride, "stride", op="max-pool", minimum=1), int_pair(m.padding, "padding", op="max-pool", minimum=0))


# ------------------------------------------------------------------ new modules
def _new_conv(conv: nn.Conv2d, relu: bool) -> nn.Module:
    from alexnet_fast.kernels.nn import Conv2dReLU

    return Conv2dReLU.from_conv(conv, relu=relu)


def _new_conv_lrn(conv: nn.Conv2d, lrn: nn.LocalResponseNorm) -> nn.Module:
    from alexnet_fast.kernels.nn import Conv2dReLULRN

    return Conv2dReLULRN.from_modules(conv, lrn)


def _lrn_chain(conv: nn.Conv2d, relus: list[fx.Node], modules: dict[str, nn.Module],
               calls: dict[int, list[fx.Node]]) -> tuple[nn.Module | None, list[fx.Node], str | None]:
    """(the nn.LocalResponseNorm that every ReLU of ``conv`` feeds alone, its nodes, None) when
    the chain conv -> ReLU -> LRN can run as one op; else (None, [], why; None: no LRN there)."""
    is_lrn = lambda u: u.op == "call_module" and type(modules[u.target]) is nn.LocalResponseNorm  # noqa: E731
    if not any(is_lrn(u) for r in relus for u in r.users):
        return None, [], None
    found = [_only_user(r, modules, is_lrn) for r in relus]
    if any(u is None for u, _ in found):
        return None, [], next(w for u, w in found if u is None)
    nodes = [u for u, _ in found]
    lrn = modules[nodes[0].target]
    if any(modules[u.target] is not lrn for u in nodes) or len(calls[id(lrn)]) != len(nodes):
        return None, [], f"{nodes[0].target} is also called elsewhere"
    if problem := fused_problem(conv.out_channels, conv.groups):
        return None, [], problem
    return lrn, nodes, None


def _new_lrn(lrn: nn.LocalResponseNorm, pool: nn.MaxPool2d | None) -> nn.Module:
    from alexnet_fast.kernels.nn import LocalResponseNorm, LRNMaxPool2d

    new = LRNMaxPool2d.from_modules(lrn, pool) if pool is not None else LocalResponseNorm.from_module(lrn)
    return new.train(lrn.training)


def _new_pool(pool: nn.MaxPool2d) -> nn.Module:
    from alexnet_fast.kernels.nn import MaxPool2d

    return MaxPool2d.from_module(pool).train(pool.training)


def _identity(m: nn.Module) -> nn.Module:
    return nn.Identity().train(m.training)


# ------------------------------------------------------------------ the plan, then the edit
@dataclass
class _Plan:
    report: ApplyReport
    swaps: list[tuple[nn.Module, nn.Module]] = field(default_factory=list)  # (old, new)
    erase: list[fx.Node] = field(default_factory=list)  # graph nodes to drop (forward rewrite)
    graph: fx.Graph | None = None


def _trace(model: nn.Module) -> fx.Graph:
    """The fx graph of ``model``'s forward; _Untraceable if it cannot be traced or differs
    between train and eval mode."""
    modes = {m: m.training for m in model.modules()}
    graphs = []
    try:
        for mode in (True, False):
            for m in modes:  # the flag only: a user's train() override is not called
                m.training = mode
            graphs.append(_Tracer().trace(model))
    except Exception as e:  # any failure of the user's forward under tracing
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise _Untraceable(f"{type(e).__name__}: {first}") from e
    finally:
        for m, training in modes.items():
            m.training = training
    if graphs[0].python_code("self").src != graphs[1].python_code("self").src:
        raise _Untraceable("the traced forward differs between train() and eval() mode")
    return graphs[0]


def _first_input(node: fx.Node) -> Any:
    return node.args[0] if node.args else node.kwargs.get("input", node.kwargs.get("self"))


_FUNCTION_NAMES = {**FUNCTIONAL_OPS, F.relu: "F.relu", torch.relu: "torch.relu", torch.relu_: "torch.relu_"}


def _describe(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    if node.op == "call_function":
        name = _FUNCTION_NAMES.get(node.target) or getattr(node.target, "__name__", str(node.target))
        return f"{name} (node {node.name})"
    if node.op == "call_method":
        return f".{node.target}() (node {node.name})"
    return f"{node.op} {node.name}"


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return type(modules[node.target]) is nn.ReLU
    if node.op == "call_function":
        return node.target in RELU_FUNCTIONS
    return node.op == "call_method" and node.target in RELU_METHODS


def _only_user(node: fx.Node, modules: dict[str, nn.Module], accept) -> tuple[fx.Node | None, str | None]:
    """(the node's single user if ``accept`` takes it and it reads the node as its input, else
    None, with why)."""
    users = list(node.users)
    if len(users) != 1:
        names = ", ".join(_describe(u, modules) for u in users) or "nothing"
        return None, f"its output is used by {len(users)} nodes ({names})"
    user = users[0]
    if not accept(user) or _first_input(user) is not node:
        return None, f"its output goes to {_describe(user, modules)}"
    if user.op == "call_module" and (problem := _problem(modules[user.target])):
        return None, f"its consumer {user.target}: {problem}"
    return user, None


def _plan_fx(model: nn.Module, graph: fx.Graph, fuse_conv_lrn: bool = True) -> _Plan:
    plan = _Plan(ApplyReport(method="fx"), graph=graph)
    report = plan.report
    modules = dict(model.named_modules())
    calls: dict[int, list[fx.Node]] = {}  # id(module) -> its call_module nodes, in graph order
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(id(modules[node.target]), []).append(node)
        elif node.op == "call_function" and node.target in FUNCTIONAL_OPS:
            report.left.append(Left(_describe(node, modules), "a functional call; only nn.Conv2d, "
                                    "nn.LocalResponseNorm and nn.MaxPool2d modules are replaced"))
    absorbed: dict[int, fx.Node] = {}  # id(node) -> node, ReLU / pool nodes taken over by a fusion
    pending_pools: list[fx.Node] = []
    seen: set[int] = set()
    for node in graph.nodes:
        if node.op != "call_module":
            continue
        m = modules[node.target]
        if id(m) in seen or type(m) not in (nn.Conv2d, nn.LocalResponseNorm):
            if type(m) is nn.MaxPool2d:
                pending_pools.append(node)
            continue
        seen.add(id(m))
        sites = calls[id(m)]
        where = node.target + (f" (called at {len(sites)} places)" if len(sites) > 1 else "")
        if problem := _problem(m):
            report.left.append(Left(where, problem))
            continue
        if type(m) is nn.Conv2d:
            found = [_only_user(s, modules, lambda u: _is_relu(u, modules)) for s in sites]
            fused = all(user is not None for user, _ in found)
            if fused:
                relus = [user for user, _ in found]
                absorbed.update((id(u), u) for u in relus)
                lrn, lrn_nodes, no_lrn = (_lrn_chain(m, relus, modules, calls) if fuse_conv_lrn
                                          else (None, [], None))
                if lrn is not None:
                    seen.add(id(lrn))
                    absorbed.update((id(u), u) for u in lrn_nodes)
                    plan.swaps.append((m, _new_conv_lrn(m, lrn)))
                    report.replaced.append(Replacement(node.target, CONV2D_RELU_LRN, "Conv2dReLULRN",
                                                       tuple(_describe(u, modules) for u in relus + lrn_nodes)))
                    continue
                plan.swaps.append((m, _new_conv(m, relu=True)))
                report.replaced.append(Replacement(node.target, CONV2D_RELU, "Conv2dReLU(relu=True)",
                                                   tuple(_describe(u, modules) for u in relus),
                                                   note=f"LRN not fused: {no_lrn}" if no_lrn else ""))
            else:
                why = next(w for u, w in found if u is None)
                has_relu = any(_is_relu(u, modules) for s in sites for u in s.users)
                why = f"{'kept its ReLU apart' if has_relu else 'no ReLU to fuse'}: {why}"
                plan.swaps.append((m, _new_conv(m, relu=False)))
                report.replaced.append(Replacement(node.target, "conv2d", "Conv2dReLU(relu=False)", note=why))
        else:  # LRN
            is_pool = lambda u: u.op == "call_module" and type(modules[u.target]) is nn.MaxPool2d  # noqa: E731
            found = [_only_user(s, modules, is_pool) for s in sites]
            pools = [modules[u.target] for u, _ in found if u is not None]
            fused = len(pools) == len(sites) and len({_pool_key(p) for p in pools}) == 1
            if fused:
                for user, _ in found:
                    absorbed[id(user)] = user
                plan.swaps.append((m, _new_lrn(m, pools[0])))
                report.replaced.append(Replacement(node.target, LRN_MAX_POOL2D, "LRNMaxPool2d",
                                                   tuple(_describe(u, modules) for u, _ in found)))
            else:
                why = next((w for u, w in found if u is None), "its call sites feed pools of different shapes")
                plan.swaps.append((m, _new_lrn(m, None)))
                report.replaced.append(Replacement(node.target, LRN, "LocalResponseNorm",
                                                   note=f"not fused with a pool: {why}"))
    # pools not taken over by an LRN: the single op
    for node in pending_pools:
        m = modules[node.target]
        if id(m) in seen:
            continue
        seen.add(id(m))
        free = [s for s in calls[id(m)] if id(s) not in absorbed]
        if not free:
            continue
        if problem := _problem(m):
            report.left.append(Left(node.target, problem))
        else:
            plan.swaps.append((m, _new_pool(m)))
            report.replaced.append(Replacement(node.target, MAX_POOL2D, "MaxPool2d"))
    # absorbed ReLU / pool nodes: a module whose every call is absorbed becomes Identity (the
    # forward stays the user's code); any other absorbed node is erased from the graph
    replaced_ids = {id(old) for old, _ in plan.swaps}
    for node in absorbed.values():
        if node.op == "call_module":
            m = modules[node.target]
            if all(id(s) in absorbed for s in calls[id(m)]):
                if id(m) not in replaced_ids:
                    replaced_ids.add(id(m))
                    plan.swaps.append((m, _identity(m)))
                continue
        plan.erase.append(node)
    first_call = {}
    for i, node in enumerate(graph.nodes):
        if node.op == "call_module":
            first_call.setdefault(node.target, i)
    report.replaced.sort(key=lambda r: first_call[r.module])  # dataflow order
    # what the graph never reaches as a replaceable module
    for name, m in model.named_modules():
        if isinstance(m, REPLACED_TYPES) and not type(m).__module__.startswith("alexnet_fast.kernels.nn"):
            if type(m) not in (nn.Conv2d, nn.LocalResponseNorm, nn.MaxPool2d):
                report.left.append(Left(name, f"{type(m).__name__} is a subclass of "
                                        f"{next(t for t in REPLACED_TYPES if isinstance(m, t)).__name__} "
                                        "(its forward may differ)"))
            elif id(m) not in calls:
                report.left.append(Left(name, "not called in the traced forward"))
    return plan


def _plan_sequential(model: nn.Module, why: str, fuse_conv_lrn: bool = True) -> _Plan:
    plan = _Plan(ApplyReport(method="sequential", trace_error=why))
    report = plan.report
    registrations: dict[int, int] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        registrations[id(m)] = registrations.get(id(m), 0) + 1
    covered: set[int] = set()
    for cname, container in model.named_modules():
        if type(container) is not nn.Sequential:
            continue
        items = list(container._modules.items())
        skip = 0
        for i, (name, m) in enumerate(items):
            qual = f"{cname}.{name}" if cname else name
            if skip:
                skip -= 1
                continue
            if type(m) not in (nn.Conv2d, nn.LocalResponseNorm, nn.MaxPool2d):
                continue
            covered.add(id(m))
            nxt_name, nxt = items[i + 1] if i + 1 < len(items) else (None, None)
            nxt_qual = f"{cname}.{nxt_name}" if nxt_name else None
            if registrations[id(m)] > 1:
                report.left.append(Left(qual, "registered at more than one place (could be called elsewhere)"))
                continue
            if problem := _problem(m):
                report.left.append(Left(qual, problem))
                continue
            nxt_ok = (nxt is not None and registrations[id(nxt)] == 1 and _problem(nxt) is None
                      if type(nxt) in (nn.ReLU, nn.MaxPool2d) else False)
            if type(m) is nn.Conv2d:
                fuse = type(nxt) is nn.ReLU and nxt_ok
                lrn_name, lrn = items[i + 2] if fuse and i + 2 < len(items) else (None, None)
                if (fuse_conv_lrn and type(lrn) is nn.LocalResponseNorm and registrations[id(lrn)] == 1
                        and _problem(lrn) is None and fused_problem(m.out_channels, m.groups) is None):
                    lrn_qual = f"{cname}.{lrn_name}" if cname else lrn_name
                    plan.swaps += [(m, _new_conv_lrn(m, lrn)), (nxt, _identity(nxt)), (lrn, _identity(lrn))]
                    report.replaced.append(Replacement(qual, CONV2D_RELU_LRN, "Conv2dReLULRN", (nxt_qual, lrn_qual)))
                    covered.update((id(nxt), id(lrn)))
                    skip = 2
                    continue
                plan.swaps.append((m, _new_conv(m, relu=fuse)))
                report.replaced.append(Replacement(qual, CONV2D_RELU if fuse else "conv2d",
                                                   f"Conv2dReLU(relu={fuse})", (nxt_qual,) if fuse else ()))
            elif type(m) is nn.LocalResponseNorm:
                fuse = type(nxt) is nn.MaxPool2d and nxt_ok
                plan.swaps.append((m, _new_lrn(m, nxt if fuse else None)))
                report.replaced.append(Replacement(qual, LRN_MAX_POOL2D if fuse else LRN,
                                                   "LRNMaxPool2d" if fuse else "LocalResponseNorm",
                                                   (nxt_qual,) if fuse else ()))
            else:
                plan.swaps.append((m, _new_pool(m)))
                report.replaced.append(Replacement(qual, MAX_POOL2D, "MaxPool2d"))
                continue
            if fuse:
                plan.swaps.append((nxt, _identity(nxt)))
                covered.add(id(nxt))
                skip = 1
    for name, m in model.named_modules():
        if isinstance(m, REPLACED_TYPES) and id(m) not in covered and not type(m).__module__.startswith("alexnet_fast.kernels.nn"):
            report.left.append(Left(name, "not inside an nn.Sequential container (and the forward could not "
                                    "be traced)" if type(m) in REPLACED_TYPES else
                                    f"{type(m).__name__} is a subclass (its forward may differ)"))
    return plan


def _import_block(globals_: dict[str, Any]) -> str:
    """Import statements for the names the generated code uses (what GraphModule pickles)."""
    from torch.fx.graph_module import _format_import_block
    from torch.package import sys_importer

    return _format_import_block(globals_, sys_importer) + "\n"


class TracedForward:
    """A model's forward made from its traced graph (set on the instance by :func:`apply`).

    Holds the generated source (with its imports), so the model still deep-copies (the copy
    gets its own, bound to the copy) and pickles whole (``torch.save(model)``) with this forward
    instead of silently falling back to the class's."""

    def __init__(self, module: nn.Module, source: str):
        self.module, self.source = module, source
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<kernels.apply: traced forward of {type(module).__name__}>", "exec"), namespace)
        self._fn = namespace["forward"]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._fn(self.module, *args, **kwargs)

    def __reduce__(self):
        return TracedForward, (self.module, self.source)

    def __deepcopy__(self, memo: dict) -> "TracedForward":
        return TracedForward(copy.deepcopy(self.module, memo), self.source)

    def __repr__(self) -> str:
        return f"<traced forward of {type(self.module).__name__} (kernels.apply)>"


def _commit(model: nn.Module, plan: _Plan) -> None:
    """Swap the modules (at every name each is registered under) and, if nodes were erased,
    set the traced graph's code as this instance's forward."""
    if plan.erase:
        graph = plan.graph
        for node in plan.erase:
            node.replace_all_uses_with(_first_input(node))
            graph.erase_node(node)
        graph.lint()
        code = graph.python_code("self")
        model.forward = TracedForward(model, _import_block(code.globals) + code.src)
        plan.report.forward_rewritten = True
        plan.report.forward_source = code.src
    new_of = {id(old): new for old, new in plan.swaps}
    for name, m in list(model.named_modules(remove_duplicate=False)):
        if name and id(m) in new_of:
            parent_name, _, attr = name.rpartition(".")
            setattr(model.get_submodule(parent_name), attr, new_of[id(m)])


def apply(model: nn.Module, *, verbose: bool = False, return_report: bool = False, fuse_conv_lrn: bool = True):
    """Replace, in place, what the Triton ops can compute in ``model`` (see the module
    docstring) and return ``model`` -- or ``(model, report)`` with ``return_report=True``.
    ``fuse_conv_lrn=False`` keeps conv + ReLU and LRN (+ pool) apart (the comparison's baseline).
    ``verbose=True`` prints the :class:`ApplyReport`: what was replaced, what was left and why."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"alexnet_fast.kernels.apply expects an nn.Module, got {type(model).__name__}")
    try:
        plan = _plan_fx(model, _trace(model), fuse_conv_lrn)
    except _Untraceable as e:
        plan = _plan_sequential(model, str(e), fuse_conv_lrn)
    if plan.swaps or plan.erase:
        _commit(model, plan)
    if verbose:
        print(plan.report)
    return (model, plan.report) if return_report else model
