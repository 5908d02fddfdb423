"""`alexnet-fast train`: train AlexNet the paper's way, with any variant and layout.

Flags follow torchvision's references/classification/train.py (``--data-path``, ``-b``,
``--epochs``, ``--lr``, ``--momentum``, ``--wd``, ``--lr-scheduler``, ``--lr-step-size``,
``--lr-gamma``, ``-j``, ``--amp``, ``--output-dir``, ``--resume``, ``--start-epoch``,
``--test-only``, ...); defaults are the paper's recipe: SGD with momentum 0.9, weight decay
5e-4, lr 0.01 divided by 10 when validation accuracy stops improving, batch 128 (per
process), dropout 0.5, the paper's initialisation, 90 epochs.

With no ``--data-path`` the run uses the embedded synthetic dataset (10 classes of rendered
shapes and textures, written once in ImageFolder layout under ``--synthetic-dir``) and a
small model (:data:`EMBEDDED_DEFAULTS`: width 1/4, input 67, He init, 18 epochs) that
trains in minutes on a CPU; flags given on the command line override these defaults.

Output directory: ``checkpoint.pth`` (latest, atomic), ``metrics.csv`` / ``metrics.json``
(one row per epoch), ``metrics.png`` (loss and accuracy), ``config.json`` (resolved
settings) and ``final.json`` (centre-crop and 10-crop evaluation after the last epoch).
``--resume`` continues exactly where a checkpoint stopped, even mid-epoch (``--max-steps``).
Checkpoints are also saved every ``--checkpoint-every-steps`` steps or ``--checkpoint-interval``
seconds (default 600) and on SIGINT/SIGTERM; nothing non-finite is ever saved (README,
"Training reliability"). ``--weights`` starts from trained weights (fine-tuning, with
``--freeze`` and ``--head-lr-mult``: :mod:`alexnet_fast.finetune`).

One cohesive thing, kept in one file (~940 lines): the training run -- its settings, the loop,
evaluation, checkpoints and the signal handling that guards them change together. Data
(:mod:`alexnet_fast.data`), fine-tuning (:mod:`alexnet_fast.finetune`), prediction
(:mod:`alexnet_fast.predict`), the precision policy and the layouts live apart.

Layouts (:mod:`alexnet_fast.layouts`; the two-rank ones run under torchrun, e.g.
``torchrun --nproc_per_node 2 -m alexnet_fast train --layout data_parallel``):

* ``single``: one process, one device.
* ``data_parallel``: DistributedDataParallel; each rank reads its own shard of the data
  (a DistributedSampler) and ``--batch-size`` is per rank, as in torchvision.
* ``model_parallel``: the paper's two-column split; every rank reads the same batches
  (``--batch-size`` images) and holds half of every layer.

Checkpoints hold the single model's state_dict and optimizer state whatever the layout
(:func:`~alexnet_fast.layouts.full_state_dict`), so a checkpoint of any layout resumes in
any other (mid-epoch: with the same number of images per step).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import io
import math
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from alexnet_fast.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state
from alexnet_fast.data import (IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC, BadImageError, DataError,
                               ResumableSampler, collate_skipping_bad, compute_pca_eigens,
                               default_resize_size, eval_transform, make_synthetic_dataset,
                               open_image_folders, ten_crop_transform, train_transform)
from alexnet_fast.finetune import WeightsFile, fit_weights, freeze, load_weights_file, param_groups, parse_freeze
from alexnet_fast.io import (atomic_path, atomic_torch_save, atomic_write_json, atomic_write_text,
                             clean_stale_temp_files, writable_dir)
from alexnet_fast.layouts import (DEFAULT_TIMEOUT_S, LAYOUTS, DistContext, full_optimizer_state_dict,
                                  full_state_dict, gather_from_ranks, init_ranks, layout_model,
                                  load_full_optimizer_state_dict, local_context, shutdown)
from alexnet_fast.model import INITS, PRESETS, alexnet
from alexnet_fast.precision import POLICY as PRECISIONS  # the one precision policy (autocast, fp32 weights)
from alexnet_fast.variants import COMPILE_MODES, VARIANTS

# Settings left unset on the command line, by data source: the paper's for real data; a
# small, fast model for the embedded synthetic dataset (input 67 is the paper network's
# smallest; width 1/4 = 24/64/96/96/64 filters, 1024-unit FC layers). The embedded run uses
# He (kaiming) init: at this width the paper's N(0, 0.01) init (and PyTorch's default) stay
# at chance for hundreds of steps (measured, width 1/4, input 67: paper init 150-600 steps at
# batch 128/32/16 and lr 0.01-0.05; PyTorch's 400 steps at batch 32, lr 0.01 and 0.03).
PAPER_DEFAULTS = {"epochs": 90, "width_mult": 1.0, "image_size": None, "init": None}  # None: the preset's
EMBEDDED_DEFAULTS = {"epochs": 18, "width_mult": 0.25, "image_size": 67, "init": "kaiming"}
SYNTHETIC_TRAIN_PER_CLASS, SYNTHETIC_VAL_PER_CLASS = 300, 60
# Loader workers and OpenMP threads must not share cores: OpenMP threads spin while they
# wait, and on a shared 2-core machine 2 threads + 2 workers ran a step 50x slower than 1 + 1.
DEFAULT_WORKERS = min(4, max(1, (os.cpu_count() or 2) // 2))

# a checkpoint at least this often (seconds of training) unless --checkpoint-interval says
# otherwise: a crash or kill -9 loses at most this much work (plus one step)
DEFAULT_CHECKPOINT_INTERVAL_S = 600.0
# settings a checkpoint must be resumed with (they shape the model or the optimizer)
RESUME_MUST_MATCH = ("preset", "width_mult", "image_size", "freeze", "head_lr_mult")

__all__ = ["add_arguments", "run", "train", "NonFiniteLossError", "TrainingInterrupted", "EMBEDDED_DEFAULTS",
           "PAPER_DEFAULTS", "DEFAULT_CHECKPOINT_INTERVAL_S"]


class NonFiniteLossError(RuntimeError):
    """The training loss, the validation loss or a parameter became NaN or infinite; no
    checkpoint is written from that state, so the last one saved is the last good state."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped the run after a checkpoint was saved."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--data-path", default=None, help="ImageFolder root with train/ and val/ (default: the "
      "embedded synthetic dataset)")
    a("--synthetic-dir", default="data/synthetic", help="where the synthetic dataset is cached")
    a("--preset", default="paper", choices=sorted(PRESETS), help="AlexNet preset")
    a("--width-mult", type=float, default=None, help="scale of every layer's width (default: 1, "
      f"embedded data: {EMBEDDED_DEFAULTS['width_mult']})")
    a("--image-size", type=int, default=None, help="model input (crop) size (default: the "
      f"preset's, embedded data: {EMBEDDED_DEFAULTS['image_size']})")
    a("--resize-size", type=int, default=None, help="short side images are resized to before "
      "cropping (default: 256 for 224/227 crops, else the same ratio)")
    a("--pca", default="train", choices=("train", "imagenet", "none"), help="PCA colour "
      "augmentation eigen-pairs: computed from a sample of the training set, ImageNet's, or off")
    a("--dropout", type=float, default=None, help="dropout of fc6/fc7 (default: the preset's, 0.5)")
    a("--init", default=None, choices=INITS, help="weight init: the paper's N(0, 0.01) with its biases, "
      "PyTorch's defaults, or He normal with zero biases (default: the preset's; embedded data: "
      f"{EMBEDDED_DEFAULTS['init']})")
    a("--variant", default="eager", choices=VARIANTS, help="model variant (alexnet_fast.build_variant)")
    a("--compile-mode", default="default", choices=COMPILE_MODES, help="torch.compile mode")
    a("--layout", default="single", choices=LAYOUTS, help="single process, or one of the two-rank "
      "layouts under torchrun (alexnet_fast.layouts): data_parallel (DDP) or model_parallel (the "
      "paper's two columns)")
    a("--device", default=None, help="cpu, cuda, cuda:N (single layout only) (default: cuda if every "
      "rank gets a GPU)")
    a("--dist-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds a rank waits in a "
      "collective before the run fails (data_parallel, model_parallel)")
    a("-b", "--batch-size", type=int, default=128, help="images per step and rank: each "
      "data_parallel rank's share, the whole batch of every model_parallel rank")
    a("--epochs", type=int, default=None, help=f"epochs to train (default: {PAPER_DEFAULTS['epochs']}, "
      f"embedded data: {EMBEDDED_DEFAULTS['epochs']})")
    a("--lr", type=float, default=0.01, help="initial learning rate")
    a("--momentum", type=float, default=0.9, help="SGD momentum")
    a("--wd", "--weight-decay", dest="weight_decay", type=float, default=5e-4, help="weight decay")
    a("--lr-scheduler", default="plateau", choices=("plateau", "step"), help="divide the lr by "
      "1/lr-gamma when val top-1 stops improving (paper), or every --lr-step-size epochs")
    a("--lr-step-size", type=int, default=30, help="epochs between lr drops (step scheduler)")
    a("--lr-gamma", type=float, default=0.1, help="lr multiplier at each drop")
    a("--lr-patience", type=int, default=3, help="epochs without improvement before a drop (plateau)")
    a("-j", "--workers", type=int, default=DEFAULT_WORKERS, help="data loader worker processes "
      f"(default: half the cores, at most 4: {DEFAULT_WORKERS} here)")
    a("--amp", action="store_true", help="mixed precision: fp16 on CUDA, bf16 on CPU")
    a("--precision", default=None, choices=list(PRECISIONS), help="fp32 (strict), tf32 (CUDA), or "
      "fp16/bf16 autocast, as the layout benchmark runs them (default fp32)")
    a("--output-dir", default="runs/train", help="where checkpoints and metrics go")
    a("--resume", default="", help="checkpoint to continue from")
    a("--seed", type=int, default=0, help="seed of initialisation, data order and augmentation")
    a("--start-epoch", type=int, default=0, help="first epoch (overridden by --resume)")
    a("--print-freq", type=int, default=10, help="steps between progress-bar updates")
    a("--test-only", action="store_true", help="only evaluate (centre and 10-crop) and exit")
    a("--deterministic", action="store_true", help="deterministic algorithms only")
    a("--skip-bad-images", action="store_true", help="skip (and count) unreadable images "
      "instead of stopping")
    a("--max-steps", type=int, default=None, help="stop after this many optimizer steps in total "
      "(counting steps before --resume), saving a checkpoint")
    a("--checkpoint-every-steps", type=int, default=None, help="also save a checkpoint every N optimizer "
      "steps (default: by time, --checkpoint-interval); checkpoints are always saved at epoch ends, at "
      "--max-steps and on SIGINT/SIGTERM")
    a("--checkpoint-interval", type=float, default=None, help="seconds of training between mid-epoch "
      f"checkpoints (default: {DEFAULT_CHECKPOINT_INTERVAL_S:.0f} unless --checkpoint-every-steps is given; 0: off)")
    a("--weights", default=None, help="start from these weights (fine-tuning): a checkpoint of this project "
      "(either preset) or a state_dict (torchvision's alexnet() keys for --preset torchvision); the last "
      "layer is replaced when the classes differ")
    a("--freeze", default=None, help="layers kept fixed, comma-separated: features, classifier or layer "
      "names (conv1..conv5, fc6, fc7, fc8)")
    a("--head-lr-mult", type=float, default=1.0, help="learning rate of the last layer (fc8) as a multiple "
      "of --lr (its own parameter group)")
    a("--threads", type=int, default=None, help="torch CPU threads of the training process (default: "
      "the cores the loader workers leave, at least 1)")
    a("--no-progress", action="store_true", help="no progress bar")


