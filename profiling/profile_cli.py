"""`alexnet-fast profile`: torch.profiler traces of a few cells and where their time goes.

The bench's flags for one cell or a few (``--variant``, ``--compile-mode``, ``--precision``,
``--batch-size``, ``--pass``, ``--layout single``, ``--model``, ``--device``, sizes, threads),
parsed and refused by the bench's own :func:`profiling.plan.plan_from_args` (so a flag means
the same thing and fails with the same line in both commands), plus ``--steps``,
``--warmup`` and ``--compile-scope``. Each cell is profiled by
:func:`profiling.profiler.profile_cell` into ``<output-dir>/<cell>/`` (trace, tables,
``cell.json``); this module writes the run's ``PROFILE.md`` (every cell's tables on one page),
``profile.json`` and ``layers.png`` (:mod:`profiling.render.profile`).

Defaults: on a CPU eager and compile (both compile scopes), fp32, batch 4, inference, the paper
AlexNet at 227x227; on a GPU every variant, bf16, batch 128, inference. Triton variants without
a GPU run interpreted at the bench's interpreted-check size (``--check-*``), and say so.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from alexnet_fast.io import writable_dir
from alexnet_fast.vocabulary import COMPILE_MODES, LAYOUTS, PASSES, PRECISIONS, VARIANTS

__all__ = ["add_arguments", "run", "DEFAULTS"]

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


def _cells(plan, scopes: list[str]) -> list[dict[str, Any]]:
    cells = []
    for precision in plan.precisions:
        for pass_ in plan.passes:
            for variant in plan.variants:
                interpreted = variant.uses_triton and plan.interpreted
                for batch in [plan.check.batch_size] if interpreted else plan.batch_sizes:
                    for scope in scopes if variant.compiled else [None]:
                        cells.append({"variant": variant.name, "compile_mode": variant.compile_mode,
                                      "compile_scope": scope or "model", "precision": precision, "pass": pass_,
                                      "batch_size": batch, "interpreted": interpreted})
    return cells


def _model_and_inputs(plan, batch: int, reduced: bool):
    """The eager model (seeded) and the cell's inputs, made as the bench makes them."""
    import torch

    from alexnet_fast.profiling.cell import inputs

    if plan.model:
        from alexnet_fast.user_model import load_model

        user = load_model(plan.model, input_size=plan.model_input_size)
        classes = user.num_classes()
        torch.manual_seed(plan.seed)
        model = user.build()
        gen = torch.Generator().manual_seed(plan.seed + batch)
        x = torch.randn(batch, *user.input_shape, generator=gen)
        target = torch.randint(0, classes, (batch,), generator=gen)
        return model, (x, target), f"model {user.spec}"
    from alexnet_fast.model import AlexNet, make_config

    width, size = (plan.check.width_mult, plan.check.input_size) if reduced else (plan.width_mult, plan.input_size)
    config = make_config(plan.preset, width_mult=width, input_size=size)
    torch.manual_seed(plan.seed)
    what = f"{plan.preset} AlexNet, width {width:g}" + (" (the bench's interpreted-check size)" if reduced else "")
    return AlexNet(config), inputs(config, batch, plan.seed, plan.device), what


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
    from tqdm import tqdm

    from alexnet_fast.profiling.profiler import cell_name, profile_cell
    from alexnet_fast.profiling.render.profile import write_summary

    cells = _cells(plan, scopes)
    print(f"profile: {len(cells)} cells on {plan.device} -> {out}", file=sys.stderr)
    results, failed = [], 0
    start = time.perf_counter()
    bar = tqdm(cells, desc="profile", unit="cell", file=sys.stderr, disable=True if args.no_progress else None)
    for c in bar:
        name = cell_name(c["variant"], c["compile_mode"], c["compile_scope"] if c["variant"].endswith("compile") else None,
                         c["precision"], c["batch_size"], c["pass"])
        bar.set_postfix_str(name)
        steps = args.steps or (INTERPRETED_STEPS if c["interpreted"] else STEPS)
        warmup = args.warmup if args.warmup is not None else (INTERPRETED_WARMUP if c["interpreted"] else WARMUP)
        try:
            model, inputs, size = _model_and_inputs(plan, c["batch_size"], reduced=c["interpreted"] and not plan.model)
            result = profile_cell(model, inputs, c["variant"], c["precision"], c["pass"], plan.device, out / name,
                                  steps=steps, warmup=warmup, compile_mode=c["compile_mode"],
                                  compile_scope=c["compile_scope"], threads=plan.threads,
                                  interpreted=c["interpreted"], cold_compile=plan.cold_compile,
                                  extra={"size": size, "cell": name})
        except Exception as e:  # one broken cell must not end the run
            import traceback

            traceback.print_exc(file=sys.stderr)
            print(f"profile: {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            failed += 1
            continue
        results.append(result)
        speed = "interpreted: not a speed" if result.interpreted else f"{result.step_mean_ms:.1f} ms/step"
        tqdm.write(f"{name}: {speed}, trace {result.files['trace']}", file=sys.stderr)
    if results:
        summary = write_summary(results, out)
        print(f"wrote {summary} (+ profile.json, layers.png, {len(results)} cell folders) in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 1 if failed else 0
