"""`alexnet-fast train`: train AlexNet the paper's way, with any variant and layout.

Flags, defaults and their checks: :mod:`alexnet_fast.train_settings`; one epoch and
evaluation: :mod:`alexnet_fast.train_loop`; checkpoints and ``--resume``:
:mod:`alexnet_fast.checkpoint`. This module builds the run (data, model, optimizer) and
drives it epoch by epoch (:class:`Trainer`), saving a checkpoint at every epoch end, every
``--checkpoint-every-steps`` steps or ``--checkpoint-interval`` seconds, at ``--max-steps``
and on SIGINT/SIGTERM; nothing non-finite is ever saved.

Layouts (the two-rank ones under torchrun: ``torchrun --nproc_per_node 2 -m alexnet_fast
train --layout data_parallel``): ``single``; ``data_parallel`` (DDP, each rank its own shard,
``--batch-size`` per rank as in torchvision); ``model_parallel`` (the paper's two columns,
every rank the same batches). Checkpoints hold the single model's state whatever the layout,
so a run resumes in any other (mid-epoch: with the same number of images per step).

Output directory: ``checkpoint.pth``, ``metrics.csv`` / ``metrics.json`` / ``metrics.png`` (one
row per epoch), ``config.json`` (resolved settings), ``final.json`` (centre-crop and 10-crop
evaluation after the last epoch; ``eval.json`` for ``--test-only``).
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from alexnet_fast.checkpoint import check_resume, load_checkpoint, restore_training, save_checkpoint
from alexnet_fast.data import (IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC, BadImageError, DataError,
                               collate_skipping_bad, compute_pca_eigens, eval_transform,
                               open_image_folders, ten_crop_transform, train_transform)
from alexnet_fast.finetune import WeightsFile, fit_weights, freeze, load_weights_file, param_groups, parse_freeze
from alexnet_fast.io import atomic_path, atomic_write_json, atomic_write_text, clean_stale_temp_files, writable_dir
from alexnet_fast.layouts import (DistContext, full_optimizer_state_dict, full_state_dict, init_ranks, layout_model,
                                  local_context, shutdown)
from alexnet_fast.model import alexnet
from alexnet_fast.precision import POLICY as PRECISIONS
from alexnet_fast.synthetic import make_synthetic_dataset
from alexnet_fast.train_loop import (DataShards, NonFiniteLossError, TrainingInterrupted, TrainState, any_rank,
                                     evaluate, ignore_interrupts, stop_on_signals, train_one_epoch)
from alexnet_fast.train_settings import (add_arguments, process_settings, resolve_settings, run_precision,
                                         seed_everything)

__all__ = ["add_arguments", "run", "train", "Trainer", "build_model", "initial_weights", "prepare_data",
           "check_variant_device", "NonFiniteLossError", "TrainingInterrupted"]

# the embedded synthetic dataset: images per class (rendered once under --synthetic-dir)
SYNTHETIC_TRAIN_PER_CLASS, SYNTHETIC_VAL_PER_CLASS = 300, 60


def join_ranks(s: argparse.Namespace) -> DistContext:
    """This process's place in the run: one rank for ``single``, else join the process group
    torchrun set up (NCCL and cuda:LOCAL_RANK when every rank gets a GPU, gloo on CPU)."""
    if s.layout == "single":
        return local_context(s.device)
    try:
        return init_ranks(timeout_s=s.dist_timeout, device=s.device, threads=s.threads)
    except ValueError as e:  # not started by torchrun, too few GPUs
        raise ValueError(f"--layout {s.layout}: {e}") from e


def check_variant_device(variant: str, device: torch.device) -> None:
    """ValueError when a Triton variant would run on a CPU without Triton's interpreter."""
    if variant.startswith("triton") and device.type != "cuda":
        from alexnet_fast.kernels._common import is_interpreting

        if not is_interpreting():
            raise ValueError(f"--variant {variant} on {device} needs Triton's interpreter: set "
                             "TRITON_INTERPRET=1 before starting (slow), or run on a CUDA device")


def _model_desc(s: argparse.Namespace) -> str:
    return f"--preset {s.preset} --width-mult {s.width_mult} --image-size {s.image_size}"


