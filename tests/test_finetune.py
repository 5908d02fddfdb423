"""Fine-tuning and prediction: --weights (torchvision's alexnet() state_dict and
this project's checkpoints), the replaced head, --freeze, --head-lr-mult, every layout and
the Triton variant (no wgrad for frozen convs), one-line mismatch errors, weights_only
loading, and `alexnet-fast predict` matching --test-only."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from alexnet_fast import train as train_module
from alexnet_fast import train_settings
from alexnet_fast.checkpoint import load_checkpoint
from alexnet_fast.cli import main
from alexnet_fast.synthetic import make_synthetic_dataset
from alexnet_fast.layouts import local_context
from test_train import TINY, parse, run_train, torchrun_train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 classes x (6 train, 3 val) images: 6 steps of batch 4 per epoch."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("data"), num_classes=4, train_per_class=6,
                                  val_per_class=3, image_size=77)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A checkpoint of 3 epochs on ``data`` (4 classes; He init and no dropout: the tiny model
    learns something, so predictions differ between images)."""
    out = tmp_path_factory.mktemp("trained")
    run_train(data, out, "--epochs", "3", "--init", "kaiming", "--dropout", "0", "--lr", "0.02")
    return out / "checkpoint.pth"


def _other_classes(data, tmp_path, names=("w", "x", "y", "z")) -> Path:
    """``data`` with its class folders renamed: the same images, other classes."""
    copy = tmp_path / "other"
    for split in ("train", "val"):
        for old, new in zip(sorted(p.name for p in (data / split).iterdir()), names):
            shutil.copytree(data / split / old, copy / split / new, copy_function=os.link)
    return copy


def test_torchvision_state_dict_gives_torchvision_logits(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    reference = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path / "tv.pth"
    torch.save(reference.state_dict(), path)  # positional keys: features.0.weight ...
    s = train_settings.resolve_settings(parse(["--data-path", "x", "--preset", "torchvision", "--weights", str(path)]))
    classes = [str(i) for i in range(1000)]
    state, replaced = train_module.initial_weights(s, None, classes, "--weights")
    assert not replaced
    model = train_module.build_model(s, 1000, local_context("cpu"), state, strict=False).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)
    # 10 classes: every layer but fc8 from the file, fc8 freshly initialised (torchvision's init)
    state, replaced = train_module.initial_weights(s, None, classes[:10], "--weights")
    assert replaced and "classifier.fc8.weight" not in state
    small = train_module.build_model(s, 10, local_context("cpu"), state, strict=False)
    assert torch.equal(small.features.conv1.weight, reference.features[0].weight)
    assert torch.equal(small.classifier.fc7.weight, reference.classifier[4].weight)
    assert small.classifier.fc8.weight.shape == (10, 4096)


def test_fine_tune_freezes_features_and_gives_the_head_its_own_lr(data, trained, tmp_path, capsys):
    other = _other_classes(data, tmp_path)
    out = tmp_path / "ft"
    result = run_train(other, out, "--epochs", "1", "--weights", str(trained), "--freeze", "features",
                       "--head-lr-mult", "10", "--max-steps", "3")
    assert result["global_step"] == 3
    assert "new 4-class last layer (fc8, paper init)" in capsys.readouterr().out
    before = load_checkpoint(trained)
    after = load_checkpoint(out / "checkpoint.pth")
    for key, value in before["model"].items():
        if key.startswith("features."):
            assert torch.equal(after["model"][key], value), f"frozen {key} changed"
        elif key.startswith("classifier.fc6"):
            assert not torch.equal(after["model"][key], value), f"{key} did not train"
    groups = after["optimizer"]["param_groups"]
    assert [g["lr"] for g in groups] == [0.01, 0.1]
    assert [len(g["params"]) for g in groups] == [4, 2]  # fc6, fc7 | fc8; no frozen parameter
    assert after["args"]["freeze"] == "features" and after["classes"] == ["w", "x", "y", "z"]
    # resuming it needs the same fine-tuning settings
    code = main(["train", "--data-path", str(other), "--output-dir", str(out), "-b", "4", *TINY, "--epochs", "1",
                 "--resume", str(out / "checkpoint.pth"), "--head-lr-mult", "10"])
    assert code == 2
    assert "--freeze is None but the checkpoint was trained with --freeze features" in capsys.readouterr().err