# -------------------------------------------------------------------------------------
# settings, devices, layouts
# -------------------------------------------------------------------------------------

def resolve_settings(args: argparse.Namespace) -> argparse.Namespace:
    """A copy of ``args`` with the unset defaults filled in and every value checked
    (ValueError names the flag)."""
    s = argparse.Namespace(**vars(args))
    defaults = PAPER_DEFAULTS if s.data_path else EMBEDDED_DEFAULTS
    for key, value in defaults.items():
        if getattr(s, key) is None:
            setattr(s, key, value)
    if s.image_size is None:
        s.image_size = PRESETS[s.preset].input_size
    if s.init is None:
        s.init = PRESETS[s.preset].init
    if s.resize_size is None:
        s.resize_size = default_resize_size(s.image_size)
    if s.amp and s.precision not in (None, "fp32"):
        raise ValueError(f"--amp and --precision {s.precision} disagree; give one of them")
    positive = {"--batch-size": s.batch_size, "--epochs": s.epochs, "--print-freq": s.print_freq,
                "--lr-step-size": s.lr_step_size, "--image-size": s.image_size}
    for flag, value in positive.items():
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    for flag, value in {"--lr": s.lr, "--momentum": s.momentum, "--weight-decay": s.weight_decay,
                        "--workers": s.workers, "--start-epoch": s.start_epoch,
                        "--lr-patience": s.lr_patience}.items():
        if not value >= 0:
            raise ValueError(f"{flag} must be >= 0, got {value}")
    if not 0 < s.lr_gamma <= 1:
        raise ValueError(f"--lr-gamma must be in (0, 1], got {s.lr_gamma}")
    if s.max_steps is not None and s.max_steps < 1:
        raise ValueError(f"--max-steps must be >= 1, got {s.max_steps}")
    if s.checkpoint_every_steps is not None and s.checkpoint_every_steps < 1:
        raise ValueError(f"--checkpoint-every-steps must be >= 1, got {s.checkpoint_every_steps}")
    if s.checkpoint_interval is None:
        s.checkpoint_interval = 0.0 if s.checkpoint_every_steps else DEFAULT_CHECKPOINT_INTERVAL_S
    if not (s.checkpoint_interval >= 0 and math.isfinite(s.checkpoint_interval)):
        raise ValueError(f"--checkpoint-interval must be a finite number of seconds >= 0, got {s.checkpoint_interval}")
    if not (s.head_lr_mult > 0 and math.isfinite(s.head_lr_mult)):
        raise ValueError(f"--head-lr-mult must be a finite number > 0, got {s.head_lr_mult}")
    s.freeze = ",".join(parse_freeze(s.freeze)) or None
    if s.weights and s.resume:
        raise ValueError("--weights starts a new run from trained weights and --resume continues a run "
                         "(its weights included): give one of them")
    if s.threads is None:
        s.threads = max(1, (os.cpu_count() or 1) - s.workers)
    if s.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {s.threads}")
    if s.resize_size < s.image_size:
        raise ValueError(f"--resize-size {s.resize_size} is smaller than --image-size {s.image_size}")
    if not s.dist_timeout > 0:
        raise ValueError(f"--dist-timeout must be > 0 seconds, got {s.dist_timeout}")
    if s.layout != "single" and s.device is not None and s.device not in ("cpu", "cuda"):
        raise ValueError(f"--device {s.device}: under --layout {s.layout} rank r uses cuda:LOCAL_RANK; "
                         "give --device cuda or cpu")
    return s


