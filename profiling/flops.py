"""FLOP and minimum-byte model of every AlexNet layer, for eager (separate ops) and fused
execution, and the arithmetic intensity that places a layer on the roofline.

Conventions
-----------
* ``mac_flops``: 2 x multiply-adds of convolutions and linear layers, bias ignored -- the
  convention of ``torch.utils.flop_counter.FlopCounterMode`` (tests check it):
  conv ``2*N*K*P*Q*(C/g)*R*S``, linear ``2*N*IN*OUT``.
* ``other_flops``: the element-wise work FlopCounterMode does not count: bias add and ReLU
  (1 op per output each), LRN (``size + 5`` ops per element: square, window sum of
  ``size`` terms, scale, add k, pow (counted as one op), divide), max-pool
  (``kh*kw - 1`` comparisons per output). ``flops = mac_flops + other_flops``; the roofline
  uses ``flops`` so LRN and pooling, which do no MACs, still get an intensity.
* ``bytes``: the minimum bytes an implementation must move between DRAM and the chip, each
  tensor read or written exactly once per op (weights and bias once per batch), for
  forward inference:

  - ``separate`` (eager PyTorch): every op reads its inputs and writes its output. ReLU is
    its own pass (read + write the conv output). LRN follows ``F.local_response_norm``
    op by op: ``x*x`` (r x, w x), pad the channels (r x, w x padded to C+size-1),
    ``avg_pool3d`` over the channel window (r padded, w x), ``.mul(alpha)``, ``.add(k)``,
    ``.pow(beta)`` (each r x, w x), ``x / div`` (r 2x, w x).
  - ``fused`` (the Triton kernels; also what inductor aims for): conv + bias + ReLU read the
    input and weights and write the output once; LRN reads x and writes y once; LRN +
    max-pool reads x once and writes only the pooled output.

  Intensity = flops / bytes (FLOP/byte).
* Training FLOPs: backward of a conv / linear costs 2x its forward MACs (input grad + weight
  grad) except the first conv, whose input needs no grad: ``train = 3*fwd - conv1``.
  Element-wise backward is counted like its forward (``2*other``). The SGD update is not
  counted (a few ops per parameter). Note that FlopCounterMode (torch 2.14) counts the
  backward of *grouped* convolutions as if one of its two gradients were ungrouped (4x the
  forward instead of 3x), so it overstates paper-AlexNet training FLOPs; our formula does
  not.

Per-layer *units* are what the harness and the benchmarks time: ``conv1+relu1`` ... ,
``lrn1``, ``pool1``, ``lrn1+pool1`` (the fused pair), ``pool5``, ``fc6+relu6``,
``fc7+relu7``, ``fc8`` (and ``avgpool`` for the torchvision preset).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from alexnet_fast.model import AlexNetConfig, feature_shapes

__all__ = [
    "BYTES_MODELS",
    "DTYPE_BYTES",
    "LayerUnit",
    "LayerCost",
    "layer_units",
    "unit_cost",
    "model_cost",
    "backward_cost",
    "add_rates",
    "needs_input_grad",
    "runs_fused",
    "bytes_model_for",
    "dtype_bytes",
    "lrn_max_pool2d_traffic",
    "CONV_LRN_PIPELINES",
    "conv_lrn_pool_traffic",
    "conv_lrn_rows",
    "chain_units",
]

BYTES_MODELS = ("separate", "fused")
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2}


def dtype_bytes(precision: str) -> int:
    """Bytes per element of a precision name (fp32, tf32, fp16, bf16)."""
    try:
        return DTYPE_BYTES[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(DTYPE_BYTES)}") from None


def bytes_model_for(variant: str) -> str:
    """The byte model a variant is placed with: eager runs separate ops; the compiled and
    Triton variants run fused ones."""
    return "separate" if variant == "eager" else "fused"


@dataclass(frozen=True)
class LayerUnit:
    """One timed piece of the network. ``modules`` are the names of its modules in the
    AlexNet (children of ``features`` or ``classifier``), in order; shapes are per image."""

    name: str
    op: str  # conv_relu, lrn, pool, lrn_pool, fc_relu, fc, avgpool
    container: str  # "features" or "classifier" (avgpool: "")
    modules: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: dict = field(default_factory=dict, compare=False, hash=False)
    fused_pair: bool = False  # lrn_max_pool2d: overlaps the separate LRN and pool units


@dataclass(frozen=True)
class LayerCost:
    """FLOPs and bytes of one unit at one batch size and element size."""

    mac_flops: int
    other_flops: int
    bytes_separate: int
    bytes_fused: int

    @property
    def flops(self) -> int:
        return self.mac_flops + self.other_flops

    def bytes(self, model: str) -> int:
        if model not in BYTES_MODELS:
            raise ValueError(f"unknown bytes model {model!r}; choose one of {BYTES_MODELS}")
        return self.bytes_separate if model == "separate" else self.bytes_fused

    def intensity(self, model: str) -> float:
        return self.flops / self.bytes(model)

    def __add__(self, other: "LayerCost") -> "LayerCost":
        return LayerCost(self.mac_flops + other.mac_flops, self.other_flops + other.other_flops,
                         self.bytes_separate + other.bytes_separate, self.bytes_fused + other.bytes_fused)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def layer_units(config: AlexNetConfig, input_size: int | None = None) -> list[LayerUnit]:
    """Every timed unit of the network, in forward order (fused LRN+pool pairs listed right
    after the separate LRN and pool they replace)."""
    shapes = feature_shapes(config, input_size)
    units: list[LayerUnit] = []
    prev = shapes["input"]
    for i, spec in enumerate(config.convs, start=1):
        out = shapes[f"conv{i}"]
        units.append(LayerUnit(
            f"conv{i}+relu{i}", "conv2d_relu", "features", (f"conv{i}", f"relu{i}"), prev, out,
            {"kernel": spec.kernel_size, "stride": spec.stride, "padding": spec.padding,
             "groups": config.conv_groups(i)}))
        prev = out
        if i in config.lrn_after:
            lrn = config.lrn
            lrn_params = {"size": lrn.size, "alpha": lrn.alpha, "beta": lrn.beta, "k": lrn.k}
            units.append(LayerUnit(f"lrn{i}", "local_response_norm", "features", (f"lrn{i}",), prev, prev, lrn_params))
        if i in config.pool_after:
            pool_params = {"kernel": config.pool_kernel, "stride": config.pool_stride}
            pooled = shapes[f"pool{i}"]
            units.append(LayerUnit(f"pool{i}", "max_pool2d", "features", (f"pool{i}",), prev, pooled, pool_params))
            if i in config.lrn_after:
                units.append(LayerUnit(f"lrn{i}+pool{i}", "lrn_max_pool2d", "features", (f"lrn{i}", f"pool{i}"),
                                       prev, pooled, {**lrn_params, **pool_params}, fused_pair=True))
            prev = pooled
    if config.adaptive_pool is not None:
        a = config.adaptive_pool
        units.append(LayerUnit("avgpool", "avgpool", "", ("avgpool",), prev, (prev[0], a, a), {"output": a}))
        prev = (prev[0], a, a)
    features = _numel(prev)
    h6, h7 = config.hidden
    for name, relu, n_in, n_out in (("fc6", "relu6", features, h6), ("fc7", "relu7", h6, h7),
                                    ("fc8", None, h7, config.num_classes)):
        if relu:
            units.append(LayerUnit(f"{name}+{relu}", "fc_relu", "classifier", (name, relu), (n_in,), (n_out,)))
        else:
            units.append(LayerUnit(name, "fc", "classifier", (name,), (n_in,), (n_out,)))
    return units


def _lrn_separate_bytes(numel: int, channels: int, size: int) -> int:
    """Element passes of F.local_response_norm's op sequence (see module docstring)."""
    padded = numel * (channels + size - 1) / channels
    passes = (2 * numel          # x*x
              + numel + padded   # pad
              + padded + numel   # avg_pool3d
              + 3 * 2 * numel    # mul(alpha), add(k), pow(beta)
              + 3 * numel)       # x / div
    return int(round(passes))


