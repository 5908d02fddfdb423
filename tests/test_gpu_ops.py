"""Every Triton op against PyTorch on a CUDA device (``pytest -m gpu``; skipped without one).

The op tests' own checkers (``run_and_check`` of test_lrn.py, test_max_pool.py,
test_lrn_max_pool.py: forward, argmax, backward against float64 PyTorch) are run here on
the GPU -- with autotuned GPU configs instead of the interpreter's tile -- by making CUDA
the default device for the tensors they create. conv2d_relu's GPU test lives in
test_conv2d_relu.py (``test_alexnet_layers_gpu``: every layer, fp32/TF32/fp16/bf16, NCHW and
channels-last, forward and both gradients). The last tests check the whole triton variants
against eager on the device with the harness's judge.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from test_lrn import PAPER
from test_lrn import run_and_check as check_lrn
from test_lrn_max_pool import run_and_check as check_lrn_pool
from test_max_pool import run_and_check as check_pool

pytestmark = pytest.mark.gpu

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
LAYOUTS = ("nchw", "nhwc")
BATCH = 8  # several images: the grid's image index and the autotune key see a real batch


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chw", [(96, 55, 55), (256, 27, 27)], ids=lambda s: "x".join(map(str, s)))
def test_lrn_gpu(chw, layout, dtype):
    with torch.device("cuda"):
        check_lrn(torch.randn(BATCH, *chw).relu() * 20, **PAPER, layout=layout, dtype=DTYPES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chw", [(96, 55, 55), (256, 27, 27), (256, 13, 13)], ids=lambda s: "x".join(map(str, s)))
def test_max_pool2d_gpu(chw, layout, dtype):
    with torch.device("cuda"):
        check_pool(torch.randn(BATCH, *chw).relu(), 3, 2, 0, layout, DTYPES[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("chw", [(96, 55, 55), (256, 27, 27)], ids=lambda s: "x".join(map(str, s)))
def test_lrn_max_pool2d_gpu(chw, layout, dtype):
    with torch.device("cuda"):
        check_lrn_pool(torch.randn(BATCH, *chw).relu() * 20, **PAPER, kernel=3, stride=2, padding=0,
                       layout=layout, dtype=DTYPES[dtype])


@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("variant", ["triton", "triton+compile"])
def test_triton_variant_matches_eager_gpu(variant, channels_last, precision):
    """The whole network (reduced width, real 227x227 input) with every op swapped for its
    Triton kernel: logits and every parameter gradient judged against eager fp64 the way
    ``alexnet-fast bench`` judges a cell."""
    from alexnet_fast.model import AlexNet, make_config
    from alexnet_fast.variants import build_variant
    from alexnet_fast.precision import policy
    from alexnet_fast.profiling.judge import TOLERANCES, Reference, judge

    torch.manual_seed(0)
    model = AlexNet(make_config("paper", width_mult=0.25)).cuda().eval()
    x = torch.randn(4, 3, 227, 227, device="cuda")
    target = torch.randint(0, 1000, (4,), device="cuda")
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def run(m, dtype, prec):
        m = m.to(memory_format=fmt)
        xin = x.to(dtype).contiguous(memory_format=fmt)
        with prec.flags():  # the project's precision policy: autocast over fp32 weights
            with prec.autocast("cuda"):
                logits = m(xin)
            F.cross_entropy(logits.float(), target).backward()
        grads = {n.replace("_orig_mod.", ""): q.grad.float() for n, q in m.named_parameters()}
        return {"logits": logits.detach().float()}, grads

    ref32 = run(copy.deepcopy(model), torch.float32, policy("fp32"))
    ref64 = run(copy.deepcopy(model).double(), torch.float64, policy("fp32"))
    out = run(build_variant(copy.deepcopy(model), variant), torch.float32, policy(precision))
    logits_tol, grad_tol = TOLERANCES[precision]
    fwd = judge(out[0], Reference(ref32[0], ref64[0]), logits_tol)
    bwd = judge(out[1], Reference(ref32[1], ref64[1]), grad_tol)
    assert fwd["equivalent"], fwd
    assert bwd["equivalent"], bwd
