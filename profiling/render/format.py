"""The one formatter of every report: numbers by one rule, byte sizes, a speedup with its
interval and the word it earns, the interference flag, markdown and plain text tables, and
PNGs written atomically."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

from alexnet_fast.io import atomic_path

__all__ = ["num", "fmt", "fmt_bytes", "fmt_speedup", "fmt_interference", "markdown_table", "text_table", "save_png"]


def num(x: Any) -> float | None:
    """``x`` as a finite float, else None (missing, NaN, inf, text)."""
    if isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(x: Any, digits: int = 3) -> str:
    """A figure for a table: ``digits`` significant digits; whole numbers with thousands
    separators from ``10**(digits - 1)`` up, scientific below 1e-3; ``-`` when missing; a
    flag as yes / no; other text as it is."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    v = num(x)
    if v is None:
        return x if isinstance(x, str) and x else "-"
    if v == 0:
        return "0"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    if abs(v) < 1e-3:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def fmt_speedup(ratio: Any, low: Any = None, high: Any = None) -> str:
    """``1.42x [1.31, 1.55] faster``: a speedup (baseline time / variant time) with its 95%
    interval, and faster / slower only when the interval excludes 1 (else ``no significant
    difference``); a ratio without an interval (two blocks, not paired rounds) says so."""
    from alexnet_fast.profiling.stats import significance

    r, lo, hi = num(ratio), num(low), num(high)
    if r is None:
        return "-"
    if lo is None or hi is None:
        return f"{fmt(r)}x (no interval: not paired)"
    return f"{fmt(r)}x [{fmt(lo)}, {fmt(hi)}] {significance(lo, hi)}"


def fmt_interference(flag: Any, why: Any = None) -> str:
    """The interference column of a timed row: ``yes (why)``, ``no``, or ``-`` when not sampled."""
    if flag == "yes":
        return f"**yes** ({why})" if isinstance(why, str) and why else "**yes**"
    return flag if isinstance(flag, str) and flag else "-"


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def markdown_table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Columns aligned with spaces, a rule under the header (for a terminal)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def save_png(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return Path(path)
