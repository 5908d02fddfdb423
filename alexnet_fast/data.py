"""Data for training AlexNet: ImageFolder datasets, the paper's augmentation, 10-crop
evaluation (the embedded synthetic dataset: :mod:`alexnet_fast.synthetic`).

Layout on disk (torchvision's ImageFolder, as in torchvision's classification reference)::

    DATA/train/<class>/<image>      DATA/val/<class>/<image>

Every tensor here is float32 CHW (a batch: NCHW) in [0, 1] before normalisation; the
normalised output has ImageNet's mean/std removed.

Training transform (Krizhevsky et al. 2012, section 4.1): resize the short side to
``resize_size`` (256 for 224/227 inputs), take the centre ``resize_size`` square, then a
random ``input_size`` crop, a random horizontal flip, and PCA colour augmentation (add
``sum_i alpha_i * lambda_i * p_i`` to every pixel, ``alpha_i ~ N(0, 0.1)``, with the
eigen-pairs of the training set's RGB covariance). Evaluation: centre crop, or the paper's
10 crops (4 corners + centre of the ``resize_size`` square, and their mirror images).

Randomness is a pure function of (seed, epoch, sample index): :class:`ImageFolderDataset`
seeds torch's RNG per sample and :class:`ResumableSampler` draws the order from
(seed, epoch), so a run stopped mid-epoch resumes with exactly the same batches and
augmentations, whatever the number of loader workers.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DistributedSampler, default_collate
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_PCA_EIGVAL",
    "IMAGENET_PCA_EIGVEC",
    "DataError",
    "BadImageError",
    "load_rgb",
    "PCALighting",
    "compute_pca_eigens",
    "default_resize_size",
    "train_transform",
    "eval_transform",
    "ten_crop_transform",
    "ImageFolderDataset",
    "ResumableSampler",
    "collate_skipping_bad",
    "open_image_folders",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ImageNet's RGB covariance eigen-pairs for pixels in [0, 1] (as published with
# fb.resnet.torch); eigenvectors are the COLUMNS of IMAGENET_PCA_EIGVEC.
IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class DataError(ValueError):
    """The data path is missing, empty, or not in ImageFolder layout."""


class BadImageError(ValueError):
    """An image file that cannot be read; the message names the file.

    Raised in a DataLoader worker, it reaches the main process re-raised by torch with the
    worker's whole traceback as its message; the message is cut back to the one line that
    names the file, so ``-j 1`` reports a bad image exactly as ``-j 0`` does."""

    def __init__(self, message: str = "", *args):
        if "Original Traceback" in message:  # torch's ExceptionWrapper.reraise()
            last = [line for line in message.strip().splitlines() if line.strip()][-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message, *args)


def load_rgb(path: str | os.PathLike) -> Image.Image:
    """Open ``path`` as an RGB PIL image, decoding it fully now, so that a truncated or
    corrupt file raises :class:`BadImageError` naming the file (PIL's own errors often don't)."""
    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")  # convert() decodes every pixel
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImageError(f"cannot read image {os.fspath(path)!r}: {type(e).__name__}: {e}") from e


class PCALighting(torch.nn.Module):
    """The paper's PCA colour augmentation on a float CHW RGB tensor in [0, 1]: adds
    ``eigvec @ (alpha * eigval)`` to every pixel, ``alpha ~ N(0, alpha_std)`` drawn from
    torch's RNG once per call. ``eigvec`` holds the eigenvectors as columns."""

    def __init__(self, eigval: Sequence[float] | torch.Tensor = IMAGENET_PCA_EIGVAL,
                 eigvec: Sequence[Sequence[float]] | torch.Tensor = IMAGENET_PCA_EIGVEC,
                 alpha_std: float = 0.1):
        super().__init__()
        eigval = torch.as_tensor(eigval, dtype=torch.float32)
        eigvec = torch.as_tensor(eigvec, dtype=torch.float32)
        if eigval.shape != (3,) or eigvec.shape != (3, 3):
            raise ValueError(f"PCA lighting needs 3 eigenvalues and a 3x3 eigenvector matrix, got "
                             f"shapes {tuple(eigval.shape)} and {tuple(eigvec.shape)}")
        if not alpha_std >= 0:
            raise ValueError(f"alpha_std must be >= 0, got {alpha_std!r}")
        self.eigval, self.eigvec, self.alpha_std = eigval, eigvec, float(alpha_std)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"PCA lighting expects a 3xHxW RGB tensor, got shape {tuple(image.shape)}")
        if self.alpha_std == 0:
            return image
        alpha = torch.randn(3) * self.alpha_std
        rgb = self.eigvec @ (alpha * self.eigval)
        return image + rgb.to(image.dtype).view(3, 1, 1)

    def extra_repr(self) -> str:
        return f"eigval={self.eigval.tolist()}, alpha_std={self.alpha_std}"


