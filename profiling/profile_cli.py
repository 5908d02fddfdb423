"""`alexnet-fast profile`: torch.profiler traces of a few cells and where their time goes.

The bench's flags for one cell or a few (``--variant``, ``--compile-mode``, ``--precision``,
``--batch-size``, ``--pass``, ``--layout single``, ``--model``, ``--device``, sizes, threads),
parsed and refused by the bench's own :func:`profiling.plan.plan_from_args` (so a flag means
the same thing and fails with the same line in both commands), plus ``--steps``,
``--warmup`` and ``--compile-scope``. The cells are ``profile`` cells of the one engine
(:meth:`profiling.engine.Engine.cell_profile`, timed by its timer), each profiled into
``<output-dir>/<cell>/`` (trace, tables, ``cell.json``); after each, :class:`ProfileOutput`
rewrites the run's ``PROFILE.md`` (every cell's tables on one page), ``profile.json`` and
``layers.png`` (:mod:`profiling.render.profile`).

Defaults: on a CPU eager and compile (both compile scopes), fp32, batch 4, inference, the paper
AlexNet at 227x227; on a GPU every variant, bf16, batch 128, inference. Triton variants without
a GPU run interpreted at the bench's interpreted-check size (``--check-*``), and say so.
"""

from __future__ import annotations

import argparse
import sys
import time

from alexnet_fast.io import writable_dir
from alexnet_fast.vocabulary import COMPILE_MODES, LAYOUTS, PASSES, PRECISIONS, VARIANTS

__all__ = ["add_arguments", "run", "DEFAULTS", "ProfileOutput"]

