"""The GPUs the code-generation check models, as data: one entry per SM arch in each table.

Adding an arch (say sm_100) is adding its entry to every table here; the check compiles for the
archs of ``SHARED_LIMIT_BYTES`` and reads the others for its figures (a table without the arch
leaves those figures empty: ``issue_figures`` and ``occupancy_figures`` skip it)."""

from __future__ import annotations

DEFAULT_ARCHS = (80, 90)  # what `alexnet-fast codegen` compiles for without --arch

# The modelled device of each arch: its SMs (the waves of a launch; wgrad's split-K).
# sm_80: A100 SXM (108 SMs); sm_90: H100 / H200 SXM (132 SMs).
SMS = {80: 108, 90: 132}

# Most shared memory (static + dynamic) one thread block may use, by SM arch: the device's
# cudaDevAttrMaxSharedMemoryPerBlockOptin. A100 (sm_80): 164 KB of shared memory per SM, of
# which a block may opt in to 163 KB = 166,912 B (1 KB per block is reserved by the system).
# H100 (sm_90): 228 KB per SM, 227 KB = 232,448 B per block. Both from the CUDA C++
# Programming Guide, "Technical Specifications per Compute Capability". The archs of this table
# are the archs the check compiles for.
SHARED_LIMIT_BYTES = {80: 166_912, 90: 232_448}

# Dense tensor-core FLOP per clock per SM, by arch and the dot's input kind ("16bit": fp16 /
# bf16 with fp32 accumulation; "tf32"), from NVIDIA's peak figures over SMs x boost clock:
# sm_80, A100 SXM: 312 TFLOP/s fp16 (156 tf32) / (108 SMs x 1.41 GHz) = 2,048 (1,024) -- 4 tensor
#   cores of 256 fp16 FMA per clock (NVIDIA A100 Tensor Core GPU Architecture whitepaper, 2020);
# sm_90, H100 SXM5: 989.4 TFLOP/s fp16 (494.7 tf32) / (132 SMs x 1.83 GHz) = 4,096 (2,048) -- 4
#   tensor cores of 512 fp16 FMA per clock (NVIDIA H100 Tensor Core GPU Architecture whitepaper, 2022).
TENSOR_FLOP_PER_CLOCK = {80: {"16bit": 2048, "tf32": 1024}, 90: {"16bit": 4096, "tf32": 2048}}
# The source of each arch's tensor rate, as the report prints it.
TENSOR_RATE_SOURCES = {
    80: "A100 SXM: 312 TFLOP/s fp16, 156 tf32, 108 SMs, 1.41 GHz (NVIDIA A100 Tensor Core GPU Architecture whitepaper)",
    90: "H100 SXM5: 989.4 TFLOP/s fp16, 494.7 tf32, 132 SMs, 1.83 GHz (NVIDIA H100 Tensor Core GPU Architecture "
        "whitepaper)",
}
# Warp schedulers per SM (sm_80, sm_90): one per sub-partition, each issuing one warp instruction
# per clock (same whitepapers: "four processing blocks (SM sub-partitions) ... one warp scheduler,
# one dispatch unit (32 threads/clk)").
WARP_SCHEDULERS_PER_SM = 4

# Per-SM resources by arch, for the CTAs a launch can keep resident (CUDA C++ Programming Guide,
# "Technical Specifications per Compute Capability" and the occupancy calculator's constants):
# 64K 32-bit registers per SM, allocated per warp in units of 256 (8 per thread); at most 64
# resident warps and 32 blocks per SM; shared memory per SM 164 KB (sm_80) / 228 KB (sm_90), of
# which each block's 1 KB system reservation counts against it.
REGISTERS_PER_SM = {80: 65_536, 90: 65_536}
REGISTER_ALLOCATION_UNIT = 256  # registers, per warp
SHARED_PER_SM_BYTES = {80: 167_936, 90: 233_472}
SHARED_RESERVED_PER_BLOCK = 1024
MAX_WARPS_PER_SM = {80: 64, 90: 64}
MAX_BLOCKS_PER_SM = 32
