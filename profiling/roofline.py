"""Device peaks for the roofline: a table of known GPUs, and measured peaks elsewhere.

* Known GPUs are matched by device name (``torch.cuda.get_device_name``): dense (no
  sparsity) tensor-core / CUDA-core peaks per precision in TFLOP/s and DRAM bandwidth in
  TB/s, from NVIDIA's datasheets (B200 from the HGX B200 one; H100 SXM and A100 figures as in
  ``shared/reference/alexnet.md``). A name matches a row only word for word (see
  :data:`KNOWN_GPUS`): an unlisted variant is measured, never given a sibling's figures.
* A CPU (or a GPU not in the table) gets peaks *measured* by :func:`measure_peaks`: a large
  GEMM per precision (FLOP/s; the faster of torch.mm and oneDNN's matmul) and a large
  tensor copy (bytes read + written per second), each the fastest of its repeats timed with
  :func:`profiling.timers.measure`. Measured peaks are attainable peaks, not datasheet
  peaks, so a layer at 100% of them is as fast as this machine's best GEMM.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from alexnet_fast.precision import policy
from alexnet_fast.profiling.timers import measure

__all__ = ["Peaks", "KNOWN_GPUS", "known_peaks", "measure_peaks", "device_peaks"]


@dataclass(frozen=True)
class Peaks:
    """Compute peaks (GFLOP/s per precision) and memory bandwidth (GB/s) of one device."""

    device: str
    gflops: dict  # precision -> GFLOP/s
    gbytes_per_s: float
    source: str  # "datasheet: ..." or "measured: ..."

    def ridge(self, precision: str) -> float:
        """Arithmetic intensity (FLOP/byte) where the roofline turns from memory- to compute-bound."""
        return self.gflops[precision] / self.gbytes_per_s


# (words the device name must hold, words it may hold besides, label, {precision: dense TFLOP/s},
#  TB/s). The name (lower-cased) is split into words at every non-alphanumeric character; a row
# matches only if every word of the name is one of its own words or "nvidia", so a variant the
# table does not know ("GH200", "H200 NVL", "H100 80GB HBM2e") gets no row: it is measured.
# First match wins. B200 (HGX B200, 1,000 W; torch names it "NVIDIA B200"): NVIDIA's HGX B200
# figures for the 8-GPU board, per GPU and without sparsity (halved): FP16/BF16 tensor 36 PFLOP/s
# sparse -> 2.25 PFLOP/s dense, TF32 18 -> 1.125, FP32 600 TFLOP/s -> 75, HBM3e 64 TB/s -> 8;
# 2.25 PFLOP/s is 148 SMs x 8,192 dense 16-bit FLOP per clock x 1.86 GHz (the codegen check's
# sm_100 constant). GB200's B200 runs at another power and clock: not listed, so measured.
KNOWN_GPUS: list[tuple[tuple[str, ...], tuple[str, ...], str, dict[str, float], float]] = [
    (("b200",), ("sxm", "sxm6", "180gb", "192gb", "hbm3e"), "B200 (HGX B200)",
     {"fp32": 75, "tf32": 1125, "fp16": 2250, "bf16": 2250}, 8.0),
    (("h200",), ("sxm", "sxm5", "141gb", "hbm3e"), "H200 SXM",
     {"fp32": 67, "tf32": 495, "fp16": 989, "bf16": 989}, 4.8),
    (("h100", "pcie"), ("80gb",), "H100 PCIe", {"fp32": 51, "tf32": 378, "fp16": 756, "bf16": 756}, 2.0),
    (("h100", "nvl"), ("94gb",), "H100 NVL", {"fp32": 60, "tf32": 418, "fp16": 835, "bf16": 835}, 3.9),
    (("h100",), ("sxm", "sxm5", "80gb", "hbm3"), "H100 SXM",
     {"fp32": 67, "tf32": 495, "fp16": 989, "bf16": 989}, 3.35),
    (("a100", "80gb", "pcie"), (), "A100 80GB PCIe", {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312}, 1.935),
    (("a100", "80gb"), ("sxm", "sxm4"), "A100 80GB SXM", {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312}, 2.04),
    (("a100",), ("sxm", "sxm4", "pcie", "40gb"), "A100 40GB",
     {"fp32": 19.5, "tf32": 156, "fp16": 312, "bf16": 312}, 1.56),
]


def known_peaks(device_name: str) -> Peaks | None:
    """Datasheet peaks of a GPU by its name, or None if no row of :data:`KNOWN_GPUS` matches
    it exactly (every word of the name is one of the row's)."""
    words = set(re.split(r"[^a-z0-9]+", device_name.lower())) - {"", "nvidia"}
    for required, optional, label, tflops, tbs in KNOWN_GPUS:
        if set(required) <= words and words <= set(required) | set(optional):
            return Peaks(device_name, {p: v * 1e3 for p, v in tflops.items()}, tbs * 1e3,
                         f"datasheet: NVIDIA {label}, dense")
    return None


def _gemm_paths(a: torch.Tensor, b: torch.Tensor):
    """(name, fn) of the ways to run ``a @ b`` here: torch.mm (MKL / cuBLAS) and, on CPU,
    oneDNN's matmul (the library the convolutions use; MKL takes slower paths on AMD CPUs:
    measured here 52 vs 120-222 GFLOP/s on one core)."""
    paths = [("torch.mm", lambda: torch.mm(a, b))]
    if a.device.type == "cpu" and torch.backends.mkldnn.is_available():
        try:
            a_dnn, b_t_dnn = a.to_mkldnn(), b.t().contiguous().to_mkldnn()
            torch._C._nn.mkldnn_linear(a_dnn, b_t_dnn)  # y = a @ b (weight is b transposed)
            paths.append(("oneDNN", lambda: torch._C._nn.mkldnn_linear(a_dnn, b_t_dnn)))
        except (RuntimeError, AttributeError):  # dtype or build without oneDNN linear
            pass
    return paths


def measure_peaks(device: str = "cpu", precisions: tuple[str, ...] = ("fp32",), *, gemm_n: int | None = None,
                  copy_mib: int | None = None, repeats: int = 10, threads: int | None = None) -> Peaks:
    """Attainable peaks of ``device``: GFLOP/s of an ``n x n @ n x n`` GEMM per precision
    (``2 n^3`` FLOPs) and GB/s of copying a ``copy_mib`` MiB tensor (read + write). Defaults
    fit the device: CPU 2048 / 256 MiB, GPU 8192 / 2048 MiB.

    A peak is a best case: the fastest repeat, of the fastest GEMM library (:func:`_gemm_paths`).
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    n = gemm_n or (8192 if cuda else 2048)
    mib = copy_mib or (2048 if cuda else 256)
    if "tf32" in precisions and not cuda:
        raise ValueError("tf32 is a CUDA (Ampere or newer) precision; a CPU has no tf32 GEMM")
    gflops = {}
    for precision in precisions:
        prec = policy(precision)  # a GEMM peak is of the compute dtype: the operands are cast to it
        a = torch.randn(n, n, device=dev).to(prec.dtype)
        b = torch.randn(n, n, device=dev).to(prec.dtype)
        best = {}
        with prec.flags():
            for name, fn in _gemm_paths(a, b):
                t = measure(fn, device=dev, warmup=2, repeats=repeats, threads=threads)
                best[name] = 2 * n**3 / (t.min_ms * 1e-3) / 1e9
        gflops[precision] = max(best.values())
        del a, b
    src = torch.empty(mib * 2**20 // 4, dtype=torch.float32, device=dev).fill_(1.0)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), device=dev, warmup=2, repeats=repeats, threads=threads)
    gbs = 2 * src.numel() * 4 / (t.min_ms * 1e-3) / 1e9
    from alexnet_fast.profiling.results import device_name

    return Peaks(device_name(device), gflops, gbs,
                 f"measured: best of {repeats} of a {n}x{n} GEMM (torch.mm or oneDNN) and a {mib} MiB copy, "
                 f"{t.threads} threads")


def device_peaks(device: str = "cpu", precisions: tuple[str, ...] = ("fp32",), **measure_kwargs) -> Peaks:
    """Datasheet peaks for a known GPU, else measured peaks (CPU, unknown GPU)."""
    if torch.device(device).type == "cuda":
        from alexnet_fast.profiling.results import device_name

        peaks = known_peaks(device_name(device))
        if peaks is not None:
            return peaks
    return measure_peaks(device, precisions, **measure_kwargs)
