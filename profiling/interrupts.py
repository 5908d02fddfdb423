"""Stopping a run cleanly: a failed preflight (:class:`PreflightFailed`), SIGINT / SIGTERM become :class:`Interrupted` in the main thread
(:func:`signals_interrupt`), and :func:`stop_signal` tells which exceptions mean "stop" (ours,
a KeyboardInterrupt, torch elastic's SignalException) so the engine can mark the cell in
progress, write its output and exit with 128 + the signal; and the run's progress bar
(:func:`progress_bar`), which an interrupt leaves on its line."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Any

__all__ = ["Interrupted", "PreflightFailed", "stop_signal", "signals_interrupt", "progress_bar"]


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (SIGINT, SIGTERM); its output was written."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_signal(e: BaseException) -> int | None:
    """The signal number of an exception that means "stop": ours, a KeyboardInterrupt, or
    torch elastic's SignalException (its agent turns SIGTERM into one while ranks run)."""
    if isinstance(e, Interrupted):
        return e.signum
    if isinstance(e, KeyboardInterrupt):
        return signal.SIGINT
    if type(e).__name__ == "SignalException" and hasattr(e, "sigval"):
        return int(e.sigval)
    return None


@contextlib.contextmanager
def signals_interrupt() -> Any:
    """SIGTERM (and SIGINT) raise :class:`Interrupted` in the main thread for the block;
    the handlers found are restored after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        raise Interrupted(signum)

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in saved:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


class PreflightFailed(RuntimeError):
    """The preflight found something missing: the run ends (``record`` says what)."""

    def __init__(self, record: dict):
        from alexnet_fast.profiling.preflight import summary

        super().__init__(summary(record))
        self.record = record


def progress_bar(cells: list, progress: bool | None):
    """The run's progress bar over ``cells`` (tqdm when installed and ``progress`` is not False)."""
    if progress is False:
        return cells
    try:
        from tqdm import tqdm
    except ImportError:
        return cells
    return tqdm(cells, desc="bench", unit="cell", file=sys.stderr, disable=None if progress is None else not progress)
