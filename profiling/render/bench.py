"""REPORT.md of `alexnet-fast bench` results, with its plots.

* ``roofline_<machine>.png``: the compute ceiling of every precision run and the bandwidth
  slope (datasheet peaks of known GPUs, measured GEMM / copy peaks elsewhere), every timed
  layer placed for every variant (FLOP/byte from the variant's byte model: separate ops for
  eager, fused for the others);
* ``throughput_<machine>.png``: images/s against batch per variant and pass, and the speedup
  over eager at the same precision, batch and pass;
* ``REPORT.md``: environment, eager vs the other variants, whole-model and per-layer tables,
  equivalence (interpreted and failed rows say so instead of showing a time), peaks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from alexnet_fast.io import atomic_write_text
from alexnet_fast.vocabulary import PASSES, VARIANT_LABELS
from alexnet_fast.profiling.judge import ERROR_MULTIPLIER, TOLERANCES
from alexnet_fast.profiling.render.format import fmt, fmt_interference, fmt_speedup, markdown_table, num, save_png
from alexnet_fast.profiling.results import STATUSES

__all__ = ["render", "roofline_plot", "throughput_plot", "device_peaks_from"]

VARIANT_ORDER = list(VARIANT_LABELS)
MARKERS = {"eager": "o", "compile": "s", "compile[max-autotune]": "D", "triton": "^", "triton+compile": "v",
           "triton+compile[max-autotune]": "P"}


def _label(row) -> str:
    label = row.get("label")
    return label if isinstance(label, str) and label else str(row.get("variant"))


def _order(labels: Iterable[str]) -> list[str]:
    labels = list(dict.fromkeys(labels))
    return sorted(labels, key=lambda s: (VARIANT_ORDER.index(s) if s in VARIANT_ORDER else len(VARIANT_ORDER), s))


def _timing_cell(row) -> str:
    status = row.get("status")
    if status == "interpreted":
        return "interpreted"
    if status == "failed":
        return "failed (not timed)"
    if status == "error":
        return "error"
    ms = num(row.get("median_ms"))
    if ms is None:
        return "-"
    lo, hi = num(row.get("p20_ms")), num(row.get("p80_ms"))
    spread = f" ({fmt(lo)}-{fmt(hi)})" if lo is not None and hi is not None else ""
    return f"{fmt(ms)}{spread}"


def device_peaks_from(frame: pd.DataFrame) -> tuple[dict[str, float], float | None, str]:
    """(GFLOP/s per precision, GB/s, source) from a machine's ``scope == "peak"`` rows."""
    peaks = frame[frame["scope"] == "peak"]
    gemm = {r["precision"]: float(r["gflops_per_s"]) for _, r in peaks[peaks["layer"] == "gemm"].iterrows()
            if num(r.get("gflops_per_s"))}
    copy_rows = peaks[peaks["layer"] == "copy"]
    bw = num(copy_rows["gbytes_per_s"].iloc[0]) if len(copy_rows) else None
    source = str(peaks["note"].iloc[0]) if len(peaks) and "note" in peaks else "no peaks recorded"
    return gemm, bw, source


def _timed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["status"] == "ok") & frame["median_ms"].notna()] if "median_ms" in frame else frame.iloc[0:0]


