"""The training loop of `alexnet-fast train`: one epoch of training, evaluation, and what
keeps the ranks in step (data shards, flags OR-ed over ranks, signals).

:func:`train_one_epoch` and :func:`evaluate` are the two loops of torchvision's
references/classification/train.py, with the precision policy's autocast, a NaN check
before every step, sums over the data_parallel shards, and a hook after each step (mid-epoch
checkpoints, signals). :func:`stop_on_signals` turns SIGINT / SIGTERM into a flag the run
reads after the step in progress.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from alexnet_fast.data import DataError, ResumableSampler
from alexnet_fast.layouts import DistContext, gather_from_ranks
from alexnet_fast.precision import POLICY as PRECISIONS

__all__ = ["NonFiniteLossError", "TrainingInterrupted", "DataShards", "TrainState", "SignalFlag", "stop_on_signals",
           "ignore_interrupts", "any_rank", "train_one_epoch", "evaluate"]


class NonFiniteLossError(RuntimeError):
    """The training loss, the validation loss or a parameter became NaN or infinite; no
    checkpoint is written from that state, so the last one saved is the last good state."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped the run after a checkpoint was saved."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


@dataclass(frozen=True)
class DataShards:
    """How the data is spread over the ranks: each data_parallel rank reads its own shard
    (its DistributedSampler share; sums are added up over the ranks), while single and
    model_parallel ranks all read the same batches."""

    layout: str
    ctx: DistContext

    @property
    def count(self) -> int:
        return self.ctx.world_size if self.layout == "data_parallel" else 1

    @property
    def index(self) -> int:
        return self.ctx.rank if self.layout == "data_parallel" else 0

    def sampler(self, dataset, **kwargs) -> ResumableSampler:
        return ResumableSampler(dataset, num_replicas=self.count, rank=self.index, **kwargs)

    def sum(self, values: list[float]) -> list[float]:
        """``values`` added up over the shards (a collective for data_parallel)."""
        if self.count == 1:
            return values
        mine = torch.tensor(values, dtype=torch.float64, device=self.ctx.device)
        return torch.stack(gather_from_ranks(mine, self.ctx)).sum(0).tolist()


