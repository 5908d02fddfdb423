"""REPORT.md of a GPU suite run (:mod:`profiling.gpu_suite`), from its ``results.json``.

Pure rendering: no torch, no device, so CI renders a recorded run (the synthetic example
``profiling/data/gpu_quick_example.json``, and the smoke run's own bundle) and a cut-off
run renders whatever it has. ``results.json`` holds ``meta``, ``cells`` (one record per
cell: estimate, elapsed, compiles, status) and ``rows`` (every row of every cell, each with
its ``scope``: preflight, peak, layer, model, dispatch, autotune, codegen, pytest).

The first section answers the study's questions one line each: does each Triton kernel beat
its baseline (the fastest of PyTorch eager NCHW, eager channels-last and torch.compile), by
how much, at what fraction of the device's peak -- compared by *kernel* time (CUDA-graph
replay or the profiler's device time) where the row has it, wall time otherwise -- and what
the host's dispatch costs per call; KernelBench's AlexNet beside its published H100 figures;
the whole model; the layouts; the tests. Rows measured while NVML reported a throttling
reason are flagged ``THROTTLED``. Faster or slower is said only of a paired speedup whose 95%
interval excludes 1 (the engine's paired rounds against eager); a ratio of two separate
cells (Triton against the best baseline by kernel time) is given as a figure, without a word.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from alexnet_fast.vocabulary import BASELINE_IMPLS, PASSES, TRITON_IMPLS, TRITON_OPS
from alexnet_fast.profiling.render.format import fmt, fmt_interference, fmt_speedup, markdown_table, num

# KernelBench level3/5_AlexNet.py, batch 1024 fp32 (cuDNN's default TF32), H100 SXM, published with
# the repository (results/timing/H100_Modal): eager and torch.compile default, ms per forward
KERNELBENCH_H100_MS = {"eager": 23.7, "compile": 16.7}


def _md_lines(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    return markdown_table(header, rows).split("\n")


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _ok(row: dict) -> bool:
    return row.get("status") == "ok" and num(row.get("median_ms")) is not None


def _ms(row: dict) -> float:
    """The time a kernel is compared by: kernel time if measured, else wall time."""
    return num(row.get("kernel_ms")) or row["median_ms"]


def _by(rows: list[dict], scope: str, **match) -> list[dict]:
    return [r for r in rows if r.get("scope") == scope and all(r.get(k) == v for k, v in match.items())]


def throttle_flag(row: dict) -> str:
    if row.get("throttled"):
        return f"THROTTLED ({row.get('throttle_reasons') or '?'})"
    return "" if row.get("throttled") is False else "-"


def layer_answers(rows: list[dict]) -> list[str]:
    """One line per (op, pass, precision): Triton vs the best baseline per layer, by kernel time."""
    groups: dict[tuple, dict[str, dict[str, dict]]] = {}
    for r in _by(rows, "layer"):
        groups.setdefault((r.get("op"), r.get("pass"), r.get("precision")), {}).setdefault(
            r.get("layer"), {})[r.get("impl")] = r
    op_order = list(TRITON_OPS)
    lines = []
    for (op, pass_, precision) in sorted(groups, key=lambda k: (op_order.index(k[0]) if k[0] in op_order else 9,
                                                                 k[1] != "fwd", k[2] != "bf16")):
        per_layer = groups[(op, pass_, precision)]
        ratios, wins, pcts, not_equiv, missing, throttled, by_kernel = [], 0, [], [], [], False, True
        words: dict[str, int] = {}  # the paired speedup over eager NCHW: faster / slower / no difference
        for name, impls in per_layer.items():
            tri = next((impls[i] for i in TRITON_IMPLS if i in impls), None)
            if tri is None:
                continue
            if tri.get("status") == "failed":
                not_equiv.append(name)
                continue
            base = [impls[b] for b in BASELINE_IMPLS if b in impls and _ok(impls[b])]
            if not _ok(tri) or not base:
                missing.append(name)
                continue
            by_kernel &= all(num(r.get("kernel_ms")) is not None for r in [tri, *base])
            best = min(base, key=_ms)
            ratio = _ms(best) / _ms(tri)
            ratios.append(ratio)
            word = fmt_speedup(tri.get("speedup"), tri.get("speedup_ci_low"), tri.get("speedup_ci_high"))
            if "[" in word:
                key = word.split("] ", 1)[1]
                words[key] = words.get(key, 0) + 1
            wins += ratio > 1.0
            if num(tri.get("pct_peak")) is not None:
                pcts.append(tri["pct_peak"])
            throttled |= bool(tri.get("throttled") or best.get("throttled"))
        head = f"- **{op} {pass_} {precision}**: "
        if not ratios and not not_equiv:
            lines.append(head + "no comparable rows (" + (", ".join(missing) or "not run") + ")")
            continue
        parts = []
        if ratios:
            g = _geomean(ratios)
            if words:
                parts.append("Triton vs eager NCHW in paired rounds (95% CI): " + ", ".join(
                    f"{k} on {v}/{len(ratios)} layers" for k, v in sorted(words.items())))
            parts.append(f"against the best baseline (fastest of {'/'.join(BASELINE_IMPLS)}, separate cells, "
                         f"by {'kernel' if by_kernel else 'wall'} time, no interval): {g:.2f}x its speed geomean, "
                         f"above 1 on {wins}/{len(ratios)} layers ({min(ratios):.2f}-{max(ratios):.2f}x)")
            if pcts:
                bound = "peak TFLOP/s" if op == "conv2d_relu" else "peak bandwidth"
                parts.append(f"at {min(pcts):.0f}-{max(pcts):.0f}% of {precision if op == 'conv_relu' else 'HBM'} "
                             f"{bound}")
        if not_equiv:
            parts.append(f"NOT EQUIVALENT on {', '.join(not_equiv)}")
        if missing:
            parts.append(f"no timing for {', '.join(missing)}")
        if throttled:
            parts.append("some rows measured THROTTLED")
        lines.append(head + "; ".join(parts))
    return lines


def dispatch_answers(rows: list[dict]) -> list[str]:
    """What the host's dispatch costs: wall - kernel time of the layer rows, per
    implementation, and the stubbed host path of the Triton ops against aten's."""
    lines = []
    layer = [r for r in _by(rows, "layer") if num(r.get("dispatch_us")) is not None]
    if layer:
        per_impl: dict[str, list[float]] = {}
        for r in layer:
            per_impl.setdefault(r.get("impl"), []).append(r["dispatch_us"])
        parts = [f"{impl} median {sorted(v)[len(v) // 2]:.0f} us ({min(v):.0f}-{max(v):.0f})"
                 for impl, v in sorted(per_impl.items())]
        lines.append("- **dispatch (wall - kernel time per call)**: " + "; ".join(parts))
    host = _by(rows, "dispatch")
    if host:
        pairs = []
        for (layer_name, pass_) in dict.fromkeys((r.get("layer"), r.get("pass")) for r in host):
            got = {r.get("impl"): r for r in host if r.get("layer") == layer_name and r.get("pass") == pass_}
            if "triton" in got and "aten" in got:
                pairs.append(f"{layer_name} {pass_} {fmt(got['triton'].get('median_us'))} vs "
                             f"{fmt(got['aten'].get('median_us'))} us")
        lines.append("- **host cost per call, kernel launch stubbed (Triton op vs aten on meta tensors)**: "
                     + ("; ".join(pairs) or "no pair"))
    return lines


