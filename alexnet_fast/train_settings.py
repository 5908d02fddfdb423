"""The settings of `alexnet-fast train`: its flags, their defaults and checks, and the
process-wide torch settings a run holds.

Flags follow torchvision's references/classification/train.py; unset ones take the paper's
recipe for real data (:data:`PAPER_DEFAULTS`) or a small fast model for the embedded
synthetic dataset (:data:`EMBEDDED_DEFAULTS`). :func:`resolve_settings` fills them in and
refuses a bad value in one line naming the flag.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random

import numpy as np
import torch

from alexnet_fast.data import default_resize_size
from alexnet_fast.finetune import parse_freeze
from alexnet_fast.layouts import DEFAULT_TIMEOUT_S, LAYOUTS
from alexnet_fast.model import INITS, PRESETS
from alexnet_fast.precision import POLICY as PRECISIONS
from alexnet_fast.vocabulary import COMPILE_MODES, VARIANTS

__all__ = ["add_arguments", "resolve_settings", "run_precision", "process_settings", "seed_everything",
           "PAPER_DEFAULTS", "EMBEDDED_DEFAULTS", "DEFAULT_WORKERS", "DEFAULT_CHECKPOINT_INTERVAL_S"]

# Unset settings by data source: the paper's for real data; for the embedded dataset a small
# model (input 67 is the paper network's smallest; width 1/4 = 24/64/96/96/64 filters) with He
# init: at this width the paper's N(0, 0.01) init and PyTorch's default stay at chance for
# hundreds of steps (measured: paper init 150-600 steps at batch 128/32/16, lr 0.01-0.05).
PAPER_DEFAULTS = {"epochs": 90, "width_mult": 1.0, "image_size": None, "init": None}  # None: the preset's
EMBEDDED_DEFAULTS = {"epochs": 18, "width_mult": 0.25, "image_size": 67, "init": "kaiming"}
# Loader workers and OpenMP threads must not share cores: OpenMP threads spin while they
# wait, and on a shared 2-core machine 2 threads + 2 workers ran a step 50x slower than 1 + 1.
DEFAULT_WORKERS = min(4, max(1, (os.cpu_count() or 2) // 2))
# a checkpoint at least this often (seconds of training) unless --checkpoint-interval says
# otherwise: a crash or kill -9 loses at most this much work (plus one step)
DEFAULT_CHECKPOINT_INTERVAL_S = 600.0


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


def run_precision(s: argparse.Namespace, device: torch.device) -> str:
    """The name of the run's precision in :data:`alexnet_fast.precision.POLICY`."""
    if s.amp:
        return "fp16" if device.type == "cuda" else "bf16"
    precision = s.precision or "fp32"
    if PRECISIONS[precision].tf32 and device.type != "cuda":
        raise ValueError(f"--precision {precision} applies only on CUDA devices; use fp32 on {device}")
    return precision


@contextlib.contextmanager
def process_settings(threads: int, deterministic: bool, device: torch.device, tf32: bool):
    """Threads, determinism and TF32 (CUDA matmuls and convolutions, backward included) for
    the run, restored afterwards (``train`` may run in-process)."""
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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # every CUDA device too
