"""Two-rank layout cells: one layout x variant x precision x batch x pass, measured like a
one-device cell of :mod:`profiling.engine`.

:func:`bench_layout` is what the engine calls. ``single`` runs in the calling process; the
two-rank layouts start their ranks through :func:`alexnet_fast.launch.launch` (gloo on CPU
with one thread per rank unless every rank gets a GPU, then NCCL). Placement and
communication are :mod:`alexnet_fast.layouts`; everything measured is the engine's:

* the cell (:mod:`profiling.cell`): the same seed builds the same single model on every rank
  and the same global batch; the layout is applied with
  :func:`alexnet_fast.layouts.layout_model`; precision is :mod:`alexnet_fast.precision`'s
  policy (autocast over fp32 weights, fp16 loss-scaled by the one rule, TF32 flags for the
  whole step, backward and optimizer included);
* the judge (:mod:`profiling.judge`): rank 0 computes the single eager model's fp32 and fp64
  references on the same device; the layout's logits (the whole batch, gathered) or its
  parameter gradients (by single-model name, gathered) are judged against them with the
  floors of :data:`profiling.judge.TOLERANCES`;
* the timer (:func:`profiling.timers.measure`): every rank times the same steps, each after a
  barrier; a repeat's time is the slowest rank's, summarised like a one-device row (same
  ``timer`` name). A variant other than eager is timed against the eager model in the same
  layout in paired rounds (:func:`profiling.timers.measure_paired`), each call's time the
  slowest rank's (``all_reduce`` MAX), so every rank takes the same stop decision. ``comm_ms`` is the median over repeats of the slowest rank's time inside
  collectives (:class:`alexnet_fast.layouts.CommMeter`); ``comm_bytes`` what the busiest rank
  sent per step, counted at the collective calls; ``comm_bytes_model`` the same from
  :func:`alexnet_fast.layouts.comm_bytes_model`.

A cell that fails its check is not timed, as on one device; untimed cells (``timed=False``:
Triton interpreted on CPU) return the check only.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from alexnet_fast.launch import launch
from alexnet_fast.layouts.comm import DEFAULT_TIMEOUT_S, CommMeter, DistContext, choose_device, init_ranks, \
    local_context, shutdown
from alexnet_fast.layouts.layout import check_layout, comm_bytes_model, full_grads, gather_from_ranks, layout_model, \
    local_batch
from alexnet_fast.model import AlexNet, AlexNetConfig, make_config
from alexnet_fast.precision import policy
from alexnet_fast.vocabulary import COMPILE_MODES, LAYOUTS, PASSES, VARIANTS, choose
from alexnet_fast.profiling.cell import checked_grads, eager_step, inference_step, inputs, reference, train_step
from alexnet_fast.profiling.judge import floor, judge, verdict_columns
from alexnet_fast.profiling.telemetry import peak_memory
from alexnet_fast.profiling.timers import measure, measure_paired, summarize, time_first_call

__all__ = ["LayoutJob", "bench_layout", "run_cell", "run_rank_job"]


@dataclass(frozen=True)
class LayoutJob:
    """One layout cell, validated; picklable, so it travels to the ranks as it is."""

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
    timed: bool = True
    autotune_max_configs: int | None = None  # every rank's autotuners try at most this many configs
    target_half_width: float = 0.03  # a non-eager variant's paired rounds stop at this half-width
    time_cap_s: float = 20.0  # ... or after this many seconds

    @classmethod
    def create(cls, layout: str, variant: str, precision: str, batch_size: int, pass_: str, *,
               preset: str = "paper", width_mult: float = 1.0, input_size: int | None = None,
               num_classes: int = 1000, world_size: int | None = None, device: str | None = None,
               warmup: int = 1, repeats: int = 3, timeout_s: float = DEFAULT_TIMEOUT_S,
               threads: int | None = None, compile_mode: str = "default", seed: int = 0,
               timed: bool = True, autotune_max_configs: int | None = None, target_half_width: float = 0.03,
               time_cap_s: float = 20.0) -> "LayoutJob":
        """Validate everything before any rank starts (ValueError says what is wrong)."""
        choose(layout, LAYOUTS, "layout")
        choose(variant, VARIANTS, "variant")
        choose(compile_mode, COMPILE_MODES, "compile mode")
        prec = policy(precision)
        choose(pass_, PASSES, "pass")
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
        dev = choose_device(ranks_on_node, None if device is None else torch.device(device).type).type
        prec.check_device(dev)
        if variant.startswith("triton"):
            from alexnet_fast.kernels._common import is_interpreting

            if dev == "cpu" and not is_interpreting():
                raise ValueError(f"the {variant} variant on CPU needs TRITON_INTERPRET=1 (set before triton is imported)")
            if dev == "cuda" and is_interpreting() and timed:
                raise ValueError("TRITON_INTERPRET=1 is set on a CUDA machine: the timing would be the interpreter's")
        if autotune_max_configs is not None and (not isinstance(autotune_max_configs, int) or autotune_max_configs < 1):
            raise ValueError(f"autotune_max_configs must be a positive integer or None, got {autotune_max_configs!r}")
        return cls(layout, variant, precision, batch_size, pass_, config, world_size, dev, warmup,
                   repeats, float(timeout_s), threads, compile_mode, seed, timed, autotune_max_configs,
                   float(target_half_width), float(time_cap_s))


def _gather_objects(value: Any, ctx: DistContext) -> list[Any]:
    if ctx.group is None:
        return [value]
    out = [None] * ctx.world_size
    dist.all_gather_object(out, value, group=ctx.group)
    return out


def _slowest(value: float, ctx: DistContext) -> float:
    """``value`` maxed over the ranks (``all_reduce`` MAX; as it is with one rank)."""
    if ctx.group is None:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device if ctx.backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.group)
    return float(t.item())


def _eager_baseline(job: LayoutJob, ctx: DistContext, xl, yl, loss_scale):
    """The eager model in the same layout (same seed, so the same weights): the baseline of
    a variant's paired rounds. Its own CommMeter: the row's comm figures are the variant's."""
    torch.manual_seed(job.seed)
    model = layout_model(AlexNet(job.config), job.layout, "eager", ctx, meter=CommMeter(ctx.device))
    return eager_step(model, xl, yl, job.pass_, policy(job.precision), loss_scale)


