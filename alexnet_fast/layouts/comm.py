"""Ranks, process groups and the measurement of what they send.

* :func:`init_ranks` joins the process group of a run started by ``torchrun`` or
  :func:`alexnet_fast.launch.launch` (env:// rendezvous): NCCL and one GPU per rank when the
  node has a GPU for every local rank, otherwise gloo on CPU with one thread per rank. The
  group's timeout bounds every collective, so a rank that dies or hangs makes its peers fail
  with an error instead of waiting forever.
* :class:`CommMeter` times collectives per step (``time.perf_counter`` on CPU, CUDA events on
  the rank's device stream on GPU) and counts the bytes this rank sends.

Bytes sent by one rank per collective follow the bandwidth-optimal (ring) algorithms, the
convention of nccl-tests' "bus bandwidth", for ``W`` ranks:

=================  ========================================================
all-gather         ``(W - 1) * local_bytes``
reduce-scatter     ``(W - 1) / W * input_bytes`` (input: all W slices)
all-reduce         ``2 * (W - 1) / W * bytes``
send (p2p)         the tensor's bytes
=================  ========================================================
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DistContext",
    "choose_device",
    "init_ranks",
    "local_context",
    "shutdown",
    "CommMeter",
    "bytes_all_gather",
    "bytes_reduce_scatter",
    "bytes_all_reduce",
    "metered_allreduce_hook",
    "all_gather_flat",
    "reduce_scatter_flat",
]

DEFAULT_TIMEOUT_S = 300.0

# Collectives on flat tensors (output = the ranks' inputs one after another). torch 2.14
# renamed them; older releases have only the old names.
all_gather_flat = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
reduce_scatter_flat = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def bytes_all_gather(local_bytes: int, world_size: int) -> int:
    return (world_size - 1) * local_bytes


def bytes_reduce_scatter(input_bytes: int, world_size: int) -> int:
    return (world_size - 1) * input_bytes // world_size


def bytes_all_reduce(nbytes: int, world_size: int) -> int:
    return 2 * (world_size - 1) * nbytes // world_size


@dataclass(frozen=True)
class DistContext:
    """Where this rank runs. ``group`` is None for a one-rank (``single``) run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    group: dist.ProcessGroup | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# Set to 1 (the GPU suite does, profiling/gpu_suite.py): the ranks of a node may share its GPUs
# (rank i on GPU i % count, gloo instead of NCCL, which refuses two ranks on one GPU) -- to
# check a layout's equivalence and CUDA code path on a one-GPU machine, not to time it.
SHARE_GPU_ENV = "ALEXNET_FAST_RANKS_SHARE_GPU"


def ranks_share_gpus() -> bool:
    return os.environ.get(SHARE_GPU_ENV, "0") == "1"


def choose_device(ranks_on_node: int, device: str | None = None) -> torch.device:
    """``cuda`` when the node has a GPU for each of its ranks (one GPU at all with
    ``ALEXNET_FAST_RANKS_SHARE_GPU=1``), else ``cpu``; ``device`` ('cpu' or 'cuda') forces
    one (ValueError if CUDA has too few GPUs)."""
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if ranks_share_gpus() and gpus:
        ranks_on_node = 1
    if device is None:
        return torch.device("cuda" if gpus >= ranks_on_node else "cpu")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or None (choose), got {device!r}")
    if device == "cuda" and gpus < ranks_on_node:
        raise ValueError(f"{ranks_on_node} rank(s) on this node need {ranks_on_node} GPU(s), found {gpus}")
    return torch.device(device)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except KeyError:
        raise ValueError(
            f"environment variable {name} is not set: start the ranks with torchrun or "
            "alexnet_fast.launch.launch"
        ) from None


def init_ranks(*, timeout_s: float = DEFAULT_TIMEOUT_S, device: str | None = None,
               threads: int | None = None) -> DistContext:
    """Join the process group of this launch (env:// from torchrun / elastic_launch).

    ``device`` None chooses (see :func:`choose_device`); CPU ranks get ``threads`` torch
    threads each (default 1). ``timeout_s`` is the process group's collective timeout.
    ValueError when the launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK) is missing.
    """
    rank, world, local_rank = _env_int("RANK"), _env_int("WORLD_SIZE"), _env_int("LOCAL_RANK")
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    dev = choose_device(local_world, device)
    if dev.type == "cuda":
        shared = local_world > torch.cuda.device_count()  # only with ALEXNET_FAST_RANKS_SHARE_GPU=1
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
        backend = "gloo" if shared else "nccl"
    else:
        backend = "gloo"
        torch.set_num_threads(threads or 1)
    timeout = datetime.timedelta(seconds=timeout_s)
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"device_id": dev} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=timeout, **kwargs)
    return DistContext(rank, world, local_rank, dev, backend, dist.group.WORLD)


