"""Test-only Triton kernels for the code-generation check (tests/test_codegen.py).

Shaped like an op module of ``kernels/``: @triton.jit kernels plus ``codegen_specs()``.
Row-major contiguous matrices; fp16 in, fp32 accumulation.
"""

import dataclasses

import triton
import triton.language as tl

from kernels._common import KernelSpec


@triton.jit
def fixture_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K,
                          BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """C[M, N] = A[M, K] @ B[K, N], all row-major contiguous; tl.dot accumulates in fp32."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + rm[:, None] * K + (k + rk)[None, :],
                    mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k + rk)[:, None] * N + rn[None, :],
                    mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def _relu(x):
    """Device helper: covered through its caller, needs no spec of its own."""
    return tl.maximum(x, 0.0)


@triton.jit
def fixture_relu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    """y = relu(x) elementwise over n contiguous fp32 values."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n)
    tl.store(y_ptr + offs, _relu(x), mask=offs < n)


@triton.jit
def fixture_normalize_kernel(x_ptr, y_ptr, BLOCK: tl.constexpr):
    """y = x / sum(x * x) over one block of BLOCK fp32 values: every x stays live across the sum."""
    offs = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs)
    tl.store(y_ptr + offs, x / tl.sum(x * x, axis=0))


def _matmul_spec(config, num_warps, num_stages, **blocks):
    return KernelSpec(
        op="fixture_matmul", kernel="fixture_matmul_kernel", config=config, fn=fixture_matmul_kernel,
        signature={"a_ptr": "*fp16", "b_ptr": "*fp16", "c_ptr": "*fp16", "M": "i32", "N": "i32", "K": "i32",
                   "BLOCK_M": "constexpr", "BLOCK_N": "constexpr", "BLOCK_K": "constexpr"},
        constexprs=blocks, num_warps=num_warps, num_stages=num_stages, dtype="fp16", expects_mma=True,
        extra={"divisible_by_16": ("M", "N", "K")})


def codegen_specs():
    return [
        # pipelined (cp.async, 3 stages) and wgmma-eligible on sm_90: 4 warps, BLOCK_M % 64 == 0
        _matmul_spec("m128n64k32_w4_s3", 4, 3, BLOCK_M=128, BLOCK_N=64, BLOCK_K=32),
        # too small for wgmma (BLOCK_M 32 < 64): sm_90 falls back to mma.sync (HMMA); sweep-only
        dataclasses.replace(_matmul_spec("m32n32k32_w2_s2", 2, 2, BLOCK_M=32, BLOCK_N=32, BLOCK_K=32),
                            extra={"divisible_by_16": ("M", "N", "K"), "in_use": False}),
        KernelSpec(op="fixture_relu", kernel="fixture_relu_kernel", config="b1024_w4", fn=fixture_relu_kernel,
                   signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
                   constexprs={"BLOCK": 1024}, num_warps=4, num_stages=1, dtype="fp32", expects_mma=False),
        # register-hungry on purpose: 16384 values over 1 warp = 512 live fp32 values per thread,
        # twice the 255-register limit, so ptxas must spill
        KernelSpec(op="fixture_spill", kernel="fixture_normalize_kernel", config="b16384_w1",
                   fn=fixture_normalize_kernel, signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "BLOCK": "constexpr"},
                   constexprs={"BLOCK": 16384}, num_warps=1, num_stages=1, dtype="fp32", expects_mma=False),
        # does not compile: tl.arange needs a power-of-two length
        KernelSpec(op="fixture_broken", kernel="fixture_relu_kernel", config="b1000_w4", fn=fixture_relu_kernel,
                   signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
                   constexprs={"BLOCK": 1000}, num_warps=4, num_stages=1, dtype="fp32"),
        # invalid spec: the signature misses the argument n
        KernelSpec(op="fixture_broken", kernel="fixture_relu_kernel", config="no_n", fn=fixture_relu_kernel,
                   signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "BLOCK": "constexpr"},
                   constexprs={"BLOCK": 1024}, num_warps=4, num_stages=1, dtype="fp32"),
    ]
