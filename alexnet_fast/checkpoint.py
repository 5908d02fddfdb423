"""Training checkpoints: what one holds, writing it, reading it, and the checks and
restores of ``--resume`` -- all of it here.

A checkpoint is a dict of tensors and plain values (``torch.load(weights_only=True)`` reads
it), written atomically (:func:`alexnet_fast.io.atomic_torch_save`)::

    model, optimizer                    the single model's state_dicts whatever the layout
                                        (alexnet_fast.layouts.full_state_dict)
    lr_scheduler, scaler                state_dicts
    epoch, step_in_epoch, global_step   where training stands (epoch in progress)
    images_per_step                     all ranks' images per step (mid-epoch resume)
    rng                                 torch CPU, CUDA, numpy and python RNG states
    sampler                             the sampler's seed, epoch and start (its order is drawn
                                        from seed + epoch) and the DataLoader generator's state
    epoch_sums, history, pca, classes   running sums (over every rank), metrics so far, the
    args                                PCA eigen-pairs, class names, the run's settings
"""

from __future__ import annotations

import argparse
import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from alexnet_fast.io import atomic_torch_save, json_safe
from alexnet_fast.layouts import DistContext, load_full_optimizer_state_dict
from alexnet_fast.train_loop import DataShards, TrainState
from alexnet_fast.train_settings import seed_everything

__all__ = ["RESUME_MUST_MATCH", "capture_rng_state", "restore_rng_state", "save_checkpoint", "load_checkpoint",
           "check_resume", "restore_training"]

# settings a checkpoint must be resumed with (they shape the model or the optimizer)
RESUME_MUST_MATCH = ("preset", "width_mult", "image_size", "freeze", "head_lr_mult")


def capture_rng_state() -> dict:
    """torch CPU, every CUDA device, numpy and python ``random`` states, as tensors and
    plain values (so the checkpoint loads with ``weights_only=True``)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng_state(state: dict) -> None:
    """Put back the states of :func:`capture_rng_state`. CUDA states are restored when this
    machine has as many CUDA devices as the one that saved them; otherwise (a GPU checkpoint
    evaluated on a CPU, say) they are left out with a warning, as the run cannot be exact."""
    torch.set_rng_state(state["torch"])
    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if state["cuda"] and len(state["cuda"]) == cuda_devices:
        torch.cuda.set_rng_state_all(state["cuda"])
    elif state["cuda"]:
        warnings.warn(f"the checkpoint holds {len(state['cuda'])} CUDA RNG states and this machine has "
                      f"{cuda_devices} CUDA devices: CUDA RNG states not restored", stacklevel=2)
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def save_checkpoint(path: Path, *, model_state: dict, optimizer_state: dict, scheduler, scaler,
                    state: TrainState, epoch_sums: dict | None, images_per_step: int, sampler,
                    loader_generator: torch.Generator, history, pca, classes, settings) -> None:
    """Write the checkpoint atomically. ``model_state`` and ``optimizer_state`` are the single
    model's (:func:`~alexnet_fast.layouts.full_state_dict`,
    :func:`~alexnet_fast.layouts.full_optimizer_state_dict`); ``epoch_sums`` the running sums
    of the epoch in progress over every shard."""
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
        "args": json_safe(vars(settings)),
    }, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by the train command (tensors to CPU); ValueError with the
    path when it is missing or not a checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for a damaged or foreign file
        raise ValueError(f"cannot load checkpoint {str(path)!r}: {type(e).__name__}: {e}") from e
    missing = {"model", "optimizer", "epoch", "global_step"} - set(checkpoint if isinstance(checkpoint, dict) else ())
    if missing:
        raise ValueError(f"{str(path)!r} is not a training checkpoint (missing {sorted(missing)})")
    return checkpoint


def _setting(args: dict, key: str):
    """A checkpoint's setting (older checkpoints lack the fine-tuning ones: their defaults)."""
    return args.get(key, {"freeze": None, "head_lr_mult": 1.0}.get(key))


def check_resume(s: argparse.Namespace, checkpoint: dict, images_per_step: int) -> None:
    """ValueError in one line when ``checkpoint`` cannot be resumed with the settings ``s``:
    every setting of :data:`RESUME_MUST_MATCH` that differs (with the checkpoint's value),
    another seed, or another number of images per step in mid-epoch."""
    saved = checkpoint["args"]
    differ = [key for key in RESUME_MUST_MATCH if _setting(saved, key) != getattr(s, key)
              and not (key == "image_size" and s.test_only and s.preset != "paper")]
    if differ:
        flag = lambda key: "--" + key.replace("_", "-")  # noqa: E731
        raise ValueError(f"--resume {s.resume}: " + ", ".join(
            f"{flag(k)} is {getattr(s, k)} but the checkpoint was trained with {flag(k)} {_setting(saved, k)}"
            for k in differ) + "; resume with the checkpoint's settings (or start from its weights with --weights)")
    if saved.get("seed") != s.seed:
        raise ValueError(f"--seed {s.seed} differs from the checkpoint's seed {saved.get('seed')}: an exact "
                         "resume needs the same seed")
    if checkpoint["step_in_epoch"] and not s.test_only:
        per_step = checkpoint.get("images_per_step", saved.get("batch_size"))
        if per_step != images_per_step:
            raise ValueError(f"the checkpoint stopped in mid-epoch after {checkpoint['step_in_epoch']} steps of "
                             f"{per_step} images; this run takes {images_per_step} images per step "
                             f"(--batch-size {s.batch_size}, layout {s.layout}): resume with the same number")


def restore_training(checkpoint: dict, *, s: argparse.Namespace, ctx: DistContext, shards: DataShards, model,
                     optimizer, scheduler, scaler, loader_generator: torch.Generator) -> tuple[TrainState, list]:
    """Put the optimizer, scheduler, loss scaler, data order and RNG states of ``checkpoint``
    back; returns where training stands and the history so far. Exact for the single layout
    (rank 0's RNG states); other ranks of a two-rank run get fresh dropout streams."""
    load_full_optimizer_state_dict(s.layout, model, optimizer, checkpoint["optimizer"], ctx)
    scheduler.load_state_dict(checkpoint["lr_scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    epoch_sums = dict(checkpoint["epoch_sums"]) or None  # the sums over every shard: on shard 0
    if epoch_sums is not None and shards.index > 0:
        epoch_sums = dict.fromkeys(epoch_sums, 0.0)
    state = TrainState(checkpoint["epoch"], checkpoint["step_in_epoch"], checkpoint["global_step"], epoch_sums)
    # the sampler's order and start follow from the seed and the state (set each epoch)
    loader_generator.set_state(checkpoint["sampler"]["loader_generator"])
    restore_rng_state(checkpoint["rng"])
    if ctx.world_size > 1:  # other ranks' dropout streams were not saved: fresh ones
        seed_everything(s.seed + ctx.world_size * state.global_step + ctx.rank)
    return state, list(checkpoint["history"])