def run_cell(job: LayoutJob, ctx: DistContext) -> dict[str, Any] | None:
    """The cell on this rank (module docstring); rank 0 returns its columns."""
    device, prec, train = ctx.device, policy(job.precision), job.pass_ == "train"
    meter = CommMeter(device)
    torch.manual_seed(job.seed)
    single = AlexNet(job.config)  # built on CPU from the seed: the same weights on every rank
    x, y = inputs(job.config, job.batch_size, job.seed, device)
    ref = reference(single.to(device), x, y, job.pass_, job.precision) if ctx.is_main else None
    model = layout_model(single, job.layout, job.variant, ctx, meter=meter, compile_mode=job.compile_mode)
    del single
    xl, yl = local_batch(job.layout, x, ctx), local_batch(job.layout, y, ctx)

    out: dict[str, Any] = {}
    if train:
        outputs, out["loss_scale"] = checked_grads(model, xl, yl, prec,
                                                   grads=lambda m: full_grads(job.layout, m, ctx))
        step = train_step(model, xl, yl, prec, init_scale=out["loss_scale"])
        first_s, _ = time_first_call(step, device)
    else:
        step = inference_step(model.eval(), xl, prec)
        with prec.flags():
            first_s, logits = time_first_call(step, device)
        if job.layout == "data_parallel":
            logits = torch.cat(gather_from_ranks(logits, ctx), dim=0)
        outputs = {"logits": logits}
    if ctx.is_main:
        out.update(verdict_columns(judge(outputs, ref, floor(job.precision, job.pass_)), job.pass_))
    del outputs, ref

    timed = job.timed and _gather_objects(out.get("equivalent"), ctx)[0]  # rank 0's verdict, on every rank
    mine = None
    if timed:
        def before_repeat() -> None:
            if ctx.group is not None:
                dist.barrier(ctx.group)
            meter.next_step()

        paired = None
        if job.variant == "eager":
            meter.reset()
            with prec.flags():
                timing = measure(step, device=device, warmup=job.warmup, repeats=job.repeats,
                                 before_repeat=before_repeat)
        else:
            baseline = _eager_baseline(job, ctx, xl, yl, out.get("loss_scale"))
            meter.reset()
            with prec.flags():
                paired = measure_paired(baseline, step, device=device, warmup=job.warmup, before_round=before_repeat,
                                        combine=lambda ms: _slowest(ms, ctx),
                                        agree=lambda stop: _slowest(float(stop), ctx) > 0.5, seed=job.seed,
                                        target_half_width=job.target_half_width, time_cap_s=job.time_cap_s)
            timing = paired.variant
        with prec.flags():
            flags = {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
                     "tf32_cudnn": torch.backends.cudnn.allow_tf32}
        meter.next_step()
        steps = meter.steps()[1:]  # the first closed step is the warm-up
        with prec.flags():  # every rank: one more step (its collectives need all ranks)
            memory = peak_memory(step, device)
        mine = (timing, [s[0] for s in steps], max(s[1] for s in steps), max(s[2] for s in steps), first_s, memory)
    ranks = _gather_objects(mine, ctx)
    if not ctx.is_main:
        return None
    out.update({
        "layout": job.layout, "variant": job.variant, "precision": job.precision, "batch_size": job.batch_size,
        "pass": job.pass_, "compile_mode": job.compile_mode, "preset": job.config.name,
        "width_mult": job.config.width_mult, "input_size": job.config.input_size,
        "num_classes": job.config.num_classes,
        "comm_bytes_model": comm_bytes_model(job.layout, job.config, job.batch_size, train,
                                             world_size=job.world_size, dtype=prec.dtype),
        "backend": ctx.backend or "none", "world_size": ctx.world_size, "device_type": device.type,
        "threads_per_rank": torch.get_num_threads() if device.type == "cpu" else None,
        "note": f"{job.world_size} ranks, backend {ctx.backend or 'none'}; slowest rank per repeat",
    })
    if timed:
        t0 = ranks[0][0]
        n = len(t0.times_ms)  # repeats, or paired rounds (their times already the slowest rank's)
        slowest = [max(r[0].times_ms[i] for r in ranks) for i in range(n)]
        timing = summarize(slowest, warmup=t0.warmup, method=t0.method, threads=t0.threads,
                           l2_flushed=t0.l2_flushed)
        out.update(timing.columns(), **flags)
        if paired is not None:
            out.update(paired.columns())
        out.update(compile_s=max(r[4] for r in ranks),
                   comm_ms=statistics.median(max(r[1][i] for r in ranks) for i in range(n)),
                   comm_bytes=max(r[2] for r in ranks), comm_calls=max(r[3] for r in ranks),
                   images_per_s=job.batch_size / (timing.median_ms * 1e-3),
                   peak_memory_mb=max(r[5]["peak_memory_mb"] for r in ranks),
                   peak_memory_source=f"the largest rank's; {ranks[0][5]['peak_memory_source']}")
    return out