def join_ranks(s: argparse.Namespace) -> DistContext:
    """This process's place in the run: one rank for ``single``, else join the process group
    torchrun set up (NCCL and cuda:LOCAL_RANK when every rank gets a GPU, gloo on CPU)."""
    if s.layout == "single":
        return local_context(s.device)
    try:
        return init_ranks(timeout_s=s.dist_timeout, device=s.device, threads=s.threads)
    except ValueError as e:  # not started by torchrun, too few GPUs
        raise ValueError(f"--layout {s.layout}: {e}") from e


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


@contextlib.contextmanager
def _global_torch_settings(threads: int, deterministic: bool, device: torch.device, tf32: bool):
    """Threads, determinism and TF32 (CUDA matmuls and convolutions, backward included) for
    the run, restored afterwards (train() may run in-process)."""
    saved = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.set_num_threads(threads)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism
            torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[4], saved[5]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every CUDA device too


def _precision(s: argparse.Namespace, device: torch.device) -> str:
    """The name of the run's precision in :data:`alexnet_fast.layouts.PRECISIONS`."""
    if s.amp:
        return "fp16" if device.type == "cuda" else "bf16"
    precision = s.precision or "fp32"
    if PRECISIONS[precision].tf32 and device.type != "cuda":
        raise ValueError(f"--precision {precision} applies only on CUDA devices; use fp32 on {device}")
    return precision


