"""RNG state capture and training checkpoints (written with
:func:`alexnet_fast.io.atomic_torch_save`).

A checkpoint is a dict of tensors and plain Python values (loadable with
``torch.load(weights_only=True)``)::

    model, optimizer                           the single model's state_dicts, whatever the
                                               layout (alexnet_fast.layouts.full_state_dict)
    lr_scheduler, scaler                       state_dicts
    epoch, step_in_epoch, global_step          where training stands (epoch in progress)
    images_per_step                            all ranks' images per step (mid-epoch resume)
    rng                                        torch CPU, CUDA, numpy and python RNG states
    sampler                                    the data sampler's seed, epoch and start (its
                                               order is drawn from seed + epoch) and the
                                               DataLoader generator's state
    epoch_sums, history, pca, classes, args    running sums (over every rank), metrics so far,
                                               run settings
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state", "load_checkpoint"]


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
