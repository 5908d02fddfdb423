"""The profile's tables and summary: a cell's ``profile.md`` and CSV files, the run's
``PROFILE.md``, ``profile.json`` and ``layers.png`` (time per layer stacked, one bar per
variant)."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

from alexnet_fast.io import atomic_write_json, atomic_write_text
from alexnet_fast.profiling.render.format import fmt, fmt_bytes, markdown_table, save_png

__all__ = ["INTERPRETED", "TOP_KERNELS", "cell_markdown", "write_cell_files", "plot_layers", "write_summary"]

INTERPRETED = "interpreted: not a speed"
TOP_KERNELS = 25


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def cell_markdown(result, link: str = "") -> str:
    """The cell's section: step times, memory, notes, then the layer, op (and kernel) tables."""
    c = result.cell
    train = c["pass"] == "train"
    cuda = c["device"].startswith("cuda")
    lines = [f"## {c['label']} · {c['precision']} · batch {c['batch_size']} · {c['pass']}", ""]
    size = f"input {'x'.join(map(str, c['input_shape']))}" + (f", {c['size']}" if c.get("size") else "")
    load = f", load average {c['load_avg_1m']:.1f} at the start" if c.get("load_avg_1m") is not None else ""
    lines.append(f"- device {c['device']}, {c.get('threads')} thread(s){load}, {size}; {c['steps']} profiled steps "
                 f"after {c['warmup']} warm-up")
    if result.interpreted:
        lines.append(f"- step {result.step_mean_ms:.1f} ms under the profiler: **{INTERPRETED}**")
    else:
        pct, why = result.overhead()
        over = f"{pct:+.0f}% profiler + marker overhead; {why}" if pct is not None else why
        first = "" if result.first_call_s is None else f"; first call {result.first_call_s:.2f} s"
        without = (f"{result.unprofiled['median_ms']:.2f} ms without it (median of {2 * c['steps']}: {over})"
                   if result.unprofiled else "not timed without it (no timer given)")
        lines.append(f"- step **{result.step_mean_ms:.2f} ms** under the profiler (mean of {len(result.step_ms)}), "
                     f"{without}{first}")
    mem = result.memory
    lines.append(f"- peak memory {fmt_bytes(mem.get('peak_bytes'))} ({mem.get('source')})")
    lines += [f"- {n}" for n in result.notes]
    if link:
        lines.append(f"- trace: [{link}]({link}) (open in https://ui.perfetto.dev or chrome://tracing)")
    if result.gaps:
        g = result.gaps
        lines.append(f"- device busy {g['busy_ms']:.3f} of {g['step_ms']:.3f} ms a step ({100 * (g['busy_share'] or 0):.0f}%); "
                     f"{g['gaps']:.0f} gaps between {g['kernels']:.0f} kernels, {g['gap_total_ms']:.3f} ms in all "
                     f"(median {g['gap_median_us']:.1f} µs, max {g['gap_max_us']:.1f} µs), first kernel "
                     f"{fmt(g['lead_us'])} µs after the step starts")
    lines += ["", f"Time per layer, per step ({'device' if cuda else 'CPU'} time decides; `layer` rows add up to the "
                  f"step, `module` rows sit inside their layer):", ""]
    dev = ["device total ms", "device self ms"] if cuda else []
    header = ["layer", "level", "calls", "CPU total ms", "CPU self ms", *dev]
    header += (["bwd CPU ms"] + (["bwd device ms"] if cuda else [])) if train else []
    header += ["share of step"]
    rows = []
    for r in result.layers:
        row = [r["layer"], r["level"], fmt(r["calls"]), fmt(r["cpu_total_ms"]), fmt(r["cpu_self_ms"])]
        row += [fmt(r["device_total_ms"]), fmt(r["device_self_ms"])] if cuda else []
        row += ([fmt(r["bwd_cpu_ms"])] + ([fmt(r["bwd_device_ms"])] if cuda else [])) if train else []
        row += [f"{100 * r['share']:.1f}%" if r.get("share") is not None and r["level"] == "layer" else ""]
        rows.append(row)
    lines += [markdown_table(header, rows), ""]
    lines += [f"Top ops, per step, by self {'device' if cuda else 'CPU'} time (`ours`: our custom ops; CPU MiB: "
              f"allocated minus freed inside the op):", ""]
    op_dev = ["self device ms", "device total ms"] if cuda else []
    lines += [markdown_table(["op", "calls", "self CPU ms", "CPU total ms", *op_dev, "self CPU MiB", "ours"],
                             [[r["op"], fmt(r["calls"]), fmt(r["self_cpu_ms"]), fmt(r["cpu_total_ms"]),
                               *([fmt(r["self_device_ms"]), fmt(r["device_total_ms"])] if cuda else []),
                               fmt(r["self_cpu_mem_mib"]), fmt(r["ours"])] for r in result.ops]), ""]
    if result.kernels:
        lines += ["Device kernels, per step (`ours`: our Triton kernels; `inductor`: torch.compile's):", ""]
        lines += [markdown_table(["kernel", "source", "calls", "device ms", "mean µs", "share"],
                                 [[r["kernel"], r["source"], fmt(r["calls"]), fmt(r["device_ms"]), fmt(r["mean_us"]),
                                   f"{100 * r['share']:.1f}%" if r["share"] is not None else "-"]
                                  for r in result.kernels[:TOP_KERNELS]]), ""]
    return "\n".join(lines) + "\n"


