"""Tests of the implicit-GEMM convs' launch side (kernels/_conv_launch.py, the conv ops' codegen
specs): dot precision, config tables as data, the fast-path rule and the code-generation contract
(every kernel config and dtype, the launch-faithful specs of both presets)."""

from __future__ import annotations

import importlib

import torch

from alexnet_fast.kernels import configs
from alexnet_fast.kernels._common import KernelSpec
from alexnet_fast.kernels.conv2d_relu import (
    _KERNELS,
    CONFIG_ARCHS,
    DOTS,
    _constexpr_args,
    codegen_specs,
    config_table,
    dot_precision,
)

conv_mod = importlib.import_module("alexnet_fast.kernels.conv2d_relu")  # kernels.conv2d_relu is the function

# --------------------------------------------------------------------------------------
# Launch settings and the code-generation contract
# --------------------------------------------------------------------------------------

def test_dot_precision_follows_cudnn_allow_tf32():
    assert dot_precision(torch.float32, "cuda", allow_tf32=True) == "tf32"
    assert dot_precision(torch.float32, "cuda", allow_tf32=False) == "ieee"
    assert dot_precision(torch.float32, "cpu", allow_tf32=True) == "ieee"
    assert dot_precision(torch.float16, "cuda", allow_tf32=True) == "ieee"


def test_configs_are_data_and_fit_shared_memory():
    """Every GPU config of every arch's tables: tile sizes tensor cores accept, and a worst-case
    (every stage buffered) shared-memory estimate within the arch's per-block limit (sm_80 163 KB,
    also for the gather table, which every arch uses;
    sm_90 and sm_100 227 KB; 4-byte operands in the tf32 and FMA tables). The compile check proper is
    profiling/codegen/."""
    limit = {80: 163 * 1024, 90: 227 * 1024, 100: 227 * 1024, conv_mod.GATHER: 163 * 1024}  # gather: every arch
    for arch in CONFIG_ARCHS + (conv_mod.GATHER,):
        for dot in DOTS:
            table = config_table(arch, dot)
            for kernel in _KERNELS:
                assert table[kernel], (arch, dot, kernel)
                for cfg in table[kernel]:
                    assert {"BLOCK_M", "BLOCK_N", "BLOCK_K", "GROUP_M", "num_warps", "num_stages"} <= set(cfg)
                    assert min(cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]) >= 16
                    size = 2 if dot == "mma" else 4
                    assert (cfg["BLOCK_M"] + cfg["BLOCK_N"]) * cfg["BLOCK_K"] * size * cfg["num_stages"] <= limit[arch]
    assert conv_mod.config_arch((9, 0)) == 90 and conv_mod.config_arch((8, 6)) == 80
    assert conv_mod.config_arch((10, 0)) == 100 and conv_mod.config_arch((10, 3)) == 100  # B200, B300
    assert conv_mod.config_arch((12, 0)) == 80  # an arch without a table of its own: sm_80's
    interp = configs.CONV2D_RELU_INTERPRETER_CONFIG
    assert min(interp["BLOCK_M"], interp["BLOCK_N"], interp["BLOCK_K"]) >= 16


def test_codegen_specs_cover_every_kernel_config_and_dtype():
    """Generic specs: every config of every table (each arch's fast-path tables, the gather and
    FMA tables) for its dtypes, with its archs and autotune positions; the fast path's with what
    fast_path guarantees (unit channel strides, multiples of 16, the image-major walk)."""
    specs = [s for s in codegen_specs() if s.args is None]
    assert all(isinstance(s, KernelSpec) for s in specs)
    seen = {(s.kernel, s.config, s.dtype) for s in specs}
    assert len(seen) == len(specs), "duplicate spec"
    precisions = {"fp32": ("tf32", "ieee"), "fp16": ("ieee",), "bf16": ("ieee",)}
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    for name, fn in _KERNELS.items():
        mine = [s for s in specs if s.fn is fn]
        expected = 0
        for dtype, precs in precisions.items():
            for precision in precs:
                dot = conv_mod.dot_kind(torch_dtype[dtype], precision)
                for fast in ((True, False) if dot != "fma" else (False,)):
                    orders = 2 if "FLAT_K" in fn.arg_names and not fast else 1
                    tables = {arch: config_table(arch if fast else conv_mod.GATHER, dot)[name] for arch in CONFIG_ARCHS}
                    expected += orders * len({conv_mod._config_name(c) for cfgs in tables.values() for c in cfgs})
                    suffix = conv_mod._path_suffix(dot, fast)
                    for arch, cfgs in tables.items():  # each entry: a spec for its arch, with its rank
                        for rank, cfg in enumerate(cfgs):
                            hits = [s for s in mine if s.dtype == dtype and s.extra["input_precision"] == precision
                                    and s.config.startswith(conv_mod._config_name(cfg) + suffix)
                                    and ("gather" in s.config) == (suffix == "_gather")]
                            assert hits and all(arch in s.extra["archs"] and s.extra["autotune_rank"][arch] == rank
                                                for s in hits), (name, dtype, precision, arch, cfg)
                            for spec in hits if fast else ():
                                units, multiples, _, walk = conv_mod._FAST_PATH_ARGS[name]
                                assert all(spec.signature[a] == "constexpr" and spec.constexprs[a] == 1 for a in units)
                                assert set(spec.extra["divisible_by_16"]) == set(multiples) | {"BATCH"}
                                assert spec.constexprs[walk] and not spec.constexprs.get("FLAT_K", False)
        assert len(mine) == expected, name
        for spec in mine:
            assert list(spec.signature) == fn.arg_names
            constexprs = [n for n, t in spec.signature.items() if t == "constexpr"]
            assert set(_constexpr_args(fn)) <= set(constexprs) and sorted(spec.constexprs) == sorted(constexprs)
            ptr = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}[spec.dtype]
            assert all(t in (ptr, "*fp32", "i32", "constexpr") for t in spec.signature.values())
            assert spec.expects_mma == (spec.dtype != "fp32" or spec.constexprs["INPUT_PRECISION"] == "tf32")