def anchor_answers(rows: list[dict]) -> list[str]:
    cells = {r.get("variant"): r for r in rows if r.get("scope") == "model" and r.get("cell_kind") == "anchor"}
    if not cells:
        return []
    first = next(iter(cells.values()))
    parts = []
    for variant, r in cells.items():
        if _ok(r):
            pub = KERNELBENCH_H100_MS.get(variant)
            parts.append(f"{variant} {fmt(r['median_ms'])} ms" + (f" (KernelBench H100: {pub} ms)" if pub else ""))
        else:
            parts.append(f"{variant} {r.get('status')}" + (f" ({r.get('note')})" if r.get("note") else ""))
    e, c = cells.get("eager"), cells.get("compile")
    if e and c and _ok(e) and _ok(c):
        parts.append(f"compile vs eager {_ratio(c, e)} (KernelBench: "
                     f"{KERNELBENCH_H100_MS['eager'] / KERNELBENCH_H100_MS['compile']:.2f}x)")
    flags = f"TF32 matmul {first.get('tf32_matmul', '-')}, cuDNN {first.get('tf32_cudnn', '-')}"
    return [f"- **KernelBench AlexNet b{first.get('batch_size')} {first.get('precision')} ({flags})**: "
            + "; ".join(parts)]


def _ratio(new: dict, old: dict) -> str:
    """``new``'s speedup over ``old``: the paired rounds' with its interval and word when
    ``old`` is the eager baseline the engine paired it with, else the two cells' ratio."""
    if old.get("variant") == "eager" and num(new.get("speedup")) is not None:
        return fmt_speedup(new.get("speedup"), new.get("speedup_ci_low"), new.get("speedup_ci_high"))
    return f"{old['median_ms'] / new['median_ms']:.2f}x (separate cells, no interval)"