# ---------------------------------------------------------------------- plots
def roofline_plot(frame: pd.DataFrame, path: Path, title: str) -> Path | None:
    """Roofline of one machine's results; None if it has no peaks or no timed layers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gemm, bw, source = device_peaks_from(frame)
    layers = _timed(frame)
    layers = layers[(layers["scope"].isin(["layer", "model"])) & layers["intensity"].notna()
                    & layers["gflops_per_s"].notna()]
    if not gemm or not bw or layers.empty:
        return None
    fig, ax = plt.subplots(figsize=(10, 6.5))
    xs = pd.to_numeric(layers["intensity"])
    x_lo, x_hi = min(xs.min(), min(gemm.values()) / bw) / 4, max(xs.max(), max(gemm.values()) / bw) * 4
    for precision, peak in sorted(gemm.items(), key=lambda kv: -kv[1]):
        ridge = peak / bw
        ax.plot([x_lo, ridge, x_hi], [x_lo * bw, peak, peak], lw=1.5,
                label=f"{precision} roof: {fmt(peak)} GFLOP/s, {fmt(bw)} GB/s")
    cmap = plt.get_cmap("tab20")
    names = list(dict.fromkeys(layers["layer"]))
    colors = {n: cmap(i % 20) for i, n in enumerate(names)}
    for _, r in layers.iterrows():
        label = _label(r)
        ax.scatter(float(r["intensity"]), float(r["gflops_per_s"]), color=colors[r["layer"]],
                   marker=MARKERS.get(label, "x"), s=90 if r["layer"] == "model" else 45,
                   edgecolors="black", linewidths=0.5, zorder=3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[n], marker="o", ls="", label=n) for n in names]
    handles += [Line2D([], [], color="black", markerfacecolor="none", marker=MARKERS.get(v, "x"), ls="", label=v)
                for v in _order(_label(r) for _, r in layers.iterrows())]
    leg1 = ax.legend(handles=handles, loc="lower right", fontsize=7, ncol=2, title="layer / variant")
    ax.add_artist(leg1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_xlabel("arithmetic intensity (FLOP/byte; eager: separate ops, others: fused)")
    ax.set_ylabel("achieved GFLOP/s")
    ax.set_title(f"{title}\npeaks {source}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def _speedups(models: pd.DataFrame) -> pd.DataFrame:
    """Speedup of every timed model row over eager: the paired rounds' (``speedup``, its
    interval, eager's median of the same rounds as ``eager_ms``) where the row has them; for
    results without them, eager's row of the same run (``run_id``) at the same precision,
    batch, pass and layout, with no interval."""
    keys = ["precision", "batch_size", "pass", "layout"] + (["run_id"] if "run_id" in models.columns else [])
    eager = models[models["variant"] == "eager"][keys + ["median_ms"]].rename(columns={"median_ms": "eager_ms"})
    merged = models.merge(eager, on=keys, how="left")
    for col in ("speedup", "speedup_ci_low", "speedup_ci_high", "baseline_median_ms"):
        merged[col] = pd.to_numeric(merged[col], errors="coerce") if col in merged else float("nan")
    paired = merged["speedup"].notna()
    merged["eager_ms"] = merged["baseline_median_ms"].where(paired, merged["eager_ms"])
    merged["speedup"] = merged["speedup"].where(paired, merged["eager_ms"] / merged["median_ms"])
    return merged


def _speedup_cell(r) -> str:
    return "baseline" if r.get("variant") == "eager" else fmt_speedup(r.get("speedup"), r.get("speedup_ci_low"),
                                                                       r.get("speedup_ci_high"))


def _rounds_cell(r) -> str:
    rounds = num(r.get("rounds"))
    if rounds is None:
        return "-"
    met = r.get("target_met")
    outliers = num(r.get("outlier_rounds"))
    extra = f", {outliers:.0f} outlying" if outliers else ""
    return f"{rounds:.0f} ({'target met' if met is True or met == 1.0 or met == 'True' else 'cap'}{extra})"


def throughput_plot(frame: pd.DataFrame, path: Path, title: str) -> Path | None:
    """images/s vs batch per variant (one column per pass) and speedup vs eager below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = _timed(frame)
    models = models[models["scope"] == "model"].copy()
    if models.empty:
        return None
    models["line"] = [f"{_label(r)} {r['precision']}" + ("" if r["layout"] == "single" else f" ({r['layout']})")
                      for _, r in models.iterrows()]
    models = _speedups(models)
    passes = [p for p in PASSES if p in set(models["pass"])]
    fig, axes = plt.subplots(2, len(passes), figsize=(6.5 * len(passes), 8), squeeze=False, sharex="col")
    for j, pass_ in enumerate(passes):
        sub = models[models["pass"] == pass_]
        for line in sorted(set(sub["line"]), key=lambda s: (_order(sub["line"].str.split(" ").str[0]).index(s.split(" ")[0]), s)):
            d = sub[sub["line"] == line].sort_values("batch_size")
            marker = MARKERS.get(line.split(" ")[0], "x")
            axes[0][j].plot(d["batch_size"], d["images_per_s"], marker=marker, label=line)
            err = [(d["speedup"] - d["speedup_ci_low"]).clip(lower=0).fillna(0),
                   (d["speedup_ci_high"] - d["speedup"]).clip(lower=0).fillna(0)]
            axes[1][j].errorbar(d["batch_size"], d["speedup"], yerr=err, marker=marker, label=line, capsize=3)
        axes[0][j].set_title(f"{pass_}" + (" (forward + backward + SGD)" if pass_ == "train" else " (forward)"))
        axes[0][j].set_ylabel("images/s")
        axes[1][j].set_ylabel("speedup vs eager (same precision; 95% CI)")
        axes[1][j].axhline(1.0, color="gray", lw=0.8)
        axes[1][j].set_xlabel("batch size")
        for ax in axes[:, j]:
            ax.set_xscale("log", base=2)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        axes[0][j].set_yscale("log")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_png(fig, path)