def lrn_max_pool2d_traffic(channels: int, height: int, width: int, *, kernel_size: int = 3, stride: int = 2,
                           padding: int = 0, itemsize: int = 2, with_indices: bool = True) -> dict[str, int]:
    """DRAM bytes per image of LRN + max-pool as the separate Triton ops (LRN, then max-pool)
    and as the fused kernel (kernels/lrn_max_pool.py), every tensor read or written once
    (window re-reads served by cache), E = C*H*W input and P = C*OH*OW pooled elements of
    ``itemsize`` bytes, the int8 argmax 1 byte each when ``with_indices``::

        forward   separate 3*E + P (+ idx): LRN reads x, writes y; pool reads y, writes out
                  fused      E + P (+ idx)  -> saves 2*E
        backward  separate 4*E + P (+ idx): pool: dout + idx -> dy; LRN: x + dy -> dx
                  fused    2*E + P (+ idx)  -> saves 2*E

    Training at AlexNet's pairs in fp16: lrn1+pool1 1,952,352 -> 790,752 B forward, 2,533,152 ->
    1,371,552 B backward; lrn2+pool2 1,249,536 -> 503,040 and 1,622,784 -> 876,288 B: 3,816,192 B
    saved per image per step (488.5 MB at batch 128). Without indices the fused entries are the
    unit's minimum bytes (:func:`unit_cost`, :func:`backward_cost`)."""
    out_h = (height + 2 * padding - kernel_size) // stride + 1
    out_w = (width + 2 * padding - kernel_size) // stride + 1
    e = channels * height * width * itemsize
    p = channels * out_h * out_w * itemsize
    idx = channels * out_h * out_w if with_indices else 0
    return {"separate_fwd": 3 * e + p + idx, "fused_fwd": e + p + idx,
            "separate_bwd": 4 * e + p + idx, "fused_bwd": 2 * e + p + idx}


