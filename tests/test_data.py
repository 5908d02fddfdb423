"""Data pipeline: PCA lighting, eigen-pairs, transforms, 10-crop, reproducible samples,
bad images, data-path errors, the synthetic dataset, the resumable sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet_fast.data import (BadImageError, DataError, ImageFolderDataset, PCALighting, ResumableSampler,
                               collate_skipping_bad, compute_pca_eigens, default_resize_size, eval_transform,
                               load_rgb, open_image_folders, ten_crop_transform, train_transform)
from alexnet_fast.synthetic import SYNTHETIC_CLASSES, make_synthetic_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """3 classes x (4 train, 2 val) synthetic JPEGs of 40x40, in ImageFolder layout."""
    root = tmp_path_factory.mktemp("data")
    return make_synthetic_dataset(root, num_classes=3, train_per_class=4, val_per_class=2, image_size=40)


def _random_image(h=40, w=48, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def test_pca_lighting_adds_the_eigen_combination_to_every_pixel():
    eigval = torch.tensor([0.3, 0.02, 0.001])
    eigvec = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))[0].float()
    lighting = PCALighting(eigval, eigvec, alpha_std=0.1)
    image = torch.rand(3, 5, 7)
    torch.manual_seed(123)
    out = lighting(image)
    torch.manual_seed(123)
    alpha = torch.randn(3) * 0.1
    expected = eigvec @ (alpha * eigval)
    shift = out - image
    torch.testing.assert_close(shift, expected.view(3, 1, 1).expand_as(shift))
    assert shift.abs().max() > 0
    assert torch.equal(PCALighting(eigval, eigvec, alpha_std=0.0)(image), image)


def test_pca_lighting_rejects_bad_shapes():
    with pytest.raises(ValueError, match="3 eigenvalues"):
        PCALighting(torch.ones(4), torch.eye(3))
    with pytest.raises(ValueError, match="3xHxW"):
        PCALighting()(torch.rand(1, 5, 5))


def test_compute_pca_eigens_finds_the_colour_axis(tmp_path):
    # pixels vary along (1, 1, 0)/sqrt(2) with a large spread, a little noise elsewhere
    rng = np.random.default_rng(0)
    paths = []
    for i in range(6):
        t = rng.uniform(-80, 80, (20, 20, 1))
        pixels = 128 + t * np.array([1, 1, 0]) / np.sqrt(2) + rng.normal(0, 3, (20, 20, 3))
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path)
        paths.append(path)
    eigval, eigvec = compute_pca_eigens(paths, pixels_per_image=400)
    assert eigval.shape == (3,) and eigvec.shape == (3, 3)
    assert eigval[0] > eigval[1] >= eigval[2] >= 0
    assert eigval[0] > 50 * eigval[1]
    axis = torch.tensor([1.0, 1.0, 0.0]) / 2 ** 0.5
    assert abs(float(eigvec[:, 0] @ axis)) > 0.99
    torch.testing.assert_close(eigvec.T @ eigvec, torch.eye(3), atol=1e-5, rtol=0)
    # ~ variance of uniform(-80, 80) / 255^2
    assert eigval[0] == pytest.approx(160 ** 2 / 12 / 255 ** 2, rel=0.15)


def test_transform_sizes_follow_the_model_input():
    assert default_resize_size(224) == 256 and default_resize_size(227) == 256
    assert default_resize_size(67) == 77
    image = _random_image(60, 90)
    assert train_transform(67)(image).shape == (3, 67, 67)
    assert eval_transform(67)(image).shape == (3, 67, 67)
    with pytest.raises(ValueError, match="smaller than the crop"):
        train_transform(67, resize_size=60)


def test_ten_crop_is_corners_centre_and_their_mirrors():
    image = _random_image(40, 52, seed=3)
    crops = ten_crop_transform(32, resize_size=40)(image)
    assert crops.shape == (10, 3, 32, 32)
    centre = eval_transform(32, resize_size=40)(image)
    torch.testing.assert_close(crops[4], centre)
    # TenCrop order: tl, tr, bl, br, centre of the image, then of its mirror image
    mirror_of = {5: 1, 6: 0, 7: 3, 8: 2, 9: 4}
    for flipped, original in mirror_of.items():
        torch.testing.assert_close(crops[flipped], crops[original].flip(-1))
    assert not torch.equal(crops[0], crops[1])


def test_samples_are_a_function_of_seed_epoch_and_index(tiny_data):
    train, _ = open_image_folders(tiny_data, train_tf=train_transform(32, 40), val_tf=eval_transform(32, 40), seed=5)
    rng_before = torch.get_rng_state()
    a = train[3][0]
    assert torch.equal(torch.get_rng_state(), rng_before), "augmentation must leave the global RNG alone"
    torch.manual_seed(999)  # the caller's RNG state does not matter
    assert torch.equal(train[3][0], a)
    train.set_epoch(1)
    assert not torch.equal(train[3][0], a)
    other_seed = ImageFolderDataset(tiny_data / "train", train_transform(32, 40), seed=6)
    assert not torch.equal(other_seed[3][0], a)


def test_synthetic_dataset_layout_and_cache(tiny_data):
    assert sorted(p.name for p in (tiny_data / "train").iterdir()) == sorted(SYNTHETIC_CLASSES[:3])
    files = sorted((tiny_data / "train").rglob("*.jpg"))
    assert len(files) == 12 and len(list((tiny_data / "val").rglob("*.jpg"))) == 6
    assert load_rgb(files[0]).size == (40, 40)
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = make_synthetic_dataset(tiny_data.parent, num_classes=3, train_per_class=4, val_per_class=2, image_size=40)
    assert again == tiny_data
    assert [f.stat().st_mtime_ns for f in files] == mtimes, "a cached dataset must not be rewritten"
    with pytest.raises(ValueError, match="num_classes"):
        make_synthetic_dataset(tiny_data.parent, num_classes=11)


def test_synthetic_images_are_reproducible(tmp_path, tiny_data):
    other = make_synthetic_dataset(tmp_path, num_classes=3, train_per_class=4, val_per_class=2, image_size=40)
    for name in ("train/circle/circle_00001.jpg", "val/triangle/triangle_00000.jpg"):
        assert (other / name).read_bytes() == (tiny_data / name).read_bytes()


def test_data_path_errors_say_what_is_wrong(tmp_path, tiny_data):
    kwargs = {"train_tf": eval_transform(32, 40), "val_tf": eval_transform(32, 40)}
    with pytest.raises(DataError, match="does not exist"):
        open_image_folders(tmp_path / "nowhere", **kwargs)
    with pytest.raises(DataError, match="has no train/ directory"):
        open_image_folders(tmp_path, **kwargs)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "val").mkdir()
    with pytest.raises(DataError, match="contains no images"):
        open_image_folders(tmp_path, **kwargs)
    # train and val with different classes
    import shutil

    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_data, mixed)
    shutil.rmtree(mixed / "val" / SYNTHETIC_CLASSES[0])
    with pytest.raises(DataError, match="classes differ"):
        open_image_folders(mixed, **kwargs)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_bad_image_names_the_file_or_is_skipped(tmp_path, damage):
    good = tmp_path / "train" / "a" / "good.jpg"
    bad = tmp_path / "train" / "a" / "bad.jpg"
    good.parent.mkdir(parents=True)
    _random_image().save(good, quality=90)
    data = good.read_bytes()
    bad.write_bytes(b"not an image at all" if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(BadImageError, match="bad.jpg"):
        load_rgb(bad)
    strict = ImageFolderDataset(tmp_path / "train", eval_transform(32, 40))
    index = [p for p, _ in strict.samples].index(str(bad))
    with pytest.raises(BadImageError, match="bad.jpg"):
        strict[index]
    lenient = ImageFolderDataset(tmp_path / "train", eval_transform(32, 40), skip_bad_images=True)
    assert lenient[index] is None
    images, targets, skipped = collate_skipping_bad([lenient[0], lenient[1]])
    assert skipped == 1 and images.shape == (1, 3, 32, 32) and targets.tolist() == [0]
    assert collate_skipping_bad([None, None]) == (None, None, 2)


def test_resumable_sampler_starts_part_way_and_shards():
    dataset = list(range(23))
    full = ResumableSampler(dataset, seed=4)
    full.set_epoch(2)
    order = list(full)
    assert sorted(order) == dataset
    part = ResumableSampler(dataset, seed=4)
    part.load_state_dict({"seed": 4, "epoch": 2, "start": 10})
    assert list(part) == order[10:] and len(part) == 13
    full.set_epoch(3)
    assert list(full) != order
    shards = [list(ResumableSampler(dataset, num_replicas=2, rank=r, seed=4)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 12  # padded to equal shares
    assert set(shards[0]) | set(shards[1]) == set(dataset)
    with pytest.raises(ValueError, match="outside"):
        part.set_start(24)
    with pytest.raises(ValueError, match="seed"):
        part.load_state_dict({"seed": 5, "epoch": 0, "start": 0})
