"""The whole paper AlexNet per variant: inference (forward) and a training step (forward,
cross-entropy, backward, SGD with momentum), grouped per pass and precision. Variants come
from ``alexnet_fast.build_variant``; the triton ones skip on CPU (interpreted speed means
nothing). Precision is the study's one policy (``alexnet_fast.precision``: autocast over fp32
weights). Before it is timed, every variant's logits of one eval-mode forward are judged like
an engine cell (``profiling.judge.judge`` against eager in fp32, float64 and the cell's
precision, with the same weights and input); a variant that is not equivalent fails its benchmark, and the errors go into
``extra_info`` beside the speed. Run: ``pytest tests/benchmarks --benchmark-only``.
"""

import copy

import pytest
import torch

from alexnet_fast import alexnet, build_variant
from alexnet_fast.precision import policy
from alexnet_fast.vocabulary import PASSES, VARIANTS
from bench_setup import BATCH, CUDA, DEVICE, run_benchmark, skip_triton_reason
from alexnet_fast.profiling.cell import eager_step, inference_step, reference, train_step
from alexnet_fast.profiling.flops import bytes_model_for, model_cost
from alexnet_fast.profiling.judge import floor, judge

MODEL_PRECISIONS = ("fp32", "bf16") if CUDA else ("fp32",)


@pytest.mark.parametrize("precision", MODEL_PRECISIONS)
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_model(benchmark, variant, pass_, precision):
    if variant.startswith("triton") and (reason := skip_triton_reason("model")):
        pytest.skip(reason)
    n = BATCH["model"]
    torch.manual_seed(0)
    base = alexnet("paper").to(DEVICE)
    x = torch.randn(n, 3, 227, 227, device=DEVICE)
    target = torch.randint(0, 1000, (n,), device=DEVICE)
    ref = reference(base, x, target, "inference", precision)
    prec = policy(precision)  # autocast over fp32 weights, as everywhere in the study
    eager = None if variant == "eager" else copy.deepcopy(base)  # the speedup's baseline, same weights
    model = build_variant(base, variant, copy_model=False)
    with prec.flags():
        # dropout off: the logits must match eager's up to rounding
        verdict = judge({"logits": inference_step(model.eval(), x, prec)()}, ref, floor(precision, "inference"))
    benchmark.extra_info.update(max_abs_err=verdict["abs"], max_rel_err=verdict["rel"],
                                fp64_rrmse=verdict["fp64_err"], fp64_rrmse_allowed=verdict["tolerance"])
    assert verdict["equivalent"], f"{variant} is not equivalent to eager PyTorch: {verdict}"
    step = inference_step(model.eval(), x, prec) if pass_ == "inference" else train_step(model, x, target, prec)
    with prec.flags():
        step()  # first call (compiles) outside the timing
        cost = model_cost(base.config, n, precision, pass_=pass_)
        run_benchmark(benchmark, step, kind="model", group=f"model {pass_} {precision}", flops=cost.flops,
                      nbytes=cost.bytes(bytes_model_for(variant)) if pass_ == "inference" else None,
                      dtype=precision, shape=f"{n}x3x227x227", kernel=f"alexnet-{pass_}", provider=variant,
                      baseline=None if eager is None else eager_step(eager, x, target, pass_, prec))


# --------------------------------------------------------------------------- the check itself
# (plain tests: they run in the normal suite, and --benchmark-only skips them)
class _FakeBenchmark:
    """What test_model uses of pytest-benchmark's fixture; ``pedantic`` runs the target once."""

    def __init__(self):
        self.extra_info, self.group, self.timed = {}, None, False

    def pedantic(self, target, rounds, warmup_rounds, iterations):
        target()
        self.timed = True
        self.stats = type("S", (), {"stats": type("M", (), {"median": 1.0})()})()


class _OffByOne(torch.nn.Module):
    """A wrong variant: the model's logits plus 1."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x) + 1


@pytest.mark.parametrize("wrong", (False, True), ids=("eager", "wrong-variant"))
def test_model_judges_logits_before_timing(monkeypatch, wrong):
    monkeypatch.setitem(BATCH, "model", 2)
    if wrong:
        monkeypatch.setitem(globals(), "build_variant", lambda model, name, **kw: _OffByOne(model))
    bench = _FakeBenchmark()
    if wrong:
        with pytest.raises(AssertionError, match="not equivalent"):
            test_model(bench, "eager", "inference", "fp32")
        assert not bench.timed
        assert bench.extra_info["fp64_rrmse"] > bench.extra_info["fp64_rrmse_allowed"]
    else:
        test_model(bench, "eager", "inference", "fp32")
        assert bench.timed
        assert bench.extra_info["fp64_rrmse"] <= bench.extra_info["fp64_rrmse_allowed"]
        assert bench.extra_info["max_abs_err"] == 0.0  # eager fp32 is its own fp32 reference