def local_context(device: str | None = None) -> DistContext:
    """A one-rank context for the ``single`` layout (no process group). ``device`` as for
    :func:`choose_device`, or ``'cuda:N'`` for one GPU (default: the current one), which
    becomes the current device (``torch.cuda.set_device``, as :func:`init_ranks` does)."""
    index = None
    if device is not None and device.startswith("cuda:"):
        device, index = "cuda", device[len("cuda:"):]
        if not index.isdigit():
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got 'cuda:{index}'")
        index = int(index)
    dev = choose_device(1, device)
    if dev.type == "cuda":
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(f"cuda:{index} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
        dev = torch.device("cuda", torch.cuda.current_device() if index is None else index)
        torch.cuda.set_device(dev)  # Triton launches and new tensors land on it, and its stream is timed
    return DistContext(0, 1, 0, dev, None, None)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group. On a normal exit, a barrier first, so that no rank tears gloo
    down while the other still has work in flight (seen here: a rank aborting at exit with
    "terminate called without an active exception"); called while an exception propagates
    (from a ``finally``), no barrier, so a failing rank exits at once and the launcher reports
    it instead of both ranks waiting out the timeout. Then gc, so no AsyncWork outlives the
    group."""
    if ctx.group is not None and dist.is_initialized():
        try:
            if sys.exc_info()[0] is None:
                dist.barrier()
        finally:
            dist.destroy_process_group()
            gc.collect()


class CommMeter:
    """Time during which this rank had a collective in flight, and the bytes it sent, per step.

    ``span(nbytes)`` wraps a blocking collective; ``start()``/``stop(token, nbytes)`` bracket
    an asynchronous one (DDP's bucket all-reduce: ``stop`` runs in its completion callback).
    On CUDA the marks are CUDA events on the current stream *of the meter's device*; on CPU
    ``time.perf_counter``. A step's time is the length of the union of its brackets, so
    overlapping asynchronous collectives are not counted twice. :meth:`reset` starts over,
    :meth:`next_step` closes the current step; :meth:`elapsed_ms` is the current step's time
    and :meth:`steps` every closed step's (synchronise the device first on CUDA).
    """

    def __init__(self, device: torch.device | None):
        self.device = device
        self.cuda = device is not None and device.type == "cuda"
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._closed: list[tuple[Any, list[tuple[Any, Any]], int, int]] = []
            self._open_step()

    def _open_step(self) -> None:
        self._origin = self.start()
        self._spans: list[tuple[Any, Any]] = []
        self.bytes_sent = 0
        self.calls = 0

    def next_step(self) -> None:
        """Close the current step (kept for :meth:`steps`) and open the next."""
        with self._lock:
            self._closed.append((self._origin, self._spans, self.bytes_sent, self.calls))
            self._open_step()

    def start(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(torch.cuda.current_stream(self.device))
            return event
        return time.perf_counter()

    def stop(self, token: Any, nbytes_sent: int) -> None:
        end = self.start()
        with self._lock:
            self._spans.append((token, end))
            self.bytes_sent += int(nbytes_sent)
            self.calls += 1

    @contextlib.contextmanager
    def span(self, nbytes_sent: int) -> Iterator[None]:
        token = self.start()
        yield
        self.stop(token, nbytes_sent)

    def _union_ms(self, origin: Any, spans: list[tuple[Any, Any]]) -> float:
        since = (lambda mark: origin.elapsed_time(mark)) if self.cuda else (lambda mark: 1e3 * (mark - origin))
        total, reach = 0.0, float("-inf")
        for begin, end in sorted((since(a), since(b)) for a, b in spans):
            if end > reach:
                total += end - max(begin, reach)
                reach = end
        return total

    def elapsed_ms(self) -> float:
        """Collective time of the current step."""
        with self._lock:
            return self._union_ms(self._origin, list(self._spans))

    def steps(self) -> list[tuple[float, int, int]]:
        """(collective ms, bytes sent, calls) of every step closed by :meth:`next_step`."""
        with self._lock:
            closed = list(self._closed)
        return [(self._union_ms(origin, spans), nbytes, calls) for origin, spans, nbytes, calls in closed]


def metered_allreduce_hook(state, bucket):  # DDP checks real annotations: leave them off
    """DDP communication hook: PyTorch's default all-reduce hook (sum, then divide by the
    world size), timed and counted by the meter in ``state = (group, meter)``;
    ``bucket`` is a ``dist.GradBucket``."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    group, meter = state
    buffer = bucket.buffer()
    world = dist.get_world_size(group)
    nbytes = bytes_all_reduce(buffer.numel() * buffer.element_size(), world)
    token = meter.start()

    def done(fut: torch.futures.Future) -> torch.Tensor:
        meter.stop(token, nbytes)
        return fut.value()

    return allreduce_hook(group, bucket).then(done)
