"""Start ranks with PyTorch's own launcher: a library function, no command line of its own.

:func:`launch` runs a picklable function on ``world_size`` local ranks through
``torch.distributed.launcher.api.elastic_launch`` (the engine behind ``torchrun
--standalone``): spawned workers, c10d rendezvous on a free port, no restarts. Failures end
the run as a :class:`LayoutRunError` naming the rank:

* a rank that raises, or dies (killed, out of memory): the elastic agent notices within
  ``monitor_interval_s`` and stops the others (SIGTERM, then SIGKILL after
  ``shutdown_timeout_s``);
* a rank that hangs: its peers' collectives fail after the process group's timeout
  (set by :func:`alexnet_fast.layouts.init_ranks`), and every rank has a watchdog
  (``faulthandler.dump_traceback_later``) that dumps its stacks to stderr and exits it once
  ``timeout_s`` has passed, so the run always ends within about ``timeout_s``.

The launch runs in the calling process, and torch elastic's agent installs its own handlers
for SIGTERM, SIGINT, SIGHUP and SIGQUIT (``TORCHELASTIC_SIGNALS_TO_HANDLE``) there and never
puts them back: :func:`launch` restores the handlers it found when it returns or raises (a
caller's Ctrl-C handling, e.g. training's save-and-stop, would otherwise be elastic's
``_terminate_process_handler`` from then on).

Who calls it: the bench engine for the two-rank layout cells
(:func:`profiling.layout_bench.bench_layout`; on the command line ``alexnet-fast bench
--layout data_parallel``) and the tests. Training's ranks start under ``torchrun``.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import threading
import time
import uuid
from typing import Any, Callable, Iterator

__all__ = ["LayoutRunError", "launch", "signal_handlers_restored"]

MONITOR_INTERVAL_S = 0.5
SHUTDOWN_TIMEOUT_S = 5


class LayoutRunError(RuntimeError):
    """A multi-rank run failed; the message names the rank that failed first and why."""

    def __init__(self, message: str, rank: int | None = None):
        super().__init__(message)
        self.rank = rank


# what torch elastic's agent handles unless TORCHELASTIC_SIGNALS_TO_HANDLE says otherwise
ELASTIC_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT")


@contextlib.contextmanager
def signal_handlers_restored() -> Iterator[None]:
    """The Python signal handlers of the signals torch elastic may take over (its default
    set, those named in ``TORCHELASTIC_SIGNALS_TO_HANDLE``) put back as they were on exit,
    normal or not. Off the main thread nothing can change them (nor does elastic try)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = set(ELASTIC_SIGNALS) | {n.strip() for n in os.environ.get("TORCHELASTIC_SIGNALS_TO_HANDLE", "").split(",")}
    found = {}
    for name in sorted(n for n in names if n):
        signum = getattr(signal, name, None)
        if isinstance(signum, signal.Signals):
            handler = signal.getsignal(signum)
            if handler is not None:  # None: set outside Python, cannot be put back from here
                found[signum] = handler
    try:
        yield
    finally:
        for signum, handler in found.items():
            signal.signal(signum, handler)


def _rank_entry(fn: Callable[..., Any], timeout_s: float, args: tuple) -> Any:
    """What each spawned worker runs: arm the watchdog, then ``fn(*args)``."""
    faulthandler.dump_traceback_later(timeout_s, exit=True)
    try:
        return fn(*args)
    finally:
        faulthandler.cancel_dump_traceback_later()


def _describe_failure(error: Exception, world_size: int, timeout_s: float, elapsed_s: float) -> LayoutRunError:
    failures = getattr(error, "failures", {}) or {}
    if not failures:
        return LayoutRunError(f"the {world_size}-rank run failed before its ranks reported: {error}")
    first_rank = min(failures, key=lambda rank: (failures[rank].timestamp, rank))
    lines = []
    for rank, failure in sorted(failures.items()):
        if failure.exitcode is not None and failure.exitcode < 0:
            how = f"killed by signal {failure.signal_name()}"
        else:
            how = f"exited with code {failure.exitcode}"
        message = failure.message  # from the rank's error file: a dict, or a plain string
        if isinstance(message, dict):
            message = str(message.get("message", ""))
        detail = "" if not message or "To enable traceback" in message else message.strip().splitlines()[-1]
        lines.append(f"  rank {rank}: {how}" + (f": {detail}" if detail else ""))
    timed_out = elapsed_s >= timeout_s
    head = (f"rank {first_rank} failed first in a {world_size}-rank run after {elapsed_s:.1f} s"
            + (f" (the run reached its {timeout_s:g} s timeout: a rank hung; each rank's stderr "
               "holds its stack dump)" if timed_out else ""))
    return LayoutRunError("\n".join([head, *lines]), rank=first_rank)


def launch(fn: Callable[..., Any], *args: Any, world_size: int = 2, timeout_s: float = 300.0,
           monitor_interval_s: float = MONITOR_INTERVAL_S,
           shutdown_timeout_s: int = SHUTDOWN_TIMEOUT_S) -> dict[int, Any]:
    """Run ``fn(*args)`` on ``world_size`` local ranks; return ``{rank: return value}``.

    ``fn`` and ``args`` must be picklable (a module-level function): workers are spawned.
    Each worker has RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR/PORT set, and calls
    :func:`alexnet_fast.layouts.init_ranks` itself. Raises :class:`LayoutRunError` naming
    the failed rank, within about ``timeout_s`` even if a rank hangs.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size must be a positive integer, got {world_size!r}")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s!r}")
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=world_size,
        run_id=str(uuid.uuid4()), rdzv_backend="c10d", rdzv_endpoint="localhost:0",
        rdzv_configs={"join_timeout": max(30, int(timeout_s))},
        max_restarts=0, monitor_interval=monitor_interval_s, start_method="spawn",
        shutdown_timeout=shutdown_timeout_s,
    )
    start = time.perf_counter()
    with signal_handlers_restored():
        try:
            return elastic_launch(config, _rank_entry)(fn, timeout_s, args)
        except ChildFailedError as e:
            raise _describe_failure(e, world_size, timeout_s, time.perf_counter() - start) from e