def model_answers(rows: list[dict]) -> list[str]:
    models = [r for r in _by(rows, "model") if r.get("layout", "single") == "single" and r.get("cell_kind") != "anchor"]
    lines = []
    for pass_ in PASSES:
        cells = {r.get("variant"): r for r in models if r.get("pass") == pass_}
        if not cells:
            continue
        parts = []
        for new, old in (("triton", "eager"), ("triton+compile", "compile"), ("compile", "eager"),
                         ("triton+compile", "eager")):
            a, b = cells.get(new), cells.get(old)
            if a and b and _ok(a) and _ok(b):
                parts.append(f"{new} vs {old} {_ratio(a, b)}")
        bad = [v for v, r in cells.items() if r.get("status") in ("failed", "error")]
        eq = "all equivalent" if not bad else "NOT OK: " + ", ".join(f"{v} ({cells[v].get('status')})" for v in bad)
        fastest = min((r for r in cells.values() if _ok(r)), key=lambda r: r["median_ms"], default=None)
        best = f"fastest {fastest['variant']} {fmt(fastest['median_ms'])} ms" if fastest else "no timing"
        first = next(iter(cells.values()))
        lines.append(f"- **whole model {pass_} {first.get('precision')} b{first.get('batch_size')}**: {best}; "
                     + ("; ".join(parts) or "no pair timed") + f"; {eq}")
    return lines


def layout_answers(rows: list[dict], label: str) -> list[str]:
    return [f"- **{r.get('layout')} {r.get('variant')} {r.get('pass')} {r.get('precision')}** (2 ranks on 1 GPU): "
            f"{'equivalent' if r.get('equivalent') else r.get('status', '?')} -- {label}"
            + (f"; {r['note']}" if r.get("note") else "")
            for r in _by(rows, "model") if r.get("layout", "single") != "single"]


def _not_done(cells: list[dict]) -> list[str]:
    bad = [c for c in cells if c.get("status") not in ("done",)]
    if not bad:
        return []
    return ["- **not done**: " + "; ".join(f"{c.get('kind')} {c.get('name')} ({c.get('status')}"
                                           + (f": {c['note']}" if c.get("note") else "") + ")" for c in bad[:12])
            + (" ..." if len(bad) > 12 else "")]