def test_fast_path_takes_channels_last_launches_at_batches_the_tiles_divide():
    """conv2-conv5 channels-last at batch 128 take the arch's tables; NCHW, conv1 (the flat
    walk), odd channel counts and a batch the tiles do not divide take the gather table."""
    x = torch.empty((128, 256, 13, 13), device="meta").to(memory_format=torch.channels_last)
    w = torch.empty((384, 256, 3, 3), device="meta").to(memory_format=torch.channels_last)
    y = torch.empty((128, 384, 13, 13), device="meta").to(memory_format=torch.channels_last)

    def fast(x, w, y, arch=90):
        args, _ = conv_mod._fwd_launch(x, w, None, y, (1, 1), (1, 1), 1, True, "ieee")
        return conv_mod.fast_path("fwd", args, arch, "mma")

    assert fast(x, w, y) and fast(x, w, y, arch=80)
    assert not fast(x.contiguous(), w.contiguous(), y.contiguous())  # NCHW: gathered
    assert not fast(x[:32], w, y[:32])  # 32 is no multiple of the 128-row tiles
    assert fast(x[:64], w, y[:64]) == (conv_mod.fast_batch_multiple("fwd", 90, "mma") <= 64)
    odd = torch.empty((128, 40, 13, 13), device="meta").to(memory_format=torch.channels_last)
    assert not fast(odd, torch.empty((384, 40, 3, 3), device="meta").to(memory_format=torch.channels_last), y)
    assert not conv_mod.fast_path("fwd", {"FLAT_K": True}, 90, "mma")  # conv1's 3 channels


def test_codegen_real_shape_specs_are_the_launches_of_both_presets():
    """Launch-faithful specs: every conv layer of both presets, each tensor-core config of each
    arch's tables for the three kernels (conv1 has no dgrad: the image needs no gradient), fp16,
    bf16, TF32, with the arguments the launchers pass for channels-last activations and KRSC
    weights: unit channel strides and the channels per group as an argument (what lets the
    compiler prove 16-byte aligned, contiguous loads along the reduction), and the launch-time
    constexprs of a batch of 128: the image-major walks, whole channel blocks where they divide."""
    from alexnet_fast.profiling.codegen.arch import SMS
    from alexnet_fast.profiling.codegen.specs import alexnet_conv_layers

    layers = alexnet_conv_layers()
    real = [s for s in codegen_specs(layers, (128,), SMS) if s.args is not None]
    assert not [s for s in codegen_specs() if s.args is not None]  # generic without launch shapes
    assert len(layers) == 10
    assert len({(s.kernel, s.config, s.dtype, s.shape) for s in real}) == len(real)
    index = {(s.kernel, s.config, s.dtype, s.shape): s for s in real}
    for dtype_name, dtype, precision in (("fp16", torch.float16, "ieee"), ("bf16", torch.bfloat16, "ieee"),
                                         ("fp32", torch.float32, "tf32")):
        for arch in CONFIG_ARCHS:
            launches = conv_mod.real_launches(layers, 128, dtype, precision, arch, SMS[arch])
            assert len(launches) == 3 * len(layers) - 2  # no conv1 dgrad in either preset
            for name, label, runtime, constexprs, grid in launches:
                dot = conv_mod.dot_kind(dtype, precision)
                fast = conv_mod.fast_path(name, {**runtime, **constexprs}, arch, dot)
                assert fast == ("conv1" not in label), label  # conv1: the flat walk, gathered
                for rank, cfg in enumerate(config_table(arch if fast else conv_mod.GATHER, dot)[name]):
                    config = (conv_mod._config_name(cfg) + conv_mod._path_suffix(dot, fast)
                              + ("_tf32" if dtype == torch.float32 else ""))
                    spec = index[(_KERNELS[name].__name__, config, dtype_name, label)]
                    assert arch in spec.extra["archs"] and spec.extra["autotune_rank"][arch] == rank
                    assert spec.extra["grid"] == grid(cfg)
    for spec in real:
        fn = spec.fn
        assert set(spec.args) | set(spec.constexprs) == set(fn.arg_names)
        assert spec.expects_mma and spec.dtype in ("fp16", "bf16", "fp32")
        channel_strides = [v for k, v in spec.args.items() if k in ("sx_c", "sw_c", "sg_k", "sy_k")]
        assert channel_strides and all(v == 1 for v in channel_strides), spec.shape
        per_group = spec.args.get("C_PER_GROUP", spec.args.get("K_PER_GROUP"))
        if "conv1" not in spec.shape:
            assert per_group % 16 == 0, spec.shape
            image_major = spec.constexprs.get("IMAGE_ROWS", spec.constexprs.get("IMAGE_LANES"))
            assert image_major, (spec.kernel, spec.config, spec.shape)  # batch 128: a multiple of every block
        if "EVEN_K" in spec.constexprs:
            assert spec.constexprs["EVEN_K"] == (per_group % spec.constexprs["BLOCK_K"] == 0), spec.shape
