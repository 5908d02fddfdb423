"""The regression check's table and the benchmark history plot (``alexnet-fast regress``)."""

from __future__ import annotations

import math
from pathlib import Path

from alexnet_fast.profiling.render.format import fmt, save_png, text_table

__all__ = ["format_table", "plot_history"]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else fmt(seconds * 1e3, 4)


def format_table(changes: list, threshold_pct: float, alpha: float) -> str:
    """The comparison as a terminal table: medians, change, the U test's p and the verdict."""
    header = ["kernel", "shape", "dtype", "provider", "baseline ms", "current ms", "change", "p (U test)", "verdict"]
    rows = [[c.kernel, c.shape, c.dtype, c.provider, _ms(c.baseline_s), _ms(c.current_s),
             "-" if c.change is None else f"{100 * c.change:+.1f}%", c.p_text(alpha), c.verdict(threshold_pct, alpha)]
            for c in changes]
    return text_table(header, rows)


def plot_history(runs: list, path: str | Path) -> Path:
    """Median time of every benchmark over the runs (ordered by date), one panel per group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted(runs, key=lambda r: (r.datetime, str(r.path)))
    groups: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for i, r in enumerate(runs):
        for b in r.benchmarks.values():
            label = " ".join(filter(None, [b.provider, b.dtype])) or b.name
            groups.setdefault(b.group or b.kernel, {}).setdefault(label, []).append((i, b.median_s * 1e3))
    n = max(1, len(groups))
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
    for ax, (group, lines) in zip(axes.flat, sorted(groups.items())):
        for label, points in sorted(lines.items()):
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(group, fontsize=9)
        ax.set_ylabel("median ms")
        ax.set_yscale("log")
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels([(r.datetime[:16].replace("T", " ") or r.path.stem) for r in runs], rotation=45,
                           fontsize=7, ha="right")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.suptitle(f"benchmark history over {len(runs)} runs", fontsize=10)
    fig.tight_layout()
    return save_png(fig, path, dpi=100)