# what a plain `alexnet-fast profile` profiles, per device type (configs as data)
DEFAULTS = {
    "cpu": {"variant": ["eager,compile"], "precision": ["fp32"], "batch_size": ["4"], "passes": ["inference"]},
    "cuda": {"variant": [",".join(VARIANTS)], "precision": ["bf16"], "batch_size": ["128"], "passes": ["inference"]},
}
STEPS, WARMUP = 3, 2
INTERPRETED_STEPS, INTERPRETED_WARMUP = 1, 1  # the interpreter's steps take seconds and time nothing


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from alexnet_fast.profiling.profiler import COMPILE_SCOPES

    parser.add_argument("--variant", action="append", metavar="NAMES",
                        help=f"variants ({', '.join(VARIANTS)}); repeatable or comma-separated "
                             f"(default: eager,compile on a CPU, all on a GPU)")
    parser.add_argument("--compile-mode", action="append", metavar="MODES",
                        help=f"torch.compile modes for the compiled variants ({', '.join(COMPILE_MODES)})")
    parser.add_argument("--compile-scope", action="append", metavar="SCOPES",
                        help=f"compiled variants: {', '.join(COMPILE_SCOPES)} (default: both; 'layers' compiles each "
                             f"layer on its own so the trace can name it, 'model' is the whole model as the bench "
                             f"runs it)")
    parser.add_argument("--precision", action="append", metavar="NAMES",
                        help=f"{', '.join(PRECISIONS)} (default: fp32 on a CPU, bf16 on a GPU)")
    parser.add_argument("--batch-size", action="append", metavar="SIZES", help="batch sizes (default: 4 CPU, 128 GPU)")
    parser.add_argument("--pass", dest="passes", action="append", metavar="PASSES",
                        help=f"{', '.join(PASSES)} (default: inference)")
    parser.add_argument("--layout", action="append", metavar="LAYOUT",
                        help="single (the only layout a profile can trace: one process, one device)")
    parser.add_argument("--model", default=None, metavar="MODULE:CALLABLE",
                        help="profile your own model (as bench --model); its leaf modules are the layers")
    parser.add_argument("--preset", default=None, help="paper (default) or torchvision")
    parser.add_argument("--width-mult", type=float, default=None, help="scale every layer's width")
    parser.add_argument("--input-size", type=int, default=None, help="input height = width")
    parser.add_argument("--check-width-mult", type=float, default=None, help="interpreted triton cells: width")
    parser.add_argument("--check-input-size", type=int, default=None, help="interpreted triton cells: input size")
    parser.add_argument("--check-batch-size", type=int, default=None, help="interpreted triton cells: batch")
    parser.add_argument("--steps", type=int, default=None, help=f"profiled steps (default {STEPS}; interpreted: "
                                                                 f"{INTERPRETED_STEPS})")
    parser.add_argument("--warmup", type=int, default=None, help=f"steps before profiling (default {WARMUP})")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: idle cores)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if available)")
    parser.add_argument("--output-dir", default="runs/profile", help="where the traces and tables go "
                                                                     "(default: runs/profile)")
    parser.add_argument("--warm-compile-cache", action="store_true",
                        help="reuse inductor's on-disk cache (default: a fresh one per cell, as the bench)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _bench_args(args: argparse.Namespace, device_type: str) -> argparse.Namespace:
    """The bench's namespace (every bench flag at its default) with this command's flags and
    the profile defaults laid over it, for :func:`profiling.plan.plan_from_args`."""
    from alexnet_fast.profiling.bench import add_arguments as bench_arguments

    parser = argparse.ArgumentParser(add_help=False)
    bench_arguments(parser)
    ns = parser.parse_args([])
    for key, value in vars(args).items():
        if hasattr(ns, key) and value is not None:
            setattr(ns, key, value)
    for key, value in DEFAULTS[device_type].items():
        if getattr(args, key, None) is None:
            setattr(ns, key, value)
    ns.layer = None if args.model else ["none"]  # the profile's layers are its own (profiling.profiler.layer_groups)
    ns.repeats = None
    return ns


def _scopes(args: argparse.Namespace) -> list[str]:
    from alexnet_fast.profiling.plan import _choose, _split
    from alexnet_fast.profiling.profiler import COMPILE_SCOPES

    given = _choose(_split(args.compile_scope), COMPILE_SCOPES, "compile scope")
    if args.model:
        if given and "layers" in given:
            raise ValueError("--compile-scope layers compiles each AlexNet layer on its own; a --model has no "
                             "layer roles to split it by: use --compile-scope model")
        return ["model"]
    return given or list(COMPILE_SCOPES)


def _refuse_layouts(args: argparse.Namespace) -> None:
    from alexnet_fast.profiling.plan import _split

    other = [x for x in (_split(args.layout) or []) if x != "single" and x in LAYOUTS]
    if other:
        raise ValueError(f"--layout {other[0]}: a profile traces one process on one device; {other[0]} runs two "
                         f"ranks whose traces and collectives would have to be merged -- profile --layout single, "
                         f"or time {other[0]} with `alexnet-fast bench --layout {other[0]}`")


def _cells(plan, scopes: list[str], args: argparse.Namespace) -> list:
    """The run's ``profile`` cells (:class:`profiling.cell_types.Cell`) for the engine."""
    from alexnet_fast.profiling.cell_types import Cell
    from alexnet_fast.profiling.estimates import assumed_compiles, profile_estimate
    from alexnet_fast.profiling.profiler import cell_name

    cells = []
    for precision in plan.precisions:
        for pass_ in plan.passes:
            for variant in plan.variants:
                interpreted = variant.uses_triton and plan.interpreted
                reduced = interpreted and not plan.model
                width, size = (plan.check.width_mult, plan.check.input_size) if reduced else (plan.width_mult,
                                                                                            plan.input_size)
                for batch in [plan.check.batch_size] if interpreted else plan.batch_sizes:
                    for scope in scopes if variant.compiled else [None]:
                        params = {"variant": variant.name, "compile_mode": variant.compile_mode,
                                  "compile_scope": scope or "model", "precision": precision, "pass": pass_,
                                  "batch_size": batch, "interpreted": interpreted,
                                  "steps": args.steps or (INTERPRETED_STEPS if interpreted else STEPS),
                                  "warmup": args.warmup if args.warmup is not None else
                                  (INTERPRETED_WARMUP if interpreted else WARMUP),
                                  "model": plan.model, "model_input_size": plan.model_input_size,
                                  "preset": plan.preset, "width_mult": width, "input_size": size,
                                  "size": f"model {plan.model}" if plan.model else
                                  f"{plan.preset} AlexNet, width {width:g}"
                                  + (" (the bench's interpreted-check size)" if reduced else "")}
                        name = cell_name(variant.name, variant.compile_mode, scope, precision, batch, pass_)
                        cells.append(Cell("profile", name, profile_estimate(params, first=not cells), params,
                                          assumed_compiles("profile", params)))
    return cells


class ProfileOutput:
    """The engine's output for ``alexnet-fast profile``: the cells' folders in ``dir``, and
    after every profiled cell the run's ``PROFILE.md``, ``profile.json`` and ``layers.png``."""

    def __init__(self, directory):
        self.dir = self.profile_dir = directory
        self._written = 0

    def write(self, engine) -> None:
        from alexnet_fast.profiling.render.profile import write_summary

        if len(engine.profiles) > self._written:
            self.summary = write_summary(engine.profiles, self.dir)
            self._written = len(engine.profiles)


def run(args: argparse.Namespace) -> int:
    from alexnet_fast.profiling.plan import parse_device, plan_from_args, use_interpreter_without_gpu

    use_interpreter_without_gpu(args.device)  # before anything imports triton
    try:
        device = parse_device(args.device)
        _refuse_layouts(args)
        scopes = _scopes(args)
        for name, value, low in (("--steps", args.steps, 1), ("--warmup", args.warmup, 0)):
            if value is not None and value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value}")
        import torch

        plan = plan_from_args(_bench_args(args, torch.device(device).type))
        out = writable_dir(args.output_dir)
    except ValueError as e:
        print(f"alexnet-fast profile: {e}", file=sys.stderr)
        return 2
    from alexnet_fast.profiling.engine import Engine
    from alexnet_fast.profiling.interrupts import Interrupted
    from alexnet_fast.profiling.render.profile import INTERPRETED

    cells = _cells(plan, scopes, args)
    print(f"profile: {len(cells)} cells on {plan.device} -> {out}", file=sys.stderr)
    output = ProfileOutput(out)
    engine = Engine(plan.device, output, progress=False if args.no_progress else None, threads=plan.threads,
                    seed=plan.seed, cold_compile=plan.cold_compile)
    start = time.perf_counter()
    try:
        rows = engine.run(cells)
    except Interrupted as e:
        print(f"alexnet-fast profile: stopped by {e}; the cells profiled so far are in {out}", file=sys.stderr)
        return 128 + e.signum
    for row in rows:
        if row.get("status") in ("profiled", "interpreted"):
            speed = INTERPRETED if row["status"] == "interpreted" else f"{row['profile_step_ms']:.1f} ms/step"
            print(f"{row['cell']}: {speed}, trace {row['trace']}", file=sys.stderr)
        else:
            print(f"profile: {row['cell']} {row.get('status')}: {row.get('note')}", file=sys.stderr)
    if engine.profiles:
        print(f"wrote {output.summary} (+ profile.json, layers.png, {len(engine.profiles)} cell folders) in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0 if len(engine.profiles) == len(cells) else 1