class SignalFlag:
    """The first SIGINT / SIGTERM received while :func:`stop_on_signals` holds (``signum``,
    else None)."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def raised(self) -> bool:
        return self.signum is not None

    def __call__(self, signum, frame) -> None:
        if self.signum is not None:  # the second signal stops at once
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(f"{signal.Signals(signum).name} received: saving a checkpoint after the step in progress, then "
              "stopping (send it again to stop at once)", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[SignalFlag]:
    """SIGINT and SIGTERM, while the block runs, set the :class:`SignalFlag` it yields instead
    of killing the process: the run saves a checkpoint after the step in progress and stops.
    A second signal stops at once (SIGINT: KeyboardInterrupt; SIGTERM: the default action).
    Outside the main thread (``train`` called from a thread) nothing is installed; the
    handlers found are restored after."""
    flag, previous = SignalFlag(), {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, flag)
    except ValueError:  # not the main thread
        pass
    try:
        yield flag
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave SIGINT (a terminal's Ctrl-C reaches the whole process group)
    to the main process, which saves a checkpoint and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def any_rank(ctx: DistContext, *flags: bool):
    """Each flag OR-ed over the ranks (a collective when there are several), so that every
    rank saves and stops together. One flag: a bool; several: a tuple."""
    if ctx.world_size > 1:
        mine = torch.tensor([float(f) for f in flags], device=ctx.device)
        flags = tuple(bool(v) for v in torch.stack(gather_from_ranks(mine, ctx)).amax(0).tolist())
    return flags[0] if len(flags) == 1 else tuple(flags)


@dataclass
class TrainState:
    """Where training stands; all of it goes into the checkpoint."""

    epoch: int = 0  # epoch in progress (or next to start)
    step_in_epoch: int = 0  # batches of this epoch already consumed
    global_step: int = 0  # optimizer steps so far
    epoch_sums: dict | None = None  # running sums of the epoch in progress

    def new_epoch_sums(self) -> dict:
        return {"loss": 0.0, "correct1": 0.0, "images": 0.0, "skipped": 0.0, "seconds": 0.0}


def train_one_epoch(model, loader, optimizer, scaler, state: TrainState, *, device, precision: str,
                    shards: DataShards, max_steps: int | None, print_freq: int, progress: bool,
                    step_losses: list[float], after_step: Callable[[], None] | None = None) -> bool:
    """Train over ``loader`` from ``state``; True when the epoch ran to its end, False when
    ``max_steps`` stopped it. ``precision`` names one of :data:`PRECISIONS`. Raises
    NonFiniteLossError (on every rank) before stepping on a bad loss. ``after_step()`` runs
    after every optimizer step, with ``state`` and its sums up to date (mid-epoch
    checkpoints, signals)."""
    from tqdm import tqdm

    model.train()
    sums = state.epoch_sums
    bar = tqdm(loader, total=len(loader), desc=f"epoch {state.epoch}", leave=False, dynamic_ncols=True,
               disable=not (progress and shards.ctx.is_main), file=sys.stderr)
    start = time.perf_counter()
    window_start, window_images = start, 0
    batches, finished = 0, True
    try:
        for images, targets, skipped in bar:
            sums["skipped"] += skipped
            state.step_in_epoch += 1
            batches += 1
            # every image of the batch was unreadable and skipped (on some data_parallel rank:
            # then every rank skips the step, so the ranks' collectives stay in step)
            if shards.sum([float(images is not None)])[0] < shards.count:
                continue
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            with PRECISIONS[precision].context(device):
                logits = model(images)
                loss = F.cross_entropy(logits.float(), targets)
            loss_value = loss.item()
            # every rank stops together (model_parallel ranks compute the same loss)
            if shards.sum([float(math.isfinite(loss_value))])[0] < shards.count:
                raise NonFiniteLossError(
                    f"non-finite training loss ({loss_value}) at epoch {state.epoch}, step "
                    f"{state.global_step + 1} (lr {optimizer.param_groups[0]['lr']:g})")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            state.global_step += 1
            n = targets.numel()
            step_losses.append(loss_value)
            sums["loss"] += loss_value * n
            sums["correct1"] += (logits.argmax(1) == targets).sum().item()
            sums["images"] += n
            window_images += n
            if state.global_step % print_freq == 0:
                now = time.perf_counter()
                bar.set_postfix(loss=f"{sums['loss'] / max(sums['images'], 1):.4f}",
                                lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                                img_s=f"{window_images * shards.count / max(now - window_start, 1e-9):.0f}")
                window_start, window_images = now, 0
            if max_steps is not None and state.global_step >= max_steps and batches < len(loader):
                finished = False
                break
            if after_step is not None and batches < len(loader):  # the epoch's end saves anyway
                now = time.perf_counter()
                sums["seconds"] += now - start
                start = now
                after_step()
    finally:
        bar.close()
        sums["seconds"] += time.perf_counter() - start
    return finished


@torch.no_grad()
def evaluate(model, loader, *, device, precision: str, shards: DataShards, ten_crop: bool = False) -> dict:
    """Loss (of the averaged softmax for 10-crop), top-1 and top-5 accuracy in percent, over
    every shard. ``ten_crop`` batches are [N, 10, 3, H, W]; the 10 crops' softmax outputs
    are averaged."""
    model.eval()
    loss_sum = correct1 = correct5 = count = skipped = 0.0
    for images, targets, n_skipped in loader:
        skipped += n_skipped
        if images is None:
            continue
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        with PRECISIONS[precision].context(device):
            if ten_crop:
                batch, crops = images.shape[:2]
                logits = model(images.flatten(0, 1))
                probs = logits.float().softmax(-1).view(batch, crops, -1).mean(1)
            else:
                probs = model(images).float().softmax(-1)
        loss_sum += F.nll_loss(probs.clamp_min(1e-12).log(), targets, reduction="sum").item()
        top = probs.topk(min(5, probs.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == targets).sum().item()
        correct5 += (top == targets[:, None]).any(1).sum().item()
        count += targets.numel()
    loss_sum, correct1, correct5, count, skipped = shards.sum([loss_sum, correct1, correct5, count, skipped])
    if count == 0:
        raise DataError("no readable validation images to evaluate")
    return {"loss": loss_sum / count, "acc1": 100 * correct1 / count, "acc5": 100 * correct5 / count,
            "images": int(count), "skipped": int(skipped)}
