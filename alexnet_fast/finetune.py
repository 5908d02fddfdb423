"""Starting from trained weights: load them safely, fit them to the model, freeze layers and
give the new head its own learning rate (``alexnet-fast train --weights``).

* :func:`load_weights_file` reads a weights file as untrusted input: ``torch.load`` with
  ``weights_only=True`` (no pickled code runs); a file that needs more is refused with one
  line. It accepts this project's checkpoints (``{"model": state_dict, "args": ...,
  "classes": [...]}``) and plain state_dicts (torchvision's ``alexnet().state_dict()``
  with its positional keys ``features.0.weight``, or this project's role names).
* :func:`fit_weights` checks the weights against the model and returns what to load: the
  last layer (``classifier.fc8``) is left out, so the model keeps its freshly initialised
  one (the preset's init), when the classes differ; any other mismatch (preset, width,
  input size, a missing or extra key) is one :class:`WeightsMismatchError` line saying what
  the file holds and what the model expects.
* :func:`freeze` and :func:`param_groups`: ``--freeze features`` (or layer names) and
  ``--head-lr-mult``, as torchvision's fine-tuning recipes do (frozen parameters are left
  out of the optimizer; the head is a parameter group with its own learning rate).
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

__all__ = ["HEAD", "FREEZABLE", "WeightsFile", "WeightsMismatchError", "load_weights_file", "fit_weights",
           "parse_freeze", "freeze", "param_groups", "describe_shapes"]

HEAD = "fc8"  # the layer replaced when the classes differ
# --freeze names: the two halves of the network and every layer with parameters
FREEZABLE = ("features", "classifier", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
_HEAD_KEYS = (f"classifier.{HEAD}.weight", f"classifier.{HEAD}.bias")


class WeightsMismatchError(ValueError):
    """The weights do not fit the model; the message says what each holds."""


@dataclass
class WeightsFile:
    """What a weights file holds: a state_dict with role names (``features.conv1.weight``),
    and, for this project's checkpoints, the classes and settings it was trained with."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    classes: list[str] | None = None
    args: dict | None = None
    flag: str = "--weights"  # the flag that named the file, for messages

    def describe(self) -> str:
        if self.args:
            a = self.args
            return (f"a checkpoint trained with --preset {a.get('preset')} --width-mult {a.get('width_mult')} "
                    f"--image-size {a.get('image_size')} ({describe_shapes(self.state_dict)})")
        return f"a state_dict of {len(self.state_dict)} tensors ({describe_shapes(self.state_dict)})"


def _positional_to_roles(state_dict: Mapping[str, Any], model: nn.Module) -> dict[str, Any]:
    """Keys such as ``features.0.weight`` (torchvision's) renamed to the model's role names
    (``features.conv1.weight``), as the model's own load_state_dict pre-hook renames them."""
    from alexnet_fast.model import _map_positional_keys

    out = dict(state_dict)
    _map_positional_keys(model, out, "")
    return out


def load_weights_file(path: str | os.PathLike, model: nn.Module) -> WeightsFile:
    """Read ``path`` with ``weights_only=True`` (ValueError with one line when it is missing,
    damaged, not a state_dict, or needs more than tensors and plain values to load);
    positional keys are renamed to ``model``'s role names."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--weights {str(path)!r} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"--weights {str(path)!r} is refused: it needs more than tensors and plain values to load "
                         f"(a pickled module or code; weights files are untrusted, so they load with "
                         f"weights_only=True: {first}); save model.state_dict() instead") from e
    except Exception as e:  # torch raises several types for a damaged or foreign file
        raise ValueError(f"cannot load --weights {str(path)!r}: {type(e).__name__}: {e}") from e
    classes = args = None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):  # this project's checkpoint
        classes, args = obj.get("classes"), obj.get("args")
        obj = obj["model"]
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"--weights {str(path)!r} holds {type(obj).__name__}, not a state_dict of tensors "
                         "(nor a checkpoint of this project)")
    state = {k.removeprefix("module."): v for k, v in obj.items()}  # saved from a DDP wrapper
    return WeightsFile(path, _positional_to_roles(state, model), list(classes) if classes else None,
                       dict(args) if isinstance(args, dict) else None)


def describe_shapes(shapes: Mapping[str, Any]) -> str:
    """A short summary of an AlexNet state_dict's (or {key: shape}'s) sizes: the filters of
    each conv, fc6's input and the number of classes."""
    shape = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else tuple(v) for k, v in shapes.items()}
    convs = [str(shape[f"features.conv{i}.weight"][0]) for i in range(1, 6) if f"features.conv{i}.weight" in shape]
    parts = []
    if convs:
        parts.append(f"conv filters {'/'.join(convs)}")
    if "classifier.fc6.weight" in shape:
        parts.append(f"fc6 {shape['classifier.fc6.weight'][1]}->{shape['classifier.fc6.weight'][0]}")
    if "classifier.fc8.weight" in shape:
        parts.append(f"{shape['classifier.fc8.weight'][0]} classes")
    return ", ".join(parts) if parts else f"keys such as {', '.join(sorted(shape)[:3])}"