# ---------------------------------------------------------------------- markdown
def _env_section(frame: pd.DataFrame) -> str:
    first = frame.iloc[0]
    fields = [("device", "device"), ("machine", "machine"), ("threads", "torch threads"),
              ("torch", "torch"), ("triton", "triton"), ("cuda", "CUDA"), ("cudnn", "cuDNN"),
              ("python", "python"), ("git_commit", "git commit"), ("run_id", "run"),
              ("load_avg_1m", "1-min load average at start"), ("compile_cache", "inductor cache"),
              ("cudnn_benchmark", "cudnn.benchmark")]
    rows = [[label, (fmt(first.get(col)) if isinstance(first.get(col), float) else str(first.get(col)))
             if pd.notna(first.get(col)) else "-"] for col, label in fields if col in frame.columns]
    text = markdown_table(["", ""], rows)
    load = num(first.get("load_avg_1m")) if "load_avg_1m" in frame.columns else None
    threads = num(first.get("threads"))
    cores = num(first.get("cpu_count")) if "cpu_count" in frame.columns else None
    if first.get("device_type") == "cpu" and load is not None and threads and cores and load + threads > cores:
        text += (f"\n\n**Warning:** the 1-min load average at the start ({load:.1f}) plus the {threads:.0f} "
                 f"timed threads exceeded the {cores:.0f} cores: other processes shared them, so CPU times "
                 "are pessimistic and noisy.")
    return text


def _model_section(frame: pd.DataFrame, gemm: dict[str, float]) -> str:
    models = frame[frame["scope"] == "model"].copy()
    if models.empty:
        return "_no whole-model rows_"
    timed = _speedups(_timed(models))
    speed = {(r["label"], r["precision"], r["batch_size"], r["pass"], r["layout"], str(r.get("run_id"))): r
             for _, r in timed.iterrows()}
    rows = []
    models = models.sort_values(["layout", "pass", "precision", "batch_size"], kind="stable")
    for _, r in models.iterrows():
        peak = gemm.get(r["precision"])
        gf = num(r.get("gflops_per_s"))
        key = (r.get("label"), r["precision"], r["batch_size"], r["pass"], r["layout"], str(r.get("run_id")))
        sp = speed.get(key)
        rows.append([r["layout"], r["pass"], r["precision"], fmt(r["batch_size"]), _label(r), r["status"],
                     _timing_cell(r), fmt(r.get("images_per_s")), fmt(gf),
                     f"{100 * gf / peak:.1f}%" if gf and peak else "-", fmt(r.get("peak_memory_mb")),
                     _speedup_cell(sp) if sp is not None else "-", _rounds_cell(r),
                     fmt_interference(r.get("interference"), r.get("interference_why")), fmt(r.get("compile_s"))])
    return markdown_table(["layout", "pass", "precision", "batch", "variant", "status", "median ms (p20-p80)",
                           "images/s", "GFLOP/s", "% of GEMM peak", "peak MiB", "speedup vs eager [95% CI]", "rounds",
                           "interference", "first call s"], rows) + _memory_note(models)


def _memory_note(rows: pd.DataFrame) -> str:
    """What the peak memory column counts (its source, per device type of the rows)."""
    if "peak_memory_source" not in rows.columns:
        return ""
    sources = sorted(set(rows["peak_memory_source"].dropna()))
    return "".join(f"\n\npeak MiB: {s}." for s in sources)


def _headline(frame: pd.DataFrame, gemm: dict[str, float]) -> str:
    """Eager vs each other timed variant: ratio and fraction of peak, per pass and batch."""
    timed = _speedups(_timed(frame[(frame["scope"] == "model") & (frame["layout"] == "single")]))
    others = timed[timed["variant"] != "eager"]
    if others.empty:
        return "_no variant besides eager was timed_"
    lines = []
    for _, r in others.sort_values(["pass", "precision", "batch_size"]).iterrows():
        peak = gemm.get(r["precision"])
        eager_gf = num(r["gflops_per_s"]) / r["speedup"] if num(r["speedup"]) else None
        frac = (lambda g: f"{100 * g / peak:.1f}%" if g and peak else "-")
        lines.append([r["pass"], r["precision"], fmt(r["batch_size"]), _label(r), _speedup_cell(r),
                      f"{fmt(r['eager_ms'])} -> {fmt(r['median_ms'])}", _rounds_cell(r),
                      fmt_interference(r.get("interference"), r.get("interference_why")), frac(eager_gf),
                      frac(num(r["gflops_per_s"]))])
    return markdown_table(["pass", "precision", "batch", "variant", "speedup over eager [95% CI]",
                           "median ms eager -> variant", "rounds", "interference", "eager % of GEMM peak",
                           "variant % of GEMM peak"], lines)


