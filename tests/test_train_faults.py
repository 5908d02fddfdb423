"""Training never loses or corrupts work: runs killed with SIGKILL during a step
and during a checkpoint save, in a loop, then resumed; SIGTERM and SIGINT save and stop;
stale temporary files are cleaned up; the loss of work is bounded by
--checkpoint-every-steps. Also non-finite validation loss, -j 1 bad images, PCA sampling
with --skip-bad-images, resume with other settings and a bad --output-dir.

The subprocess runs go through a small driver that prints "step" after every optimizer
step (so the test knows how much work was done when it killed the run) and, when asked,
holds each checkpoint's temporary file on disk for a while before it is moved into place
(a slow disk), so that a kill lands inside a save every time rather than by luck."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from alexnet_fast import train as train_module
from alexnet_fast import train_settings
from alexnet_fast.checkpoint import load_checkpoint
from alexnet_fast.cli import main
from alexnet_fast.synthetic import make_synthetic_dataset
from alexnet_fast.io import clean_stale_temp_files
from test_train import TINY, parse, run_train

ROOT = Path(__file__).resolve().parents[1]
EVERY = 2  # --checkpoint-every-steps of the fault runs: at most this many steps lost

DRIVER = r"""
import os, sys, time, torch
step = torch.optim.SGD.step
def counted_step(self, *args, **kwargs):
    out = step(self, *args, **kwargs)
    print("step", flush=True)
    return out