def write_cell_files(result, out: Path) -> None:
    """A cell's ``layers.csv``, ``ops.csv``, ``kernels.csv`` (GPU), ``profile.md`` and ``cell.json``."""
    files = {"trace": result.files["trace"], "layers_csv": str(out / "layers.csv"), "ops_csv": str(out / "ops.csv"),
             "markdown": str(out / "profile.md"), "json": str(out / "cell.json")}
    atomic_write_text(out / "layers.csv", _csv_text(result.layers))
    atomic_write_text(out / "ops.csv", _csv_text(result.ops))
    if result.kernels:
        files["kernels_csv"] = str(out / "alexnet_fast.kernels.csv")
        atomic_write_text(out / "alexnet_fast.kernels.csv", _csv_text(result.kernels))
    result.files = files
    atomic_write_text(out / "profile.md", cell_markdown(result, Path(files["trace"]).name))
    atomic_write_json(out / "cell.json", result.as_dict())


def _segments(result) -> list[tuple[str, float]]:
    """(layer, ms) stacking to the mean profiled step: CPU time on a CPU (the table's
    ``outside layers`` last), device time on a GPU (the rest of the step last: device idle or
    outside layers)."""
    if not result.cell["device"].startswith("cuda"):
        return [(r["layer"], r["time_ms"]) for r in result.layers if r["level"] == "layer"]
    segs = [(r["layer"], r["device_total_ms"] + r["bwd_device_ms"]) for r in result.layers
            if r["level"] == "layer" and r["layer"] != "outside layers"]
    return segs + [("device idle / outside layers", max(0.0, result.step_mean_ms - sum(v for _, v in segs)))]