def test_weight_mismatches_are_one_line(data, trained, tmp_path, capsys):
    argv = ["train", "--data-path", str(data), "--output-dir", str(tmp_path / "o"), "-b", "4", *TINY]
    argv[argv.index("0.0625")] = "0.125"  # a wider model than the checkpoint
    assert main([*argv, "--weights", str(trained)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--weights {str(trained)!r} holds a checkpoint trained with --preset paper --width-mult 0.0625" in err
    assert "but the model expects --preset paper --width-mult 0.125 --image-size 67" in err
    assert "features.conv1.weight is [6, 3, 11, 11] in the file, [12, 3, 11, 11] in the model" in err

    state = load_checkpoint(trained)["model"]
    state.pop("classifier.fc7.bias")
    state["classifier.fc9.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "edited.pth")
    assert main(["train", "--data-path", str(data), "--output-dir", str(tmp_path / "o"), "-b", "4", *TINY,
                 "--weights", str(tmp_path / "edited.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds a state_dict of 16 tensors" in err and "missing keys classifier.fc7.bias" in err
    assert "unexpected keys classifier.fc9.weight" in err and len(err.splitlines()) == 1

    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pth")  # a pickled module, not a state_dict
    assert main(["train", "--data-path", str(data), "--output-dir", str(tmp_path / "o"), "-b", "4", *TINY,
                 "--weights", str(tmp_path / "pickled.pth")]) == 2
    err = capsys.readouterr().err.strip()
    assert "is refused: it needs more than tensors and plain values" in err and "weights_only=True" in err
    assert len(err.splitlines()) == 1

    for flags, message in ((["--freeze", "conv9"], "unknown layer name(s) ['conv9']"),
                           (["--freeze", "features,classifier"], "freezes every parameter"),
                           (["--weights", str(trained), "--resume", str(trained)], "give one of them"),
                           (["--head-lr-mult", "0"], "--head-lr-mult must be")):
        assert main([*argv[:-len(TINY)], *TINY, *flags]) == 2
        assert message in capsys.readouterr().err


def _missing_triton_modules() -> list[str]:
    return [m for m in ("alexnet_fast.kernels.nn.conv", "alexnet_fast.kernels.nn.pooling") if importlib.util.find_spec(m) is None]


@pytest.mark.slow
@pytest.mark.skipif(bool(_missing_triton_modules()), reason="the Triton kernel modules are not on this branch")
def test_triton_variant_launches_no_wgrad_for_frozen_convs(data, trained, tmp_path):
    """One step of the Triton variant (interpreted) with conv1 and conv2 frozen: the profiler
    sees the wgrad op for conv3, conv4 and conv5 only, and the frozen weights stay bit-identical."""
    from torch.profiler import ProfilerActivity, profile

    other = _other_classes(data, tmp_path)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run_train(other, tmp_path / "tr", "--epochs", "1", "--max-steps", "1", "-b", "2", "--variant", "triton",
                  "--weights", str(trained), "--freeze", "conv1,conv2", "--pca", "imagenet")
    wgrad = [e for e in prof.events() if e.name == "alexnet_fast::conv2d_relu_wgrad"]
    before, after = load_checkpoint(trained)["model"], load_checkpoint(tmp_path / "tr" / "checkpoint.pth")["model"]
    conv_of_shape = {tuple(before[f"features.conv{i}.weight"].shape): f"conv{i}" for i in range(1, 6)}
    assert len(conv_of_shape) == 5  # the five weights have distinct shapes at this width
    # the conv whose weight is an argument of each wgrad launch
    launched = sorted(conv_of_shape[tuple(shape)] for e in wgrad for shape in e.input_shapes
                      if tuple(shape) in conv_of_shape)
    assert launched == ["conv3", "conv4", "conv5"], launched
    for key in ("features.conv1.weight", "features.conv1.bias", "features.conv2.weight", "features.conv2.bias"):
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after["features.conv3.weight"], before["features.conv3.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["data_parallel", "model_parallel"])
def test_fine_tune_in_the_two_rank_layouts(data, trained, tmp_path, layout):
    other = _other_classes(data, tmp_path)
    out = tmp_path / layout
    torchrun_train("--layout", layout, "--data-path", str(other), *TINY, "-b", "2", "--epochs", "1", "--max-steps",
                   "2", "--weights", str(trained), "--freeze", "features", "--head-lr-mult", "5", "--output-dir",
                   str(out))
    before, after = load_checkpoint(trained)["model"], load_checkpoint(out / "checkpoint.pth")
    assert after["global_step"] == 2
    for key, value in before.items():
        if key.startswith("features."):
            assert torch.equal(after["model"][key], value), f"{layout}: frozen {key} changed"
    assert not torch.equal(after["model"]["classifier.fc6.weight"], before["classifier.fc6.weight"])
    assert [g["lr"] for g in after["optimizer"]["param_groups"]] == [0.01, 0.05]


@pytest.mark.parametrize("ten_crop", [False, True])
def test_predict_matches_test_only_accuracy(data, trained, tmp_path, capsys, ten_crop):
    assert main(["train", "--data-path", str(data), "--output-dir", str(tmp_path / "eval"), "--resume", str(trained),
                 "--test-only", *TINY, "-b", "4"]) == 0
    evaluation = json.loads((tmp_path / "eval" / "eval.json").read_text())["ten_crop" if ten_crop else "centre_crop"]
    csv_path = tmp_path / "pred.csv"
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(trained), str(data / "val"), "--output", str(csv_path),
                 *(["--ten-crop"] if ten_crop else [])]) == 0
    printed = capsys.readouterr().out.splitlines()
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == evaluation["images"] == 12 and len(printed) == 13  # + "wrote ..."
    assert list(rows[0]) == ["path"] + [f"{k}_{i}" for i in range(1, 5) for k in ("class", "prob")]  # 4 classes
    for row in rows:
        probs = [float(row[f"prob_{i}"]) for i in range(1, 5)]
        assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
    correct = sum(Path(r["path"]).parent.name == r["class_1"] for r in rows)
    print(f"predict top-1 {100 * correct / len(rows):.1f}%, --test-only {evaluation['acc1']:.1f}%, "
          f"{len({r['class_1'] for r in rows})} distinct top-1 classes")
    assert 100 * correct / len(rows) == pytest.approx(evaluation["acc1"])
    assert printed[0].startswith(rows[0]["path"] + ": " + rows[0]["class_1"] + " ")


def test_predict_errors_are_one_line(trained, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(trained), str(tmp_path / "missing.jpg")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {str(tmp_path / 'missing.jpg')!r} does not exist"
    assert main(["predict", "--checkpoint", str(tmp_path / "none.pth"), str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _steps_to(history: list[dict], accuracy: float) -> float:
    """The first evaluated step whose validation top-1 reaches ``accuracy`` (inf: never)."""
    return next((row["global_step"] for row in history if row["val_acc1"] >= accuracy), float("inf"))


def test_fine_tuning_other_classes_beats_training_from_scratch(tmp_path, capsys):
    """The embedded dataset's first 5 classes train a model (100 steps); its features, frozen,
    with a new 5-class head, reach twice chance on the other 5 classes in fewer steps than
    the same run from scratch. Width 1/8, input 67 at resize 67 (the random crop is the
    whole image), He init, no dropout, constant lr: the settings where the tiny model learns
    within a test's budget (measured on 2 CPU cores: pretraining 66%; fine-tuned 53% after 10
    steps, from scratch 17%, 25%, 28% and 43% after 10, 20, 30 and 40 steps; chance 20%)."""
    full = make_synthetic_dataset(tmp_path / "synthetic", num_classes=10, train_per_class=40, val_per_class=20,
                                  image_size=77)
    classes = sorted(p.name for p in (full / "train").iterdir())
    roots = {}
    for name, part in (("first5", classes[:5]), ("other5", classes[5:])):
        for split in ("train", "val"):
            for c in part:
                shutil.copytree(full / split / c, tmp_path / name / split / c, copy_function=os.link)
        roots[name] = tmp_path / name
    common = ["--width-mult", "0.125", "--image-size", "67", "--resize-size", "67", "-j", "0", "--threads", "1",
              "--deterministic", "--no-progress", "-b", "20", "--lr", "0.01", "--init", "kaiming", "--dropout", "0",
              "--pca", "imagenet", "--lr-scheduler", "step", "--lr-step-size", "1000"]

    def run(data_path, out, epochs, *extra):
        started = time.perf_counter()
        result = train_module.train(parse(["--data-path", str(data_path), "--output-dir", str(tmp_path / out),
                                           "--epochs", str(epochs), *common, *extra]))
        return result["history"], time.perf_counter() - started

    pre, pre_s = run(roots["first5"], "first5", 10)
    tuned, tuned_s = run(roots["other5"], "tuned", 4, "--weights", str(tmp_path / "first5" / "checkpoint.pth"),
                         "--freeze", "features")
    scratch, scratch_s = run(roots["other5"], "scratch", 4)
    target = 2 * 100 / 5  # twice chance
    tuned_steps, scratch_steps = _steps_to(tuned, target), _steps_to(scratch, target)
    with capsys.disabled():
        print(f"\npretraining on the first 5 classes: val top-1 {pre[-1]['val_acc1']:.0f}% after "
              f"{pre[-1]['global_step']} steps ({pre_s:.0f} s)")
        for label, history, seconds in (("fine-tuned (frozen features)", tuned, tuned_s),
                                        ("from scratch", scratch, scratch_s)):
            print(f"{label}: val top-1 by step " + ", ".join(f"{r['global_step']}: {r['val_acc1']:.0f}%"
                                                             for r in history) + f" ({seconds:.0f} s)")
        print(f"steps to {target:.0f}% (twice chance): fine-tuned {tuned_steps}, from scratch {scratch_steps}")
    assert tuned_steps <= 20, "the fine-tuned head should reach twice chance within 2 evaluations"
    assert tuned_steps + 10 <= scratch_steps, "fine-tuning should need at least one evaluation fewer"


@pytest.mark.slow
@pytest.mark.skipif(bool(_missing_triton_modules()), reason="the Triton kernel modules are not on this branch")
def test_predict_with_the_triton_variant_matches_eager(data, trained):
    from alexnet_fast.predict import predict

    checkpoint = load_checkpoint(trained)
    paths = sorted((data / "val").rglob("*.jpg"))[:2]

    def probs(results):  # every class's probability, by class name (ties may order differently)
        return torch.tensor([[dict(zip(r["classes"], r["probs"]))[c] for c in checkpoint["classes"]]
                             for r in results])

    eager = predict(checkpoint, paths, top_k=4)
    triton = predict(checkpoint, paths, top_k=4, variant="triton")
    assert [r["path"] for r in triton] == [str(p) for p in paths]
    torch.testing.assert_close(probs(triton), probs(eager), rtol=1e-4, atol=1e-5)
