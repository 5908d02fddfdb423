"""`alexnet-fast bench --suite gpu-quick`: a GPU run that answers the study's questions in
under ten minutes, and its ``--dry-run``.

The suite (``profiling/suites.py``) is a list of cells, most informative first. Before it
starts, the run prints the plan and its estimated duration; it then runs the cells in order
and does not start a cell that would take it past the budget (``--budget-s``; the cell is
recorded ``skipped`` with the reason). After every cell it writes ``results.json`` and
re-renders ``REPORT.md`` (``profiling/gpu_report.py``) under ``reports/gpu/<device>/``, so a
run that is cut off still leaves a readable report.

Kinds of cells:

* ``layer``: one AlexNet unit (conv+ReLU, LRN, max-pool, fused LRN+pool) at batch 128 in one
  precision and one implementation (:data:`profiling.suites.LAYER_IMPLS`): forward, then
  the backward a training step needs (input gradient except for conv1, parameter
  gradients), each first checked against eager fp64 with the harness's judge and only then
  timed with the harness's timer, with NVML telemetry around the timing.
* ``model``: one whole-model cell run by the harness itself (:class:`profiling.engine.Harness`,
  same checks and timer as ``alexnet-fast bench``), warm compile cache.
* ``autotune``: every autotuner's chosen config per kernel and key;
  ``codegen``: those configs compiled for this device's arch (``profiling/codegen.py``).
* ``layout``: the two-rank layouts as two processes sharing the one GPU (gloo): equivalence
  and the CUDA code path only, not a two-GPU speed.
* ``pytest``: ``pytest -m gpu`` in a subprocess (junit XML and log kept).

One inductor and one Triton cache directory under the run directory serve every cell and
subprocess of the run (``TORCHINDUCTOR_CACHE_DIR``, ``TRITON_CACHE_DIR``; autotune results
cached on disk with ``TRITON_CACHE_AUTOTUNING=1``), and every autotuner tries at most the
suite's ``autotune_max_configs`` candidates.

One cohesive thing, kept in one file (~640 lines): the runner of a suite's cells; what the
suite is (``profiling/suites.py``) and how its report looks (``profiling/gpu_report.py``) live
apart.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from profiling import suites
from profiling.suites import Cell, SuiteSpec

ASSUMED_DEVICE = "NVIDIA H100 80GB HBM3"  # the device a CPU dry run estimates for
LAYOUT_LABEL = "equivalence + CUDA code path only, not a two-GPU speed"
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpu_quick_h100_results.json"
RESULTS_FILE = "results.json"
REPORT_FILE = "REPORT.md"


def run_dir_for(output_dir: str | os.PathLike, device_name: str) -> Path:
    from profiling.results import _slug

    return Path(output_dir) / "gpu" / _slug(device_name)


def set_cache_env(run_dir: Path) -> dict[str, str]:
    """One inductor and one Triton cache for the whole run (and its subprocesses). Must run
    before triton is imported (conv's autotuners read TRITON_CACHE_AUTOTUNING at import)."""
    env = {"TORCHINDUCTOR_CACHE_DIR": str(run_dir / "cache" / "inductor"),
           "TRITON_CACHE_DIR": str(run_dir / "cache" / "triton"),
           "TRITON_CACHE_AUTOTUNING": "1"}
    os.environ.update(env)
    return env


# ---------------------------------------------------------------------- cost models of a backward
def backward_cost(unit, batch_size: int, precision: str, *, input_grad: bool) -> tuple[int, int]:
    """(FLOPs, bytes) of a unit's backward. conv+ReLU: wgrad has the forward's MACs, dgrad
    again (only with ``input_grad``); bytes: the unavoidable traffic -- read the saved
    input and the incoming gradient, write the input gradient (and the weight gradient)."""
    from profiling.flops import dtype_bytes, unit_cost

    fwd = unit_cost(unit, batch_size, precision)
    s = dtype_bytes(precision)
    x = batch_size * _numel(unit.in_shape)
    y = batch_size * _numel(unit.out_shape)
    if unit.op == "conv_relu":
        weights = (fwd.bytes_fused // s) - x - y
        flops = fwd.mac_flops * (2 if input_grad else 1) + fwd.other_flops
        return flops, s * (x + y + weights + (x if input_grad else 0))
    return 2 * fwd.other_flops, s * (x + y + x)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# ---------------------------------------------------------------------- the run
class SuiteRun:
    """Runs a suite's cells under a budget on one CUDA device, writing after every cell."""

    def __init__(self, spec: SuiteSpec, output_dir: str | os.PathLike, *, device: str = "cuda",
                 budget_s: float | None = None, progress: bool = True):
        import torch

        from profiling.results import device_name

        self.spec = spec
        self.device = torch.device(device)
        self.device_name = device_name(device)
        self.run_dir = run_dir_for(output_dir, self.device_name)
        self.budget_s = spec.budget_s if budget_s is None else budget_s
        self.progress = progress
        self.cells = suites.build_cells(spec)
        self.started = time.perf_counter()
        self.results: dict[str, Any] = {"meta": {}, "cells": [], "rows": [], "autotune": [], "codegen": [],
                                        "pytest": None}
        self._cache: dict[Any, Any] = {}

    # ------------------------------------------------------------ bookkeeping
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def save(self) -> None:
        from alexnet_fast.io import atomic_write_json, atomic_write_text
        from profiling.gpu_report import render

        self.results["meta"]["elapsed_s"] = round(self.elapsed(), 1)
        atomic_write_json(self.run_dir / RESULTS_FILE, _jsonable(self.results))
        atomic_write_text(self.run_dir / REPORT_FILE, render(self.results))

    def _meta(self) -> dict[str, Any]:
        import torch

        from profiling.results import environment
        env = environment(str(self.device))
        return {**env, "suite": self.spec.name, "description": self.spec.description,
                "estimate_s": suites.estimate(self.cells), "budget_s": self.budget_s,
                "capability": (".".join(map(str, torch.cuda.get_device_capability(self.device)))
                               if self.device.type == "cuda" else None),
                "layer_batch": self.spec.layer_batch,
                "autotune_max_configs": self.spec.autotune_max_configs,
                "warmup": self.spec.warmup, "repeats": self.spec.repeats,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "caches": {k: os.environ.get(k) for k in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR")}}

    def run(self) -> dict[str, Any]:
        import torch

        from profiling.autotune_limit import limit_autotune_configs
        from profiling.telemetry import Telemetry

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.results["meta"] = self._meta()
        self.results["cells"] = [{"kind": c.kind, "name": c.name, "estimate_s": c.estimate_s, "status": "pending"}
                                 for c in self.cells]
        self.save()
        self.telemetry = Telemetry(self.device)
        cudnn_before = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            with limit_autotune_configs(self.spec.autotune_max_configs):
                for i, cell in enumerate(self.cells):
                    record = self.results["cells"][i]
                    left = self.budget_s - self.elapsed()
                    if cell.estimate_s > left:
                        record.update(status="skipped", note=f"budget: ~{cell.estimate_s:.0f} s needed, "
                                                             f"{max(left, 0):.0f} s left")
                        self.save()
                        continue
                    if self.progress:
                        print(f"[{self.elapsed():6.0f} s] {cell.kind} {cell.name} (~{cell.estimate_s:.0f} s)",
                              file=sys.stderr, flush=True)
                    start = time.perf_counter()
                    try:
                        getattr(self, f"_cell_{cell.kind}")(cell)
                        record["status"] = "done"
                    except Exception as e:  # one broken cell must not end the run
                        traceback.print_exc(file=sys.stderr)
                        record.update(status="error", note=_one_line(e))
                    record["elapsed_s"] = round(time.perf_counter() - start, 2)
                    gc.collect()
                    torch.cuda.empty_cache()
                    self.save()
        finally:
            torch.backends.cudnn.benchmark = cudnn_before
            self.telemetry.close()
            self.save()
        return self.results

    # ------------------------------------------------------------ cells
    def _cell_peaks(self, cell: Cell) -> None:
        """Datasheet peaks of a known GPU, else measured ones (profiling.roofline); into meta."""
        from profiling.roofline import device_peaks

        peaks = device_peaks(str(self.device), ("fp32", "tf32", "fp16", "bf16"))
        self.results["meta"].update(peaks_gflops=peaks.gflops, peak_gbytes_per_s=peaks.gbytes_per_s,
                                    peaks_source=peaks.source)

    def _model(self):
        import torch

        from alexnet_fast.model import AlexNet, make_config

        if "model" not in self._cache:
            torch.manual_seed(0)
            model = AlexNet(make_config("paper")).to(self.device).eval()
            gen = torch.Generator().manual_seed(128)
            x = torch.randn(self.spec.layer_batch, 3, model.config.input_size, model.config.input_size,
                            generator=gen).to(self.device)
            self._cache["model"] = (model, x)
        return self._cache["model"]

    def _unit(self, name: str):
        from alexnet_fast.model import make_config
        from profiling.flops import layer_units

        return next(u for u in layer_units(make_config("paper")) if u.name == name)

    def _activation(self, unit):
        """The eager fp32 model's input to ``unit`` at the suite's batch (one forward for all)."""
        from profiling.engine import _unit_inputs

        if "acts" not in self._cache:
            from alexnet_fast.model import make_config
            from profiling.flops import layer_units
            model, x = self._model()
            units = [u for u in layer_units(make_config("paper")) if u.op in self.spec.layer_ops]
            self._cache["acts"] = _unit_inputs(copy.deepcopy(model), units, x, "fp32")
        return self._cache["acts"][unit.name]

    def _layer_reference(self, unit, block):
        """Eager fp32 and fp64 results of the unit: forward output, and the gradients of
        sum(out * g) for a fixed g (input gradient unless the unit sees the image)."""
        import torch

        from alexnet_fast.precision import policy
        from profiling.judge import Reference

        key = ("ref", unit.name)
        if key not in self._cache:
            act = self._activation(unit)
            gen = torch.Generator().manual_seed(7)
            with torch.no_grad():
                out_shape = block(act[:1]).shape[1:]
            g = torch.randn((act.shape[0], *out_shape), generator=gen).to(self.device)
            refs = {}
            for dtype in (torch.float32, torch.float64):
                b = copy.deepcopy(block).to(dtype)
                x = act.to(dtype).requires_grad_(_needs_input_grad(unit))
                with policy("fp32").flags():
                    out = b(x)
                    grads = _grads_of(out, x, b, g.to(dtype))
                refs[dtype] = ({"out": out.detach()}, grads)
            self._cache[key] = (Reference(refs[torch.float32][0], refs[torch.float64][0]),
                                Reference(refs[torch.float32][1], refs[torch.float64][1]), g)
        return self._cache[key]

    def _build_layer(self, block, impl: str, dtype):
        import torch

        from alexnet_fast.variants import build_variant

        torch._dynamo.reset()
        model = copy.deepcopy(block).to(dtype)
        if impl.startswith("triton"):
            model = build_variant(model, "triton", copy_model=False)
        elif impl == "compile":
            model = build_variant(model, "compile", copy_model=False)
        if suites.LAYER_IMPLS[impl][1] == "nhwc":
            model = model.to(memory_format=torch.channels_last)
        return model

    def _cell_layer(self, cell: Cell) -> None:
        import torch

        from alexnet_fast.precision import policy
        from profiling.engine import _unit_block
        from profiling.judge import TOLERANCES, judge

        p = cell.params
        unit = self._unit(p["unit"])
        base_model, _ = self._model()
        block = _unit_block(base_model, unit).eval()
        fwd_ref, bwd_ref, g = self._layer_reference(unit, block)
        act = self._activation(unit)
        nhwc = suites.LAYER_IMPLS[p["impl"]][1] == "nhwc"
        fmt = torch.channels_last if nhwc else torch.contiguous_format
        prec = policy(p["precision"])  # kernel-level cells: operands in the compute dtype autocast gives them
        dtype = prec.dtype
        with prec.flags():
            model = self._build_layer(block, p["impl"], dtype)
            x = act.to(dtype).contiguous(memory_format=fmt)
            for pass_ in p["passes"]:
                row = {"scope": "layer", "layer": unit.name, "op": unit.op, "impl": p["impl"],
                       "impl_note": suites.LAYER_IMPLS[p["impl"]][0], "layout": "nhwc" if nhwc else "nchw",
                       "precision": p["precision"], "pass": pass_, "batch_size": p["batch_size"]}
                try:
                    row.update(self._layer_pass(unit, model, x, g.to(dtype).contiguous(memory_format=fmt),
                                                pass_, fwd_ref if pass_ == "fwd" else bwd_ref,
                                                TOLERANCES[p["precision"]][0 if pass_ == "fwd" else 1],
                                                p["precision"], judge))
                except Exception as e:
                    traceback.print_exc(file=sys.stderr)
                    row.update(status="error", note=_one_line(e))
                self.results["rows"].append(row)
                self.save()
        del model

    def _layer_pass(self, unit, model, x, g, pass_, ref, floor, precision, judge) -> dict[str, Any]:
        import torch

        from profiling.timers import time_first_call

        if pass_ == "fwd":
            def call():
                with torch.no_grad():
                    return model(x)
            first_s, out = time_first_call(call, self.device)
            verdict = judge({"out": out}, ref, floor)
            step = call
        else:
            xg = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(_needs_input_grad(unit))
            out = model(xg)

            def step():
                return _grads_of(out, xg, model, g, retain_graph=True)
            first_s, grads = time_first_call(step, self.device)
            verdict = judge(grads, ref, floor)
        row = {"first_call_s": round(first_s, 3), "max_abs_err": verdict.pop("abs"),
               "max_rel_err": verdict.pop("rel"), **verdict}
        if not row["equivalent"]:
            row["status"] = "failed"
            return row
        row.update(self._time(step))
        row["status"] = "ok"
        row.update(self._rates(unit, pass_, precision, row["median_ms"]))
        return row

    def _time(self, fn: Callable[[], object]) -> dict[str, Any]:
        from profiling.telemetry import merge_samples
        from profiling.timers import measure

        before = self.telemetry.sample()
        t = measure(fn, device=self.device, warmup=self.spec.warmup, repeats=self.spec.repeats)
        tele = merge_samples(before, self.telemetry.sample())
        return {"median_ms": t.median_ms, "p20_ms": t.p20_ms, "p80_ms": t.p80_ms, "min_ms": t.min_ms,
                "timer": t.method, **tele}

    def _rates(self, unit, pass_: str, precision: str, ms: float) -> dict[str, Any]:
        from profiling.flops import unit_cost

        meta = self.results["meta"]
        if pass_ == "fwd":
            cost = unit_cost(unit, self.spec.layer_batch, precision)
            flops, nbytes = cost.flops, cost.bytes_fused
        else:
            flops, nbytes = backward_cost(unit, self.spec.layer_batch, precision,
                                          input_grad=_needs_input_grad(unit))
        out = {"flops": flops, "bytes": nbytes, "gflops_per_s": flops / (ms * 1e-3) / 1e9,
               "gbytes_per_s": nbytes / (ms * 1e-3) / 1e9}
        if unit.op == "conv_relu":
            peak = (meta.get("peaks_gflops") or {}).get(precision)
            out.update(bound="compute", pct_peak=100 * out["gflops_per_s"] / peak if peak else None)
        else:
            peak = meta.get("peak_gbytes_per_s")
            out.update(bound="memory", pct_peak=100 * out["gbytes_per_s"] / peak if peak else None)
        return out

    def _cell_model(self, cell: Cell) -> None:
        p = cell.params
        self._harness_cell(cell, layouts=["single"], variant=p["variant"], precision=p["precision"],
                           batch_size=p["batch_size"], pass_=p["pass"])

    def _cell_layout(self, cell: Cell) -> None:
        from alexnet_fast.layouts.comm import SHARE_GPU_ENV

        p = cell.params
        os.environ[SHARE_GPU_ENV] = "1"
        try:
            self._harness_cell(cell, layouts=[p["layout"]], variant=p["variant"], precision=p["precision"],
                               batch_size=p["batch_size"], pass_=p["pass"])
        finally:
            os.environ.pop(SHARE_GPU_ENV, None)

    def _harness_cell(self, cell: Cell, *, layouts, variant, precision, batch_size, pass_) -> None:
        """One cell run by the harness (its checks, timer and telemetry), warm caches."""
        from profiling.engine import Harness
        from profiling.plan import BenchPlan, VariantSpec

        plan = BenchPlan(device=str(self.device), variants=[VariantSpec(variant)], precisions=[precision],
                         batch_sizes=[batch_size], passes=[pass_], layouts=list(layouts), layers=[],
                         warmup=self.spec.warmup, repeats=self.spec.repeats, cold_compile=False)
        out = self.run_dir / "harness" / cell.name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")
        rows = Harness(plan, out, progress=False).run()
        for row in rows:
            if row.get("scope") != "model":
                continue
            row = {k: v for k, v in row.items() if v is not None}
            row["suite_cell"] = cell.name
            if layouts != ["single"]:
                row.update(speed_note=LAYOUT_LABEL, shared_gpu=True)
            if row.get("status") == "error":
                row.setdefault("note", "error (see the harness's output)")
            self.results["rows"].append(row)

    def _cell_autotune(self, cell: Cell) -> None:
        from profiling.autotune_limit import chosen_configs

        self.results["autotune"] = chosen_configs()

    def _cell_codegen(self, cell: Cell) -> None:
        """Compile each chosen config (kernel, dtype, tiles, warps, stages) for this device's
        arch with the codegen check's spec for it, at most ``max_specs`` of them."""
        import torch

        from profiling import codegen

        arch = 10 * torch.cuda.get_device_capability(self.device)[0] + torch.cuda.get_device_capability(self.device)[1]
        arch = arch if arch in codegen.SHARED_LIMIT_BYTES else 90
        chosen = self.results.get("autotune") or []
        if not chosen:
            from profiling.autotune_limit import chosen_configs

            chosen = self.results["autotune"] = chosen_configs()
        specs = [s for _, s in _all_specs()]
        todo, seen = [], set()
        for entry in chosen:
            for spec in _matching_specs(specs, entry):
                if codegen.spec_id(spec) not in seen:
                    seen.add(codegen.spec_id(spec))
                    todo.append(spec)
        limit = cell.params.get("max_specs", suites.MAX_CODEGEN_SPECS)
        self.results["codegen_not_compiled"] = [codegen.spec_id(s) for s in todo[limit:]]
        rows = []
        for spec in todo[:limit]:
            try:
                row = codegen.compile_spec(spec, arch)
            except Exception as e:
                row = {"op": spec.op, "kernel": spec.kernel, "config": spec.config, "dtype": spec.dtype,
                       "arch": arch, "compiled": False, "error": _one_line(e)}
            rows.append({k: row.get(k) for k in ("op", "kernel", "config", "dtype", "arch", "registers",
                                                  "spill_store_bytes", "spill_load_bytes", "smem_bytes",
                                                  "mma_kind", "mma_instructions", "compiled", "passed",
                                                  "error", "compile_s")})
        self.results["codegen"] = rows

    def _cell_pytest(self, cell: Cell) -> None:
        from profiling.autotune_limit import ENV_MAX_CONFIGS

        timeout = max(10.0, min(cell.params["timeout_s"], self.budget_s - self.elapsed()))
        junit = self.run_dir / "pytest-gpu.xml"
        log = self.run_dir / "pytest-gpu.log"
        env = dict(os.environ)
        if self.spec.autotune_max_configs is not None:
            env[ENV_MAX_CONFIGS] = str(self.spec.autotune_max_configs)
        repo = Path(__file__).resolve().parents[1]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rfE", "-p", "no:cacheprovider",
               "-p", "profiling.autotune_limit", f"--junitxml={junit}", str(repo / "tests")]
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
            text, rc, timed_out = proc.stdout + proc.stderr, proc.returncode, False
        except subprocess.TimeoutExpired as e:
            text = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            rc, timed_out = None, True
        from alexnet_fast.io import atomic_write_text

        atomic_write_text(log, text)
        self.results["pytest"] = {"command": " ".join(cmd[1:]), "returncode": rc, "timed_out": timed_out,
                                  "timeout_s": round(timeout), "elapsed_s": round(time.perf_counter() - start, 1),
                                  "summary": _pytest_summary(text), "counts": _junit_counts(junit),
                                  "log": log.name, "junit": junit.name if junit.exists() else None}


def _needs_input_grad(unit) -> bool:
    """A training step needs the input gradient of every unit but the first conv (the image)."""
    return unit.in_shape[0] != 3


def _grads_of(out, x, module, g, *, retain_graph: bool = False) -> dict[str, Any]:
    import torch

    params = [(n.replace("_orig_mod.", ""), q) for n, q in module.named_parameters() if q.requires_grad]
    inputs = ([("x", x)] if x.requires_grad else []) + params
    grads = torch.autograd.grad(out, [t for _, t in inputs], g, retain_graph=retain_graph)
    return {name: gr for (name, _), gr in zip(inputs, grads)}


def _all_specs():
    from profiling import codegen

    modules = [__import__(f"kernels.{m}", fromlist=["_"]) for m in codegen.kernel_module_names()]
    return codegen.collect_specs(modules)


def _matching_specs(specs, entry: dict[str, Any]) -> list:
    """Codegen specs of the chosen config: same kernel, dtype, tile constexprs, warps, stages."""
    cfg = entry.get("config") or {}
    tiles = {k: v for k, v in cfg.items() if k.isupper()}
    out = []
    for spec in specs:
        if spec.kernel != entry.get("kernel") or (entry.get("dtype") and spec.dtype != entry["dtype"]):
            continue
        if spec.num_warps != cfg.get("num_warps") or spec.num_stages != cfg.get("num_stages"):
            continue
        if all(spec.constexprs.get(k) == v for k, v in tiles.items()):
            out.append(spec)
    return out


def _pytest_summary(text: str) -> str:
    lines = [ln.strip("= ").strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if any(w in ln for w in ("passed", "failed", "skipped", "error", "no tests ran")):
            return ln
    return lines[-1] if lines else ""


def _junit_counts(path: Path) -> dict[str, int] | None:
    if not path.exists():
        return None
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return None
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _jsonable(obj):
    import math

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if hasattr(obj, "item"):
        try:
            return obj.item()
        except Exception:
            pass
    return str(obj)


# ---------------------------------------------------------------------- CLI (through `bench`)
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags `bench` gains for suites (added by profiling.bench.add_arguments)."""
    parser.add_argument("--suite", default=None, choices=sorted(suites.SUITES),
                        help="run a named suite instead of the matrix (gpu-quick: the GPU questions in < 10 min)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan and its estimated duration; with --suite also render the GPU "
                             "report from the recorded fixture; run nothing that needs CUDA")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="--suite: do not start a cell that would end past this many seconds "
                             "(default: the suite's budget)")


def dry_run(args: argparse.Namespace) -> int:
    """Plan, estimate and (suites) the report rendered from the recorded fixture."""
    import torch

    cuda = torch.cuda.is_available()
    if args.suite is None:
        from profiling.plan import default_plan, describe

        plan = default_plan("cuda")
        whats = [w for w, _ in plan_jobs(plan)]
        ordered = sorted(whats, key=suites.job_priority)
        total = suites.estimate_jobs(ordered)
        print(describe(plan))
        print(f"full GPU default: {len(ordered)} jobs, estimated {suites.format_duration(total)} "
              f"(cold compiles, autotuning every Triton config); most informative first:")
        for w in ordered[:15]:
            print(f"  ~{suites.job_estimate(w):6.1f} s  " + " ".join(f"{k}={v}" for k, v in w.items()))
        if len(ordered) > 15:
            print(f"  ... {len(ordered) - 15} more")
        return 0
    spec = suites.get_suite(args.suite)
    budget = spec.budget_s if args.budget_s is None else args.budget_s
    from profiling.results import device_name

    name = device_name("cuda") if cuda else ASSUMED_DEVICE
    cells = suites.build_cells(spec)
    print(suites.describe_plan(spec, cells, budget, name + ("" if cuda else " (assumed: no CUDA here)")))
    print(f"estimate: {suites.estimate(cells):.0f} s = {suites.estimate(cells) / 60:.1f} min; budget {budget:.0f} s")
    if not FIXTURE.exists():
        print(f"dry run: no recorded fixture at {FIXTURE}; report rendering not checked", file=sys.stderr)
        return 1
    from alexnet_fast.io import atomic_write_text
    from profiling.gpu_report import render

    results = json.loads(FIXTURE.read_text())
    out = Path(args.output_dir) / "gpu" / "dry-run" / REPORT_FILE
    atomic_write_text(out, render(results, note=f"rendered by --dry-run from the recorded fixture {FIXTURE.name}; "
                                                "no number in it was measured by this run"))
    print(f"dry run: rendered the report of the recorded fixture {FIXTURE.name} to {out}")
    return 0


def plan_jobs(plan) -> list:
    """``Harness.jobs()`` of a plan without running it (no device work happens here)."""
    from profiling.engine import Harness

    return Harness(plan, "/nonexistent-dry-run", progress=False).jobs()


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dry_run", False):
        return dry_run(args)
    import torch

    spec = suites.get_suite(args.suite)
    device = args.device or "cuda"
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        print(f"alexnet-fast bench --suite {spec.name}: needs a CUDA device (none here); "
              f"--dry-run prints the plan and checks the report rendering", file=sys.stderr)
        return 2
    from profiling.results import device_name

    run_dir = run_dir_for(args.output_dir, device_name(device))
    set_cache_env(run_dir)
    suite_run = SuiteRun(spec, args.output_dir, device=device, budget_s=args.budget_s,
                         progress=not getattr(args, "no_progress", False))
    print(suites.describe_plan(spec, suite_run.cells, suite_run.budget_s, suite_run.device_name), file=sys.stderr)
    results = suite_run.run()
    statuses: dict[str, int] = {}
    for c in results["cells"]:
        statuses[c["status"]] = statuses.get(c["status"], 0) + 1
    print(f"wrote {run_dir / RESULTS_FILE} and {run_dir / REPORT_FILE} in {suite_run.elapsed():.0f} s: "
          + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())), file=sys.stderr)
    failed = any(r.get("status") in ("failed", "error") for r in results["rows"])
    return 1 if failed and getattr(args, "strict", False) else 0