def render(results: dict[str, Any], note: str | None = None) -> str:
    meta = results.get("meta") or {}
    rows = results.get("rows") or []
    cells = results.get("cells") or []
    label = meta.get("layout_label") or "equivalence + CUDA code path only, not a two-GPU speed"
    out = [f"# GPU run: {meta.get('device', '?')} -- suite {meta.get('suite', '?')}", ""]
    for text in (note, meta.get("fixture_note"),
                 "SMOKE RUN: toy sizes, every cell kind through the same code; no number in it is a GPU figure"
                 if meta.get("smoke") else None):
        if text:
            out += [f"> {text}", ""]
    status: dict[str, int] = {}
    for c in cells:
        status[c.get("status", "?")] = status.get(c.get("status", "?"), 0) + 1
    out += [f"torch {meta.get('torch')}, triton {meta.get('triton')}, CUDA {meta.get('cuda')}, cuDNN "
            f"{meta.get('cudnn')}, compute capability {meta.get('capability')}, Python {meta.get('python')}, "
            f"commit {meta.get('git_commit')}; started {meta.get('started')}.",
            f"Elapsed {fmt(meta.get('elapsed_s'))} s of a {fmt(meta.get('budget_s'))} s budget (estimated "
            f"{fmt(meta.get('estimate_s'))} s); cells: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
            + ". Peaks: " + str(meta.get("peaks_source", "-")) + "."
            + (f" Stopped by {meta['interrupted']}." if meta.get("interrupted") else ""),
            f"Preflight: {meta.get('preflight', '-')}", ""]
    throttled = [r for r in rows if r.get("throttled")]
    tele = [r for r in rows if r.get("throttled") is not None]
    out += ["## Answers", ""]
    out += layer_answers(rows) or ["- per layer: no rows"]
    out += dispatch_answers(rows)
    out += anchor_answers(rows)
    out += model_answers(rows) or ["- whole model: no rows"]
    out += layout_answers(rows, label)
    tuned, cg = _by(rows, "autotune"), _by(rows, "codegen")
    if tuned or cg:
        cg = [c for c in cg if c.get("kernel")]
        spills = [c for c in cg if (c.get("spill_store_bytes") or 0) > 0 or (c.get("spill_load_bytes") or 0) > 0]
        failed = [c for c in cg if not c.get("compiled")]
        kinds = sorted({c.get("kernel") for c in cg})
        out.append(f"- **autotuner**: {len([t for t in tuned if t.get('tuned')])} (kernel, key) choices recorded; "
                   f"codegen of the launched kernels for sm_{cg[0].get('arch') if cg else '?'}: {len(cg)} compiled "
                   f"({len(kinds)} kernels), {len(spills)} with register spills, {len(failed)} failed to compile")
    for py in _by(rows, "pytest"):
        counts = {k: py.get(k) for k in ("tests", "failures", "errors", "skipped") if py.get(k) is not None}
        state = "TIMED OUT (cut at its timeout)" if py.get("timed_out") else f"exit {py.get('returncode')}"
        out.append(f"- **pytest -m gpu** ({py.get('selected')} of {py.get('listed')} listed tests): "
                   f"{py.get('summary') or py.get('note') or '-'} ({state}; junit {py.get('junit') or 'none'}"
                   + (f": {counts}" if counts else "") + ")")
    out.append(f"- **telemetry**: {len(tele)} rows with NVML samples; "
               + (f"{len(throttled)} measured THROTTLED: " + ", ".join(
                   f"{r.get('layer')} {r.get('pass')} {r.get('precision')} {r.get('impl') or r.get('variant')}"
                   for r in throttled[:10]) + (" ..." if len(throttled) > 10 else "")
                  if throttled else "none throttled"))
    out += _not_done(cells)
    out.append("")

    layer = _by(rows, "layer")
    if layer:
        out += ["## Per layer", "",
                f"Batch {meta.get('layer_batch', '?')}, operands in the compute dtype. Forward: the unit's output; "
                "backward: the gradients a training step needs (input gradient except for conv1, weight and bias "
                "gradients). `wall ms`: CUDA events around each call (host dispatch included); `kernel ms`: the call "
                "replayed as a CUDA graph (or the profiler's device time), no host work; `dispatch us` = wall - "
                "kernel. Kernels are compared (`vs fastest`) and placed against the peak by kernel time. Rates use "
                "the unavoidable traffic (read inputs once, write outputs once) and the forward's FLOPs (backward: "
                "wgrad + dgrad). % of peak: TFLOP/s of the precision for conv+ReLU, HBM bandwidth for the rest.", ""]
        fastest: dict[tuple, float] = {}
        for r in layer:
            if _ok(r):
                k = (r.get("layer"), r.get("pass"), r.get("precision"))
                fastest[k] = min(fastest.get(k, math.inf), _ms(r))
        body = []
        for r in layer:
            k = (r.get("layer"), r.get("pass"), r.get("precision"))
            rate = (f"{fmt(num(r.get('gflops_per_s')) and r['gflops_per_s'] / 1e3)} TFLOP/s"
                    if r.get("op") == "conv2d_relu" else f"{fmt(r.get('gbytes_per_s'))} GB/s") if _ok(r) else "-"
            best = "**best**" if _ok(r) and _ms(r) == fastest.get(k) else (
                f"{_ms(r) / fastest[k]:.2f}x" if _ok(r) and k in fastest else "-")
            state = ({True: "yes", False: "**NO**"}.get(r.get("equivalent"), "-") if r.get("status") != "error"
                     else f"error: {r.get('note', '')}")
            if r.get("status") == "interpreted":
                state += " (interpreted)"
            body.append([r.get("layer"), r.get("pass"), r.get("precision"), r.get("impl"), fmt(r.get("median_ms")),
                         fmt(r.get("kernel_ms")), fmt(r.get("dispatch_us")), rate, fmt(r.get("pct_peak"), 2), best,
                         fmt_speedup(r.get("speedup"), r.get("speedup_ci_low"), r.get("speedup_ci_high")),
                         fmt_interference(r.get("interference"), r.get("interference_why")),
                         state, fmt(r.get("first_call_s")), fmt(r.get("sm_clock_mhz")), fmt(r.get("power_w")),
                         fmt(r.get("temperature_c")), throttle_flag(r)])
        out += _md_lines(["layer", "pass", "prec", "impl", "wall ms", "kernel ms", "dispatch us", "rate", "% peak",
                       "vs fastest", "speedup vs eager NCHW [95% CI]", "interference", "equivalent", "first call s", "SM MHz", "W", "C", "throttle"], body) + [""]

    host = _by(rows, "dispatch")
    if host:
        out += ["## Host cost of a call, kernel launch stubbed", "",
                "The Triton op's Python path (custom-op dispatch, checks, allocations, the autotuner's lookup, "
                "autograd) with every `@triton.jit` kernel's `run` a no-op, against the eager PyTorch modules on "
                "`meta` tensors (the dispatcher and the ops' meta functions, no kernel); host clock.", ""]
        out += _md_lines(["layer", "pass", "impl", "method", "median us", "p20-p80 us", "launches/call"],
                      [[r.get("layer"), r.get("pass"), r.get("impl"), r.get("method"), fmt(r.get("median_us")),
                        f"{fmt(r.get('p20_us'))}-{fmt(r.get('p80_us'))}", fmt(r.get("launches_per_call"))]
                       for r in host]) + [""]

    def model_table(title: str, intro: str, models: list[dict]) -> list[str]:
        return ["## " + title, "", intro, ""] + _md_lines(
            ["variant", "pass", "prec", "batch", "median ms", "images/s", "speedup vs eager [95% CI]", "rounds",
             "interference", "first call s", "peak MiB", "equivalent",
             "worst tensor", "fp64 err / tol", "SM MHz", "W", "C", "throttle", "note"],
            [[r.get("label") or r.get("variant"), r.get("pass"), r.get("precision"), r.get("batch_size"),
              fmt(r.get("median_ms")), fmt(r.get("images_per_s")),
              fmt_speedup(r.get("speedup"), r.get("speedup_ci_low"), r.get("speedup_ci_high")), fmt(r.get("rounds")),
              fmt_interference(r.get("interference"), r.get("interference_why")), fmt(r.get("compile_s")),
              fmt(r.get("peak_memory_mb")),
              {True: "yes", False: "**NO**"}.get(r.get("equivalent"), r.get("status", "-")),
              r.get("worst_tensor", "-"), f"{fmt(r.get('fp64_err'))} / {fmt(r.get('tolerance'))}",
              fmt(r.get("sm_clock_mhz")), fmt(r.get("power_w")), fmt(r.get("temperature_c")), throttle_flag(r),
              r.get("note", "")] for r in models]) + [""]

    anchor = [r for r in _by(rows, "model") if r.get("cell_kind") == "anchor"]
    if anchor:
        out += model_table("KernelBench's AlexNet (the external anchor)",
                           "KernelBench level-3 `5_AlexNet` as its authors describe it (no LRN, no groups, "
                           "96-256-384-384-256, 224x224, dropout 0), written in `alexnet_fast/examples.py`, run "
                           "through `--model` with fp32 weights and the backends' TF32 defaults (columns "
                           "`tf32_cudnn`, `tf32_matmul` in results.json). Published H100 SXM figures: eager "
                           f"{KERNELBENCH_H100_MS['eager']} ms, torch.compile {KERNELBENCH_H100_MS['compile']} ms "
                           "(their timing: mean of 100 CUDA-event trials with an L2 flush; ours: the median).", anchor)
    models = [r for r in _by(rows, "model") if r.get("layout", "single") == "single" and r.get("cell_kind") != "anchor"]
    if models:
        out += model_table("Whole model", "The engine's model cells (the checks and timer of `alexnet-fast bench`), "
                                          "warm compile cache within the run; `first call s` includes compiling and "
                                          "autotuning.", models)
    profiles = _by(rows, "profile")
    if profiles:
        left = meta.get("profile_traces_left_out") or []
        out += ["## Profiles (torch.profiler, each whole-model cell once)", "",
                f"Traces and tables in `{meta.get('profile_archive', 'profile.tar.gz')}`: `tar xzf` it, open "
                "`profile/<cell>/trace.json[.gz]` in https://ui.perfetto.dev; `profile/PROFILE.md` has every cell's "
                "layer, op and kernel tables (ours / inductor / library) and the device's idle gaps."
                + (f" Left out to stay under the bundle's file size: {', '.join(left)}." if left else ""), ""]
        out += _md_lines(["variant", "pass", "prec", "batch", "status", "profiled step ms", "overhead %", "in layers",
                          "peak MiB", "note"],
                         [[r.get("label") or r.get("variant"), r.get("pass"), r.get("precision"), r.get("batch_size"),
                           r.get("status"), fmt(r.get("profile_step_ms")), fmt(r.get("profile_overhead_pct")),
                           fmt(r.get("profile_layer_coverage")), fmt(r.get("peak_memory_mb")), r.get("note", "")]
                          for r in profiles]) + [""]
    layouts = [r for r in _by(rows, "model") if r.get("layout", "single") != "single"]
    if layouts:
        out += ["## Two-rank layouts on one GPU", "",
                f"Two processes share the one GPU (gloo): **{label}**.", ""]
        out += _md_lines(["layout", "variant", "pass", "prec", "batch", "equivalent", "max rel err", "step ms (not a speed)",
                       "note"],
                      [[r.get("layout"), r.get("variant"), r.get("pass"), r.get("precision"), r.get("batch_size"),
                        {True: "yes", False: "**NO**"}.get(r.get("equivalent"), r.get("status", "-")),
                        fmt(r.get("max_rel_err") if r.get("max_rel_err") is not None else r.get("grad_max_rel_err")),
                        fmt(r.get("median_ms")), r.get("note", "")] for r in layouts]) + [""]
    if tuned:
        out += ["## Autotuner's choices", "", f"At most {meta.get('autotune_max_configs') or 'all'} candidates per "
                "kernel (the first entries of each table in kernels/configs.py).", ""]
        out += _md_lines(["kernel", "key", "dtype", "chosen config", "candidates", "tuned"],
                      [[t.get("kernel"), f"`{t.get('key_names')}` = {t.get('key')}", t.get("dtype") or "-",
                        " ".join(f"{k}={v}" for k, v in (t.get("config") or {}).items()), t.get("candidates"),
                        "yes" if t.get("tuned") else f"no ({t.get('note') or '-'})"]
                       for t in tuned if t.get("kernel")]) + [""]
    if cg:
        out += ["## Codegen of the launched kernels", "",
                "One launch-faithful spec per kernel the run launched (shape and preset as launched, the nearest "
                "batch the check lists, the autotuner's choice where it made one), compiled by the codegen check "
                "for this device's arch; full columns in `codegen.csv`.", ""]
        out += _md_lines(["op", "kernel", "config", "dtype", "shape", "arch", "regs", "spill B st/ld", "smem B", "MMA",
                       "result"],
                      [[c.get("op"), c.get("kernel"), c.get("config"), c.get("dtype"), c.get("shape") or "-",
                        f"sm_{c.get('arch')}", fmt(c.get("registers")),
                        f"{c.get('spill_store_bytes', '-')}/{c.get('spill_load_bytes', '-')}", fmt(c.get("smem_bytes")),
                        f"{c.get('mma_kind') or '-'} {c.get('mma_instructions') or ''}".strip(),
                        "ok" if c.get("compiled") and c.get("passed", True) else (c.get("note") or "failed")]
                       for c in cg]) + [""]
        left = meta.get("codegen_left_out") or []
        if left:
            out += [f"Left out by the cap: {len(left)} specs.", ""]
    for py in _by(rows, "pytest"):
        out += ["## pytest -m gpu", "", f"`{py.get('command') or '-'}`: {py.get('summary') or py.get('note') or '-'} in "
                f"{fmt(py.get('elapsed_s'))} s (timeout {fmt(py.get('timeout_s'))} s); log `{py.get('log')}`, junit "
                f"`{py.get('junit')}`.", ""]
    if cells:
        out += ["## Cells", "", "Estimated vs measured seconds per cell, and torch.compile frames assumed by the "
                "estimate vs compiled (dynamo's counter); the estimate's constants are in profiling/suites.py.", ""]
        out += _md_lines(["kind", "cell", "estimate s", "elapsed s", "compiles (assumed / made)", "status"],
                      [[c.get("kind"), c.get("name"), fmt(c.get("estimate_s")), fmt(c.get("elapsed_s")),
                        f"{'-' if c.get('compiles_assumed') is None else c.get('compiles_assumed')} / "
                        f"{'-' if c.get('compiles') is None else c.get('compiles')}",
                        str(c.get("status")) + (f" ({c['note']})" if c.get("note") else "")] for c in cells]) + [""]
    return "\n".join(out)
