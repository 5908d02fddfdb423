"""Benchmarks leave torch's global state as they found it (TF32 flags, dynamo caches)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_global_state():
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    torch._dynamo.reset()
