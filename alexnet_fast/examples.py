"""An AlexNet written the common flat way, as tutorials and benchmark suites do: one attribute
per layer, called one by one in ``forward``, some ReLUs functional -- no ``.features``, no role
names. Factories for ``alexnet-fast bench --model``:

    alexnet-fast bench --model alexnet_fast.examples:flat_alexnet         # paper size, 227x227
    alexnet-fast bench --model alexnet_fast.examples:small_flat_alexnet   # width 1/8, 67x67

:func:`kernels.apply` (and so ``build_variant(model, "triton")``) finds its conv+ReLU and
LRN+pool pairs in the traced graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FlatAlexNet", "flat_alexnet", "small_flat_alexnet"]


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
