"""The whole paper AlexNet per variant: inference (forward) and a training step (forward,
cross-entropy, backward, SGD with momentum), grouped per pass and precision. Variants come
from ``alexnet_fast.build_variant``; the triton ones skip on CPU (interpreted speed means
nothing). Run: ``pytest tests/benchmarks --benchmark-only``.
"""

import pytest
import torch
import torch.nn.functional as F

from alexnet_fast import alexnet, build_variant
from bench_setup import BATCH, CUDA, DEVICE, run_benchmark, skip_triton_reason
from profiling.flops import bytes_model_for, model_cost
from profiling.roofline import precision_mode

VARIANTS = ("eager", "compile", "triton", "triton+compile")
MODEL_PRECISIONS = ("fp32", "bf16") if CUDA else ("fp32",)


@pytest.mark.parametrize("precision", MODEL_PRECISIONS)
@pytest.mark.parametrize("pass_", ("inference", "train"))
@pytest.mark.parametrize("variant", VARIANTS)
def test_model(benchmark, variant, pass_, precision):
    if variant.startswith("triton") and (reason := skip_triton_reason("model")):
        pytest.skip(reason)
    n = BATCH["model"]
    torch.manual_seed(0)
    base = alexnet("paper")
    with precision_mode(precision) as dtype:
        model = build_variant(base.to(DEVICE, dtype), variant, copy_model=False)
        x = torch.randn(n, 3, 227, 227, device=DEVICE, dtype=dtype)
        target = torch.randint(0, 1000, (n,), device=DEVICE)
        if pass_ == "inference":
            model.eval()

            def step():
                with torch.no_grad():
                    return model(x)
        else:
            model.train()
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

            def step():
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x).float(), target).backward()
                opt.step()
        step()  # first call (compiles) outside the timing
        cost = model_cost(base.config, n, precision, pass_=pass_)
        run_benchmark(benchmark, step, kind="model", group=f"model {pass_} {precision}", flops=cost.flops,
                      nbytes=cost.bytes(bytes_model_for(variant)) if pass_ == "inference" else None,
                      dtype=precision, shape=f"{n}x3x227x227", kernel=f"alexnet-{pass_}", provider=variant)
