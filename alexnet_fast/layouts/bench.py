"""Benchmark one layout x variant x precision x batch x pass, with its equivalence to ``single``.

:func:`bench_layout` is what the harness calls. ``single`` runs in the calling process;
the two-rank layouts start their ranks through :func:`alexnet_fast.launch.launch`
(gloo on CPU with one thread per rank unless every rank gets a GPU, then NCCL).

On every rank: the same seed builds the same single model and the same global batch
(images N(0, 1), random targets); the layout is applied with :func:`layout_model`. Then:

1. Equivalence (dropout off: eval mode), on the initial weights: the layout's logits (and,
   for ``train``, its parameter gradients of the mean cross-entropy) against the ``single``
   *eager* model in the same precision on the same device, computed on rank 0.
   ``max_abs_err`` is the largest absolute difference over all compared tensors,
   ``max_rel_err`` the largest of ``max|a - b| / max|b|`` per tensor; ``equivalent`` is
   ``max_rel_err <= PRECISIONS[precision].rtol``. fp16 gradients come from a loss scaled by
   ``PRECISIONS["fp16"].loss_scale`` (then unscaled), as fp16 training does.
2. ``warmup`` untimed steps, then ``repeats`` timed steps, each after a barrier, bracketed
   by ``time.perf_counter`` (with ``torch.cuda.synchronize`` on GPU). A step is
   ``forward`` (eval mode, no grad) or ``train`` (train mode: forward, mean cross-entropy,
   backward, SGD lr 0.01 momentum 0.9 weight decay 5e-4; fp16 with a GradScaler).
   ``step_ms`` is the median over steps of the slowest rank's time; ``comm_ms`` the median of
   the slowest rank's time inside collectives (:class:`CommMeter`); ``comm_bytes`` what the
   busiest rank sent per step, counted at the collective calls; ``comm_bytes_model`` the
   same from :func:`comm_bytes_model`.

Triton variants on CPU run interpreted: their timings mean nothing and are returned as
None with ``interpreted: True`` (bytes and equivalence still hold).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F

from alexnet_fast.layouts.comm import (
    DEFAULT_TIMEOUT_S, CommMeter, DistContext, choose_device, init_ranks, local_context, shutdown,
)
from alexnet_fast.layouts.layout import (
    LAYOUTS, check_layout, comm_bytes_model, full_grads, gather_from_ranks, layout_model, local_batch,
)
from alexnet_fast.model import AlexNet, AlexNetConfig, make_config

__all__ = ["PASSES", "PRECISIONS", "Precision", "BenchJob", "bench_layout", "run_bench", "run_rank_job"]

PASSES = ("forward", "train")


@dataclass(frozen=True)
class Precision:
    """How a precision runs: autocast dtype (None: fp32 throughout), TF32 matmuls/convs
    (CUDA only), the relative tolerance of the equivalence check against ``single``, and
    the fixed loss scale of that check (fp16 gradients underflow without one; the timed
    training step uses ``torch.amp.GradScaler`` for fp16)."""

    autocast: torch.dtype | None
    tf32: bool
    rtol: float
    loss_scale: float = 1.0

    @contextlib.contextmanager
    def context(self, device: torch.device) -> Iterator[None]:
        saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.tf32
        try:
            if self.autocast is None:
                yield
            else:
                with torch.autocast(device.type, dtype=self.autocast):
                    yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision(None, tf32=False, rtol=1e-4),
    "tf32": Precision(None, tf32=True, rtol=5e-3),
    "fp16": Precision(torch.float16, tf32=False, rtol=1e-2, loss_scale=2.0**14),
    "bf16": Precision(torch.bfloat16, tf32=False, rtol=5e-2),
}


@dataclass(frozen=True)
class BenchJob:
    """One benchmark, validated; picklable, so it travels to the ranks as it is."""

    layout: str
    variant: str
    precision: str
    batch_size: int
    pass_: str
    config: AlexNetConfig
    world_size: int
    device: str  # "cpu" or "cuda", decided once for all ranks
    warmup: int = 1
    repeats: int = 3
    timeout_s: float = DEFAULT_TIMEOUT_S
    threads: int | None = None
    compile_mode: str = "default"
    seed: int = 0

    @classmethod
    def create(cls, layout: str, variant: str, precision: str, batch_size: int, pass_: str, *,
               preset: str = "paper", width_mult: float = 1.0, input_size: int | None = None,
               num_classes: int = 1000, world_size: int | None = None, device: str | None = None,
               warmup: int = 1, repeats: int = 3, timeout_s: float = DEFAULT_TIMEOUT_S,
               threads: int | None = None, compile_mode: str = "default", seed: int = 0) -> "BenchJob":
        """Validate everything before any rank starts (ValueError says what is wrong)."""
        from alexnet_fast.variants import COMPILE_MODES, VARIANTS

        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"unknown compile mode {compile_mode!r}; choose one of {', '.join(COMPILE_MODES)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if pass_ not in PASSES:
            raise ValueError(f"unknown pass {pass_!r}; choose one of {', '.join(PASSES)}")
        for name, value, low in (("batch_size", batch_size, 1), ("warmup", warmup, 0), ("repeats", repeats, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        if world_size is None:
            world_size = 1 if layout == "single" else 2
        config = make_config(preset, num_classes=num_classes, width_mult=width_mult, input_size=input_size)
        check_layout(layout, world_size, config, batch_size)
        ranks_on_node = 1 if layout == "single" else int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
        dev = choose_device(ranks_on_node, device).type
        if PRECISIONS[precision].tf32 and dev != "cuda":
            raise ValueError("tf32 applies only on CUDA devices; use fp32 on CPU")
        if variant.startswith("triton") and dev == "cpu":
            from kernels._common import is_interpreting

            if not is_interpreting():
                raise ValueError(f"the {variant} variant on CPU needs TRITON_INTERPRET=1 (set before triton is imported)")
        return cls(layout, variant, precision, batch_size, pass_, config, world_size, dev, warmup,
                   repeats, float(timeout_s), threads, compile_mode, seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _errors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, Any]:
    if set(actual) != set(expected):
        raise ValueError(f"the layout's tensors differ from single's: {sorted(set(actual) ^ set(expected))[:5]}")
    max_abs, max_rel, worst = 0.0, 0.0, None
    for name, ref in expected.items():
        ref = ref.detach().double().cpu()
        diff = (actual[name].detach().double().cpu() - ref).abs().max().item()
        scale = ref.abs().max().item()
        if not (math.isfinite(diff) and math.isfinite(scale)):  # NaN/inf on either side fails
            diff = rel = float("inf")
        else:
            rel = diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))
        max_abs = max(max_abs, diff)
        if rel >= max_rel:
            max_rel, worst = rel, name
    return {"max_abs_err": max_abs, "max_rel_err": max_rel, "worst_tensor": worst}


def _outputs(job: BenchJob, ctx: DistContext, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
             layout: str) -> dict[str, torch.Tensor]:
    """Logits of the whole batch (and gradients by parameter name for ``train``), dropout off."""
    precision = PRECISIONS[job.precision]
    train = job.pass_ == "train"
    xl, yl = local_batch(layout, x, ctx), local_batch(layout, y, ctx)
    model.eval()
    with torch.set_grad_enabled(train):
        with precision.context(ctx.device):
            logits = model(xl)
        if train:
            (precision.loss_scale * F.cross_entropy(logits.float(), yl)).backward()
    logits = logits.detach()
    if layout == "data_parallel":
        logits = torch.cat(gather_from_ranks(logits, ctx), dim=0)
    out = {"logits": logits}
    if train:
        out.update({f"grad:{k}": v / precision.loss_scale for k, v in full_grads(layout, model, ctx).items()})
        model.zero_grad(set_to_none=True)
    return out


def run_bench(job: BenchJob, ctx: DistContext) -> dict[str, Any] | None:
    """The benchmark on this rank (module docstring); rank 0 returns the result."""
    device, precision, train = ctx.device, PRECISIONS[job.precision], job.pass_ == "train"
    meter = CommMeter(device)
    torch.manual_seed(job.seed)
    single = AlexNet(job.config)  # built on CPU from the seed: the same weights on every rank
    reference = copy.deepcopy(single).to(device) if ctx.is_main else None
    model = layout_model(single, job.layout, job.variant, ctx, meter=meter, compile_mode=job.compile_mode)
    del single
    gen = torch.Generator().manual_seed(job.seed + 1)
    size = job.config.input_size
    x = torch.randn(job.batch_size, job.config.in_channels, size, size, generator=gen).to(device)
    y = torch.randint(job.config.num_classes, (job.batch_size,), generator=gen).to(device)

    got = _outputs(job, ctx, model, x, y, job.layout)
    errors = _errors(got, _outputs(job, ctx, reference, x, y, "single")) if ctx.is_main else None
    del got, reference

    xl, yl = local_batch(job.layout, x, ctx), local_batch(job.layout, y, ctx)
    model.train(train)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4) if train else None
    scaler = torch.amp.GradScaler(device.type, enabled=precision.autocast is torch.float16)

    def step() -> None:
        if not train:
            with torch.no_grad(), precision.context(device):
                model(xl)
            return
        with precision.context(device):
            logits = model(xl)
        scaler.scale(F.cross_entropy(logits.float(), yl)).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(job.warmup):
        step()
    step_s, comm_ms, comm_bytes = [], [], []
    for _ in range(job.repeats):
        if ctx.group is not None:
            dist.barrier(ctx.group)
        meter.reset()
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        step_s.append(time.perf_counter() - start)
        comm_ms.append(meter.elapsed_ms())
        comm_bytes.append(meter.bytes_sent)
    mine = (step_s, comm_ms, max(comm_bytes), meter.calls)
    ranks = [mine]
    if ctx.group is not None:
        ranks = [None] * ctx.world_size
        dist.all_gather_object(ranks, mine, group=ctx.group)
    if not ctx.is_main:
        return None

    slowest_step = [max(r[0][i] for r in ranks) for i in range(job.repeats)]
    slowest_comm = [max(r[1][i] for r in ranks) for i in range(job.repeats)]
    interpreted = job.variant.startswith("triton") and device.type != "cuda"
    step_ms = None if interpreted else 1e3 * statistics.median(slowest_step)
    bytes_model = comm_bytes_model(job.layout, job.config, job.batch_size, train,
                                   world_size=job.world_size, dtype=precision.autocast or torch.float32)
    return {
        "layout": job.layout, "variant": job.variant, "precision": job.precision,
        "batch_size": job.batch_size, "pass": job.pass_, "preset": job.config.name,
        "width_mult": job.config.width_mult, "input_size": job.config.input_size,
        "num_classes": job.config.num_classes,
        "step_ms": step_ms,
        "step_ms_min": None if interpreted else 1e3 * min(slowest_step),
        "step_ms_max": None if interpreted else 1e3 * max(slowest_step),
        "images_per_s": None if interpreted else job.batch_size / (step_ms / 1e3),
        "comm_ms": None if interpreted else statistics.median(slowest_comm),
        "comm_bytes": max(r[2] for r in ranks),
        "comm_bytes_model": bytes_model,
        "comm_calls": max(r[3] for r in ranks),
        **errors,
        "equivalent": errors["max_rel_err"] <= precision.rtol,
        "rtol": precision.rtol,
        "interpreted": interpreted,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine()),
        "backend": ctx.backend or "none",
        "world_size": ctx.world_size,
        "threads_per_rank": torch.get_num_threads() if device.type == "cpu" else None,
        "warmup": job.warmup, "repeats": job.repeats,
        "torch": torch.__version__,
    }


def run_rank_job(job: BenchJob) -> dict[str, Any] | None:
    """One rank of a launched benchmark: join the group, run, leave."""
    ctx = init_ranks(timeout_s=job.timeout_s, device=job.device, threads=job.threads)
    try:
        return run_bench(job, ctx)
    finally:
        shutdown(ctx)


def bench_layout(layout: str, variant: str, precision: str, batch_size: int, pass_: str, *,
                 preset: str = "paper", width_mult: float = 1.0, input_size: int | None = None,
                 num_classes: int = 1000, warmup: int = 1, repeats: int = 3,
                 timeout_s: float = DEFAULT_TIMEOUT_S, device: str | None = None,
                 world_size: int | None = None, threads: int | None = None,
                 compile_mode: str = "default", seed: int = 0) -> dict[str, Any]:
    """Benchmark ``layout`` (one of LAYOUTS) and check it against ``single``; see the module
    docstring for what each key means. ``batch_size`` is the global batch. ``device`` None:
    CUDA when every rank gets a GPU, else CPU. ``threads``: torch threads per CPU rank
    (multi-rank default 1; single default: the caller's setting, restored afterwards).
    Raises ValueError for a bad request (before starting ranks) and
    :class:`alexnet_fast.launch.LayoutRunError` when a rank fails or hangs.
    """
    from alexnet_fast.launch import launch

    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    job = BenchJob.create(layout, variant, precision, batch_size, pass_, preset=preset,
                          width_mult=width_mult, input_size=input_size, num_classes=num_classes,
                          world_size=world_size, device=device, warmup=warmup, repeats=repeats,
                          timeout_s=timeout_s, threads=threads, compile_mode=compile_mode, seed=seed)
    if layout != "single":
        return launch(run_rank_job, job, world_size=job.world_size, timeout_s=job.timeout_s)[0]
    saved_threads = torch.get_num_threads()
    if job.threads is not None and job.device == "cpu":
        torch.set_num_threads(job.threads)
    try:
        return run_bench(job, local_context(job.device))
    finally:
        torch.set_num_threads(saved_threads)

