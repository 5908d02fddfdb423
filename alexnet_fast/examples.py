"""An AlexNet written the common flat way, as tutorials and benchmark suites do: one attribute
per layer, called one by one in ``forward``, some ReLUs functional -- no ``.features``, no role
names. Factories for ``alexnet-fast bench --model``:

    alexnet-fast bench --model alexnet_fast.examples:flat_alexnet         # paper size, 227x227
    alexnet-fast bench --model alexnet_fast.examples:small_flat_alexnet   # width 1/8, 67x67
    alexnet-fast bench --model alexnet_fast.examples:kernelbench_alexnet --batch-size 1024 --precision tf32
    alexnet-fast bench --model alexnet_fast.examples:small_kernelbench_alexnet   # width 1/16, 63x63

:func:`kernels.apply` (and so ``build_variant(model, "triton")``) finds their conv+ReLU and
LRN+pool pairs in the traced graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FlatAlexNet", "flat_alexnet", "small_flat_alexnet", "KernelBenchAlexNet", "kernelbench_alexnet",
           "small_kernelbench_alexnet"]


class FlatAlexNet(nn.Module):
    """The paper's one-column AlexNet (96/256/384/384/256 filters x ``width_mult``, LRN after
    conv1 and conv2, overlapping 3x3/2 pools), flat."""

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, input_size: int = 227,
                 dropout: float = 0.5):
        super().__init__()
        c1, c2, c3, c4, c5 = (max(1, round(f * width_mult)) for f in (96, 256, 384, 384, 256))
        hidden = max(1, round(4096 * width_mult))
        side = (input_size - 11) // 4 + 1
        for _ in range(3):  # three 3x3/2 pools; conv2-5 keep the size
            side = (side - 3) // 2 + 1
        if side < 1:
            raise ValueError(f"FlatAlexNet: input_size {input_size} is too small (at least 67)")
        self.conv1 = nn.Conv2d(3, c1, 11, stride=4)
        self.relu1 = nn.ReLU(inplace=True)
        self.norm1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.norm2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.pool2 = nn.MaxPool2d(3, 2)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.conv4 = nn.Conv2d(c3, c4, 3, padding=1)
        self.conv5 = nn.Conv2d(c4, c5, 3, padding=1)
        self.pool5 = nn.MaxPool2d(3, 2)
        self.dropout = nn.Dropout(dropout)
        self.fc6 = nn.Linear(c5 * side * side, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.fc8 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.norm1(self.relu1(self.conv1(x))))
        x = self.pool2(self.norm2(F.relu(self.conv2(x))))
        x = F.relu(self.conv3(x), inplace=True)
        x = torch.relu(self.conv4(x))
        x = self.pool5(self.conv5(x).relu())
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc6(self.dropout(x)))
        x = F.relu(self.fc7(self.dropout(x)))
        return self.fc8(x)


def flat_alexnet():
    """The paper-size flat AlexNet and its input size (for ``--model``)."""
    return FlatAlexNet(), 227


def small_flat_alexnet():
    """Width 1/8 (12/32/48/48/32 filters, 512-wide FC), 10 classes, 67x67 input: small enough
    for the Triton interpreter on a CPU."""
    return FlatAlexNet(num_classes=10, width_mult=0.125, input_size=67), 67


class KernelBenchAlexNet(nn.Module):
    """KernelBench's level-3 AlexNet (problem ``level3/5_AlexNet.py``), written here from its
    authors' description: the external anchor that our eager / compile / triton figures are
    set beside.

    The network: the one-column AlexNet without LRN and without groups, 96/256/384/384/256
    filters (x ``width_mult``), conv1 11x11 stride 4 padding 2, conv2 5x5 padding 2, conv3-5
    3x3 padding 1, a ReLU module after every conv and hidden FC layer, three 3x3/2 max-pools
    (after conv1, conv2, conv5), flatten (no adaptive pool: the FC input is fixed by
    ``input_size``), fc 9216 -> 4096 -> 4096 -> 1000 with ``nn.Dropout(p=0.0)`` after each
    hidden FC. At 224x224: 62,378,344 parameters, 2.2705 GFLOP/img forward (2 x MACs, bias
    ignored, ``torch.utils.flop_counter``), the paper net's groups=1 arithmetic.

    The problem as KernelBench times it: batch 1024 of ``torch.rand(N, 3, 224, 224)``
    (uniform; the harness feeds ``randn``, which changes no timing), fp32 weights and inputs,
    the backends' TF32 defaults: ``torch.backends.cudnn.allow_tf32 = True`` (convolutions in
    TF32) and ``torch.backends.cuda.matmul.allow_tf32 = False`` (the FC layers in fp32).
    The batch in ``5_AlexNet.py`` differs between versions of the repository (10 in early
    ones, 512 and 1024 in later copies); the figures below are the batch-1024 ones.

    Published H100 figures (KernelBench ``results/timing/H100_Modal``, an H100 SXM 80 GB on
    Modal): eager 23.7 ms, ``torch.compile`` (inductor, mode default) 16.7 ms (1.42x), i.e.
    ~98 and ~139 TFLOP/s at 2.27 GFLOP/img x 1024. Their timing method: CUDA events around
    each call, 3 warm-up calls, 100 timed trials (mean reported), the L2 cache flushed
    (a 256 MB write) before every trial, and a correctness check first at
    atol = rtol = 1e-2. Our rows: median of CUDA-event timings with an L2 flush
    (``profiling.timers``), equivalence by ``profiling.judge``.

    How our precisions map onto it: the bench's ``fp32`` holds both TF32 flags off (strict
    fp32: slower than KernelBench's fp32), ``tf32`` holds both on (KernelBench's convolutions,
    plus TF32 in the FC layers, ~5% of the FLOPs). Every ``--model`` row records the two flags
    in force while it was timed (``tf32_matmul``, ``tf32_cudnn``), so a row says which one
    it compares with.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, input_size: int = 224):
        super().__init__()
        c1, c2, c3, c4, c5 = (max(1, round(f * width_mult)) for f in (96, 256, 384, 384, 256))
        hidden = max(1, round(4096 * width_mult))
        side = (input_size + 2 * 2 - 11) // 4 + 1
        for _ in range(3):  # three 3x3/2 pools; conv2-5 keep the size
            side = (side - 3) // 2 + 1
        if side < 1:
            raise ValueError(f"KernelBenchAlexNet: input_size {input_size} is too small (at least 63)")
        self.conv1 = nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=2)
        self.relu1 = nn.ReLU(inplace=True)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5, padding=2)
        self.relu2 = nn.ReLU(inplace=True)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.conv3 = nn.Conv2d(c2, c3, kernel_size=3, padding=1)
        self.relu3 = nn.ReLU(inplace=True)
        self.conv4 = nn.Conv2d(c3, c4, kernel_size=3, padding=1)
        self.relu4 = nn.ReLU(inplace=True)
        self.conv5 = nn.Conv2d(c4, c5, kernel_size=3, padding=1)
        self.relu5 = nn.ReLU(inplace=True)
        self.maxpool3 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.fc1 = nn.Linear(c5 * side * side, hidden)
        self.relu6 = nn.ReLU(inplace=True)
        self.dropout1 = nn.Dropout(p=0.0)
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu7 = nn.ReLU(inplace=True)
        self.dropout2 = nn.Dropout(p=0.0)
        self.fc3 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.relu1(self.conv1(x)))
        x = self.maxpool2(self.relu2(self.conv2(x)))
        x = self.relu3(self.conv3(x))
        x = self.relu4(self.conv4(x))
        x = self.maxpool3(self.relu5(self.conv5(x)))
        x = torch.flatten(x, 1)
        x = self.dropout1(self.relu6(self.fc1(x)))
        x = self.dropout2(self.relu7(self.fc2(x)))
        return self.fc3(x)


def kernelbench_alexnet(width_mult: float = 1.0, input_size: int = 224, num_classes: int = 1000):
    """KernelBench's level-3 AlexNet and its input size (for ``--model``; with no arguments
    the problem as published: full width, 224x224, 1000 classes). Time it at
    ``--batch-size 1024`` to stand beside the published H100 figures
    (:class:`KernelBenchAlexNet`)."""
    return KernelBenchAlexNet(num_classes=num_classes, width_mult=width_mult, input_size=input_size), input_size


def small_kernelbench_alexnet():
    """Width 1/16 (6/16/24/24/16 filters, 256-wide FC), 10 classes, 63x63 input (the smallest
    that keeps every layer): small enough for the Triton interpreter on a CPU."""
    return kernelbench_alexnet(width_mult=1 / 16, input_size=63, num_classes=10)
