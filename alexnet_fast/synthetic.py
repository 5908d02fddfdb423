"""The embedded synthetic dataset: 10 classes of rendered shapes and textures, written once
as JPEGs in ImageFolder layout (``<root>/<name>/{train,val}/<class>/``), for machines with
no data (``alexnet-fast train`` without ``--data-path``). Deterministic per (seed, split,
class, index); a cache is reused when its parameters match and rebuilt atomically otherwise."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SYNTHETIC_CLASSES", "make_synthetic_dataset"]


SYNTHETIC_CLASSES = ("circle", "square", "triangle", "cross", "ring",
                     "hstripes", "vstripes", "dstripes", "checker", "dots")
_SYNTHETIC_VERSION = 1  # bump when rendering changes, so caches are rebuilt


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Background and foreground RGB in [0, 255] with clearly different brightness."""
    while True:
        bg, fg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if abs(bg.mean() - fg.mean()) > 60:
            return bg, fg


def _polygon(cx: float, cy: float, r: float, angle: float, points: list[tuple[float, float]]):
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in points]


_SHAPES = {
    "square": [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
    "triangle": [(0.0, -1.0), (0.87, 0.5), (-0.87, 0.5)],
    "cross": [(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)],
}


def _render_mask(name: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """float mask in [0, 1] of shape (size, size): where the foreground colour goes."""
    cx, cy = rng.uniform(0.38, 0.62, 2) * size
    r = rng.uniform(0.17, 0.3) * size
    if name in ("circle", "ring", "square", "triangle", "cross"):
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        if name == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        elif name == "ring":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
            inner = r * rng.uniform(0.45, 0.65)
            draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill=0)
        else:
            angle = rng.uniform(-0.35, 0.35)
            draw.polygon(_polygon(cx, cy, r, angle, _SHAPES[name]), fill=255)
        return np.asarray(mask, dtype=np.float32) / 255.0
    # textures inside a square patch around (cx, cy)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = rng.uniform(5.0, 9.0) * size / 64
    phase = rng.uniform(0, period)
    half = r * 1.2
    patch = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
    if name == "hstripes":
        pattern = ((yy + phase) // (period / 2)) % 2
    elif name == "vstripes":
        pattern = ((xx + phase) // (period / 2)) % 2
    elif name == "dstripes":
        sign = 1 if rng.uniform() < 0.5 else -1
        pattern = ((xx + sign * yy + phase) // (period / 1.4)) % 2
    elif name == "checker":
        pattern = (((xx + phase) // period) + ((yy + phase) // period)) % 2
    elif name == "dots":
        dx = (xx + phase) % period - period / 2
        dy = (yy + phase) % period - period / 2
        pattern = (dx * dx + dy * dy) <= (period * 0.3) ** 2
    else:
        raise ValueError(f"unknown synthetic class {name!r}")
    return (patch * pattern).astype(np.float32)


def _render(name: str, size: int, rng: np.random.Generator) -> Image.Image:
    bg, fg = _colours(rng)
    mask = _render_mask(name, size, rng)[..., None]
    image = bg * (1 - mask) + fg * mask + rng.normal(0, 12.0, (size, size, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def make_synthetic_dataset(root: str | os.PathLike, *, num_classes: int = 10,
                           train_per_class: int = 300, val_per_class: int = 60,
                           image_size: int = 77, seed: int = 0) -> Path:
    """Render the synthetic dataset in ImageFolder layout (JPEG files) under ``root`` and
    return its directory, ``root/synthetic-<params>/`` holding ``train/`` and ``val/``.
    Cached: an existing directory with the same parameters is reused. Written into a
    temporary directory and renamed, so a half-written dataset is never used."""
    if not 1 <= num_classes <= len(SYNTHETIC_CLASSES):
        raise ValueError(f"num_classes must be in [1, {len(SYNTHETIC_CLASSES)}], got {num_classes}")
    if train_per_class < 1 or val_per_class < 1:
        raise ValueError(f"need at least one image per class and split, got "
                         f"train_per_class={train_per_class}, val_per_class={val_per_class}")
    if image_size < 16:
        raise ValueError(f"synthetic images must be at least 16 pixels, got {image_size}")
    params = {"version": _SYNTHETIC_VERSION, "num_classes": num_classes, "train_per_class": train_per_class,
              "val_per_class": val_per_class, "image_size": image_size, "seed": seed}
    root = Path(root)
    name = "synthetic-" + "-".join(f"{k}{v}" for k, v in params.items())
    final = root / name
    if (final / "params.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        for split_id, (split, count) in enumerate((("train", train_per_class), ("val", val_per_class))):
            for class_id, cls in enumerate(SYNTHETIC_CLASSES[:num_classes]):
                folder = tmp / split / cls
                folder.mkdir(parents=True)
                for i in range(count):
                    rng = np.random.default_rng([seed, split_id, class_id, i])
                    _render(cls, image_size, rng).save(folder / f"{cls}_{i:05d}.jpg", quality=92)
        (tmp / "params.json").write_text(json.dumps(params, indent=2))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same dataset first
            if not (final / "params.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
