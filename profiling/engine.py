"""The one engine: runs cells (:class:`profiling.cell_types.Cell`) one after another, each kind in
one method ``cell_<kind>``, and writes its output after every cell.

Whoever asks -- ``alexnet-fast bench`` (:func:`profiling.plan.plan_cells`) or a GPU suite
(:func:`profiling.suites.build_cells`) -- the cells are data and this class runs them. Every
measured cell is checked against eager with the same weights and input by the one judge
(:mod:`profiling.judge`) before the one timer (:mod:`profiling.timers`) times it (a row with a
baseline, eager's, in paired rounds with it, with the interference seen through the cell): this module
and the ranks of its two-rank cells (:mod:`profiling.layout_bench`) are their only callers, and
no other class runs cells (tests/test_one_engine.py). A cell that fails its check is ``failed``
and not timed; without a GPU the Triton variants run interpreted and their rows say
``interpreted``, never a speed.

Around the cells: the budget (a cell whose estimate would end past it is ``skipped``;
subprocesses get the time left as their timeout), the autotune limit, SIGINT / SIGTERM
(:mod:`profiling.interrupts`: the cell in progress is ``interrupted``, the output written), a
stream of the run's own on a GPU (so a backward can be captured in a CUDA graph for the kernel
time), and dynamo's compile counter around each cell (``compiles`` beside the estimate's).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import importlib.util
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import torch
from torch import nn

from alexnet_fast.precision import BACKEND_DEFAULT_FP32, Precision, policy
from alexnet_fast.vocabulary import PRECISIONS, TRITON_OPS, layer_passes_of, variant_label
from alexnet_fast.profiling import layout_bench
from alexnet_fast.profiling.cell import (AlexNetSource, checked_grads, compile_cache, eager_step, frames_compiled, inference_step,
                            layer_backward, layer_forward, reference, train_step, unit_block)
from alexnet_fast.profiling.cell_types import LAYER_IMPLS, Cell
from alexnet_fast.profiling.flops import (add_rates, backward_cost, bytes_model_for, layer_units, needs_input_grad, runs_fused,
                             unit_cost)
from alexnet_fast.profiling.interrupts import Interrupted, PreflightFailed, progress_bar, signals_interrupt, stop_signal
from alexnet_fast.profiling.judge import floor, judge, verdict_columns
from alexnet_fast.profiling.telemetry import Telemetry, merge_samples, peak_memory
from alexnet_fast.profiling.interference import Sampler
from alexnet_fast.profiling.timers import fixed_threads, measure, measure_paired, time_first_call

__all__ = ["Engine", "Output", "one_line", "INTERPRETED_NOTE"]

INTERPRETED_NOTE = "Triton interpreter on CPU: equivalence at reduced size only; timing would mean nothing"
NO_BF16_NOTE = "Triton's interpreter has no bf16 arithmetic"


class Output(Protocol):
    """Where a run's results go; written after every cell."""

    dir: Path | None

    def write(self, engine: "Engine") -> None: ...


def one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