def _layer_section(frame: pd.DataFrame, gemm: dict[str, float], bw: float | None) -> str:
    layers = frame[frame["scope"] == "layer"]
    if layers.empty:
        return "_no per-layer rows_"
    rows = []
    for _, r in layers.iterrows():
        peak = gemm.get(r["precision"])
        ai, gf = num(r.get("intensity")), num(r.get("gflops_per_s"))
        roof = min(peak, ai * bw) if peak and bw and ai else None
        speedup = "baseline" if r.get("impl") == "eager-nchw" else fmt_speedup(
            r.get("speedup"), r.get("speedup_ci_low"), r.get("speedup_ci_high"))
        rows.append([r["layer"], r["pass"], _label(r), r["precision"], fmt(r["batch_size"]), r["status"],
                     _timing_cell(r), fmt(gf), fmt(r.get("gbytes_per_s")), fmt(ai),
                     f"{100 * gf / roof:.1f}%" if gf and roof else "-",
                     speedup if r["status"] == "ok" else "-", _rounds_cell(r),
                     fmt_interference(r.get("interference"), r.get("interference_why")), fmt(r.get("max_rel_err")),
                     fmt(r.get("peak_memory_mb"))])
    return markdown_table(["layer", "pass", "variant", "precision", "batch", "status", "median ms (p20-p80)", "GFLOP/s",
                           "GB/s (min bytes)", "FLOP/byte", "% of roofline", "speedup vs eager NCHW [95% CI]",
                           "rounds", "interference", "max rel err", "peak MiB"], rows)


METHOD = ("A speedup is eager's time / the variant's, measured in paired rounds inside the variant's cell once "
          "both are warm: one call of each per round, the order random per round, until the 95% bootstrap "
          "interval of the median per-round ratio is within the target (3%) or the cell's time cap (`rounds`: "
          "how many, which ended them, and how many lay outside Tukey's fences: counted, never dropped). It says faster or slower only when the interval excludes 1, else "
          "no significant difference. `interference`: other processes, CPU steal or load sampled through the "
          "cell (`profiling/interference.py`); a flagged row's time is pessimistic and its interval wider.")


def _interference_summary(frame: pd.DataFrame) -> str:
    """One line: how many timed rows were measured under interference, and the worst reason."""
    if "interference" not in frame.columns:
        return "_interference was not sampled in this run_"
    timed = frame[frame["interference"].notna()]
    flagged = timed[timed["interference"] == "yes"]
    if flagged.empty:
        return f"Interference sampled through every cell: none of the {len(timed)} timed rows was flagged."
    return (f"**Measured under interference: {len(flagged)} of {len(timed)} timed rows** (other processes, CPU "
            f"steal or load during the cell, e.g. {flagged['interference_why'].iloc[0]}): their times are "
            "pessimistic; the paired speedups cancel what both sides of a round share, but their intervals widen.")


def _equivalence_section(frame: pd.DataFrame) -> str:
    rows = []
    checked = frame[frame["scope"].isin(["model", "layer"])]
    for _, r in checked.iterrows():
        if r["scope"] == "layer" and r["status"] == "ok":
            continue  # passing layers: in the per-layer table; here only models and problems
        verdict = {"ok": "pass", "interpreted": "pass (interpreted)", "failed": "FAIL", "error": "error"}.get(
            r["status"], str(r["status"]))
        fp64 = " / ".join(fmt(r.get(c)) for c in ("fp64_err", "eager_fp64_err", "tolerance"))
        worst = r.get("worst_tensor")
        rows.append([r["scope"], r["layer"], _label(r), r["precision"], r.get("pass"), fmt(r.get("batch_size")),
                     str(r.get("check_size") if pd.notna(r.get("check_size")) else "-"),
                     fmt(r.get("max_abs_err")), fmt(r.get("max_rel_err")), fmt(r.get("grad_max_abs_err")),
                     fmt(r.get("grad_max_rel_err")), fp64, str(worst) if pd.notna(worst) else "-",
                     verdict,
                     (str(r.get("note")) if pd.notna(r.get("note")) and r["status"] in ("error", "failed") else "")])
    return markdown_table(["scope", "layer", "variant", "precision", "pass", "batch", "checked at",
                           "logits max abs", "logits max rel", "grad max abs", "grad max rel",
                           "rrmse vs fp64: variant / eager fp32 / allowed", "closest to failing", "verdict", "note"],
                          rows)


