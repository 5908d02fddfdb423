"""The one precision policy: autocast over fp32 weights, TF32 flags scoped, one loss-scale rule."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from alexnet_fast import alexnet
from alexnet_fast.precision import LOSS_SCALE, POLICY, policy, scaled_grads
from alexnet_fast.vocabulary import PRECISIONS


def test_policy_covers_the_vocabulary_and_names_bad_precisions():
    assert tuple(POLICY) == PRECISIONS
    assert [policy(p).dtype for p in PRECISIONS] == [torch.float32, torch.float32, torch.float16, torch.bfloat16]
    with pytest.raises(ValueError, match="unknown precision 'fp8'; choose one of fp32, tf32, fp16, bf16"):
        policy("fp8")
    with pytest.raises(ValueError, match="tf32 needs a CUDA device"):
        policy("tf32").check_device("cpu")


def test_flags_are_set_for_the_block_and_restored():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with policy("tf32").flags():
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with policy("bf16").flags():
            assert not torch.backends.cudnn.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_keeps_fp32_weights_and_runs_the_paper_model_on_cpu(precision):
    """Cast to fp16/bf16, the paper model cannot run on CPU (no half LRN); under the policy it
    does, its convolutions compute in the low dtype and its weights and gradients stay fp32."""
    model = alexnet("paper", width_mult=0.125, input_size=67, num_classes=10)
    x = torch.randn(2, 3, 67, 67)
    with pytest.raises(RuntimeError, match="not implemented"):
        model.to(POLICY[precision].dtype)(x.to(POLICY[precision].dtype))
    model.float()
    prec = policy(precision)
    with prec.context("cpu"):
        logits = model(x)
    assert logits.dtype == prec.dtype
    F.cross_entropy(logits.float(), torch.tensor([1, 2])).backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())


def test_one_loss_scale_rule_for_the_scaler_and_the_check():
    scaler = policy("fp16").grad_scaler("cpu")
    assert scaler.is_enabled() and scaler.get_scale() == LOSS_SCALE["init_scale"] == 2.0**16
    assert scaler.get_backoff_factor() == LOSS_SCALE["backoff_factor"]
    assert not policy("bf16").grad_scaler("cpu").is_enabled()
    scales = []

    def backward(scale):  # overflows above 2^12, like fp16 gradients that exceed 65504
        scales.append(scale)
        g = torch.tensor([3.0]) * scale
        return {"w": torch.where(g > 3.0 * 2**12, torch.tensor(float("inf")), g)}

    grads, scale = scaled_grads(backward, policy("fp16"))
    assert scales == [2.0**16, 2.0**15, 2.0**14, 2.0**13, 2.0**12] and scale == 2.0**12
    assert grads["w"].item() == 3.0  # unscaled
    assert scaled_grads(lambda s: {"w": torch.tensor([s])}, policy("bf16")) == ({"w": torch.tensor([1.0])}, 1.0)
