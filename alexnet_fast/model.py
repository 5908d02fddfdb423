"""AlexNet built from a config: the paper's network and torchvision's variant.

One module, :class:`AlexNet`, is built by one factory, :func:`alexnet`, from an
:class:`AlexNetConfig`. Module names say what each layer is and are stable, because the
kernel variants swap modules by role:

    features.conv1 relu1 lrn1 pool1 conv2 relu2 lrn2 pool2 conv3 relu3 conv4 relu4
             conv5 relu5 pool5
    avgpool                       (torchvision preset only: AdaptiveAvgPool2d(6))
    classifier.drop6 fc6 relu6 drop7 fc7 relu7 fc8

Presets (facts in ``shared/reference/alexnet.md``):

* ``paper``: Krizhevsky et al. 2012. 96/256/384/384/256 filters, conv1 11x11/4/0 on
  227x227, LRN(size 5, alpha 5e-4, beta 0.75, k 2) in PyTorch's alpha/n convention after
  relu1 and relu2, overlapping max-pool 3/2, ``groups=2`` on conv2/conv4/conv5 for the
  two-column connectivity, N(0, 0.01) weights, biases 1 in conv2/4/5 and fc6/fc7.
  60,965,224 parameters with groups=2 and 1000 classes.
* ``torchvision``: ``torchvision.models.alexnet()`` (64/192/384/256/256, no LRN,
  AdaptiveAvgPool2d(6)); loads its state_dict unchanged (numeric keys such as
  ``features.0.weight`` are mapped to role names on load). 61,100,840 parameters.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing  # in torch 2.11 .. 2.14

__all__ = [
    "ConvSpec",
    "LRNSpec",
    "AlexNetConfig",
    "PRESETS",
    "INITS",
    "AlexNet",
    "alexnet",
    "make_config",
    "feature_shapes",
    "classifier_input_hw",
    "min_input_size",
    "FeatureLayer",
    "feature_layers",
    "feature_module",
    "classifier_modules",
]


@dataclass(frozen=True)
class ConvSpec:
    """One convolution layer. ``grouped`` layers use the model's ``groups`` (the paper's
    column-local layers conv2, conv4, conv5); the others always use groups=1."""

    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    grouped: bool = False


@dataclass(frozen=True)
class LRNSpec:
    """Cross-channel LRN in PyTorch's convention: b = a / (k + alpha/size * sum a^2)^beta."""

    size: int = 5
    alpha: float = 5e-4
    beta: float = 0.75
    k: float = 2.0


@dataclass(frozen=True)
class AlexNetConfig:
    """Everything that defines an AlexNet. Derived variants come from
    :func:`dataclasses.replace` or :func:`make_config`, never by editing a model."""

    name: str
    convs: tuple[ConvSpec, ...]
    lrn_after: tuple[int, ...]  # 1-based conv indices followed by an LRN
    pool_after: tuple[int, ...]  # 1-based conv indices followed by a max-pool
    lrn: LRNSpec | None
    pool_kernel: int = 3
    pool_stride: int = 2
    adaptive_pool: int | None = None  # torchvision: AdaptiveAvgPool2d(6)
    hidden: tuple[int, int] = (4096, 4096)
    dropout: float = 0.5
    num_classes: int = 1000
    groups: int = 1
    in_channels: int = 3
    input_size: int = 227
    init: str = "paper"  # one of INITS
    width_mult: float = 1.0

    def conv_groups(self, index: int) -> int:
        """groups of conv ``index`` (1-based)."""
        return self.groups if self.convs[index - 1].grouped else 1


# Weight initialisations (AlexNetConfig.init):
#   paper        N(0, 0.01) weights; biases 1 in conv2/4/5 and fc6/fc7, 0 elsewhere
#   torchvision  PyTorch's layer defaults (what torchvision's alexnet() gets)
#   kaiming      He normal weights (fan_in, ReLU gain), zero biases: the paper's init stays at
#                chance for hundreds of steps in narrow models (width 1/4), He init does not
INITS = ("paper", "torchvision", "kaiming")

