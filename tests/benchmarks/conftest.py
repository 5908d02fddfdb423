"""Benchmarks run with a fixed CPU thread count and leave torch's global state as they
found it (threads, TF32 flags, dynamo caches)."""

import pytest
import torch

from bench_setup import THREADS
from alexnet_fast.profiling.timers import fixed_threads


@pytest.fixture(autouse=True)
def _benchmark_state():
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with fixed_threads(THREADS):
        yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    torch._dynamo.reset()
