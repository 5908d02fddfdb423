"""Test-only Triton kernels for the code-generation check (tests/test_codegen_*.py).

Shaped like an op module of ``kernels/``: @triton.jit kernels plus ``codegen_specs()``.
Row-major contiguous matrices; fp16 in, fp32 accumulation. The launch-faithful specs (``args``
given) are checked as launches at those argument values: the GEMM pipelines like the reference
GEMM, the strided gather cannot, the GEMM with a division in its loop pipelines but fails the loop
gate, the strided copy loads 2 bytes per access unless its stride is 1.
"""

import dataclasses

import torch
import triton
import triton.language as tl

from alexnet_fast.kernels._common import KernelSpec


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
def fixture_gather_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak,
                                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """C = A @ B with A gathered through runtime strides along M and along K (the reduction),
    as an implicit GEMM over NCHW activations does: no axis of A is contiguous, so every A
    element is a separate 16-bit load and nothing can be copied asynchronously."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        a = tl.load(a_ptr + rm[:, None] * stride_am + (k + rk)[None, :] * stride_ak,
                    mask=(rm[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k + rk)[:, None] * N + rn[None, :],
                    mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit
def fixture_div_matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, D,
                              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """fixture_matmul_kernel with the rows of A recomputed every K-step through a division by
    the runtime D: (rm * D + k % D) // D is rm again, so the loads are the same (16-byte,
    pipelined), but each row costs an integer division in the loop -- the address math the
    conv kernels did before their walk was made incremental (issue 20)."""
    rm = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k in range(0, K, BLOCK_K):
        rows = (rm * D + k % D) // D
        a = tl.load(a_ptr + rows[:, None] * K + (k + rk)[None, :],
                    mask=(rows[:, None] < M) & ((k + rk)[None, :] < K), other=0.0)
        b = tl.load(b_ptr + (k + rk)[:, None] * N + rn[None, :],
                    mask=((k + rk)[:, None] < K) & (rn[None, :] < N), other=0.0)
        acc = tl.dot(a, b, acc)
    tl.store(c_ptr + rm[:, None] * N + rn[None, :], acc.to(c_ptr.dtype.element_ty),
             mask=(rm[:, None] < M) & (rn[None, :] < N))


@triton.jit(do_not_specialize=["n_out"])
def fixture_strided_copy_kernel(x_ptr, y_ptr, n, stride, n_out, BLOCK: tl.constexpr):
    """y[i] = x[i * stride]: a memory-bound kernel whose loads are as wide as ``stride`` allows
    (stride 1 -- a constexpr at launch -- gives 16-byte loads, any other stride 2-byte ones).
    ``n_out`` bounds the stores and is never specialized (no divisibility, never a constexpr),
    as the decorator says."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs * stride, mask=offs < n)
    tl.store(y_ptr + offs, x, mask=offs < n_out)


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


def _faithful_matmul_spec(kernel, config, args, num_warps=4, num_stages=3, **blocks):
    return KernelSpec(op="fixture_pipeline", kernel=kernel.__name__, config=config, fn=kernel,
                      constexprs=blocks, num_warps=num_warps, num_stages=num_stages, dtype="fp16", expects_mma=True,
                      args={"a_ptr": torch.float16, "b_ptr": torch.float16, "c_ptr": torch.float16, **args},
                      shape="M=4096 N=256 K=384")


def _copy_spec(stride):
    return KernelSpec(op="fixture_load_width", kernel="fixture_strided_copy_kernel", config="b1024_w4",
                      fn=fixture_strided_copy_kernel, constexprs={"BLOCK": 1024}, num_warps=4, num_stages=1,
                      dtype="fp16", args={"x_ptr": torch.float16, "y_ptr": torch.float16, "n": 65536, "stride": stride,
                            "n_out": 65536},
                      shape=f"stride {stride}", extra={"min_load_bytes": 8})


def codegen_specs():
    return [
        # launch-faithful, checked against the reference GEMM of their tile (128x64x32 w4 s3):
        # a plain GEMM (pipelines) and one that gathers A along the reduction axis (cannot)
        _faithful_matmul_spec(fixture_matmul_kernel, "m128n64k32_w4_s3", {"M": 4096, "N": 256, "K": 384},
                              BLOCK_M=128, BLOCK_N=64, BLOCK_K=32),
        _faithful_matmul_spec(fixture_gather_matmul_kernel, "m128n64k32_w4_s3",
                              {"M": 4096, "N": 256, "K": 384, "stride_am": 363, "stride_ak": 3025},
                              BLOCK_M=128, BLOCK_N=64, BLOCK_K=32),
        # pipelines like the plain GEMM, but divides by a runtime value in its loop: fails the loop gate
        _faithful_matmul_spec(fixture_div_matmul_kernel, "m128n64k32_w4_s3", {"M": 4096, "N": 256, "K": 384, "D": 3},
                              BLOCK_M=128, BLOCK_N=64, BLOCK_K=32),
        # memory-bound, fp16: 8-byte loads required
        _copy_spec(1),
        _copy_spec(3),
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
