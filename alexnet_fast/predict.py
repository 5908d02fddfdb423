"""`alexnet-fast predict`: classify images with a checkpoint of the train command.

``alexnet-fast predict --checkpoint runs/train/checkpoint.pth IMAGE_OR_DIR ...`` prints the
top-5 classes (names from the checkpoint) with their probabilities for every image (a
directory: every image under it, sorted), from the centre crop or the paper's 10 crops
(``--ten-crop``: the softmax outputs of the 4 corner and centre crops and their mirror
images averaged), with any ``--variant``. ``--output predictions.csv`` also writes them as
CSV: ``path, class_1, prob_1, ..., class_5, prob_5``.

The model is built as the checkpoint was trained (preset, width, input and resize size) and
the preprocessing is the train command's evaluation transform, so the top-1 accuracy over
a labelled validation folder equals ``train --test-only``'s.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

import torch

from alexnet_fast.checkpoint import load_checkpoint
from alexnet_fast.data import IMG_EXTENSIONS, BadImageError, DataError, eval_transform, load_rgb, ten_crop_transform
from alexnet_fast.io import atomic_write_text
from alexnet_fast.model import alexnet
from alexnet_fast.variants import VARIANTS, build_variant

__all__ = ["add_arguments", "run", "predict", "image_paths", "model_from_checkpoint"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--checkpoint", required=True, help="a checkpoint of `alexnet-fast train` (checkpoint.pth)")
    a("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images, or directories searched for images")
    a("--ten-crop", action="store_true", help="average the paper's 10 crops (default: the centre crop)")
    a("--top-k", type=int, default=5, help="classes printed per image")
    a("--variant", default="eager", choices=VARIANTS, help="model variant (alexnet_fast.build_variant)")
    a("--device", default=None, help="cpu, cuda, cuda:N (default: cuda if available)")
    a("-b", "--batch-size", type=int, default=32, help="images per forward pass")
    a("--output", default=None, help="also write the predictions to this CSV file")


def image_paths(inputs: list[str]) -> list[Path]:
    """Every image named or found (recursively, sorted) under the directories named;
    ValueError naming an input that does not exist or holds no images."""
    paths = []
    for name in inputs:
        p = Path(name)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMG_EXTENSIONS)
            if not found:
                raise DataError(f"{name!r} contains no images with extensions {', '.join(IMG_EXTENSIONS)}")
            paths.extend(found)
        elif p.is_file():
            paths.append(p)
        else:
            raise DataError(f"{name!r} does not exist")
    return paths


def model_from_checkpoint(checkpoint: dict, variant: str, device: torch.device) -> torch.nn.Module:
    """The checkpoint's model (as it was trained: preset, width, input size) as ``variant``
    on ``device``, in eval mode."""
    from alexnet_fast.train import check_variant_device

    args = checkpoint["args"]
    check_variant_device(variant, device)
    model = alexnet(args["preset"], num_classes=len(checkpoint["classes"]), width_mult=args["width_mult"],
                    input_size=args["image_size"], dropout=args.get("dropout"), init=args.get("init"))
    model.load_state_dict(checkpoint["model"])
    return build_variant(model, variant, copy_model=False).to(device).eval()


@torch.no_grad()
def predict(checkpoint: dict, paths: list[Path], *, ten_crop: bool = False, variant: str = "eager",
            device: torch.device | str = "cpu", batch_size: int = 32, top_k: int = 5) -> list[dict]:
    """``[{"path", "classes": [top_k names], "probs": [top_k floats]}]`` per image."""
    device = torch.device(device)
    model = model_from_checkpoint(checkpoint, variant, device)
    args, classes = checkpoint["args"], list(checkpoint["classes"])
    size, resize = args["image_size"], args.get("resize_size")
    transform = ten_crop_transform(size, resize) if ten_crop else eval_transform(size, resize)
    k = min(top_k, len(classes))
    results = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images = torch.stack([transform(load_rgb(p)) for p in chunk]).to(device)
        if ten_crop:  # [N, 10, 3, H, W]: average the crops' softmax outputs
            n, crops = images.shape[:2]
            probs = model(images.flatten(0, 1)).float().softmax(-1).view(n, crops, -1).mean(1)
        else:
            probs = model(images).float().softmax(-1)
        top = probs.topk(k, dim=1)
        for path, values, indices in zip(chunk, top.values.tolist(), top.indices.tolist()):
            results.append({"path": str(path), "classes": [classes[i] for i in indices], "probs": values})
    return results


def to_csv(results: list[dict]) -> str:
    k = max((len(r["classes"]) for r in results), default=0)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["path"] + [f"{field}_{i}" for i in range(1, k + 1) for field in ("class", "prob")])
    for r in results:
        writer.writerow([r["path"]] + [v for c, p in zip(r["classes"], r["probs"]) for v in (c, f"{p:.6f}")])
    return buf.getvalue()


def run(args: argparse.Namespace) -> int:
    try:
        if args.top_k < 1 or args.batch_size < 1:
            raise ValueError(f"--top-k and --batch-size must be >= 1, got {args.top_k} and {args.batch_size}")
        output = Path(args.output) if args.output else None
        if output is not None and output.is_dir():
            raise ValueError(f"--output {str(output)!r} is a directory; give a file name such as predictions.csv")
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        checkpoint = load_checkpoint(args.checkpoint)
        paths = image_paths(args.inputs)
        results = predict(checkpoint, paths, ten_crop=args.ten_crop, variant=args.variant, device=device,
                          batch_size=args.batch_size, top_k=args.top_k)
    except (DataError, BadImageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in results:
        print(f"{r['path']}: " + ", ".join(f"{c} {100 * p:.2f}%" for c, p in zip(r["classes"], r["probs"])))
    if output is not None:
        try:
            atomic_write_text(output, to_csv(results))
        except OSError as e:
            print(f"error: cannot write --output {str(output)!r}: {e.strerror or e}", file=sys.stderr)
            return 2
        print(f"wrote {len(results)} predictions to {output}")
    return 0