def single_model(s: argparse.Namespace, num_classes: int) -> nn.Module:
    """The single AlexNet of the settings, initialised from ``s.seed``."""
    torch.manual_seed(s.seed)
    return alexnet(s.preset, num_classes=num_classes, width_mult=s.width_mult, input_size=s.image_size,
                   dropout=s.dropout, init=s.init)


def build_model(s: argparse.Namespace, num_classes: int, ctx: DistContext,
                state_dict: dict | None = None, strict: bool = True) -> nn.Module:
    """This rank's part of ``s.layout`` of the AlexNet of the settings, built as ``s.variant``
    on ``ctx.device`` (:func:`alexnet_fast.layouts.layout_model`). The single model is
    built from ``s.seed`` (the same weights on every rank), and ``state_dict`` (the single
    model's, from a checkpoint of any layout, or fitted ``--weights`` with ``strict=False``:
    the layers it leaves out keep their initialisation) is loaded into it before the layout
    splits or replicates it. The ``--freeze`` layers are frozen before and after the layout
    (the model_parallel columns are new parameters)."""
    check_variant_device(s.variant, ctx.device)
    model = single_model(s, num_classes)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=strict)
    names = parse_freeze(s.freeze)
    freeze(model, names)  # before DDP wraps it (DDP reduces only what requires grad)
    try:
        built = layout_model(model, s.layout, s.variant, ctx, compile_mode=s.compile_mode)
        freeze(getattr(built, "module", built), names)
        return built
    except ImportError as e:
        raise ValueError(f"--variant {s.variant} needs the Triton kernels (kernels.nn), which do "
                         f"not import here: {e}") from e


def initial_weights(s: argparse.Namespace, weights: WeightsFile | None, classes: list[str], flag: str) -> tuple[dict, bool]:
    """``(state_dict, head_replaced)``: ``weights`` (or the ``--weights`` file) checked
    against the model of the settings (built on the meta device: no memory, no compute)."""
    with torch.device("meta"):
        reference = alexnet(s.preset, num_classes=len(classes), width_mult=s.width_mult, input_size=s.image_size,
                            dropout=s.dropout, init=s.init)
    if weights is None:
        weights = load_weights_file(s.weights, reference)
    weights.flag = flag
    return fit_weights(weights, reference, classes, _model_desc(s))


def _pca_pairs(s, train_set, checkpoint):
    if checkpoint is not None:  # the eigen-pairs the run started with
        return None if checkpoint["pca"] is None else tuple(checkpoint["pca"])
    if s.pca == "none":
        return None
    if s.pca == "imagenet":
        return torch.tensor(IMAGENET_PCA_EIGVAL), torch.tensor(IMAGENET_PCA_EIGVEC)
    return compute_pca_eigens([p for p, _ in train_set.samples], seed=s.seed, skip_bad_images=s.skip_bad_images)


def prepare_data(s: argparse.Namespace, ctx: DistContext, checkpoint: dict | None):
    """``(data_root, train_set, val_set, pca)``: the datasets with their transforms, the
    synthetic set rendered first when there is no --data-path (by rank 0; the others wait),
    and the PCA eigen-pairs (``None`` when off; a resumed run keeps its checkpoint's)."""
    if s.data_path:
        data_root = Path(s.data_path)
    else:
        def render() -> Path:  # stored at the resize size, so the short-side resize is a no-op
            return make_synthetic_dataset(s.synthetic_dir, train_per_class=SYNTHETIC_TRAIN_PER_CLASS,
                                          val_per_class=SYNTHETIC_VAL_PER_CLASS, image_size=s.resize_size)
        if ctx.is_main:
            render()
        if ctx.group is not None:
            dist.barrier(ctx.group)
        data_root = render()  # cached by now
    train_set, val_set = open_image_folders(data_root, train_tf=None,
                                            val_tf=eval_transform(s.image_size, s.resize_size),
                                            seed=s.seed, skip_bad_images=s.skip_bad_images)
    pca = _pca_pairs(s, train_set, checkpoint)
    train_set.transform = train_transform(s.image_size, s.resize_size, eigval=None if pca is None else pca[0],
                                          eigvec=None if pca is None else pca[1])
    if checkpoint is not None and checkpoint["classes"] != train_set.classes:
        raise ValueError(f"the checkpoint was trained on {len(checkpoint['classes'])} other classes "
                         f"than the {len(train_set.classes)} under {str(data_root)!r}")
    return data_root, train_set, val_set, pca


