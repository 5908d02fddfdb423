"""Device peaks: the known-GPU table by name, measured peaks elsewhere."""

import pytest
import torch

from alexnet_fast.profiling.roofline import _gemm_paths, device_peaks, known_peaks, measure_peaks


@pytest.mark.parametrize("name, label, bf16, fp32, tbs", [
    ("NVIDIA B200", "B200", 2250, 75, 8.0),
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989, 67, 3.35),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756, 51, 2.0),
    ("NVIDIA H200", "H200 SXM", 989, 67, 4.8),
    ("NVIDIA A100-SXM4-80GB", "A100 80GB", 312, 19.5, 2.04),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB", 312, 19.5, 1.56),
    ("NVIDIA A100 80GB PCIe", "A100 80GB PCIe", 312, 19.5, 1.935),
    ("NVIDIA A100-PCIE-40GB", "A100 40GB", 312, 19.5, 1.56),
])
def test_known_gpus_by_name(name, label, bf16, fp32, tbs):
    peaks = known_peaks(name)
    assert label in peaks.source and "dense" in peaks.source
    assert peaks.gflops["bf16"] == bf16 * 1e3 and peaks.gflops["fp32"] == fp32 * 1e3
    assert peaks.gbytes_per_s == tbs * 1e3
    assert peaks.ridge("bf16") == pytest.approx(bf16 / tbs)


@pytest.mark.parametrize("name", ["NVIDIA GH200 480GB", "NVIDIA GB200", "NVIDIA H200 NVL", "NVIDIA H100 80GB HBM2e", "NVIDIA H800",
                                  "NVIDIA A100X"])
def test_unlisted_variants_of_known_gpus_get_no_sibling_figures(name):
    assert known_peaks(name) is None


def test_unknown_device_is_measured():
    assert known_peaks("NVIDIA GeForce GTX 580") is None
    peaks = device_peaks("cpu", gemm_n=128, copy_mib=4, repeats=2, threads=1)
    assert peaks.source.startswith("measured") and "1 threads" in peaks.source
    assert peaks.gflops["fp32"] > 0 and peaks.gbytes_per_s > 0
    with pytest.raises(ValueError, match="tf32"):
        measure_peaks("cpu", ("tf32",))


def test_every_gemm_path_computes_the_product():
    a, b = torch.randn(48, 32), torch.randn(32, 40)
    paths = dict(_gemm_paths(a, b))
    assert "torch.mm" in paths
    for name, fn in paths.items():
        out = fn()
        torch.testing.assert_close(out.to_dense() if out.is_mkldnn else out, a @ b, msg=name)