def _peaks_section(frame: pd.DataFrame) -> str:
    peaks = frame[frame["scope"] == "peak"]
    rows = [[r["layer"], r["precision"], fmt(r.get("gflops_per_s")), fmt(r.get("gbytes_per_s")), r.get("note")]
            for _, r in peaks.iterrows()]
    return markdown_table(["peak", "precision", "GFLOP/s", "GB/s", "source"], rows)


def render(frames: list[pd.DataFrame], output_dir: str | Path) -> Path:
    """Write the plots and REPORT.md for the given results tables; returns REPORT.md's path."""
    out = Path(output_dir)
    frame = pd.concat(frames, ignore_index=True)
    parts = ["# AlexNet performance report", "",
             "Produced by `alexnet-fast bench` then `alexnet-fast report` (re-render any time from the saved "
             "`results.csv` / `results.json`). Status of a row: " + "; ".join(f"**{k}**: {v}" for k, v in STATUSES.items())
             + ".", "",
             "Equivalence: every variant runs the same weights and input as eager. Errors are reported against "
             "eager fp32: max abs and max|out - ref| / max|ref| (logits; for training, the largest over all "
             "parameter gradients, computed in eval mode so dropout does not differ). The verdict is against an "
             "eager float64 run: for every checked tensor, the variant's relative RMS error must be at most "
             f"{ERROR_MULTIPLIER:g} x eager's own in the same precision + a floor per precision (logits / gradients: "
             + ", ".join(f"{p} {a:g} / {g:g}" for p, (a, g) in TOLERANCES.items()) + "). AlexNet's early-layer "
             "gradients are piecewise (a ReLU or max-pool decision flipped by rounding reroutes gradient), so two "
             "correct fp32 implementations differ by ~1e-2 there while a wrong backward is O(1) off: hence the "
             "loose gradient floors (the kernels' own tests check each backward tightly). The same rule and the "
             "same timer hold for every row, two-rank layouts included.", "",
             "Precision (`alexnet_fast/precision.py`): fp16/bf16 run under `torch.autocast` over fp32 weights "
             "(fp16 with PyTorch's dynamic GradScaler rule), tf32 sets cuBLAS/cuDNN TF32 for the whole step.", ""]
    for machine, group in frame.groupby("machine", sort=False, dropna=False):
        group = group.reset_index(drop=True)
        name = str(group["device"].iloc[0])
        gemm, bw, source = device_peaks_from(group)
        title = f"{name} ({machine})"
        roof = roofline_plot(group, out / f"roofline_{machine}.png", f"Roofline: {title}")
        thr = throughput_plot(group, out / f"throughput_{machine}.png", f"Throughput: {title}")
        cells = group[group["scope"].isin(["model", "layer"])]
        labels = _order(_label(r) for _, r in cells.iterrows())
        counts = cells["status"].value_counts().to_dict()
        summary = (f"Variants: {', '.join(labels) or 'none'}; precisions: "
                   f"{', '.join(sorted(set(cells['precision'].dropna())))}; batches: "
                   f"{', '.join(str(int(b)) for b in sorted(set(cells['batch_size'].dropna())))}; cells: "
                   + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ".")
        if not any(label.startswith("triton") for label in labels):
            summary += " No triton rows: the Triton kernels were not part of the checkout that ran."
        parts += [f"## {title}", "", summary, "", "### Environment", "", _env_section(group), "",
                  _interference_summary(group), "",
                  "### Eager vs the other variants (whole model, timed rows)", "", METHOD, "", _headline(group, gemm), "",
                  "% of GEMM peak = achieved GFLOP/s (FLOP model, `profiling/flops.py`) / the device's GEMM peak "
                  f"({source}).", ""]
        if thr is not None:
            parts += [f"![throughput]({thr.name})", ""]
        parts += ["### Whole model", "", _model_section(group, gemm), ""]
        if roof is not None:
            parts += ["### Roofline", "", f"![roofline]({roof.name})", ""]
        parts += ["### Per layer (forward)", "", _layer_section(group, gemm, bw), "",
                  "% of roofline = achieved GFLOP/s / min(compute peak, intensity x bandwidth).", "",
                  "### Equivalence (whole model; layers that failed or were interpreted)", "",
                  _equivalence_section(group), "", "### Device peaks", "", _peaks_section(group), ""]
        throttled = group[group["throttled"].map(lambda v: v is True or v == 1.0 or v == "True")]
        if len(throttled):
            parts += [f"**{len(throttled)} results were taken while the GPU throttled** "
                      f"(reasons: {', '.join(sorted(set(throttled['throttle_reasons'].dropna())))}).", ""]
    atomic_write_text(out / "REPORT.md", "\n".join(parts) + "\n")
    return out / "REPORT.md"