def check_variant_device(variant: str, device: torch.device) -> None:
    """ValueError when a Triton variant would run on a CPU without Triton's interpreter."""
    if variant.startswith("triton") and device.type != "cuda":
        from kernels._common import is_interpreting

        if not is_interpreting():
            raise ValueError(f"--variant {variant} on {device} needs Triton's interpreter: set "
                             "TRITON_INTERPRET=1 before starting (slow), or run on a CUDA device")


def _model_desc(s: argparse.Namespace) -> str:
    return f"--preset {s.preset} --width-mult {s.width_mult} --image-size {s.image_size}"


def single_model(s: argparse.Namespace, num_classes: int) -> nn.Module:
    """The single AlexNet of the settings, initialised from ``s.seed``."""
    torch.manual_seed(s.seed)
    return alexnet(s.preset, num_classes=num_classes, width_mult=s.width_mult, input_size=s.image_size,
                   dropout=s.dropout, init=s.init)


def build_model(s: argparse.Namespace, num_classes: int, ctx: DistContext,
                state_dict: dict | None = None, strict: bool = True) -> nn.Module:
    """This rank's part of ``s.layout`` of the AlexNet of the settings, built as ``s.variant``
    on ``ctx.device`` (:func:`alexnet_fast.layouts.layout_model`). The single model is
    built from ``s.seed`` (the same weights on every rank), and ``state_dict`` (the single
    model's, from a checkpoint of any layout, or fitted ``--weights`` with ``strict=False``:
    the layers it leaves out keep their initialisation) is loaded into it before the layout
    splits or replicates it. The ``--freeze`` layers are frozen before and after the layout
    (the model_parallel columns are new parameters)."""
    check_variant_device(s.variant, ctx.device)
    model = single_model(s, num_classes)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=strict)
    names = parse_freeze(s.freeze)
    freeze(model, names)  # before DDP wraps it (DDP reduces only what requires grad)
    try:
        built = layout_model(model, s.layout, s.variant, ctx, compile_mode=s.compile_mode)
        freeze(getattr(built, "module", built), names)
        return built
    except ImportError as e:
        raise ValueError(f"--variant {s.variant} needs the Triton kernels (kernels.nn), which do "
                         f"not import here: {e}") from e


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM, while the block runs, set ``flags["signum"]`` instead of killing
    the process: the training loop saves a checkpoint after the step in progress and stops.
    A second signal stops at once (SIGINT: KeyboardInterrupt; SIGTERM: the default action).
    Outside the main thread (train() called from a thread) nothing is installed."""
    flags: dict = {"signum": None}

    def handler(signum, frame):
        if flags["signum"] is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        flags["signum"] = signum
        print(f"{signal.Signals(signum).name} received: saving a checkpoint after the step in progress, then "
              "stopping (send it again to stop at once)", file=sys.stderr, flush=True)

    previous = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread
        pass
    try:
        yield flags
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _ignore_interrupts(worker_id: int) -> None:
    """DataLoader workers leave SIGINT (a terminal's Ctrl-C reaches the whole process group)
    to the main process, which saves a checkpoint and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _any_rank(ctx: DistContext, *flags: bool):
    """Each flag OR-ed over the ranks (a collective when there are several), so that every
    rank saves and stops together. One flag: a bool; several: a tuple."""
    if ctx.world_size > 1:
        mine = torch.tensor([float(f) for f in flags], device=ctx.device)
        flags = tuple(bool(v) for v in torch.stack(gather_from_ranks(mine, ctx)).amax(0).tolist())
    return flags[0] if len(flags) == 1 else tuple(flags)


# -------------------------------------------------------------------------------------
# the loops
# -------------------------------------------------------------------------------------

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
                    step_losses: list[float], after_step=None) -> bool:
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


# -------------------------------------------------------------------------------------
# outputs
# -------------------------------------------------------------------------------------

