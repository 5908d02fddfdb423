"""The reference row of the code-generation check: Triton's blocked GEMM, tutorial form.

``matmul_kernel`` is the kernel of Triton's matrix-multiplication tutorial
(python/tutorials/03-matrix-multiplication.py): grouped program ordering, row-major A [M, K]
and B [K, N] addressed through their strides, masked only along K, fp32 accumulation. It is
written here (not imported) so the check compiles a fixed text, with one addition: the
``INPUT_PRECISION`` of ``tl.dot`` ("tf32" for fp32 inputs on tensor cores, as the convs use).

The codegen check (``profiling/codegen/``) compiles it, launch-faithfully, with the tile, warps
and stages of every tensor-core conv row (``reference_ref``), at M = N = K = 4096 (multiples of 16) and unit
inner strides (which Triton's launcher turns into constexpr 1): what Triton makes of a plain
GEMM at that tile. Each conv row is then checked against it (buffers, asynchronous copies,
wgmma wait depth, registers).
"""

from __future__ import annotations

import re

import triton
import triton.language as tl

OP = "reference_gemm"
KERNEL = "matmul_kernel"
MODULE = __name__
SIZE = 4096  # M = N = K of the reference launch: a multiple of 16, like the tutorial's benchmark
GROUP_SIZE_M = 8


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                  stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                  BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr, BLOCK_SIZE_K: tl.constexpr,
                  GROUP_SIZE_M: tl.constexpr, INPUT_PRECISION: tl.constexpr):
    """C = A @ B (Triton tutorial 03). Grid: cdiv(M, BLOCK_SIZE_M) * cdiv(N, BLOCK_SIZE_N)."""
    pid = tl.program_id(axis=0)
    num_pid_m = tl.cdiv(M, BLOCK_SIZE_M)
    num_pid_n = tl.cdiv(N, BLOCK_SIZE_N)
    num_pid_in_group = GROUP_SIZE_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_SIZE_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_SIZE_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    offs_am = (pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)) % M
    offs_bn = (pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)) % N
    offs_k = tl.arange(0, BLOCK_SIZE_K)
    a_ptrs = a_ptr + (offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak)
    b_ptrs = b_ptr + (offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn)

    accumulator = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_SIZE_K)):
        a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k * BLOCK_SIZE_K, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k * BLOCK_SIZE_K, other=0.0)
        accumulator = tl.dot(a, b, accumulator, input_precision=INPUT_PRECISION)
        a_ptrs += BLOCK_SIZE_K * stride_ak
        b_ptrs += BLOCK_SIZE_K * stride_bk
    c = accumulator.to(c_ptr.dtype.element_ty)

    offs_cm = pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)
    offs_cn = pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)
    c_ptrs = c_ptr + stride_cm * offs_cm[:, None] + stride_cn * offs_cn[None, :]
    c_mask = (offs_cm[:, None] < M) & (offs_cn[None, :] < N)
    tl.store(c_ptrs, c, mask=c_mask)


# "128x64x32 w8 s3" or "128x64x32 w8 s3 tf32"
_CONFIG = re.compile(r"^(\d+)x(\d+)x(\d+) w(\d+) s(\d+)(?: (tf32|tf32x3|ieee|bf16x3|bf16x6))?$")
_DTYPES = {"fp32", "fp16", "bf16"}


def reference_config(tile: tuple[int, int, int], num_warps: int, num_stages: int, dtype: str,
                     input_precision: str | None) -> str:
    """The config name of the reference row for a tile (BLOCK_M, BLOCK_N, BLOCK_K), launch
    settings and precision (the dot's input precision matters for fp32 only)."""
    m, n, k = tile
    name = f"{m}x{n}x{k} w{num_warps} s{num_stages}"
    if dtype == "fp32":
        name += f" {input_precision or 'tf32'}"
    return name


def spec_for(config: str, dtype: str):
    """The launch-faithful KernelSpec of the reference row ``config`` (see ``reference_config``)."""
    import torch

    from alexnet_fast.kernels._common import KernelSpec

    found = _CONFIG.match(config)
    if not found or dtype not in _DTYPES:
        raise ValueError(f"{OP}: no reference GEMM config {config!r} / {dtype!r} "
                         "(expected 'MxNxK wW sS [precision]' and fp32/fp16/bf16)")
    m, n, k, warps, stages, precision = found.groups()
    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    precision = precision or ("tf32" if dtype == "fp32" else "ieee")
    args = {"a_ptr": torch_dtype, "b_ptr": torch_dtype, "c_ptr": torch_dtype, "M": SIZE, "N": SIZE, "K": SIZE,
            "stride_am": SIZE, "stride_ak": 1, "stride_bk": SIZE, "stride_bn": 1, "stride_cm": SIZE, "stride_cn": 1}
    return KernelSpec(
        op=OP, kernel=KERNEL, config=config, fn=matmul_kernel,
        constexprs={"BLOCK_SIZE_M": int(m), "BLOCK_SIZE_N": int(n), "BLOCK_SIZE_K": int(k),
                    "GROUP_SIZE_M": GROUP_SIZE_M, "INPUT_PRECISION": precision},
        num_warps=int(warps), num_stages=int(stages), dtype=dtype, expects_mma=True,
        extra={"gemm_tile": (int(m), int(n), int(k)), "input_precision": precision, "is_reference": True},
        args=args, shape=f"M=N=K={SIZE} row-major",
    )