def compute_pca_eigens(paths: Sequence[str | os.PathLike], *, max_images: int = 500,
                       pixels_per_image: int = 1000, seed: int = 0,
                       skip_bad_images: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-pairs of the RGB covariance (pixels in [0, 1]) of a random sample of the images
    at ``paths``: ``(eigval[3], eigvec[3, 3])``, eigenvalues descending, eigenvectors as
    columns, float32. Unreadable images raise :class:`BadImageError`, or with
    ``skip_bad_images`` are left out of the sample (:class:`DataError` if none is readable)."""
    if len(paths) == 0:
        raise DataError("cannot compute PCA eigen-pairs from an empty list of images")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(max_images, len(paths)), replace=False)
    samples = []
    for i in sorted(chosen):
        try:
            image = load_rgb(paths[i])
        except BadImageError:
            if skip_bad_images:
                continue
            raise
        pixels = np.asarray(image, dtype=np.float64).reshape(-1, 3) / 255.0
        take = rng.choice(len(pixels), size=min(pixels_per_image, len(pixels)), replace=False)
        samples.append(pixels[take])
    if not samples:
        raise DataError(f"none of the {len(chosen)} images sampled for the PCA eigen-pairs is readable")
    cov = np.cov(np.concatenate(samples), rowvar=False)
    eigval, eigvec = np.linalg.eigh(cov)  # ascending
    order = np.argsort(eigval)[::-1]
    eigval = np.clip(eigval[order], 0.0, None)
    return torch.tensor(eigval, dtype=torch.float32), torch.tensor(eigvec[:, order], dtype=torch.float32)


def default_resize_size(input_size: int) -> int:
    """The short side images are rescaled to: 256 for the paper's 224/227 crops, otherwise
    the same 256/224 ratio (at least ``input_size``)."""
    if input_size in (224, 227):
        return 256
    return max(input_size, round(input_size * 256 / 224))


def _normalize() -> transforms.Normalize:
    return transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def train_transform(input_size: int, resize_size: int | None = None, *,
                    eigval: Sequence[float] | torch.Tensor | None = IMAGENET_PCA_EIGVAL,
                    eigvec: Sequence[Sequence[float]] | torch.Tensor | None = IMAGENET_PCA_EIGVEC,
                    alpha_std: float = 0.1) -> transforms.Compose:
    """PIL image -> normalised float32 3 x input_size x input_size, with the paper's
    augmentation. ``eigval=None`` leaves out the PCA colour augmentation."""
    resize_size = _resize_size(input_size, resize_size)
    steps = [
        transforms.Resize(resize_size),
        transforms.CenterCrop(resize_size),
        transforms.RandomCrop(input_size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ]
    if eigval is not None:
        steps.append(PCALighting(eigval, eigvec, alpha_std))
    steps.append(_normalize())
    return transforms.Compose(steps)


def eval_transform(input_size: int, resize_size: int | None = None) -> transforms.Compose:
    """PIL image -> normalised float32 3 x input_size x input_size centre crop."""
    resize_size = _resize_size(input_size, resize_size)
    return transforms.Compose([
        transforms.Resize(resize_size),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
        _normalize(),
    ])


class _StackCrops:
    """Tuple of PIL crops -> float32 tensor [n_crops, 3, H, W] (picklable, for workers)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, crops):
        return torch.stack([self.transform(c) for c in crops])


def ten_crop_transform(input_size: int, resize_size: int | None = None) -> transforms.Compose:
    """PIL image -> normalised float32 [10, 3, input_size, input_size]: the 4 corner and
    centre crops of the centre ``resize_size`` square, then their horizontal flips
    (torchvision's TenCrop order)."""
    resize_size = _resize_size(input_size, resize_size)
    return transforms.Compose([
        transforms.Resize(resize_size),
        transforms.CenterCrop(resize_size),
        transforms.TenCrop(input_size),
        _StackCrops(transforms.Compose([transforms.ToTensor(), _normalize()])),
    ])


def _resize_size(input_size: int, resize_size: int | None) -> int:
    """``resize_size``, or the default for ``input_size`` when None, checked against it."""
    if not (isinstance(input_size, int) and input_size >= 1):
        raise ValueError(f"input size must be a positive integer, got {input_size!r}")
    resize_size = default_resize_size(input_size) if resize_size is None else resize_size
    if resize_size < input_size:
        raise ValueError(f"resize size {resize_size} is smaller than the crop size {input_size}")
    return resize_size