def write_metrics(history: list[dict], output_dir: Path, chance: float) -> None:
    """metrics.csv, metrics.json and metrics.png (loss and accuracy per epoch), atomically."""
    atomic_write_json(output_dir / "metrics.json", history)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(output_dir / "metrics.csv", buf.getvalue())
    plot_metrics(history, output_dir / "metrics.png", chance)


def plot_metrics(history: list[dict], path: Path, chance: float) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], "o-", label="val (centre crop)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(epochs, [r["train_acc1"] for r in history], "o-", label="train top-1")
    ax_acc.plot(epochs, [r["val_acc1"] for r in history], "o-", label="val top-1")
    ax_acc.plot(epochs, [r["val_acc5"] for r in history], "o-", label="val top-5")
    ax_acc.axhline(100 * chance, color="gray", linestyle="--", label="chance top-1")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def _plain(value):
    """JSON/checkpoint-safe copy of an args value."""
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def save_checkpoint(path: Path, *, model_state: dict, optimizer_state: dict, scheduler, scaler,
                    state: TrainState, epoch_sums: dict | None, images_per_step: int, sampler,
                    loader_generator: torch.Generator, history, pca, classes, settings) -> None:
    """Write the checkpoint (:mod:`alexnet_fast.checkpoint`) atomically. ``model_state`` and
    ``optimizer_state`` are the single model's (:func:`~alexnet_fast.layouts.full_state_dict`,
    :func:`~alexnet_fast.layouts.full_optimizer_state_dict`); ``epoch_sums`` the running
    sums of the epoch in progress over every shard."""
    atomic_torch_save({
        "model": model_state,
        "optimizer": optimizer_state,
        "lr_scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "global_step": state.global_step,
        "images_per_step": images_per_step,
        "epoch_sums": dict(epoch_sums or {}),
        "rng": capture_rng_state(),
        "sampler": {**sampler.state_dict(), "loader_generator": loader_generator.get_state()},
        "history": history,
        "pca": None if pca is None else [pca[0], pca[1]],
        "classes": list(classes),
        "args": {k: _plain(v) for k, v in vars(settings).items()},
    }, path)


# -------------------------------------------------------------------------------------
# the run
# -------------------------------------------------------------------------------------

def _pca_pairs(s, train_set, checkpoint):
    if checkpoint is not None:  # the eigen-pairs the run started with
        return None if checkpoint["pca"] is None else tuple(checkpoint["pca"])
    if s.pca == "none":
        return None
    if s.pca == "imagenet":
        return torch.tensor(IMAGENET_PCA_EIGVAL), torch.tensor(IMAGENET_PCA_EIGVEC)
    return compute_pca_eigens([p for p, _ in train_set.samples], seed=s.seed, skip_bad_images=s.skip_bad_images)


def prepare_data(s: argparse.Namespace, ctx: DistContext, checkpoint: dict | None):
    """``(data_root, train_set, val_set, pca)``: the datasets with their transforms, the
    synthetic set rendered first when there is no --data-path (by rank 0; the others wait),
    and the PCA eigen-pairs (``None`` when off; a resumed run keeps its checkpoint's)."""
    if s.data_path:
        data_root = Path(s.data_path)
    else:
        def render() -> Path:  # stored at the resize size, so the short-side resize is a no-op
            return make_synthetic_dataset(s.synthetic_dir, train_per_class=SYNTHETIC_TRAIN_PER_CLASS,
                                          val_per_class=SYNTHETIC_VAL_PER_CLASS, image_size=s.resize_size)
        if ctx.is_main:
            render()
        if ctx.group is not None:
            dist.barrier(ctx.group)
        data_root = render()  # cached by now
    train_set, val_set = open_image_folders(data_root, train_tf=None,
                                            val_tf=eval_transform(s.image_size, s.resize_size),
                                            seed=s.seed, skip_bad_images=s.skip_bad_images)
    pca = _pca_pairs(s, train_set, checkpoint)
    train_set.transform = train_transform(s.image_size, s.resize_size, eigval=None if pca is None else pca[0],
                                          eigvec=None if pca is None else pca[1])
    if checkpoint is not None and checkpoint["classes"] != train_set.classes:
        raise ValueError(f"the checkpoint was trained on {len(checkpoint['classes'])} other classes "
                         f"than the {len(train_set.classes)} under {str(data_root)!r}")
    return data_root, train_set, val_set, pca


def _setting(args: dict, key: str):
    """A checkpoint's setting (older checkpoints lack the fine-tuning ones: their defaults)."""
    return args.get(key, {"freeze": None, "head_lr_mult": 1.0}.get(key))


def _check_resume_settings(s: argparse.Namespace, checkpoint: dict) -> None:
    """ValueError naming every setting of :data:`RESUME_MUST_MATCH` that differs from the
    checkpoint's, with the value the checkpoint was trained with."""
    saved = checkpoint["args"]
    differ = [key for key in RESUME_MUST_MATCH if _setting(saved, key) != getattr(s, key)
              and not (key == "image_size" and s.test_only and s.preset != "paper")]
    if differ:
        flag = lambda key: "--" + key.replace("_", "-")  # noqa: E731
        raise ValueError(f"--resume {s.resume}: " + ", ".join(
            f"{flag(k)} is {getattr(s, k)} but the checkpoint was trained with {flag(k)} {_setting(saved, k)}"
            for k in differ) + "; resume with the checkpoint's settings (or start from its weights with --weights)")