torch.optim.SGD.step = counted_step
hold = float(os.environ.get("FAULT_HOLD_SAVE_S", "0"))
if hold:  # a slow disk: the checkpoint's temporary file stays before it replaces the old one
    save = torch.save
    def slow_save(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        print("saving", flush=True)
        time.sleep(hold)
    torch.save = slow_save
from alexnet_fast.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """4 classes x (6 train, 3 val) images: 6 steps of batch 4 per epoch."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("data"), num_classes=4, train_per_class=6,
                                  val_per_class=3, image_size=77)


def _argv(data, out, *extra):
    return ["train", "--data-path", str(data), "--output-dir", str(out), "-b", "4", *TINY, *extra]


def _start(argv, hold_save_s: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FAULT_HOLD_SAVE_S": str(hold_save_s)}
    return subprocess.Popen([sys.executable, "-c", DRIVER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT)


def _read_until(proc: subprocess.Popen, word: str, count: int = 1) -> int:
    """Read stdout until ``word`` has been printed ``count`` times; the steps seen."""
    steps = seen = 0
    while seen < count:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"the run ended before printing {word!r} {count} times: {proc.stderr.read()[-2000:]}")
        steps += line.strip() == "step"
        seen += line.strip() == word
    return steps


def _temp_files(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if ".tmp" in p.name]


def _step_of(out: Path) -> int:
    path = out / "checkpoint.pth"
    return load_checkpoint(path)["global_step"] if path.exists() else 0  # loads: not corrupt


def test_killed_runs_resume_without_corruption_or_leaks(data, tmp_path):
    """SIGTERM (saves), SIGKILL inside a save, SIGKILL at a random point of a step, then a
    resume to the end: each checkpoint loads, each kill loses at most EVERY steps, the
    temporary file a killed save left is removed at start-up, and the final weights equal
    those of a run never interrupted."""
    epochs, total = 3, 18
    out = tmp_path / "run"
    rng = random.Random(0)
    common = ["--epochs", str(epochs), "--checkpoint-every-steps", str(EVERY)]
    rounds = [("sigterm", 0.0), ("kill-in-save", 0.5), ("kill-in-step", 0.0)]
    left_temp = False
    for kind, hold in rounds:
        before = _step_of(out)
        resume = ["--resume", str(out / "checkpoint.pth")] if (out / "checkpoint.pth").exists() else []
        t0 = time.perf_counter()
        proc = _start(_argv(data, out, *common, *resume), hold_save_s=hold)
        try:
            if kind == "sigterm":
                steps = _read_until(proc, "step", 3)
                proc.send_signal(signal.SIGTERM)
            elif kind == "kill-in-save":
                steps = _read_until(proc, "saving", 1)  # the temporary file is written, not yet moved
                proc.kill()
            else:
                steps = _read_until(proc, "step", 1)
                time.sleep(rng.uniform(0.0, 0.3))  # somewhere in a later step (or its save)
                proc.kill()
            rest, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        steps += rest.split().count("step")
        if left_temp:  # the previous round's killed save: removed at start-up
            assert "a temporary file a killed run left behind" in err, err
        left_temp = bool(_temp_files(out))
        after = _step_of(out)
        done = before + steps
        print(f"{kind}: steps done {done}, checkpoint at step {after} (lost {done - after}), "
              f"{time.perf_counter() - t0:.1f} s")
        assert done - after <= EVERY, f"{kind}: {done - after} steps lost, more than --checkpoint-every-steps"
        if kind == "sigterm":
            assert proc.returncode == 128 + signal.SIGTERM, err
            assert after == done, "SIGTERM must save the step in progress"
            assert "SIGTERM received: checkpoint saved to" in err and "--resume" in err
            assert not _temp_files(out)
        else:
            assert proc.returncode == -signal.SIGKILL
        if kind == "kill-in-save":
            assert _temp_files(out), "the kill inside a save should have left its temporary file"

    final = subprocess.run([sys.executable, "-m", "alexnet_fast", *_argv(data, out, *common, "--resume",
                                                                          str(out / "checkpoint.pth"))],
                           capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                           timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    assert not left_temp or "a temporary file a killed run left behind" in final.stderr
    assert not _temp_files(out), "temporary files left behind"
    assert _step_of(out) == total and json.loads((out / "final.json").read_text())["global_step"] == total

    straight = run_train(data, tmp_path / "straight", "--epochs", str(epochs))
    assert straight["global_step"] == total
    a = load_checkpoint(tmp_path / "straight" / "checkpoint.pth")["model"]
    b = load_checkpoint(out / "checkpoint.pth")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs from the uninterrupted run"


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".checkpoint.pth.{dead}.0123456789ab.tmp.pth"
    live = tmp_path / f".metrics.json.{os.getppid()}.0123456789ab.tmp.json"  # a running writer's
    other = tmp_path / "notes.tmp"
    for p in (stale, live, other):
        p.write_text("x")
    assert clean_stale_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name])
    assert clean_stale_temp_files(tmp_path / "missing") == []


def test_sigint_saves_the_step_in_progress_and_stops(data, tmp_path, monkeypatch, capsys):
    """In-process: SIGINT during step 3 of a run that saves every 100 steps; afterwards the
    handler is the one the test started with (whatever an earlier test left)."""
    handler_before = signal.getsignal(signal.SIGINT)
    step = torch.optim.SGD.step
    calls = []

    def step_and_interrupt(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", step_and_interrupt)
    out = tmp_path / "run"
    code = main(_argv(data, out, "--epochs", "2", "--checkpoint-every-steps", "100"))
    assert code == 128 + signal.SIGINT
    err = capsys.readouterr().err
    assert "SIGINT received: checkpoint saved to" in err and f"--resume {out / 'checkpoint.pth'}" in err
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]) == (0, 3, 3)
    assert signal.getsignal(signal.SIGINT) is handler_before  # handler restored


def test_checkpoint_every_n_steps_and_by_time(data, tmp_path, monkeypatch):
    saved = []
    save = train_module.save_checkpoint

    def recording_save(path, **kwargs):
        saved.append(kwargs["state"].global_step)
        return save(path, **kwargs)

    monkeypatch.setattr(train_module, "save_checkpoint", recording_save)
    run_train(data, tmp_path / "a", "--epochs", "1", "--checkpoint-every-steps", "4")
    assert saved == [4, 6]  # step 4, then the epoch's end
    saved.clear()
    run_train(data, tmp_path / "b", "--epochs", "1", "--checkpoint-interval", "1e-9")
    assert saved == [1, 2, 3, 4, 5, 6]  # every step is past the interval; step 6 ends the epoch
    settings = train_settings.resolve_settings(parse([]))
    assert settings.checkpoint_interval == train_settings.DEFAULT_CHECKPOINT_INTERVAL_S > 0
    for flag, value in (("--checkpoint-every-steps", "0"), ("--checkpoint-interval", "-1"),
                        ("--checkpoint-interval", "nan")):
        with pytest.raises(ValueError, match=flag):
            train_settings.resolve_settings(parse([flag, value]))


def test_non_finite_validation_loss_keeps_the_last_good_checkpoint(data, tmp_path, capsys):
    """One step per epoch (batch 24 = the whole training set) at lr 1e6: the training losses
    stay finite, the weights blow up, and the third epoch's validation loss is NaN. No
    checkpoint of that state is written and metrics.json stays valid JSON."""
    out = tmp_path / "run"
    code = main(["train", "--data-path", str(data), "--output-dir", str(out), "-b", "24", *TINY, "--epochs", "4",
                 "--lr", "1e6"])
    assert code == 1
    err = capsys.readouterr().err
    assert "non-finite validation loss (nan) after epoch 2, step 3" in err
    assert f"the last checkpoint, {out / 'checkpoint.pth'} (step 2), is the last good state" in err
    ckpt = load_checkpoint(out / "checkpoint.pth")
    assert ckpt["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())

    def no_constants(name):
        raise AssertionError(f"metrics.json holds {name}, which is not JSON")

    rows = json.loads((out / "metrics.json").read_text(), parse_constant=no_constants)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[2]["val_loss"] is None
    assert all(r["val_loss"] is not None for r in rows[:2])


def test_non_finite_parameters_are_never_saved(data, tmp_path, monkeypatch, capsys):
    """A weight becomes inf in step 2, whose checkpoint is due; the save refuses it."""
    step = torch.optim.SGD.step
    calls = []

    def step_then_poison(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            with torch.no_grad():
                self.param_groups[0]["params"][0][0, 0, 0, 0] = float("inf")
        return out

    monkeypatch.setattr(torch.optim.SGD, "step", step_then_poison)
    code = main(_argv(data, tmp_path, "--epochs", "1", "--checkpoint-every-steps", "2"))
    assert code == 1
    err = capsys.readouterr().err
    assert "non-finite parameters (features.conv1.weight) at epoch 0, step 2" in err
    assert "no checkpoint of this run was saved" in err and not (tmp_path / "checkpoint.pth").exists()


def _corrupt_copy(data, tmp_path) -> tuple[Path, Path]:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    bad = sorted((copy / "train").rglob("*.jpg"))[5]
    bad.write_bytes(bad.read_bytes()[:200])  # truncated JPEG
    return copy, bad


def test_bad_image_in_a_worker_is_one_line_and_pca_skips_it(data, tmp_path, capsys):
    copy, bad = _corrupt_copy(data, tmp_path)
    code = main(["train", "--data-path", str(copy), "--output-dir", str(tmp_path / "a"), "-b", "4", *TINY,
                 "--epochs", "1", "--pca", "imagenet", "-j", "1"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read image") and bad.name in err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    # --pca train samples every image here (24 < 500): the bad one is skipped, not fatal
    result = run_train(copy, tmp_path / "b", "--epochs", "1", "--skip-bad-images", "--pca", "train")
    assert result["history"][0]["skipped_images"] == 1 and result["global_step"] == 6
    assert main(["train", "--data-path", str(copy), "--output-dir", str(tmp_path / "c"), "-b", "4", *TINY,
                 "--epochs", "1"]) == 2  # without the flag the PCA sampling names the file
    assert bad.name in capsys.readouterr().err


@pytest.mark.parametrize("flags,message", [
    (["--width-mult", "0.125"], "--width-mult is 0.125 but the checkpoint was trained with --width-mult 0.0625"),
    (["--preset", "torchvision"], "--preset is torchvision but the checkpoint was trained with --preset paper"),
])
def test_resume_with_other_model_settings_names_them(data, tmp_path, capsys, flags, message):
    run_train(data, tmp_path, "--epochs", "1", "--max-steps", "1")
    code = main([*_argv(data, tmp_path, "--resume", str(tmp_path / "checkpoint.pth")), *flags])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_output_dir_that_is_a_file_or_cannot_be_created(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    missing_data = str(tmp_path / "no-data")  # the output dir is checked before any work
    assert main(["train", "--data-path", missing_data, "--output-dir", str(afile), *TINY]) == 2
    assert capsys.readouterr().err.strip() == f"error: --output-dir {afile} is a file, not a directory"
    assert main(["train", "--data-path", missing_data, "--output-dir", str(afile / "sub"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --output-dir {afile / 'sub'} cannot be created")
    assert len(err.splitlines()) == 1