@contextlib.contextmanager
def _seeded_cpu_rng(seed: int):
    """Run the block with torch's CPU generator seeded with ``seed``, then put its state
    back (much cheaper than torch.random.fork_rng + torch.manual_seed, which seed every
    device)."""
    generator = torch.default_generator
    saved = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(saved)


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return hash((seed, epoch, index)) % (2 ** 63)  # int tuples hash the same in every process


class ImageFolderDataset(ImageFolder):
    """torchvision's ImageFolder, read with :func:`load_rgb`, with reproducible augmentation
    and optional skipping of unreadable images.

    Each sample's transform runs with torch's RNG seeded from (seed, epoch, index) (and the
    caller's RNG state restored), so augmentation does not depend on worker count or order.
    Call :meth:`set_epoch` before each epoch. With ``skip_bad_images`` an unreadable file
    yields ``None`` (dropped and counted by :func:`collate_skipping_bad`); otherwise it
    raises :class:`BadImageError` naming the file.
    """

    def __init__(self, root: str | os.PathLike, transform, *, seed: int = 0,
                 skip_bad_images: bool = False):
        super().__init__(os.fspath(root), transform=transform, loader=load_rgb)
        self.seed = seed
        self.epoch = 0
        self.skip_bad_images = skip_bad_images

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        try:
            image = self.loader(path)
        except BadImageError:
            if self.skip_bad_images:
                return None
            raise
        with _seeded_cpu_rng(_sample_seed(self.seed, self.epoch, index)):
            image = self.transform(image)
        return image, target


def collate_skipping_bad(batch):
    """Collate (image, target) pairs, dropping ``None`` (skipped bad images).
    Returns ``(images, targets, n_skipped)``; images/targets are None if all were bad."""
    good = [item for item in batch if item is not None]
    skipped = len(batch) - len(good)
    if not good:
        return None, None, skipped
    images, targets = default_collate(good)
    return images, targets, skipped


class ResumableSampler(DistributedSampler):
    """torch's DistributedSampler (order drawn from seed + epoch; rank ``rank`` of
    ``num_replicas`` takes every num_replicas-th index) that can start part-way through an
    epoch: :meth:`set_start` skips the first ``start`` indices of this rank's share.
    One process: ``num_replicas=1, rank=0`` (no process group needed)."""

    def __init__(self, dataset, *, num_replicas: int = 1, rank: int = 0, shuffle: bool = True,
                 seed: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def set_start(self, start: int) -> None:
        if not 0 <= start <= self.num_samples:
            raise ValueError(f"sampler start {start} is outside this epoch's {self.num_samples} samples")
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "start": self.start}

    def load_state_dict(self, state: dict) -> None:
        if state["seed"] != self.seed:
            raise ValueError(f"checkpoint sampler seed {state['seed']} differs from --seed {self.seed}")
        self.set_epoch(state["epoch"])
        self.set_start(state["start"])


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMG_EXTENSIONS for p in folder.rglob("*"))  # stops at the first


def open_image_folders(data_path: str | os.PathLike, *, train_tf, val_tf, seed: int = 0,
                       skip_bad_images: bool = False) -> tuple[ImageFolderDataset, ImageFolderDataset]:
    """``(train, val)`` datasets from ``DATA/train`` and ``DATA/val``; :class:`DataError`
    says what is missing when the path does not exist, is empty, is not in ImageFolder
    layout, or the two splits have different classes."""
    root = Path(data_path)
    layout = f"expected ImageFolder layout {root}/train/<class>/<image> and {root}/val/<class>/<image>"
    if not root.exists():
        raise DataError(f"data path {str(root)!r} does not exist ({layout})")
    if not root.is_dir():
        raise DataError(f"data path {str(root)!r} is not a directory ({layout})")
    datasets = []
    for split, tf in (("train", train_tf), ("val", val_tf)):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"data path {str(root)!r} has no {split}/ directory ({layout})")
        if not _has_images(folder):
            raise DataError(f"{str(folder)!r} contains no images with extensions "
                            f"{', '.join(IMG_EXTENSIONS)} ({layout})")
        try:
            datasets.append(ImageFolderDataset(folder, tf, seed=seed, skip_bad_images=skip_bad_images))
        except FileNotFoundError as e:  # ImageFolder: no class folders / a class without images
            raise DataError(f"{str(folder)!r}: {e} ({layout})") from e
    train, val = datasets
    if train.classes != val.classes:
        raise DataError(f"train and val classes differ under {str(root)!r}: "
                        f"{len(train.classes)} vs {len(val.classes)} classes, e.g. "
                        f"{sorted(set(train.classes) ^ set(val.classes))[:5]}")
    return train, val