def _fit(s: argparse.Namespace, weights: WeightsFile | None, classes: list[str], flag: str) -> tuple[dict, bool]:
    """``(state_dict, head_replaced)``: ``weights`` (or the ``--weights`` file) checked
    against the model of the settings (built on the meta device: no memory, no compute)."""
    with torch.device("meta"):
        reference = alexnet(s.preset, num_classes=len(classes), width_mult=s.width_mult, input_size=s.image_size,
                            dropout=s.dropout, init=s.init)
    if weights is None:
        weights = load_weights_file(s.weights, reference)
    weights.flag = flag
    return fit_weights(weights, reference, classes, _model_desc(s))


def train(args: argparse.Namespace) -> dict:
    """Run training (or ``--test-only`` evaluation) as the flags say. Returns a summary:
    ``history`` (per-epoch rows), ``step_losses`` (this process's losses, one per step),
    ``global_step``, ``final`` (evaluation after the last epoch, or None), ``output_dir``.
    Raises ValueError (DataError, BadImageError, bad flags) and NonFiniteLossError."""
    s = resolve_settings(args)
    writable_dir(s.output_dir)  # one line before any work when it is a file or cannot be made
    ctx = join_ranks(s)
    try:
        precision = _precision(s, ctx.device)
        with _global_torch_settings(s.threads, s.deterministic, ctx.device, tf32=PRECISIONS[precision].tf32):
            return _train(s, ctx, precision)
    finally:
        shutdown(ctx)