class Engine:
    """Runs cells and writes ``output`` after each (module docstring).

    ``budget_s``: no cell starts that would end past it (None: no budget). ``warmup`` /
    ``repeats`` / ``threads``: the timer's. ``cold_compile``: every cell compiles with an
    empty inductor cache. ``compile_backend``: torch.compile's backend for the compiled
    variants (the CPU smoke run's ``aot_eager``: dynamo's frames and AOT autograd as with
    inductor, without its code generation). ``autotune_max_configs``: every autotuner tries at most this many
    configs (in the layout ranks and the pytest subprocess too). ``build_variant``: the one
    way variants are built (tests pass a stand-in). ``target_half_width`` / ``pair_cap_s``: a
    non-baseline row's paired rounds stop there (default cap 20 s on CPU, 30 s on a GPU)."""

    def __init__(self, device: str, output: Output, *, budget_s: float | None = None, progress: bool | None = None,
                 build_variant: Callable[..., nn.Module] | None = None, warmup: int = 2, repeats: int = 5,
                 threads: int | None = None, seed: int = 0, cudnn_benchmark: bool = True, cold_compile: bool = False,
                 autotune_max_configs: int | None = None, layout_world_size: int = 2,
                 compile_backend: str = "inductor", meta: dict[str, Any] | None = None,
                 target_half_width: float = 0.03, pair_cap_s: float | None = None):
        self.device = torch.device(device)
        self.output = output
        self.budget_s = budget_s
        self.progress = progress
        if build_variant is None:
            from alexnet_fast.variants import build_variant
        self.build_variant = build_variant
        self.warmup, self.repeats, self.threads, self.seed = warmup, repeats, threads, seed
        self.pairing = {"target_half_width": target_half_width,
                        "time_cap_s": pair_cap_s or (30.0 if self.device.type == "cuda" else 20.0)}
        self.sampler = Sampler(pids=("self", "children"))
        self.cudnn_benchmark, self.cold_compile = cudnn_benchmark, cold_compile
        self.autotune_max_configs = autotune_max_configs
        self.layout_world_size = layout_world_size
        self.compile_backend = compile_backend
        self.meta: dict[str, Any] = dict(meta or {})
        self.rows: list[dict[str, Any]] = []
        self.records: list[dict[str, Any]] = []
        self.run_id = time.strftime("%Y%m%dT%H%M%S")
        self.telemetry = Telemetry(self.device)
        self.peaks = None
        self.preflight_record: dict | None = None
        self.launched: list[dict[str, Any]] = []  # Triton launches of this run (the codegen cell's input)
        self.profiles: list = []  # the profile cells' results (profiling.profiler.ProfileResult)
        self.started = time.perf_counter()
        self._env: dict[str, Any] = {}
        self._cache: dict[Any, Any] = {}
        self._stream = None

    @property
    def interpreted(self) -> bool:
        """Triton runs in its interpreter (no GPU)."""
        return self.device.type != "cuda"

    # ------------------------------------------------------------------ the run
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def time_left(self) -> float | None:
        return None if self.budget_s is None else self.budget_s - self.elapsed()

    def subprocess_timeout(self, default: float) -> float:
        """A subprocess's timeout: the budget left (minus the margin to write the output), at
        most ``default``."""
        from alexnet_fast.profiling.estimates import WRITE_MARGIN_S

        left = self.time_left()
        return default if left is None else max(1.0, min(default, left - WRITE_MARGIN_S))

    def write(self) -> None:
        self.meta["elapsed_s"] = round(self.elapsed(), 1)
        self.output.write(self)

    def _row(self, **fields) -> dict[str, Any]:
        row = {"layout": "single", "warmup": self.warmup, "repeats": self.repeats, "run_id": self.run_id,
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")}
        row.update(self._env)
        if self.compile_backend != "inductor":
            row["compile_backend"] = self.compile_backend
        row.update(fields)
        return row

    @contextlib.contextmanager
    def _process_state(self):
        """The run's device context, cuDNN setting, threads and autotune limit; all restored
        after (also on Ctrl-C: they are not ours to keep)."""
        from alexnet_fast.profiling.autotune_limit import limit_autotune_configs

        cudnn_before = torch.backends.cudnn.benchmark
        on_device = torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()
        try:
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = self.cudnn_benchmark
            with fixed_threads(self.threads), on_device, limit_autotune_configs(self.autotune_max_configs):
                with self._own_stream():
                    yield
        finally:
            self.telemetry.close()
            torch.backends.cudnn.benchmark = cudnn_before

    @contextlib.contextmanager
    def _own_stream(self):
        """CUDA: every cell on a stream of the run's own, not the legacy default one, so a
        backward (whose ops run on their forward's stream) can be captured in a CUDA graph."""
        if self.device.type != "cuda":
            yield
            return
        self._stream = torch.cuda.Stream(self.device)
        with torch.cuda.stream(self._stream):
            yield
        torch.cuda.synchronize(self.device)

    def run(self, cells: Iterable[Cell]) -> list[dict[str, Any]]:
        cells = list(cells)
        from alexnet_fast.profiling.results import environment

        self.records = [{"kind": c.kind, "name": c.name, "estimate_s": c.estimate_s, "status": "pending",
                         "compiles_assumed": c.compiles} for c in cells]
        with self._process_state(), signals_interrupt():
            self._env = environment(str(self.device), torch.get_num_threads())
            self._env["cudnn_benchmark"] = self.cudnn_benchmark if self.device.type == "cuda" else None
            self._env["compile_cache"] = "cold (fresh inductor cache per cell)" if self.cold_compile else "warm"
            self._env["load_avg_1m"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
            bar = progress_bar(cells, self.progress)
            try:
                for i, cell in enumerate(bar):
                    self._run_cell(cell, self.records[i], bar)
            except PreflightFailed:
                self.write()
                raise
            except BaseException as e:
                signum = stop_signal(e)
                if signum is None:
                    raise
                for r in self.records:
                    if r["status"] == "running":
                        r.update(status="interrupted", note=f"{signal.Signals(signum).name} during the cell")
                    elif r["status"] == "pending":
                        r.update(status="not run", note=f"the run was stopped by {signal.Signals(signum).name}")
                self.meta["interrupted"] = signal.Signals(signum).name
                self.write()
                raise Interrupted(signum) from None
        return self.rows

    def _run_cell(self, cell: Cell, record: dict, bar) -> None:
        left = self.time_left()
        if left is not None and cell.estimate_s > left:
            record.update(status="skipped", note=f"budget: ~{cell.estimate_s:.0f} s needed, {max(left, 0):.0f} s left")
            self.write()
            return
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{cell.kind} {cell.name}"[:60])
        elif self.progress:
            print(f"[{self.elapsed():6.0f} s] {cell.kind} {cell.name} (~{cell.estimate_s:.0f} s)", file=sys.stderr,
                  flush=True)
        record["status"] = "running"
        self.write()
        start, frames, seen = time.perf_counter(), frames_compiled(), None
        try:
            with compile_cache(self.cold_compile and cell.kind in ("model", "layer", "anchor")), \
                    self.sampler.cell(threads=self.threads) as seen:
                new_rows = getattr(self, f"cell_{cell.kind}")(cell.params)
            record["status"] = "done"
        except PreflightFailed as e:
            record.update(status="failed", note=str(e))
            for r in self.records:
                if r["status"] == "pending":
                    r.update(status="not run", note="the preflight failed")
            raise
        except Exception as e:  # one broken cell must not end the run
            signum = stop_signal(e)
            if signum is not None:
                raise Interrupted(signum) from None
            traceback.print_exc(file=sys.stderr)
            new_rows = [self._row(**(cell.what or {"scope": cell.kind}), status="error", note=one_line(e))]
            record.update(status="error", note=one_line(e))
        finally:
            record["elapsed_s"] = round(time.perf_counter() - start, 2)
            record["compiles"] = frames_compiled() - frames
        seen_columns = seen.columns() if seen is not None else {}
        for row in new_rows:
            row.setdefault("cell_kind", cell.kind)
            row.setdefault("cell", cell.name)
            if row.get("timer") is not None:  # a timed row: the interference seen through its cell
                row.update(seen_columns)
        self.rows.extend(new_rows)
        if any(r.get("status") in ("error", "failed") for r in new_rows) and record["status"] == "done":
            bad = [r for r in new_rows if r.get("status") in ("error", "failed")]
            record["note"] = f"{len(bad)} row(s) {', '.join(sorted({r['status'] for r in bad}))}"
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.write()

    # ------------------------------------------------------------------ shared pieces
    def _time(self, fn: Callable[[], object], *, kernel_time: bool = False,
              baseline: Callable[[], object] | None = None) -> dict[str, Any]:
        """The timer's columns for ``fn``; with a ``baseline``, paired rounds and the speedup's."""
        before = self.telemetry.sample()
        if baseline is None:
            t = measure(fn, device=self.device, warmup=self.warmup, repeats=self.repeats, threads=self.threads,
                        kernel_time=kernel_time)
        else:
            t = measure_paired(baseline, fn, device=self.device, warmup=self.warmup, threads=self.threads,
                               kernel_time=kernel_time, seed=self.seed, **self.pairing)
        return {**t.columns(), **peak_memory(fn, self.device), **merge_samples(before, self.telemetry.sample())}

    def _build(self, model: nn.Module, variant: str, compile_mode: str = "default", **options) -> nn.Module:
        torch._dynamo.reset()  # static shapes per cell, and compile time not shared between cells
        self._cache.pop("compiled", None)  # a model kept for a profile cell (cell_profile) would recompile now
        if self.compile_backend != "inductor":
            options["compile_backend"] = self.compile_backend
        return self.build_variant(copy.deepcopy(model), variant, compile_mode=compile_mode, copy_model=False, **options)

    def _alexnet(self, preset: str, width_mult: float, input_size: int | None) -> AlexNetSource:
        key = ("alexnet", preset, width_mult, input_size)
        if key not in self._cache:
            self._cache[key] = AlexNetSource(preset, width_mult, input_size, self.seed, self.device)
        return self._cache[key]

    def _source(self, p: dict):
        if p.get("model"):
            key = ("user", p["model"], p.get("model_input_size"))
            if key not in self._cache:
                from alexnet_fast.profiling.user_bench import UserModelSource

                self._cache[key] = UserModelSource(p["model"], p.get("model_input_size"), self.seed, self.device)
            if p["variant"].startswith("triton"):
                self._cache[key].explain()
            return self._cache[key]
        return self._alexnet(p.get("preset", "paper"), p.get("width_mult", 1.0), p.get("input_size"))

    def _peak(self, precision: str, bound: str) -> float | None:
        if self.peaks is None and self.device.type == "cuda":
            from alexnet_fast.profiling.roofline import known_peaks
            from alexnet_fast.profiling.results import device_name

            self.peaks = known_peaks(device_name(str(self.device)))
        if self.peaks is None:
            return None
        return self.peaks.gflops.get(precision) if bound == "compute" else self.peaks.gbytes_per_s

    # ------------------------------------------------------------------ cells: machine
    def cell_preflight(self, p: dict) -> list[dict]:
        from alexnet_fast.profiling.preflight import preflight, summary

        record = preflight(str(self.device), launch=p.get("launch", True), compile_backend=self.compile_backend)
        self.preflight_record = record
        if self.output.dir is not None:
            from alexnet_fast.io import atomic_write_json

            atomic_write_json(self.output.dir / "preflight.json", record)
        self.meta["preflight"] = summary(record)
        if not record["ok"]:
            raise PreflightFailed(record)
        return [self._row(scope="preflight", layer="-", status="ok", note=summary(record), seconds=record["seconds"])]

    def cell_peaks(self, p: dict) -> list[dict]:
        from alexnet_fast.profiling.roofline import device_peaks

        precisions = tuple(pr for pr in p.get("precisions", PRECISIONS)
                           if pr != "tf32" or self.device.type == "cuda")
        peaks = device_peaks(str(self.device), precisions, threads=self.threads, gemm_n=p.get("gemm_n"),
                             copy_mib=p.get("copy_mib"))
        self.peaks = peaks
        self.meta.update(peaks_gflops=peaks.gflops, peak_gbytes_per_s=peaks.gbytes_per_s, peaks_source=peaks.source)
        rows = [self._row(scope="peak", layer="gemm", op="gemm", precision=pr, status="peak", layout="-",
                          gflops_per_s=v, note=peaks.source) for pr, v in peaks.gflops.items()]
        rows.append(self._row(scope="peak", layer="copy", op="copy", precision="-", status="peak", layout="-",
                              gbytes_per_s=peaks.gbytes_per_s, note=peaks.source))
        return rows

    # ------------------------------------------------------------------ cells: per layer
    def cell_layer(self, p: dict) -> list[dict]:
        """One unit, one implementation, one precision: each pass of ``p["passes"]``
        (``fwd``, ``bwd``) judged against eager fp64, then timed with the kernel time."""
        impl = LAYER_IMPLS[p["impl"]]
        mode = p.get("compile_mode", "default")
        precision, batch = p["precision"], p["batch_size"]
        source = self._alexnet(p.get("preset", "paper"), p.get("width_mult", 1.0), p.get("input_size"))
        unit = source.unit(p["unit"])
        interpreted = impl.variant.startswith("triton") and self.interpreted and unit.op in TRITON_OPS
        base = dict(scope="layer", layer=unit.name, op=unit.op, impl=p["impl"], variant=impl.variant,
                    label=variant_label(impl.variant, mode), compile_mode=mode if impl.variant.endswith("compile") else "-",
                    precision=precision, batch_size=batch, memory_format=impl.memory_format, **source.fields(),
                    check_size=p.get("check_size", "full"))
        if interpreted and precision == "bf16":
            return [self._row(**base, **{"pass": pass_}, status="error", note=NO_BF16_NOTE) for pass_ in p["passes"]]
        prec = policy(precision)
        block = unit_block(source.model(), unit).eval()
        act = source.activation(unit, batch)
        refs, g = source.layer_refs(unit, block, act, precision, batch)
        fmt = torch.channels_last if impl.memory_format == "nhwc" and act.dim() == 4 else torch.contiguous_format
        x = act.to(prec.dtype).contiguous(memory_format=fmt)
        built = self._build(block.to(prec.dtype), impl.variant, mode, **dict(impl.options)).eval()
        # the baseline of a speedup: the eager NCHW block, timed in the same rounds
        eager = None if p["impl"] == "eager-nchw" else (block, act.to(prec.dtype).contiguous(), g.to(prec.dtype).contiguous())
        if fmt == torch.channels_last:
            built = built.to(memory_format=torch.channels_last)
        if impl.variant.startswith("triton") and unit.op in TRITON_OPS:
            self.launched.append({"preset": source.config.name, "unit": unit.name, "op": unit.op,
                                  "dtype": precision, "passes": list(p["passes"]), "batch": batch})
        rows = []
        with prec.flags():
            for pass_ in p["passes"]:
                row = self._row(**base, **{"pass": pass_})
                try:
                    row.update(self._layer_pass(unit, built, x, g.to(prec.dtype).contiguous(memory_format=fmt),
                                                pass_, refs[pass_], precision, batch, impl.variant, interpreted, eager))
                except Exception as e:
                    traceback.print_exc(file=sys.stderr)
                    row.update(status="error", note=one_line(e))
                rows.append(row)
        del built
        return rows

    def _layer_pass(self, unit, built, x, g, pass_, ref, precision, batch, variant, interpreted, eager) -> dict:
        if pass_ == "fwd":
            prepare_s, step = 0.0, layer_forward(built, x)
            check = lambda out: {"out": out}  # noqa: E731
        else:
            prepare_s, step = time_first_call(lambda: layer_backward(built, x, g, input_grad=needs_input_grad(unit)),
                                              self.device)
            check = lambda grads: grads  # noqa: E731
        first_s, out = time_first_call(step, self.device)
        verdict = judge(check(out), ref, floor(precision, "inference" if pass_ == "fwd" else "train"))
        row = {"first_call_s": None if interpreted else round(prepare_s + first_s, 3),
               "compile_s": None if interpreted else prepare_s + first_s,
               **verdict_columns(verdict, "inference" if pass_ == "fwd" else "train")}
        if pass_ == "bwd":  # the gradients' errors under the forward's column names: one table for both passes
            row["max_abs_err"], row["max_rel_err"] = row.pop("grad_max_abs_err"), row.pop("grad_max_rel_err")
        if pass_ == "fwd":
            cost = unit_cost(unit, batch, precision)
            model_name = bytes_model_for(variant)
            flops, nbytes, min_bytes = cost.flops, cost.bytes(model_name), cost.bytes_fused
        else:
            flops, min_bytes = backward_cost(unit, batch, precision)
            model_name, nbytes = "fused", min_bytes
        row.update(flops=flops, bytes=nbytes, bytes_model=model_name, intensity=flops / nbytes)
        if not verdict["equivalent"]:
            row["status"] = "failed"
            return row
        if interpreted:
            row.update(status="interpreted", note="Triton interpreter on CPU: equivalence at reduced size only")
            return row
        row["status"] = "ok"
        baseline = None if eager is None else layer_forward(*eager[:2]) if pass_ == "fwd" else \
            layer_backward(*eager, input_grad=needs_input_grad(unit))
        row.update(self._time(step, kernel_time=True, baseline=baseline))
        add_rates(row, flops, nbytes, model_name, batch)
        # % of peak: TFLOP/s of the precision for conv+ReLU (compute-bound), HBM bandwidth against
        # the minimum bytes (what a fused kernel must move) for the rest, on the kernel time if any
        ms = row.get("kernel_ms") or row["median_ms"]
        bound = "compute" if unit.op in ("conv2d_relu", "fc_relu", "fc") else "memory"
        peak = self._peak(precision, bound)
        rate = flops / (ms * 1e-3) / 1e9 if bound == "compute" else min_bytes / (ms * 1e-3) / 1e9
        row.update(bound=bound, pct_peak=100 * rate / peak if peak else None)
        return row

    # ------------------------------------------------------------------ cells: whole model
    def cell_model(self, p: dict) -> list[dict]:
        """The whole network (``p["model"]``: a ``--model`` factory instead of this
        project's AlexNet), one variant, precision, batch and pass, on one device or two
        ranks (``p["layout"]``)."""
        from alexnet_fast.profiling.plan import VariantSpec

        variant = VariantSpec(p["variant"], p.get("compile_mode", "default"))
        precision, batch, pass_ = p["precision"], p["batch_size"], p["pass"]
        layout = p.get("layout", "single")
        prec = BACKEND_DEFAULT_FP32 if p.get("tf32") == "defaults" else policy(precision)
        source = self._source(p)
        base = dict(scope="model", layer="model", op="model", variant=variant.name, label=variant.label,
                    compile_mode=variant.compile_mode if variant.compiled else "-", precision=precision,
                    batch_size=batch, **{"pass": pass_}, layout=layout, **source.fields(),
                    check_size=p.get("check_size", "full"))
        interpreted = variant.uses_triton and self.interpreted
        if interpreted and precision == "bf16":
            return [self._row(**base, status="error", note=NO_BF16_NOTE)]
        if layout != "single":
            result = self._layout_result(p, variant, interpreted)
        else:
            result = self._check_and_time_model(source, variant, prec, precision, batch, pass_, timed=not interpreted)
            if variant.uses_triton and isinstance(source, AlexNetSource):
                units = layer_units(source.config)
                self.launched += [{"preset": source.config.name, "unit": u.name, "op": u.op, "dtype": precision,
                                   "passes": list(layer_passes_of(pass_)), "batch": batch}
                                  for u in units if u.op in TRITON_OPS and not runs_fused(u, units)]
        row = self._row(**{**base, **result})
        if interpreted or not row["equivalent"]:  # the interpreter's time is no speed; a failed cell has none
            for key in [k for k in row if k.endswith("_ms") or k in ("timer", "images_per_s")]:
                del row[key]
        if interpreted:
            row.update(status="interpreted" if row["equivalent"] else "failed", compile_s=None,
                       note=source.interpreted_note if hasattr(source, "interpreted_note") else INTERPRETED_NOTE)
            return [row]
        row["status"] = "ok" if row["equivalent"] else "failed"
        return [source.add_rates(row, variant.name, precision, batch, pass_)]

    def _check_and_time_model(self, source, variant, prec: Precision, precision: str, batch: int, pass_: str,
                              timed: bool) -> dict[str, Any]:
        """Equivalence of one model cell, then (if ``timed`` and equivalent) its timing,
        with the precision's TF32 flags held for the check and the timing alike."""
        x, target = source.inputs(batch)
        key = ("model_ref", id(source), batch, pass_, prec)
        if key not in self._cache:
            self._cache[key] = reference(source.model(), x, target, pass_, prec)
        ref = self._cache[key]
        model = self._build(source.model(), variant.name, variant.compile_mode)
        out: dict[str, Any] = {}
        if pass_ == "inference":
            step = inference_step(model.eval(), x, prec)
            with prec.flags():
                out["compile_s"], logits = time_first_call(step, self.device)
            verdict = judge({"logits": logits}, ref, floor(precision, pass_))
        else:
            grads, out["loss_scale"] = checked_grads(model, x, target, prec)
            verdict = judge(grads, ref, floor(precision, pass_))
            step = train_step(model, x, target, prec, init_scale=out["loss_scale"])
        out.update(verdict_columns(verdict, pass_))
        if timed and out["equivalent"]:
            with prec.flags():
                if pass_ == "train":
                    out["compile_s"], _ = time_first_call(step, self.device)
                baseline = None if variant.name == "eager" else eager_step(
                    self.build_variant(copy.deepcopy(source.model()), "eager", copy_model=False), x, target, pass_,
                    prec, out.get("loss_scale"))
                out.update(self._time(step, baseline=baseline))
                # the TF32 flags the timed step ran under (an external figure is matched by what ran)
                out.update(tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                           tf32_cudnn=torch.backends.cudnn.allow_tf32)
        if variant.compiled:  # a profile cell of this cell next reuses it (cell_profile): no second compile
            self._cache["compiled"] = ((variant.name, variant.compile_mode, precision, batch, pass_, id(source)), model)
        return out

    def _layout_result(self, p: dict, variant, interpreted: bool) -> dict[str, Any]:
        """A two-rank cell (:func:`profiling.layout_bench.bench_layout`), its ranks given the
        time left as their timeout and the run's autotune limit."""
        from alexnet_fast.layouts.comm import DEFAULT_TIMEOUT_S

        with layout_bench.ranks_share_gpu(p.get("share_gpu", False)):
            return layout_bench.bench_layout(
                p["layout"], variant.name, p["precision"], p["batch_size"], p["pass"], preset=p.get("preset", "paper"),
                width_mult=p.get("width_mult", 1.0), input_size=p.get("input_size"), warmup=self.warmup,
                repeats=self.repeats, compile_mode=variant.compile_mode, device=self.device.type,
                world_size=self.layout_world_size, seed=self.seed, timed=not interpreted,
                timeout_s=self.subprocess_timeout(DEFAULT_TIMEOUT_S), autotune_max_configs=self.autotune_max_configs,
                **self.pairing)

    cell_anchor = cell_model
    cell_layout = cell_model

    # ------------------------------------------------------------------ cells: torch.profiler
    def cell_profile(self, p: dict) -> list[dict]:
        """One cell under torch.profiler (:func:`profiling.profiler.profile_params`), timed
        without it by the one timer; a compiled variant reuses the model cell's just before it."""
        from alexnet_fast.profiling.profiler import profile_params

        fields = profile_params(
            p, self._source(p), self.device, getattr(self.output, "profile_dir", None) or Path(self.output.dir or ".")
            / "profile", timer=lambda step, n: measure(step, device=self.device, warmup=0, repeats=n, threads=self.threads),
            first_call=time_first_call, compiled=self._cache.pop("compiled", None), threads=self.threads,
            cold_compile=self.cold_compile, compile_backend=self.compile_backend, results=self.profiles)
        return [self._row(**fields)]

    # ------------------------------------------------------------------ cells: the ops' host cost
    def cell_dispatch(self, p: dict) -> list[dict]:
        """Per unit: the Triton op's host path with its launches stubbed against aten's on
        meta tensors, forward and backward, on the host clock (:mod:`profiling.dispatch`)."""
        from alexnet_fast.profiling.dispatch import dispatch_cases, launches_stubbed

        precision, batch = p["precision"], p["batch_size"]
        prec = policy(precision)
        source = self._alexnet(p.get("preset", "paper"), p.get("width_mult", 1.0), p.get("input_size"))
        rows = []
        for name in p["units"]:
            unit = source.unit(name)
            block = unit_block(source.model(), unit).eval().to(prec.dtype)
            x = source.activation(unit, batch).to(prec.dtype).contiguous(memory_format=torch.channels_last)
            tri = self._build(block, "triton").eval().to(memory_format=torch.channels_last)
            with launches_stubbed() as launches, prec.flags():
                for case in dispatch_cases(block, tri, x, input_grad=needs_input_grad(unit)):
                    del launches[:]
                    t = measure(case.step, device="cpu", warmup=self.warmup, repeats=self.repeats, threads=self.threads)
                    rows.append(self._row(scope="dispatch", layer=unit.name, op=unit.op, impl=case.impl,
                                          **{"pass": case.pass_}, precision=precision, batch_size=batch,
                                          method=case.method, status="ok", median_us=t.median_ms * 1e3,
                                          p20_us=t.p20_ms * 1e3, p80_us=t.p80_ms * 1e3, timer=t.method,
                                          launches_per_call=(len(launches) // max(1, self.warmup + self.repeats))
                                          if case.impl == "triton" else None))
        return rows

    # ------------------------------------------------------------------ cells: autotune, codegen
    def cell_autotune(self, p: dict) -> list[dict]:
        from alexnet_fast.profiling.autotune_limit import chosen_configs

        rows = [self._row(scope="autotune", layer="-", status="ok" if r["tuned"] else "untuned", **r)
                for r in chosen_configs(include_untuned=True)]
        self._cache["chosen"] = [r for r in rows if r["tuned"]]
        return rows or [self._row(scope="autotune", layer="-", status="ok", note="no autotuner in this process")]

    def cell_codegen(self, p: dict) -> list[dict]:
        """The configs of the kernels this run launched (shape, preset and dtype as launched;
        the autotuner's choice where it made one) compiled for this device's arch
        (:func:`profiling.launched_specs.compile_launched`), at most ``p["max_specs"]``."""
        from alexnet_fast.profiling.launched_specs import codegen_rows

        rows, meta = codegen_rows(self.launched, self._cache.get("chosen"), p["max_specs"], self.device, self.output.dir)
        self.meta.update(meta)
        return [self._row(**r) for r in rows]

    # ------------------------------------------------------------------ cells: pytest
    def cell_pytest(self, p: dict) -> list[dict]:
        """A bounded list of GPU tests (:data:`profiling.suites.PYTEST_GPU_TESTS`: the
        longest prefix that fits the cap and the budget left) in a subprocess
        (:func:`profiling.gpu_tests.run_gpu_tests`) with the time left as its timeout."""
        from alexnet_fast.profiling.estimates import PYTEST_START_S
        from alexnet_fast.profiling.gpu_tests import run_gpu_tests
        from alexnet_fast.profiling.suites import pytest_selection

        timeout = self.subprocess_timeout(p["cap_s"])
        tests = pytest_selection(p["tests"], timeout)
        base = dict(scope="pytest", layer="-", timeout_s=round(timeout, 1), log="pytest-gpu.log",
                    selected=len(tests), listed=len(p["tests"]),
                    estimate_s=round(PYTEST_START_S + sum(s for _, s in tests), 1))
        if not tests:
            return [self._row(**base, status="skipped", note=f"no test fits {timeout:.0f} s")]
        if importlib.util.find_spec("pytest") is None:
            return [self._row(**base, status="skipped", note="pytest is not installed in this Python")]
        return [self._row(**base, **run_gpu_tests([t for t, _ in tests], out_dir=self.output.dir or Path("."),
                                                  timeout_s=timeout, autotune_max_configs=p.get("autotune_max_configs")
                                                  or self.autotune_max_configs))]