PRESETS: dict[str, AlexNetConfig] = {
    "paper": AlexNetConfig(
        name="paper",
        convs=(
            ConvSpec(96, 11, 4, 0),
            ConvSpec(256, 5, 1, 2, grouped=True),
            ConvSpec(384, 3, 1, 1),
            ConvSpec(384, 3, 1, 1, grouped=True),
            ConvSpec(256, 3, 1, 1, grouped=True),
        ),
        lrn_after=(1, 2),
        pool_after=(1, 2, 5),
        lrn=LRNSpec(size=5, alpha=5e-4, beta=0.75, k=2.0),
        groups=2,
        input_size=227,
        init="paper",
    ),
    "torchvision": AlexNetConfig(
        name="torchvision",
        convs=(
            ConvSpec(64, 11, 4, 2),
            ConvSpec(192, 5, 1, 2),
            ConvSpec(384, 3, 1, 1),
            ConvSpec(256, 3, 1, 1),
            ConvSpec(256, 3, 1, 1),
        ),
        lrn_after=(),
        pool_after=(1, 2, 5),
        lrn=None,
        adaptive_pool=6,
        groups=1,
        input_size=224,
        init="torchvision",
    ),
}


def _pool_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def _walk(config: AlexNetConfig, size: int) -> tuple[dict[str, tuple[int, int, int]], str | None]:
    """(C, H, W) after every feature layer for a square input of ``size``; the second item
    names the first layer whose input is too small (then the shapes stop there)."""
    channels = config.in_channels
    shapes: dict[str, tuple[int, int, int]] = {"input": (channels, size, size)}
    for i, spec in enumerate(config.convs, start=1):
        out = _pool_out(size, spec.kernel_size, spec.stride, spec.padding)
        if out < 1:
            return shapes, (f"conv{i} ({spec.kernel_size}x{spec.kernel_size}, padding "
                            f"{spec.padding}) sees {size}x{size}")
        size, channels = out, spec.out_channels
        shapes[f"conv{i}"] = (channels, size, size)
        if i in config.lrn_after:
            shapes[f"lrn{i}"] = (channels, size, size)
        if i in config.pool_after:
            out = _pool_out(size, config.pool_kernel, config.pool_stride)
            if out < 1:
                return shapes, (f"pool{i} ({config.pool_kernel}x{config.pool_kernel}) sees "
                                f"{size}x{size}")
            size = out
            shapes[f"pool{i}"] = (channels, size, size)
    return shapes, None


def min_input_size(config: AlexNetConfig) -> int:
    """Smallest square input every layer can take."""
    for size in range(1, 4096):
        if _walk(config, size)[1] is None:
            return size
    raise ValueError(f"no input size up to 4096 fits preset {config.name!r}")


def feature_shapes(config: AlexNetConfig, input_size: int | None = None) -> dict[str, tuple[int, int, int]]:
    """(C, H, W) after every feature layer, by module name, for a square input
    (default: the config's input size). ValueError names the first layer that does not fit."""
    size = config.input_size if input_size is None else input_size
    shapes, failure = _walk(config, size)
    if failure is not None:
        raise ValueError(
            f"input size {size} is too small for preset {config.name!r}: {failure}; "
            f"the minimum input size is {min_input_size(config)}"
        )
    return shapes


def classifier_input_hw(config: AlexNetConfig) -> int:
    """Height (= width) of the feature maps flattened into fc6: the adaptive pool's output
    (torchvision preset) or pool5's."""
    return config.adaptive_pool or feature_shapes(config)[f"pool{len(config.convs)}"][1]