def run_rank_job(job: LayoutJob) -> dict[str, Any] | None:
    """One rank of a launched cell: join the group, run (under the job's autotune limit: the
    ranks are new processes, the parent's limit does not reach them), leave."""
    from alexnet_fast.profiling.autotune_limit import limit_autotune_configs

    ctx = init_ranks(timeout_s=job.timeout_s, device=job.device, threads=job.threads)
    try:
        with limit_autotune_configs(job.autotune_max_configs):
            return run_cell(job, ctx)
    finally:
        shutdown(ctx)


def bench_layout(layout: str, variant: str, precision: str, batch_size: int, pass_: str, *,
                 preset: str = "paper", width_mult: float = 1.0, input_size: int | None = None,
                 num_classes: int = 1000, warmup: int = 1, repeats: int = 3,
                 timeout_s: float = DEFAULT_TIMEOUT_S, device: str | None = None,
                 world_size: int | None = None, threads: int | None = None,
                 compile_mode: str = "default", seed: int = 0, timed: bool = True,
                 autotune_max_configs: int | None = None, target_half_width: float = 0.03,
                 time_cap_s: float = 20.0) -> dict[str, Any]:
    """Measure ``layout`` (one of :data:`alexnet_fast.vocabulary.LAYOUTS`) and judge it
    against the single eager model; returns result-table columns (module docstring).
    ``batch_size`` is the global batch. ``device`` None: CUDA when every rank gets a GPU,
    else CPU. ``threads``: torch threads per CPU rank (multi-rank default 1; single: the
    caller's setting, restored afterwards). ``timeout_s``: the ranks' (a suite passes the
    budget left); ``autotune_max_configs``: the ranks' autotune limit. Raises ValueError for a bad request (before
    starting ranks) and :class:`alexnet_fast.launch.LayoutRunError` when a rank fails or hangs.
    """
    job = LayoutJob.create(layout, variant, precision, batch_size, pass_, preset=preset,
                           width_mult=width_mult, input_size=input_size, num_classes=num_classes,
                           world_size=world_size, device=device, warmup=warmup, repeats=repeats,
                           timeout_s=timeout_s, threads=threads, compile_mode=compile_mode, seed=seed, timed=timed,
                           autotune_max_configs=autotune_max_configs, target_half_width=target_half_width,
                           time_cap_s=time_cap_s)
    if layout != "single":
        return launch(run_rank_job, job, world_size=job.world_size, timeout_s=job.timeout_s)[0]
    saved_threads = torch.get_num_threads()
    if job.threads is not None and job.device == "cpu":
        torch.set_num_threads(job.threads)
    try:
        return run_cell(job, local_context(device if device and device.startswith("cuda:") else job.device))
    finally:
        torch.set_num_threads(saved_threads)


@contextlib.contextmanager
def ranks_share_gpu(enabled: bool) -> Iterator[None]:
    """The ranks started inside the block share the GPUs there are (gloo) when ``enabled``
    (:data:`alexnet_fast.layouts.comm.SHARE_GPU_ENV`); the variable is put back after."""
    from alexnet_fast.layouts.comm import SHARE_GPU_ENV

    saved = os.environ.get(SHARE_GPU_ENV)
    if enabled:
        os.environ[SHARE_GPU_ENV] = "1"
    try:
        yield
    finally:
        if enabled:
            if saved is None:
                os.environ.pop(SHARE_GPU_ENV, None)
            else:
                os.environ[SHARE_GPU_ENV] = saved