def _list(keys, limit: int = 3) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def fit_weights(weights: WeightsFile, model: nn.Module, classes: list[str], model_desc: str) -> tuple[dict, bool]:
    """``(state_dict to load with strict=False, head_replaced)``. The head is replaced (left
    out, so the model keeps its own fresh ``fc8``) when the file's classes differ from
    ``classes`` (by name for this project's checkpoints, by number for plain state_dicts);
    every other difference from ``model`` raises :class:`WeightsMismatchError` naming what the
    file holds and what the model (``model_desc``) expects."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in weights.state_dict.items()}
    head_w = _HEAD_KEYS[0]
    replace = False
    if head_w in given and head_w in expected and given[head_w][1:] == expected[head_w][1:]:
        if weights.classes is not None:
            replace = list(weights.classes) != list(classes)
        else:
            replace = given[head_w][0] != expected[head_w][0]
    state = {k: v for k, v in weights.state_dict.items() if not (replace and k in _HEAD_KEYS)}
    problems = []
    shape_diffs = [k for k in expected if k in state and given[k] != expected[k]]
    if shape_diffs:
        problems.append("; ".join(f"{k} is {list(given[k])} in the file, {list(expected[k])} in the model"
                                  for k in shape_diffs[:2]) + (f" (and {len(shape_diffs) - 2} more shapes)"
                                                               if len(shape_diffs) > 2 else ""))
    missing = [k for k in expected if k not in state and not (replace and k in _HEAD_KEYS)]
    if missing:
        problems.append(f"missing keys {_list(missing)}")
    extra = [k for k in state if k not in expected]
    if extra:
        problems.append(f"unexpected keys {_list(extra)}")
    if problems:
        raise WeightsMismatchError(f"{weights.flag} {str(weights.path)!r} holds {weights.describe()}, but the model "
                                   f"expects {model_desc} ({describe_shapes(expected)}): {'; '.join(problems)}")
    return state, replace


def parse_freeze(spec: str | None) -> tuple[str, ...]:
    """``--freeze`` names (comma-separated) checked against :data:`FREEZABLE`."""
    if not spec:
        return ()
    names = tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in FREEZABLE]
    if unknown or not names:
        raise ValueError(f"--freeze {spec!r}: unknown layer name(s) {unknown}; choose from {', '.join(FREEZABLE)} "
                         "(comma-separated)")
    return names


def _is_frozen(param_name: str, names: tuple[str, ...]) -> bool:
    parts = param_name.removeprefix("module.").split(".")  # features.conv1.weight
    return bool(set(parts[:2]) & set(names))


def freeze(model: nn.Module, names: tuple[str, ...]) -> list[str]:
    """Set ``requires_grad=False`` on the parameters of the layers ``names`` (role names, as
    :data:`FREEZABLE`); returns the frozen parameter names. Every layer left frozen runs no
    weight-gradient computation (the Triton conv skips its wgrad kernel)."""
    frozen = []
    for name, p in model.named_parameters():
        if _is_frozen(name, names):
            p.requires_grad_(False)
            frozen.append(name)
    if names and len(frozen) == sum(1 for _ in model.parameters()):
        raise ValueError(f"--freeze {','.join(names)} freezes every parameter: nothing is left to train")
    return frozen


def param_groups(model: nn.Module, lr: float, head_lr_mult: float) -> list[dict]:
    """The optimizer's parameter groups over the trainable parameters, in model order: one
    group, or (``head_lr_mult != 1``) the body at ``lr`` and the head (``fc8``) at
    ``lr * head_lr_mult``."""
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if head_lr_mult == 1:
        return [{"params": [p for _, p in trainable]}]
    is_head = [n.removeprefix("module.").split(".")[:2] == ["classifier", HEAD] for n, _ in trainable]
    body = [p for (_, p), h in zip(trainable, is_head) if not h]
    head = [p for (_, p), h in zip(trainable, is_head) if h]
    groups = [{"params": body}] if body else []
    return groups + [{"params": head, "lr": lr * head_lr_mult}]