# The pipelines of a conv -> ReLU -> LRN -> max-pool chain (the paper's conv1, conv2) the byte
# model compares: eager's separate ops; the triton variant with fuse_conv_lrn=False (conv + ReLU,
# then the fused LRN + pool); its default (conv + ReLU + LRN in one kernel, then the pool); and
# the pool in the conv's epilogue too, which no kernel does (kernels/conv2d_relu_lrn.py: why).
CONV_LRN_PIPELINES = ("eager", "conv+relu|lrn+pool", "conv+relu+lrn|pool", "conv+relu+lrn+pool (not built)")


def conv_lrn_pool_traffic(in_elems: int, weight_elems: int, conv_elems: int, pooled_elems: int, size: int, *,
                          batch: int, itemsize: int = 2, input_grad: bool = True) -> dict[str, dict[str, int]]:
    """DRAM bytes of one conv -> ReLU -> LRN -> max-pool chain at ``batch`` (weights once), per
    pipeline of :data:`CONV_LRN_PIPELINES`: ``inference``, the training step's ``train_fwd``
    (what the backward needs stored: a = relu(conv) where LRN's backward reads it, the pool's
    argmax: int8 in Triton, int64 in eager) and ``bwd``. X, E, P: the conv's input, output and
    the pooled elements per image, every tensor read or written once per op::

        inference  eager     X + E | relu 2E | LRN op by op (_lrn_separate_bytes) | pool E + P
                   apart     X + E | LRN + pool E + P
                   fused     X + E | pool E + P           (LRN moved, the round trip not removed)
                   all       X + P
        bwd        the conv's wgrad (E + X + weights) and dgrad (as many; none with ``input_grad``
                   False: conv1's image) in all, plus
                   eager     pool P + idx + E | LRN's ops twice its forward | relu 3E
                   apart     LRN + pool P + idx + 2E | relu mask 3E
                   fused     pool P + idx + E | LRN + ReLU mask 3E
                   all       P + idx + 2E

    ``train_fwd`` adds the stored a (fused: +E) and the argmax to ``inference``."""
    n, s = batch, itemsize
    x, e, p, w = n * in_elems * s, n * conv_elems * s, n * pooled_elems * s, weight_elems * s
    idx8, idx1 = n * pooled_elems * 8, n * pooled_elems
    lrn_sep = s * _lrn_separate_bytes(n * conv_elems, conv_elems, size) if conv_elems else 0
    conv_fwd = x + w + e
    conv_bwd = (e + x + w) * (2 if input_grad else 1)
    fwd = {"eager": conv_fwd + 2 * e + lrn_sep + e + p, "conv+relu|lrn+pool": conv_fwd + e + p,
           "conv+relu+lrn|pool": conv_fwd + e + p, "conv+relu+lrn+pool (not built)": x + w + p}
    train_fwd = {"eager": fwd["eager"] + idx8, "conv+relu|lrn+pool": fwd["conv+relu|lrn+pool"] + idx1,
                 "conv+relu+lrn|pool": fwd["conv+relu+lrn|pool"] + e + idx1,
                 "conv+relu+lrn+pool (not built)": fwd["conv+relu+lrn+pool (not built)"] + e + idx1}
    bwd = {"eager": conv_bwd + p + idx8 + e + 2 * lrn_sep + 3 * e,
           "conv+relu|lrn+pool": conv_bwd + p + idx1 + 2 * e + 3 * e,
           "conv+relu+lrn|pool": conv_bwd + p + idx1 + e + 3 * e,
           "conv+relu+lrn+pool (not built)": conv_bwd + p + idx1 + 2 * e}
    return {name: {"inference": fwd[name], "train_fwd": train_fwd[name], "bwd": bwd[name],
                   "train": train_fwd[name] + bwd[name]} for name in CONV_LRN_PIPELINES}