def make_config(
    preset: str = "paper",
    *,
    num_classes: int = 1000,
    groups: int | None = None,
    width_mult: float = 1.0,
    input_size: int | None = None,
    dropout: float | None = None,
    init: str | None = None,
) -> AlexNetConfig:
    """The preset's config with the given changes, validated (ValueError says what is wrong).

    ``groups=None`` keeps the preset's (paper: 2, torchvision: 1). ``width_mult`` scales
    every conv's filters and the hidden FC widths (rounded), for small test models.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[preset]
    if not (isinstance(width_mult, (int, float)) and width_mult > 0):
        raise ValueError(f"width_mult must be a positive number, got {width_mult!r}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    groups = base.groups if groups is None else groups
    if not (isinstance(groups, int) and groups >= 1):
        raise ValueError(f"groups must be a positive integer, got {groups!r}")
    if preset == "torchvision" and groups != 1:
        raise ValueError("the torchvision preset has no grouped convolutions; use groups=1")
    dropout = base.dropout if dropout is None else dropout
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    init = base.init if init is None else init
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")

    def scale(c: int) -> int:
        return max(1, int(round(c * width_mult)))

    convs = tuple(dataclasses.replace(c, out_channels=scale(c.out_channels)) for c in base.convs)
    config = dataclasses.replace(
        base,
        convs=convs,
        hidden=(scale(base.hidden[0]), scale(base.hidden[1])),
        num_classes=num_classes,
        groups=groups,
        input_size=base.input_size if input_size is None else int(input_size),
        dropout=dropout,
        init=init,
        width_mult=float(width_mult),
    )
    validate_config(config)
    return config


def validate_config(config: AlexNetConfig) -> None:
    """ValueError naming the layer if the channels do not split into the groups, or the
    input is too small."""
    in_ch = config.in_channels
    for i, spec in enumerate(config.convs, start=1):
        g = config.conv_groups(i)
        for what, ch in (("input", in_ch), ("output", spec.out_channels)):
            if ch % g:
                raise ValueError(
                    f"conv{i}: groups={g} does not divide its {ch} {what} channels "
                    f"(preset {config.name!r}, width_mult={config.width_mult})"
                )
        in_ch = spec.out_channels
    if config.lrn is not None and config.lrn.size < 1:
        raise ValueError(f"LRN size must be >= 1, got {config.lrn.size}")
    feature_shapes(config)


@dataclass(frozen=True)
class FeatureLayer:
    """One step of the feature walk: ``conv``, ``relu``, ``lrn`` or ``pool`` of conv block
    ``index`` (1-based), named ``{kind}{index}``; ``conv`` carries its spec."""

    kind: str
    index: int
    conv: ConvSpec | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}{self.index}"


def feature_layers(config: AlexNetConfig) -> list[FeatureLayer]:
    """The feature extractor as the config defines it, in order: for each conv block, conv,
    ReLU, then LRN and max-pool where the config puts them. :class:`AlexNet` and the column
    model of :mod:`alexnet_fast.layouts.columns` are both built from this walk."""
    layers = []
    for i, spec in enumerate(config.convs, start=1):
        layers += [FeatureLayer("conv", i, spec), FeatureLayer("relu", i)]
        if i in config.lrn_after and config.lrn is not None:
            layers.append(FeatureLayer("lrn", i))
        if i in config.pool_after:
            layers.append(FeatureLayer("pool", i))
    return layers


def feature_module(layer: FeatureLayer, config: AlexNetConfig, in_channels: int, *, columns: int = 1) -> nn.Module:
    """The module of one :func:`feature_layers` step; a conv reads ``in_channels`` and, split
    over ``columns`` (one column's share of the filters), uses groups=1."""
    if layer.kind == "conv":
        spec = layer.conv
        groups = config.conv_groups(layer.index) if columns == 1 else 1
        return nn.Conv2d(in_channels, spec.out_channels // columns, spec.kernel_size, spec.stride, spec.padding,
                         groups=groups)
    if layer.kind == "relu":
        return nn.ReLU(inplace=True)
    if layer.kind == "lrn":
        lrn = config.lrn
        return nn.LocalResponseNorm(lrn.size, lrn.alpha, lrn.beta, lrn.k)
    return nn.MaxPool2d(config.pool_kernel, config.pool_stride)


def classifier_modules(config: AlexNetConfig, in_features: int, *, columns: int = 1,
                       gather=None) -> "OrderedDict[str, nn.Module]":
    """``drop6 fc6 relu6 drop7 fc7 relu7 fc8``; split over ``columns``, each fc keeps its
    share of the outputs and ``gather()`` (a module) is put before it as ``gather{i}``."""
    h6, h7 = config.hidden
    modules: OrderedDict[str, nn.Module] = OrderedDict()
    for i, (n_in, n_out) in ((6, (in_features, h6)), (7, (h6, h7)), (8, (h7, config.num_classes))):
        if i < 8:
            modules[f"drop{i}"] = nn.Dropout(config.dropout)
        if gather is not None:
            modules[f"gather{i}"] = gather()
        modules[f"fc{i}"] = nn.Linear(n_in, n_out // columns)
        if i < 8:
            modules[f"relu{i}"] = nn.ReLU(inplace=True)
    return modules


class AlexNet(nn.Module):
    """AlexNet from an :class:`AlexNetConfig`; input NCHW (or channels_last) images of
    ``config.input_size`` (paper) or any size >= the minimum (torchvision preset)."""

    def __init__(self, config: AlexNetConfig):
        super().__init__()
        validate_config(config)
        self.config = config
        layers: dict[str, nn.Module] = {}
        in_ch = config.in_channels
        for layer in feature_layers(config):
            layers[layer.name] = feature_module(layer, config, in_ch)
            if layer.kind == "conv":
                in_ch = layer.conv.out_channels
        self.features = nn.Sequential(OrderedDict(layers))
        self.avgpool = None if config.adaptive_pool is None else nn.AdaptiveAvgPool2d(config.adaptive_pool)
        flat_hw = classifier_input_hw(config)
        self.classifier = nn.Sequential(classifier_modules(config, in_ch * flat_hw * flat_hw))
        self._min_size = min_input_size(config)
        if config.init == "paper":
            self._init_paper()
        elif config.init == "kaiming":
            self._init_kaiming()
        self.register_load_state_dict_pre_hook(_map_positional_keys)

    def _init_paper(self) -> None:
        ones = {"conv2", "conv4", "conv5", "fc6", "fc7"}
        for name, m in list(self.features.named_children()) + list(self.classifier.named_children()):
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, mean=0.0, std=0.01)
                nn.init.constant_(m.bias, 1.0 if name in ones else 0.0)

    def _init_kaiming(self) -> None:
        for m in self.modules():  # PyTorch's defaults drawn first, then overwritten
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"AlexNet expects a 4-D NCHW batch, got shape {tuple(x.shape)}")
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"AlexNet expects {self.config.in_channels} input channels, got {x.shape[1]}"
            )
        h, w = x.shape[-2:]
        if self.avgpool is None:
            s = self.config.input_size
            if (h, w) != (s, s):
                raise ValueError(
                    f"preset {self.config.name!r} was built for {s}x{s} inputs (fc6 size depends "
                    f"on it), got {h}x{w}; build it with input_size={h} if that is meant"
                )
        elif min(h, w) < self._min_size:
            raise ValueError(
                f"input {h}x{w} is too small for preset {self.config.name!r}: the minimum is "
                f"{self._min_size}x{self._min_size}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.fx's symbolic trace passes a Proxy, whose shape is unknown: the check (Python
        # control flow on the shape) is skipped there, so the forward traces (kernels.apply
        # matches on the graph). Eager, torch.compile and torch.export still run it.
        if not is_fx_symbolic_tracing():
            self.check_input(x)
        x = self.features(x)
        if self.avgpool is not None:
            x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _map_positional_keys(module: AlexNet, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    """Rename positional keys (``features.0.weight``, as torchvision writes them) to role
    names (``features.conv1.weight``): index i of a Sequential is its i-th child."""
    for seq_name in ("features", "classifier"):
        names = list(getattr(module, seq_name)._modules)
        head = f"{prefix}{seq_name}."
        for key in [k for k in state_dict if k.startswith(head)]:
            index, _, rest = key[len(head):].partition(".")
            if index.isdigit() and int(index) < len(names):
                state_dict[f"{head}{names[int(index)]}.{rest}"] = state_dict.pop(key)


def alexnet(
    preset: str = "paper",
    num_classes: int = 1000,
    groups: int | None = None,
    width_mult: float = 1.0,
    *,
    input_size: int | None = None,
    dropout: float | None = None,
    init: str | None = None,
) -> AlexNet:
    """Build an AlexNet. ``groups=None`` keeps the preset's (paper: 2, i.e. the two-column
    connectivity on conv2/4/5; pass 1 for the single-column network)."""
    return AlexNet(make_config(
        preset, num_classes=num_classes, groups=groups, width_mult=width_mult,
        input_size=input_size, dropout=dropout, init=init,
    ))