def _train(s: argparse.Namespace, ctx: DistContext, precision: str) -> dict:
    """The run on this rank; ``precision`` names one of :data:`PRECISIONS` (the forward runs
    in its context, whose TF32 flags :func:`_global_torch_settings` set for the whole run)."""
    device = ctx.device
    shards = DataShards(s.layout, ctx)
    images_per_step = s.batch_size * shards.count
    output_dir = Path(s.output_dir)
    if ctx.is_main:
        for path in clean_stale_temp_files(output_dir):
            print(f"removed {path}, a temporary file a killed run left behind", file=sys.stderr)
    checkpoint = load_checkpoint(s.resume) if s.resume else None
    if checkpoint is not None:
        _check_resume_settings(s, checkpoint)
    if checkpoint is not None and checkpoint["args"].get("seed") != s.seed:
        raise ValueError(f"--seed {s.seed} differs from the checkpoint's seed "
                         f"{checkpoint['args'].get('seed')}: an exact resume needs the same seed")
    if checkpoint is not None and checkpoint["step_in_epoch"] and not s.test_only:
        saved = checkpoint.get("images_per_step", checkpoint["args"].get("batch_size"))
        if saved != images_per_step:
            raise ValueError(f"the checkpoint stopped in mid-epoch after {checkpoint['step_in_epoch']} steps of "
                             f"{saved} images; this run takes {images_per_step} images per step "
                             f"(--batch-size {s.batch_size}, layout {s.layout}): resume with the same number")
    _seed_everything(s.seed)

    data_root, train_set, val_set, pca = prepare_data(s, ctx, checkpoint)
    classes = train_set.classes
    chance = 1.0 / len(classes)

    if checkpoint is not None:  # anything else that does not fit: one line, not a size-mismatch traceback
        initial, strict = _fit(s, WeightsFile(Path(s.resume), checkpoint["model"], classes, checkpoint["args"]),
                               classes, "--resume")[0], True
    elif s.weights:
        initial, replaced = _fit(s, None, classes, "--weights")
        strict = False
        if ctx.is_main:
            print(f"loaded --weights {s.weights}" + (f"; new {len(classes)}-class last layer (fc8, {s.init} init)"
                                                     if replaced else ""))
    else:
        initial, strict = None, True
    model = build_model(s, len(classes), ctx, initial, strict)
    if ctx.world_size > 1:  # dropout masks differ per rank (per shard, or per column)
        _seed_everything(s.seed + ctx.rank)

    optimizer = torch.optim.SGD(param_groups(model, s.lr, s.head_lr_mult), lr=s.lr, momentum=s.momentum,
                                weight_decay=s.weight_decay)
    if s.lr_scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=s.lr_gamma,
                                                               patience=s.lr_patience)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.lr_step_size, gamma=s.lr_gamma)
    scaler = PRECISIONS[precision].grad_scaler(device)  # the one loss-scale rule
    sampler = shards.sampler(train_set, seed=s.seed)
    # the DataLoader draws its workers' base seed from this, not from torch's global RNG
    loader_generator = torch.Generator().manual_seed(s.seed)
    state = TrainState(epoch=s.start_epoch)
    history: list[dict] = []
    if checkpoint is not None:
        load_full_optimizer_state_dict(s.layout, model, optimizer, checkpoint["optimizer"], ctx)
        scheduler.load_state_dict(checkpoint["lr_scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        epoch_sums = dict(checkpoint["epoch_sums"]) or None  # the sums over every shard: on shard 0
        if epoch_sums is not None and shards.index > 0:
            epoch_sums = dict.fromkeys(epoch_sums, 0.0)
        state = TrainState(checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["global_step"], epoch_sums)
        history = list(checkpoint["history"])
        # the sampler's order and start follow from the seed and the state (set each epoch)
        loader_generator.set_state(checkpoint["sampler"]["loader_generator"])
        restore_rng_state(checkpoint["rng"])  # rank 0's: exact for the single layout
        if ctx.world_size > 1:  # other ranks' dropout streams were not saved: fresh ones
            _seed_everything(s.seed + ctx.world_size * state.global_step + ctx.rank)

    pin = device.type == "cuda"

    def val_loader(dataset, batch_size):
        # data_parallel: each rank takes a share (padded to equal shares, as DistributedSampler does)
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size,
                                           sampler=shards.sampler(dataset, shuffle=False), num_workers=s.workers,
                                           collate_fn=collate_skipping_bad, pin_memory=pin,
                                           worker_init_fn=_ignore_interrupts)

    def final_evaluation() -> dict:
        tencrop_set = copy.copy(val_set)
        tencrop_set.transform = ten_crop_transform(s.image_size, s.resize_size)
        final = {
            "centre_crop": evaluate(model, val_loader(val_set, s.batch_size), device=device, precision=precision,
                                    shards=shards),
            "ten_crop": evaluate(model, val_loader(tencrop_set, max(1, s.batch_size // 10)), device=device,
                                 precision=precision, shards=shards, ten_crop=True),
            "chance_acc1": 100 * chance, "classes": len(classes), "global_step": state.global_step,
        }
        return final

    run_info = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                else "cpu", "torch_threads": torch.get_num_threads(), "layout": s.layout,
                "world_size": ctx.world_size, "backend": ctx.backend, "images_per_step": images_per_step,
                "precision": precision, "torch": torch.__version__, "data_root": str(data_root),
                "classes": len(classes), "train_images": len(train_set), "val_images": len(val_set)}
    if ctx.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(output_dir / "config.json", {
            "settings": {k: _plain(v) for k, v in vars(s).items()}, "run": run_info,
            "pca": None if pca is None else {"eigval": pca[0].tolist(), "eigvec": pca[1].tolist()}})

    if s.test_only:
        final = final_evaluation()
        if ctx.is_main:
            atomic_write_json(output_dir / "eval.json", {**final, "run": run_info})
            _print_final(final)
        return {"history": history, "step_losses": [], "global_step": state.global_step, "final": final,
                "output_dir": output_dir}

    if ctx.is_main:
        print(f"training {s.preset} AlexNet (width {s.width_mult}, input {s.image_size}, {s.init} init, "
              f"{len(classes)} classes, variant {s.variant}, {precision}) on {len(train_set)} images from {data_root}; "
              f"{s.layout}, {ctx.world_size} x {device}, {torch.get_num_threads()} threads")
    step_losses: list[float] = []
    checkpoint_path = output_dir / "checkpoint.pth"
    started = time.perf_counter()
    stopped = False
    # the last checkpoint known good: the one resumed from, then each one this run saves
    last_good = {"path": s.resume or None, "step": checkpoint["global_step"] if checkpoint else None,
                 "time": time.perf_counter()}

    def kept() -> str:
        if last_good["path"] is None:
            return "stopped without saving (no checkpoint of this run was saved yet)"
        return (f"stopped without saving: the last checkpoint, {last_good['path']} (step {last_good['step']}), "
                "is the last good state")

    def save():  # on every rank: model_parallel gathers the columns
        model_state = full_state_dict(s.layout, model, ctx)
        bad = [k for k, v in model_state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:  # the same merged state on every rank: all stop together
            raise NonFiniteLossError(f"non-finite parameters ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}) "
                                     f"at epoch {state.epoch}, step {state.global_step} "
                                     f"(lr {optimizer.param_groups[0]['lr']:g})")
        optimizer_state = full_optimizer_state_dict(s.layout, model, optimizer, ctx)
        epoch_sums = None if state.epoch_sums is None else \
            dict(zip(state.epoch_sums, shards.sum(list(state.epoch_sums.values()))))
        if ctx.is_main:
            save_checkpoint(checkpoint_path, model_state=model_state, optimizer_state=optimizer_state,
                            scheduler=scheduler, scaler=scaler, state=state, epoch_sums=epoch_sums,
                            images_per_step=images_per_step, sampler=sampler, loader_generator=loader_generator,
                            history=history, pca=pca, classes=classes, settings=s)
        last_good.update(path=str(checkpoint_path), step=state.global_step, time=time.perf_counter())

    def stop_if_signalled(signals) -> None:
        if _any_rank(ctx, signals["signum"] is not None):
            signum = signals["signum"] or signal.SIGTERM  # another rank got it
            raise TrainingInterrupted(f"{signal.Signals(signum).name} received: checkpoint saved to {checkpoint_path} "
                                      f"at epoch {state.epoch}, step {state.global_step}; continue with --resume "
                                      f"{checkpoint_path}", signum)

    def after_step(signals) -> None:
        """A mid-epoch checkpoint every --checkpoint-every-steps steps or --checkpoint-interval
        seconds (rank 0's clock decides), and on SIGINT/SIGTERM a checkpoint, then stop."""
        due = bool(s.checkpoint_every_steps) and state.global_step % s.checkpoint_every_steps == 0
        due = due or (ctx.is_main and s.checkpoint_interval > 0
                      and time.perf_counter() - last_good["time"] >= s.checkpoint_interval)
        signalled = signals["signum"] is not None
        due, signalled = _any_rank(ctx, due, signalled)
        if due or signalled:
            save()
        if signalled:
            stop_if_signalled(signals)

    try:
        with _stop_on_signals() as signals:
            while state.epoch < s.epochs and not (s.max_steps is not None and state.global_step >= s.max_steps):
                if state.epoch_sums is None:
                    state.epoch_sums = state.new_epoch_sums()
                train_set.set_epoch(state.epoch)
                sampler.set_epoch(state.epoch)
                sampler.set_start(min(state.step_in_epoch * s.batch_size, sampler.num_samples))
                loader = torch.utils.data.DataLoader(train_set, batch_size=s.batch_size, sampler=sampler,
                                                     num_workers=s.workers, collate_fn=collate_skipping_bad,
                                                     pin_memory=pin, generator=loader_generator,
                                                     worker_init_fn=_ignore_interrupts)
                finished = train_one_epoch(model, loader, optimizer, scaler, state, device=device,
                                           precision=precision, shards=shards, max_steps=s.max_steps,
                                           print_freq=s.print_freq, progress=not s.no_progress,
                                           step_losses=step_losses, after_step=lambda: after_step(signals))
                if not finished:  # --max-steps in mid-epoch: save where we are and stop
                    save()
                    stopped = True
                    break
                val = evaluate(model, val_loader(val_set, s.batch_size), device=device, precision=precision,
                               shards=shards)
                sums = dict(zip(state.epoch_sums, shards.sum(list(state.epoch_sums.values()))))
                lr = optimizer.param_groups[0]["lr"]
                row = {
                    "epoch": state.epoch, "global_step": state.global_step, "lr": lr,
                    "train_loss": sums["loss"] / max(sums["images"], 1),
                    "train_acc1": 100 * sums["correct1"] / max(sums["images"], 1),
                    "val_loss": val["loss"], "val_acc1": val["acc1"], "val_acc5": val["acc5"],
                    "train_images_per_s": sums["images"] / max(sums["seconds"] / shards.count, 1e-9),
                    "epoch_train_s": sums["seconds"] / shards.count,
                    "skipped_images": int(sums["skipped"] + val["skipped"]),
                }
                history.append(row)
                if not math.isfinite(val["loss"]):  # the metrics show the bad epoch (null); no checkpoint
                    if ctx.is_main:
                        write_metrics(history, output_dir, chance)
                    raise NonFiniteLossError(f"non-finite validation loss ({val['loss']}) after epoch {state.epoch}, "
                                             f"step {state.global_step} (lr {lr:g})")
                if s.lr_scheduler == "plateau":
                    scheduler.step(val["acc1"])
                else:
                    scheduler.step()
                state.epoch, state.step_in_epoch, state.epoch_sums = state.epoch + 1, 0, None
                save()
                if ctx.is_main:
                    write_metrics(history, output_dir, chance)
                    print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} top-1 {row['train_acc1']:.1f}% | "
                          f"val loss {row['val_loss']:.4f} top-1 {row['val_acc1']:.1f}% top-5 {row['val_acc5']:.1f}% "
                          f"(chance {100 * chance:.1f}%) | lr {lr:.2e} | {row['train_images_per_s']:.0f} img/s"
                          + (f" | skipped {row['skipped_images']} bad images" if row["skipped_images"] else ""))
                stop_if_signalled(signals)  # a signal during evaluation: the epoch's checkpoint is saved
    except NonFiniteLossError as e:
        raise NonFiniteLossError(f"{e}; {kept()}") from None
    final = None
    if not stopped and state.epoch >= s.epochs:
        final = final_evaluation()
        final.update({"wall_s": time.perf_counter() - started, "run": run_info,
                      # median over epochs: the first epoch of a compiled variant includes compiling
                      "median_train_images_per_s": float(np.median([r["train_images_per_s"] for r in history]))
                      if history else None})
        if ctx.is_main:
            atomic_write_json(output_dir / "final.json", final)
            _print_final(final)
    return {"history": history, "step_losses": step_losses, "global_step": state.global_step, "final": final,
            "output_dir": output_dir}


def _print_final(final: dict) -> None:
    c, t = final["centre_crop"], final["ten_crop"]
    print(f"validation ({c['images']} images, chance top-1 {final['chance_acc1']:.1f}%): centre crop top-1 "
          f"{c['acc1']:.2f}% top-5 {c['acc5']:.2f}% | 10-crop top-1 {t['acc1']:.2f}% top-5 {t['acc5']:.2f}%")


def run(args: argparse.Namespace) -> int:
    try:
        train(args)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 128 + e.signum
    except (DataError, BadImageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
