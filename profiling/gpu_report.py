"""REPORT.md of a GPU suite run (``profiling/gpu_suite.py``), from its ``results.json``.

Pure rendering: no torch, no device, so CI renders a recorded run
(``tests/fixtures/gpu_quick_h100_results.json``) and a cut-off run renders whatever it has.
The first section answers the study's questions one line each: does each Triton kernel beat
its baseline (the fastest of PyTorch eager NCHW, eager channels-last and torch.compile), by
how much, at what fraction of the device's peak; the whole model; the layouts; the tests.
Rows measured while NVML reported a throttling reason are flagged ``THROTTLED``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

OP_KERNEL = {"conv_relu": "conv2d_relu", "lrn": "local_response_norm", "pool": "max_pool2d",
             "lrn_pool": "lrn_max_pool2d"}
BASELINES = ("eager-nchw", "eager-nhwc", "compile")
TRITON_IMPLS = ("triton", "triton-nchw")


def _num(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _f(x, digits: int = 3) -> str:
    v = _num(x)
    if v is None:
        return "-"
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def _ok(row: dict) -> bool:
    return row.get("status") == "ok" and _num(row.get("median_ms")) is not None


def throttle_flag(row: dict) -> str:
    if row.get("throttled"):
        return f"THROTTLED ({row.get('throttle_reasons') or '?'})"
    return "" if row.get("throttled") is False else "-"


def layer_answers(rows: list[dict]) -> list[str]:
    """One line per (op, pass, precision): Triton vs the best baseline per layer."""
    layer = [r for r in rows if r.get("scope") == "layer"]
    groups: dict[tuple, dict[str, dict[str, dict]]] = {}
    for r in layer:
        key = (r.get("op"), r.get("pass"), r.get("precision"))
        groups.setdefault(key, {}).setdefault(r.get("layer"), {})[r.get("impl")] = r
    op_order = list(OP_KERNEL)
    lines = []
    for (op, pass_, precision) in sorted(groups, key=lambda k: (op_order.index(k[0]) if k[0] in op_order else 9,
                                                                 k[1] != "fwd", k[2] != "bf16")):
        per_layer = groups[(op, pass_, precision)]
        ratios, wins, pcts, not_equiv, missing, throttled = [], 0, [], [], [], False
        for name, impls in per_layer.items():
            tri = next((impls[i] for i in TRITON_IMPLS if i in impls), None)
            if tri is None:
                continue
            if tri.get("status") == "failed":
                not_equiv.append(name)
                continue
            base = [impls[b] for b in BASELINES if b in impls and _ok(impls[b])]
            if not _ok(tri) or not base:
                missing.append(name)
                continue
            best = min(base, key=lambda b: b["median_ms"])
            ratio = best["median_ms"] / tri["median_ms"]
            ratios.append(ratio)
            wins += ratio > 1.0
            if _num(tri.get("pct_peak")) is not None:
                pcts.append(tri["pct_peak"])
            throttled |= bool(tri.get("throttled") or best.get("throttled"))
        kernel = OP_KERNEL.get(op, op)
        head = f"- **{kernel} {pass_} {precision}**: "
        if not ratios and not not_equiv:
            lines.append(head + "no comparable rows (" + (", ".join(missing) or "not run") + ")")
            continue
        parts = []
        if ratios:
            g = _geomean(ratios)
            verdict = "FASTER than" if g > 1.0 else "slower than"
            parts.append(f"Triton {verdict} the best baseline (fastest of {'/'.join(BASELINES)}): {g:.2f}x its speed "
                         f"geomean, faster on {wins}/{len(ratios)} layers ({min(ratios):.2f}-{max(ratios):.2f}x)")
            if pcts:
                bound = "peak TFLOP/s" if op == "conv_relu" else "peak bandwidth"
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


def model_answers(rows: list[dict]) -> list[str]:
    models = [r for r in rows if r.get("scope") == "model" and r.get("layout", "single") == "single"]
    lines = []
    for pass_ in ("inference", "train"):
        cells = {r.get("variant"): r for r in models if r.get("pass") == pass_}
        if not cells:
            continue
        parts = []
        for new, old in (("triton", "eager"), ("triton+compile", "compile"), ("compile", "eager"),
                         ("triton+compile", "eager")):
            a, b = cells.get(new), cells.get(old)
            if a and b and _ok(a) and _ok(b):
                parts.append(f"{new} vs {old} {b['median_ms'] / a['median_ms']:.2f}x")
        bad = [v for v, r in cells.items() if r.get("status") in ("failed", "error")]
        eq = "all equivalent" if not bad else "NOT OK: " + ", ".join(f"{v} ({cells[v].get('status')})" for v in bad)
        fastest = min((r for r in cells.values() if _ok(r)), key=lambda r: r["median_ms"], default=None)
        best = f"fastest {fastest['variant']} {_f(fastest['median_ms'])} ms" if fastest else "no timing"
        batch = next(iter(cells.values())).get("batch_size")
        prec = next(iter(cells.values())).get("precision")
        lines.append(f"- **whole model {pass_} {prec} b{batch}**: {best}; " + ("; ".join(parts) or "no pair timed")
                     + f"; {eq}")
    return lines


def layout_answers(rows: list[dict]) -> list[str]:
    lines = []
    for r in rows:
        if r.get("scope") == "model" and r.get("layout", "single") != "single":
            state = "equivalent" if r.get("equivalent") else r.get("status", "?")
            lines.append(f"- **{r.get('layout')} {r.get('variant')} {r.get('pass')} {r.get('precision')}** "
                         f"(2 ranks on 1 GPU): {state} -- {r.get('speed_note', '')}"
                         + (f"; {r['note']}" if r.get("note") else ""))
    return lines


def render(results: dict[str, Any], note: str | None = None) -> str:
    meta = results.get("meta") or {}
    rows = results.get("rows") or []
    cells = results.get("cells") or []
    out = [f"# GPU run: {meta.get('device', '?')} -- suite {meta.get('suite', '?')}", ""]
    for text in (note, meta.get("fixture_note")):
        if text:
            out += [f"> {text}", ""]
    status: dict[str, int] = {}
    for c in cells:
        status[c.get("status", "?")] = status.get(c.get("status", "?"), 0) + 1
    out += [f"torch {meta.get('torch')}, triton {meta.get('triton')}, CUDA {meta.get('cuda')}, cuDNN "
            f"{meta.get('cudnn')}, compute capability {meta.get('capability')}, Python {meta.get('python')}, "
            f"commit {meta.get('git_commit')}; started {meta.get('started')}.",
            f"Elapsed {_f(meta.get('elapsed_s'))} s of a {_f(meta.get('budget_s'))} s budget (estimated "
            f"{_f(meta.get('estimate_s'))} s); cells: " + ", ".join(f"{k} {v}" for k, v in sorted(status.items()))
            + ". Peaks: " + str(meta.get("peaks_source", "-")) + ".", ""]
    throttled = [r for r in rows if r.get("throttled")]
    tele = [r for r in rows if r.get("throttled") is not None]
    out += ["## Answers", ""]
    out += layer_answers(rows) or ["- per layer: no rows"]
    out += model_answers(rows) or ["- whole model: no rows"]
    out += layout_answers(rows)
    tuned, cg = results.get("autotune") or [], results.get("codegen") or []
    if tuned or cg:
        spills = [c for c in cg if (c.get("spill_store_bytes") or 0) > 0 or (c.get("spill_load_bytes") or 0) > 0]
        failed = [c for c in cg if not c.get("compiled")]
        out.append(f"- **autotuner**: {len(tuned)} (kernel, key) choices recorded; codegen of the chosen configs for "
                   f"this arch: {len(cg)} compiled, {len(spills)} with register spills, {len(failed)} failed")
    py = results.get("pytest")
    if py:
        counts = py.get("counts") or {}
        state = "TIMED OUT (cut at the budget)" if py.get("timed_out") else f"exit {py.get('returncode')}"
        out.append(f"- **pytest -m gpu**: {py.get('summary') or '-'} ({state}; junit {py.get('junit') or 'none'}"
                   + (f": {counts}" if counts else "") + ")")
    out.append(f"- **telemetry**: {len(tele)} rows with NVML samples; "
               + (f"{len(throttled)} measured THROTTLED: " + ", ".join(
                   f"{r.get('layer')} {r.get('pass')} {r.get('precision')} {r.get('impl') or r.get('variant')}"
                   for r in throttled[:10]) + (" ..." if len(throttled) > 10 else "")
                  if throttled else "none throttled"))
    skipped = [c for c in cells if c.get("status") in ("skipped", "pending", "error")]
    if skipped:
        out.append(f"- **not done**: " + "; ".join(f"{c.get('kind')} {c.get('name')} ({c.get('status')}"
                                                     + (f": {c['note']}" if c.get("note") else "") + ")"
                                                     for c in skipped[:12]) + (" ..." if len(skipped) > 12 else ""))
    out.append("")

    layer = [r for r in rows if r.get("scope") == "layer"]
    if layer:
        out += ["## Per layer", "",
                f"Batch {meta.get('layer_batch', '?')}. Forward: the unit's output; backward: the gradients a training "
                "step needs (input gradient except for conv1, weight and bias gradients). Rates use the unavoidable "
                "traffic (read inputs once, write outputs once) and the forward's FLOPs (backward: wgrad + dgrad). "
                "% of peak: TFLOP/s of the precision for conv+ReLU, HBM bandwidth for the rest.", ""]
        fastest: dict[tuple, float] = {}
        for r in layer:
            if _ok(r):
                k = (r.get("layer"), r.get("pass"), r.get("precision"))
                fastest[k] = min(fastest.get(k, math.inf), r["median_ms"])
        body = []
        for r in layer:
            k = (r.get("layer"), r.get("pass"), r.get("precision"))
            rate = (f"{_f(_num(r.get('gflops_per_s')) and r['gflops_per_s'] / 1e3)} TFLOP/s"
                    if r.get("op") == "conv_relu" else f"{_f(r.get('gbytes_per_s'))} GB/s") if _ok(r) else "-"
            best = "**best**" if _ok(r) and r["median_ms"] == fastest.get(k) else (
                f"{r['median_ms'] / fastest[k]:.2f}x" if _ok(r) and k in fastest else "-")
            body.append([r.get("layer"), r.get("pass"), r.get("precision"), r.get("impl"),
                         _f(r.get("median_ms")), rate, _f(r.get("pct_peak"), 2), best,
                         {True: "yes", False: "**NO**"}.get(r.get("equivalent"), "-") if r.get("status") != "error"
                         else f"error: {r.get('note', '')}", _f(r.get("first_call_s")),
                         _f(r.get("sm_clock_mhz")), _f(r.get("power_w")), _f(r.get("temperature_c")),
                         throttle_flag(r)])
        out += _table(["layer", "pass", "prec", "impl", "median ms", "rate", "% peak", "vs fastest", "equivalent",
                       "first call s", "SM MHz", "W", "C", "throttle"], body) + [""]

    models = [r for r in rows if r.get("scope") == "model" and r.get("layout", "single") == "single"]
    if models:
        out += ["## Whole model", "", "Run by the harness (`alexnet-fast bench`'s checks and timer), warm compile "
                "cache within the run; `first call s` includes compiling and autotuning.", ""]
        out += _table(["variant", "pass", "prec", "batch", "median ms", "images/s", "first call s", "equivalent",
                       "worst tensor", "fp64 err / tol", "SM MHz", "W", "C", "throttle", "note"],
                      [[r.get("label") or r.get("variant"), r.get("pass"), r.get("precision"), r.get("batch_size"),
                        _f(r.get("median_ms")), _f(r.get("images_per_s")), _f(r.get("compile_s")),
                        {True: "yes", False: "**NO**"}.get(r.get("equivalent"), r.get("status", "-")),
                        r.get("worst_tensor", "-"), f"{_f(r.get('fp64_err'))} / {_f(r.get('tolerance'))}",
                        _f(r.get("sm_clock_mhz")), _f(r.get("power_w")), _f(r.get("temperature_c")),
                        throttle_flag(r), r.get("note", "")] for r in models]) + [""]

    layouts = [r for r in rows if r.get("scope") == "model" and r.get("layout", "single") != "single"]
    if layouts:
        out += ["## Two-rank layouts on one GPU", "",
                "Two processes share the one GPU (gloo): **equivalence + CUDA code path only, not a two-GPU speed**.",
                ""]
        out += _table(["layout", "variant", "pass", "prec", "batch", "equivalent", "max rel err", "step ms (not a speed)",
                       "note"],
                      [[r.get("layout"), r.get("variant"), r.get("pass"), r.get("precision"), r.get("batch_size"),
                        {True: "yes", False: "**NO**"}.get(r.get("equivalent"), r.get("status", "-")),
                        _f(r.get("max_rel_err")), _f(r.get("median_ms")), r.get("note", "")] for r in layouts]) + [""]

    if tuned:
        out += ["## Autotuner's choices", "", f"At most {meta.get('autotune_max_configs') or 'all'} candidates per "
                "kernel (the first entries of each table in kernels/configs.py).", ""]
        out += _table(["kernel", "key", "dtype", "chosen config", "candidates"],
                      [[t.get("kernel"), f"`{t.get('key_names')}` = {t.get('key')}", t.get("dtype") or "-",
                        " ".join(f"{k}={v}" for k, v in (t.get("config") or {}).items()), t.get("candidates")]
                       for t in tuned]) + [""]
    if cg:
        out += ["## Codegen of the chosen configs", ""]
        out += _table(["op", "kernel", "config", "dtype", "arch", "regs", "spill B st/ld", "smem B", "MMA", "result"],
                      [[c.get("op"), c.get("kernel"), c.get("config"), c.get("dtype"), f"sm_{c.get('arch')}",
                        _f(c.get("registers")), f"{c.get('spill_store_bytes', '-')}/{c.get('spill_load_bytes', '-')}",
                        _f(c.get("smem_bytes")), f"{c.get('mma_kind') or '-'} {c.get('mma_instructions') or ''}".strip(),
                        "ok" if c.get("compiled") and c.get("passed", True) else (c.get("error") or "failed")]
                       for c in cg]) + [""]
    if py:
        out += ["## pytest -m gpu", "", f"`{py.get('command')}`: {py.get('summary')} in {_f(py.get('elapsed_s'))} s "
                f"(timeout {py.get('timeout_s')} s); log `{py.get('log')}`, junit `{py.get('junit')}`.", ""]
    if cells:
        out += ["## Cells", "", "Estimated vs measured seconds per cell (the estimate's constants are in "
                "profiling/suites.py).", ""]
        out += _table(["kind", "cell", "estimate s", "elapsed s", "status"],
                      [[c.get("kind"), c.get("name"), _f(c.get("estimate_s")), _f(c.get("elapsed_s")),
                        c.get("status") + (f" ({c['note']})" if c.get("note") else "")] for c in cells]) + [""]
    return "\n".join(out)