def write_metrics(history: list[dict], output_dir: Path, chance: float) -> None:
    """metrics.csv, metrics.json and metrics.png (loss and accuracy per epoch), atomically."""
    atomic_write_json(output_dir / "metrics.json", history)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(output_dir / "metrics.csv", buf.getvalue())
    plot_metrics(history, output_dir / "metrics.png", chance)


def plot_metrics(history: list[dict], path: Path, chance: float) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    ax_loss.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], "o-", label="val (centre crop)")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(epochs, [r["train_acc1"] for r in history], "o-", label="train top-1")
    ax_acc.plot(epochs, [r["val_acc1"] for r in history], "o-", label="val top-1")
    ax_acc.plot(epochs, [r["val_acc5"] for r in history], "o-", label="val top-5")
    ax_acc.axhline(100 * chance, color="gray", linestyle="--", label="chance top-1")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


class Trainer:
    """One run on this rank: :meth:`setup` builds it (resume checks, data, model, optimizer,
    the checkpoint's state), :meth:`fit` trains epoch by epoch, :meth:`final_evaluation`
    evaluates. ``precision`` names one of :data:`alexnet_fast.precision.POLICY` (the forward
    runs in its context; :func:`~alexnet_fast.train_settings.process_settings` holds its TF32
    flags for the whole run)."""

    def __init__(self, s: argparse.Namespace, ctx: DistContext, precision: str):
        self.s, self.ctx, self.precision, self.device = s, ctx, precision, ctx.device
        self.shards = DataShards(s.layout, ctx)
        self.images_per_step = s.batch_size * self.shards.count
        self.output_dir = Path(s.output_dir)
        self.checkpoint_path = self.output_dir / "checkpoint.pth"
        self.step_losses: list[float] = []
        self.signals = None  # the SignalFlag while fit() runs

    # ------------------------------------------------------------------ building the run
    def setup(self) -> None:
        s, ctx = self.s, self.ctx
        if ctx.is_main:
            for path in clean_stale_temp_files(self.output_dir):
                print(f"removed {path}, a temporary file a killed run left behind", file=sys.stderr)
        checkpoint = load_checkpoint(s.resume) if s.resume else None
        if checkpoint is not None:
            check_resume(s, checkpoint, self.images_per_step)
        seed_everything(s.seed)
        self.data_root, self.train_set, self.val_set, self.pca = prepare_data(s, ctx, checkpoint)
        self.classes = self.train_set.classes
        self.chance = 1.0 / len(self.classes)
        if checkpoint is not None:  # anything else that does not fit: one line, not a size-mismatch traceback
            weights = WeightsFile(Path(s.resume), checkpoint["model"], self.classes, checkpoint["args"])
            initial, strict = initial_weights(s, weights, self.classes, "--resume")[0], True
        elif s.weights:
            initial, replaced = initial_weights(s, None, self.classes, "--weights")
            strict = False
            if ctx.is_main:
                print(f"loaded --weights {s.weights}" + (f"; new {len(self.classes)}-class last layer (fc8, "
                                                         f"{s.init} init)" if replaced else ""))
        else:
            initial, strict = None, True
        self.model = build_model(s, len(self.classes), ctx, initial, strict)
        if ctx.world_size > 1:  # dropout masks differ per rank (per shard, or per column)
            seed_everything(s.seed + ctx.rank)
        self.optimizer = torch.optim.SGD(param_groups(self.model, s.lr, s.head_lr_mult), lr=s.lr,
                                         momentum=s.momentum, weight_decay=s.weight_decay)
        if s.lr_scheduler == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, mode="max", factor=s.lr_gamma,
                                                                        patience=s.lr_patience)
        else:
            self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=s.lr_step_size,
                                                             gamma=s.lr_gamma)
        self.scaler = PRECISIONS[self.precision].grad_scaler(self.device)  # the one loss-scale rule
        self.sampler = self.shards.sampler(self.train_set, seed=s.seed)
        # the DataLoader draws its workers' base seed from this, not from torch's global RNG
        self.loader_generator = torch.Generator().manual_seed(s.seed)
        self.state, self.history = TrainState(epoch=s.start_epoch), []
        if checkpoint is not None:
            self.state, self.history = restore_training(
                checkpoint, s=s, ctx=ctx, shards=self.shards, model=self.model, optimizer=self.optimizer,
                scheduler=self.scheduler, scaler=self.scaler, loader_generator=self.loader_generator)
        # the last checkpoint known good: the one resumed from, then each one this run saves
        self.last_good = (s.resume or None, checkpoint["global_step"] if checkpoint else None)
        self.run_info = {
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(), "layout": s.layout, "world_size": ctx.world_size, "backend": ctx.backend, "images_per_step": self.images_per_step,
            "precision": self.precision, "torch": torch.__version__, "data_root": str(self.data_root),
            "classes": len(self.classes), "train_images": len(self.train_set), "val_images": len(self.val_set)}
        if ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.output_dir / "config.json", {
                "settings": vars(s), "run": self.run_info,
                "pca": None if self.pca is None else {"eigval": self.pca[0].tolist(), "eigvec": self.pca[1].tolist()}})

    def _loader(self, dataset, batch_size: int, sampler, **kwargs) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.s.workers,
                                           collate_fn=collate_skipping_bad, pin_memory=self.device.type == "cuda",
                                           worker_init_fn=ignore_interrupts, **kwargs)

    def _val_loader(self, dataset, batch_size: int) -> torch.utils.data.DataLoader:
        # data_parallel: each rank takes a share (padded to equal shares, as DistributedSampler does)
        return self._loader(dataset, batch_size, self.shards.sampler(dataset, shuffle=False))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, dataset, batch_size: int, ten_crop: bool = False) -> dict:
        return evaluate(self.model, self._val_loader(dataset, batch_size), device=self.device,
                        precision=self.precision, shards=self.shards, ten_crop=ten_crop)

    def final_evaluation(self) -> dict:
        """Centre-crop and the paper's 10-crop evaluation of the validation set."""
        tencrop_set = copy.copy(self.val_set)
        tencrop_set.transform = ten_crop_transform(self.s.image_size, self.s.resize_size)
        return {"centre_crop": self.evaluate(self.val_set, self.s.batch_size),
                "ten_crop": self.evaluate(tencrop_set, max(1, self.s.batch_size // 10), ten_crop=True),
                "chance_acc1": 100 * self.chance, "classes": len(self.classes), "global_step": self.state.global_step}

    # ------------------------------------------------------------------ checkpoints and signals
    def kept(self) -> str:
        """What is left after a stop without saving: the last good checkpoint, if any."""
        path, step = self.last_good
        if path is None:
            return "stopped without saving (no checkpoint of this run was saved yet)"
        return f"stopped without saving: the last checkpoint, {path} (step {step}), is the last good state"

    def save(self) -> None:
        """A checkpoint of the state now, on every rank (model_parallel gathers the columns);
        NonFiniteLossError instead when a parameter is not finite."""
        s, state = self.s, self.state
        model_state = full_state_dict(s.layout, self.model, self.ctx)
        bad = [k for k, v in model_state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:  # the same merged state on every rank: all stop together
            raise NonFiniteLossError(f"non-finite parameters ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}) "
                                     f"at epoch {state.epoch}, step {state.global_step} "
                                     f"(lr {self.optimizer.param_groups[0]['lr']:g})")
        optimizer_state = full_optimizer_state_dict(s.layout, self.model, self.optimizer, self.ctx)
        epoch_sums = None if state.epoch_sums is None else \
            dict(zip(state.epoch_sums, self.shards.sum(list(state.epoch_sums.values()))))
        if self.ctx.is_main:
            save_checkpoint(self.checkpoint_path, model_state=model_state, optimizer_state=optimizer_state,
                            scheduler=self.scheduler, scaler=self.scaler, state=state, epoch_sums=epoch_sums,
                            images_per_step=self.images_per_step, sampler=self.sampler,
                            loader_generator=self.loader_generator, history=self.history, pca=self.pca,
                            classes=self.classes, settings=s)
        self.last_good = (str(self.checkpoint_path), state.global_step)
        self.last_saved = time.perf_counter()

    def stop_if_signalled(self) -> None:
        if any_rank(self.ctx, self.signals.raised):
            signum = self.signals.signum or signal.SIGTERM  # another rank got it
            raise TrainingInterrupted(f"{signal.Signals(signum).name} received: checkpoint saved to "
                                      f"{self.checkpoint_path} at epoch {self.state.epoch}, step "
                                      f"{self.state.global_step}; continue with --resume {self.checkpoint_path}",
                                      signum)

    def after_step(self) -> None:
        """A mid-epoch checkpoint every --checkpoint-every-steps steps or --checkpoint-interval
        seconds (rank 0's clock decides), and on SIGINT/SIGTERM a checkpoint, then stop."""
        s = self.s
        due = bool(s.checkpoint_every_steps) and self.state.global_step % s.checkpoint_every_steps == 0
        due = due or (self.ctx.is_main and s.checkpoint_interval > 0
                      and time.perf_counter() - self.last_saved >= s.checkpoint_interval)
        due, signalled = any_rank(self.ctx, due, self.signals.raised)
        if due or signalled:
            self.save()
        if signalled:
            self.stop_if_signalled()

    # ------------------------------------------------------------------ training
    def fit(self) -> bool:
        """Train until ``--epochs`` or ``--max-steps``; True when --max-steps stopped it in
        mid-epoch. NonFiniteLossError names the last good checkpoint."""
        self.last_saved = time.perf_counter()  # the --checkpoint-interval clock
        try:
            with stop_on_signals() as self.signals:
                while self.state.epoch < self.s.epochs and not self._max_steps_done():
                    if not self._epoch():
                        return True
        except NonFiniteLossError as e:
            raise NonFiniteLossError(f"{e}; {self.kept()}") from None
        return False

    def _max_steps_done(self) -> bool:
        return self.s.max_steps is not None and self.state.global_step >= self.s.max_steps

    def _epoch(self) -> bool:
        """One epoch, its evaluation, the lr schedule, a checkpoint and the metrics; False
        when --max-steps stopped it in mid-epoch (after saving)."""
        s, state = self.s, self.state
        if state.epoch_sums is None:
            state.epoch_sums = state.new_epoch_sums()
        self.train_set.set_epoch(state.epoch)
        self.sampler.set_epoch(state.epoch)
        self.sampler.set_start(min(state.step_in_epoch * s.batch_size, self.sampler.num_samples))
        loader = self._loader(self.train_set, s.batch_size, self.sampler, generator=self.loader_generator)
        finished = train_one_epoch(self.model, loader, self.optimizer, self.scaler, state, device=self.device,
                                   precision=self.precision, shards=self.shards, max_steps=s.max_steps,
                                   print_freq=s.print_freq, progress=not s.no_progress,
                                   step_losses=self.step_losses, after_step=self.after_step)
        if not finished:  # --max-steps in mid-epoch: save where we are and stop
            self.save()
            return False
        val = self.evaluate(self.val_set, s.batch_size)
        row = self._epoch_row(val)
        self.history.append(row)
        if not math.isfinite(val["loss"]):  # the metrics show the bad epoch (null); no checkpoint
            if self.ctx.is_main:
                write_metrics(self.history, self.output_dir, self.chance)
            raise NonFiniteLossError(f"non-finite validation loss ({val['loss']}) after epoch {state.epoch}, "
                                     f"step {state.global_step} (lr {row['lr']:g})")
        if s.lr_scheduler == "plateau":
            self.scheduler.step(val["acc1"])
        else:
            self.scheduler.step()
        state.epoch, state.step_in_epoch, state.epoch_sums = state.epoch + 1, 0, None
        self.save()
        if self.ctx.is_main:
            write_metrics(self.history, self.output_dir, self.chance)
            print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} top-1 {row['train_acc1']:.1f}% | "
                  f"val loss {row['val_loss']:.4f} top-1 {row['val_acc1']:.1f}% top-5 {row['val_acc5']:.1f}% "
                  f"(chance {100 * self.chance:.1f}%) | lr {row['lr']:.2e} | {row['train_images_per_s']:.0f} img/s"
                  + (f" | skipped {row['skipped_images']} bad images" if row["skipped_images"] else ""))
        self.stop_if_signalled()  # a signal during evaluation: the epoch's checkpoint is saved
        return True

    def _epoch_row(self, val: dict) -> dict:
        state, shards = self.state, self.shards
        sums = dict(zip(state.epoch_sums, shards.sum(list(state.epoch_sums.values()))))
        return {
            "epoch": state.epoch, "global_step": state.global_step, "lr": self.optimizer.param_groups[0]["lr"],
            "train_loss": sums["loss"] / max(sums["images"], 1),
            "train_acc1": 100 * sums["correct1"] / max(sums["images"], 1),
            "val_loss": val["loss"], "val_acc1": val["acc1"], "val_acc5": val["acc5"],
            "train_images_per_s": sums["images"] / max(sums["seconds"] / shards.count, 1e-9),
            "epoch_train_s": sums["seconds"] / shards.count,
            "skipped_images": int(sums["skipped"] + val["skipped"]),
        }

    def summary(self, final: dict | None) -> dict:
        return {"history": self.history, "step_losses": self.step_losses, "global_step": self.state.global_step,
                "final": final, "output_dir": self.output_dir}


def train(args: argparse.Namespace) -> dict:
    """Run training (or ``--test-only`` evaluation) as the flags say. Returns a summary:
    ``history`` (per-epoch rows), ``step_losses`` (this process's losses, one per step),
    ``global_step``, ``final`` (evaluation after the last epoch, or None), ``output_dir``.
    Raises ValueError (DataError, BadImageError, bad flags) and NonFiniteLossError."""
    s = resolve_settings(args)
    writable_dir(s.output_dir)  # one line before any work when it is a file or cannot be made
    ctx = join_ranks(s)
    try:
        precision = run_precision(s, ctx.device)
        with process_settings(s.threads, s.deterministic, ctx.device, tf32=PRECISIONS[precision].tf32):
            return _run(Trainer(s, ctx, precision))
    finally:
        shutdown(ctx)


def _run(trainer: Trainer) -> dict:
    s, ctx = trainer.s, trainer.ctx
    trainer.setup()
    if s.test_only:
        final = trainer.final_evaluation()
        if ctx.is_main:
            atomic_write_json(trainer.output_dir / "eval.json", {**final, "run": trainer.run_info})
            _print_final(final)
        return {**trainer.summary(final), "step_losses": []}
    if ctx.is_main:
        print(f"training {s.preset} AlexNet (width {s.width_mult}, input {s.image_size}, {s.init} init, "
              f"{len(trainer.classes)} classes, variant {s.variant}, {trainer.precision}) on {len(trainer.train_set)} "
              f"images from {trainer.data_root}; {s.layout}, {ctx.world_size} x {trainer.device}, "
              f"{torch.get_num_threads()} threads")
    started = time.perf_counter()
    stopped = trainer.fit()
    final = None
    if not stopped and trainer.state.epoch >= s.epochs:
        history = trainer.history
        final = trainer.final_evaluation()
        final.update({"wall_s": time.perf_counter() - started, "run": trainer.run_info,
                      # median over epochs: the first epoch of a compiled variant includes compiling
                      "median_train_images_per_s": float(np.median([r["train_images_per_s"] for r in history]))
                      if history else None})
        if ctx.is_main:
            atomic_write_json(trainer.output_dir / "final.json", final)
            _print_final(final)
    return trainer.summary(final)


def _print_final(final: dict) -> None:
    c, t = final["centre_crop"], final["ten_crop"]
    print(f"validation ({c['images']} images, chance top-1 {final['chance_acc1']:.1f}%): centre crop top-1 "
          f"{c['acc1']:.2f}% top-5 {c['acc5']:.2f}% | 10-crop top-1 {t['acc1']:.2f}% top-5 {t['acc5']:.2f}%")


def run(args: argparse.Namespace) -> int:
    try:
        train(args)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except TrainingInterrupted as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 128 + e.signum
    except (DataError, BadImageError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