def plot_layers(results, path: str | Path) -> Path | None:
    """Time per layer stacked, one bar per variant, one panel per precision x batch x pass x
    input (interpreted cells left out: no speed). None if nothing can be plotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if not r.interpreted]
    if not timed:
        return None
    panels: dict[tuple, list] = {}
    for r in timed:
        c = r.cell
        panels.setdefault((c["precision"], c["batch_size"], c["pass"], tuple(c["input_shape"]), c["device"]), []).append(r)
    names: list[str] = []
    for r in timed:
        names += [n for n, _ in _segments(r) if n not in names]
    rest = [n for n in names if n.endswith("outside layers")]
    names = [n for n in names if n not in rest] + rest
    cmap = plt.get_cmap("tab20")
    colors = {n: cmap(i % 20) for i, n in enumerate(n for n in names if n not in rest)}
    colors.update({n: "0.8" for n in rest})
    colors["compiled graph"] = "0.45"  # one segment, hatched: the layers fused in one graph
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 + 1.6 * max(len(v) for v in panels.values()) * len(panels), 5.2),
                             squeeze=False)
    for ax, ((precision, batch, pass_, shape, device), cells) in zip(axes[0], panels.items()):
        for i, r in enumerate(cells):
            bottom = 0.0
            for name, ms in _segments(r):
                ax.bar(i, ms, bottom=bottom, color=colors[name], edgecolor="white", linewidth=0.5,
                       hatch="//" if name == "compiled graph" else None, label=name)
                bottom += ms
            ax.text(i, bottom, f"{r.step_mean_ms:.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(cells)), [r.cell["label"].replace(" (", "\n(") for r in cells], fontsize=8)
        unit = "device" if device.startswith("cuda") else "CPU"
        ax.set_ylabel(f"ms per step ({unit} time per layer)")
        ax.set_title(f"{precision}, batch {batch}, {pass_}, input {'x'.join(map(str, shape))}", fontsize=9)
        ax.grid(True, axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, l = ax.get_legend_handles_labels()
        handles, labels = handles + h, labels + l
    seen = dict(zip(labels, handles))
    fig.legend([seen[n] for n in names if n in seen], [n for n in names if n in seen], loc="center right",
               fontsize=8, frameon=False)
    left_out = sorted({r.cell["label"] for r in results if r.interpreted})
    title = ("Time per layer, one bar per variant (torch.profiler; bar label: mean profiled step, ms)\n"
             "cells run one after another: compare layers within a bar, time ratios with `bench`")
    if left_out:
        title += f"\nnot plotted ({', '.join(left_out)}): interpreted, not a speed"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return save_png(fig, path)


def write_summary(results, output_dir: str | Path, by: str = "`alexnet-fast profile`") -> Path:
    """``PROFILE.md`` (a summary table, the plot, then every cell's tables), ``profile.json``
    and ``layers.png`` under ``output_dir``; returns the markdown's path."""
    from alexnet_fast.profiling.results import environment

    out = Path(output_dir)
    env = environment(results[0].cell["device"], results[0].cell.get("threads"))
    plot = plot_layers(results, out / "layers.png")
    lines = ["# Profile", "",
             f"{env['device']} ({env['threads']} thread(s)), torch {env['torch']}, triton {env['triton']}, "
             f"commit {env['git_commit']}; written by {by} ({time.strftime('%Y-%m-%d %H:%M')}).", "",
             "Open a trace (`<cell>/trace.json[.gz]`) in https://ui.perfetto.dev (drag the file in) or "
             "chrome://tracing: each `step N` range holds the layer ranges, and under them the ops (and on a "
             "GPU the kernels, linked by flow arrows).", ""]
    rows = []
    for r in results:
        cols = r.columns()
        link = f"{r.cell['cell']}/profile.md" if r.cell.get("cell") else ""
        step = INTERPRETED if r.interpreted else f"{r.step_mean_ms:.2f}"
        unprof = (r.unprofiled or {}).get("median_ms")
        rows.append([f"[{r.cell['label']}]({link})" if link else r.cell["label"], r.cell["precision"],
                     str(r.cell["batch_size"]), r.cell["pass"], step, "-" if unprof is None else f"{unprof:.2f}",
                     "-" if r.interpreted else f"{cols['profile_overhead_pct']:+.0f}%"
                     if cols["profile_overhead_pct"] is not None else "noisy",
                     "-" if cols["profile_layer_coverage"] is None else
                     f"{100 * cols['profile_layer_coverage']:.1f}%",
                     "-" if cols["peak_memory_mb"] is None else f"{cols['peak_memory_mb']:.1f}"])
    lines += [markdown_table(["cell", "precision", "batch", "pass", "profiled step ms", "unprofiled ms", "overhead",
                              "in layers", "peak MiB"], rows), ""]
    if plot is not None:
        lines += [f"![time per layer]({plot.name})", ""]
    for r in results:
        link = f"{r.cell['cell']}/{Path(r.files['trace']).name}" if r.cell.get("cell") else Path(r.files["trace"]).name
        lines.append(cell_markdown(r, link))
    path = out / "PROFILE.md"
    atomic_write_text(path, "\n".join(lines))
    atomic_write_json(out / "profile.json", {"environment": env, "cells": [r.as_dict() for r in results]})
    return path