def chain_units(config: AlexNetConfig, input_size: int | None = None) -> list[LayerUnit]:
    """The conv -> ReLU -> LRN -> max-pool chains of ``config`` as units of their own (op
    ``conv2d_relu_lrn``, named ``conv1+relu1+lrn1+pool1``): what the GPU suite times to compare
    the pipelines of :data:`CONV_LRN_PIPELINES`. They overlap the units of :func:`layer_units`,
    so they are not among them (nor in :func:`model_cost`'s sums)."""
    units = {u.name: u for u in layer_units(config, input_size)}
    chains = []
    for i in config.lrn_after:
        if i in config.pool_after:
            conv, pair = units[f"conv{i}+relu{i}"], units[f"lrn{i}+pool{i}"]
            chains.append(LayerUnit(f"conv{i}+relu{i}+lrn{i}+pool{i}", "conv2d_relu_lrn", "features",
                                    conv.modules + pair.modules, conv.in_shape, pair.out_shape,
                                    {**pair.params, **conv.params, "conv_shape": conv.out_shape,
                                     "pool_kernel": pair.params["kernel"]}))
    return chains


def _chain_traffic(unit: LayerUnit, batch_size: int, s: int) -> dict[str, dict[str, int]]:
    c, k, g, r = unit.in_shape[0], unit.params["conv_shape"][0], unit.params["groups"], unit.params["kernel"]
    return conv_lrn_pool_traffic(_numel(unit.in_shape), k * (c // g) * r * r + k, _numel(unit.params["conv_shape"]),
                                 _numel(unit.out_shape), unit.params["size"], batch=batch_size, itemsize=s,
                                 input_grad=needs_input_grad(unit))


def conv_lrn_rows(config: AlexNetConfig, batch_size: int = 128, precision: str = "bf16") -> list[dict]:
    """One row per (conv -> ReLU -> LRN -> pool chain of ``config``, pipeline): bytes of inference
    and of a training step, the bytes saved against eager and against conv + ReLU then LRN + pool,
    FLOPs and the inference intensity (the chain's roofline position)."""
    units = {u.name: u for u in layer_units(config)}
    rows = []
    for i in config.lrn_after:
        if i not in config.pool_after:
            continue
        conv, pair = units[f"conv{i}+relu{i}"], units[f"lrn{i}+pool{i}"]
        c, k, g, r = conv.in_shape[0], conv.out_shape[0], conv.params["groups"], conv.params["kernel"]
        traffic = conv_lrn_pool_traffic(_numel(conv.in_shape), k * (c // g) * r * r + k, _numel(conv.out_shape),
                                        _numel(pair.out_shape), pair.params["size"], batch=batch_size,
                                        itemsize=dtype_bytes(precision), input_grad=needs_input_grad(conv))
        flops = unit_cost(conv, batch_size, precision).flops + unit_cost(pair, batch_size, precision).flops
        base, eager = traffic["conv+relu|lrn+pool"], traffic["eager"]
        for name, t in traffic.items():
            rows.append({"layer": f"conv{i}+relu{i}+lrn{i}+pool{i}", "pipeline": name, "batch_size": batch_size,
                         "precision": precision, "flops": flops, "bytes_inference": t["inference"],
                         "bytes_train": t["train"], "saved_vs_eager_inference": eager["inference"] - t["inference"],
                         "saved_vs_apart_inference": base["inference"] - t["inference"],
                         "saved_vs_apart_train": base["train"] - t["train"],
                         "intensity": flops / t["inference"]})
    return rows


def _fused_lrn_pool_bytes(unit: "LayerUnit", batch_size: int, s: int, pass_: str) -> int:
    c, h, w = unit.in_shape
    traffic = lrn_max_pool2d_traffic(c, h, w, kernel_size=unit.params["kernel"], stride=unit.params["stride"],
                                     itemsize=s, with_indices=False)
    return batch_size * traffic[f"fused_{pass_}"]


def unit_cost(unit: LayerUnit, batch_size: int, precision: str = "fp32") -> LayerCost:
    """FLOPs and bytes of ``unit`` for a batch of ``batch_size`` in ``precision``."""
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    s = dtype_bytes(precision)
    n = batch_size
    x = n * _numel(unit.in_shape)
    y = n * _numel(unit.out_shape)
    p = unit.params
    if unit.op == "conv2d_relu":
        c, k = unit.in_shape[0], unit.out_shape[0]
        g, r = p["groups"], p["kernel"]
        weights = k * (c // g) * r * r + k
        mac = 2 * y * (c // g) * r * r
        fused = s * (x + weights + y)
        return LayerCost(mac, 2 * y, fused + s * 2 * y, fused)
    if unit.op in ("fc_relu", "fc"):
        n_in, n_out = unit.in_shape[0], unit.out_shape[0]
        weights = n_in * n_out + n_out
        fused = s * (x + weights + y)
        relu = unit.op == "fc_relu"
        return LayerCost(2 * y * n_in, y * (2 if relu else 1), fused + (s * 2 * y if relu else 0), fused)
    if unit.op == "local_response_norm":
        ops = (p["size"] + 5) * x
        return LayerCost(0, ops, s * _lrn_separate_bytes(x, unit.in_shape[0], p["size"]), s * (x + y))
    if unit.op == "max_pool2d":
        ops = (p["kernel"] ** 2 - 1) * y
        return LayerCost(0, ops, s * (x + y), s * (x + y))
    if unit.op == "lrn_max_pool2d":
        lrn_ops = (p["size"] + 5) * x
        pool_ops = (p["kernel"] ** 2 - 1) * y
        separate = s * (_lrn_separate_bytes(x, unit.in_shape[0], p["size"]) + x + y)
        return LayerCost(0, lrn_ops + pool_ops, separate, _fused_lrn_pool_bytes(unit, n, s, "fwd"))
    if unit.op == "avgpool":
        return LayerCost(0, x + y, s * (x + y), s * (x + y))
    if unit.op == "conv2d_relu_lrn":  # a chain (chain_units): eager's bytes, and the fused pipeline's
        k, conv_y = p["conv_shape"][0], n * _numel(p["conv_shape"])
        mac = 2 * conv_y * (unit.in_shape[0] // p["groups"]) * p["kernel"] ** 2
        other = 2 * conv_y + (p["size"] + 5) * conv_y + (p["pool_kernel"] ** 2 - 1) * y
        traffic = _chain_traffic(unit, n, s)
        return LayerCost(mac, other, traffic["eager"]["inference"], traffic["conv+relu+lrn|pool"]["inference"])
    raise ValueError(f"no cost formula for op {unit.op!r}")


def add_rates(row: dict, flops: int, nbytes: int | None, bytes_model: str, batch_size: int) -> dict:
    """FLOPs, bytes, intensity and the achieved rates of a timed row."""
    row["flops"] = flops
    row["bytes_model"] = bytes_model
    if nbytes:
        row["bytes"] = nbytes
        row["intensity"] = flops / nbytes
    ms = row.get("median_ms")
    if ms:
        row["images_per_s"] = batch_size / (ms * 1e-3)
        row["gflops_per_s"] = flops / (ms * 1e-3) / 1e9
        if nbytes:
            row["gbytes_per_s"] = nbytes / (ms * 1e-3) / 1e9
    return row


def runs_fused(unit: LayerUnit, units: list[LayerUnit]) -> bool:
    """A separate LRN or pool unit that the model runs fused with its partner (the fused pair
    of ``units`` holds it), so it is never launched alone."""
    return unit.op in ("local_response_norm", "max_pool2d") and any(
        u.fused_pair and unit.modules[0] in u.modules for u in units)


def needs_input_grad(unit: LayerUnit) -> bool:
    """A training step needs the input gradient of every unit but the one that reads the image."""
    return unit.in_shape[0] != 3


def backward_cost(unit: LayerUnit, batch_size: int, precision: str = "fp32", *,
                  input_grad: bool | None = None) -> tuple[int, int]:
    """(FLOPs, minimum bytes) of the backward a training step runs for ``unit`` (the per-layer
    ``bwd`` rows). conv / linear: the weight gradient has the forward's MACs and the input
    gradient (``input_grad``, default :func:`needs_input_grad`) as many again; element-wise
    work counted like the forward's. Bytes: read the saved input and the incoming gradient,
    write the weight gradient; with the input gradient also read the weights and write it.
    LRN / pool: twice the forward's element-wise ops; read the saved input and the incoming
    gradient, write the input gradient."""
    input_grad = needs_input_grad(unit) if input_grad is None else input_grad
    fwd = unit_cost(unit, batch_size, precision)
    s = dtype_bytes(precision)
    x = batch_size * _numel(unit.in_shape)
    y = batch_size * _numel(unit.out_shape)
    if unit.op in ("conv2d_relu", "fc_relu", "fc"):
        weights = fwd.bytes_fused // s - x - y
        flops = fwd.mac_flops * (2 if input_grad else 1) + fwd.other_flops
        return flops, s * (x + y + weights + ((weights + x) if input_grad else 0))
    if unit.op == "lrn_max_pool2d":
        return 2 * fwd.other_flops, _fused_lrn_pool_bytes(unit, batch_size, s, "bwd")
    if unit.op == "conv2d_relu_lrn":
        flops = fwd.mac_flops * (2 if input_grad else 1) + 2 * fwd.other_flops
        return flops, _chain_traffic(unit, batch_size, s)["conv+relu+lrn|pool"]["bwd"]
    return 2 * fwd.other_flops, s * (x + y + x)


def model_cost(config: AlexNetConfig, batch_size: int, precision: str = "fp32", *, pass_: str = "inference",
               input_size: int | None = None) -> LayerCost:
    """Whole-network cost: the sum over the units that partition the network (fused pairs
    count in ``bytes_fused``, their separate LRN + pool in ``bytes_separate``).

    ``pass_="train"`` gives the training-step FLOPs (``3*fwd - conv1`` MACs, twice the
    element-wise ops); bytes are then not modelled and returned as 0.
    """
    units = layer_units(config, input_size)
    fused_pairs = {m for u in units if u.fused_pair for m in u.modules}
    total = LayerCost(0, 0, 0, 0)
    for u in units:
        if u.fused_pair:
            continue
        cost = unit_cost(u, batch_size, precision)
        if u.modules[0] in fused_pairs:  # lrn_i or pool_i: the fused pair moves the bytes
            cost = LayerCost(cost.mac_flops, cost.other_flops, cost.bytes_separate, 0)
        total = total + cost
    for u in units:
        if u.fused_pair:
            total = total + LayerCost(0, 0, 0, unit_cost(u, batch_size, precision).bytes_fused)
    if pass_ == "inference":
        return total
    if pass_ != "train":
        raise ValueError(f"unknown pass {pass_!r}; choose 'inference' or 'train'")
    first_conv = unit_cost(units[0], batch_size, precision).mac_flops
    return LayerCost(3 * total.mac_flops - first_conv, 2 * total.other_flops, 0, 0)
