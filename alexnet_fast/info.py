"""`alexnet-fast info`: what this machine offers the study."""

from __future__ import annotations

import argparse
import json
import os
import platform


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON object instead of text")


def nvml_status() -> dict:
    """NVML availability and, where it works, the driver and GPU names."""
    try:
        import pynvml
    except ImportError as e:
        return {"available": False, "reason": f"nvidia-ml-py not installed ({e})"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return {"available": False, "reason": str(e)}
    try:
        count = pynvml.nvmlDeviceGetCount()
        gpus = [pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]
        driver = pynvml.nvmlSystemGetDriverVersion()
        return {"available": True, "driver": driver, "gpus": [g if isinstance(g, str) else g.decode() for g in gpus]}
    finally:
        pynvml.nvmlShutdown()


def collect() -> dict:
    import torch

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = None
    from alexnet_fast.kernels._common import is_interpreting

    cuda = torch.cuda.is_available()
    devices = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else []
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "triton": triton_version,
        "triton_mode": "interpreted (TRITON_INTERPRET=1)" if is_interpreting() else (
            "compiled" if cuda else "unavailable: no CUDA device (set TRITON_INTERPRET=1 to interpret on CPU)"),
        "cuda_devices": devices,
        "nvml": nvml_status(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    nvml = info.pop("nvml")
    width = max(map(len, info)) + 1
    for key, value in info.items():
        if key == "cuda_devices":
            value = ", ".join(value) or "none"
        print(f"{key:<{width}} {value}")
    text = f"available, driver {nvml['driver']}, GPUs: {', '.join(nvml['gpus'])}" if nvml["available"] \
        else f"unavailable ({nvml['reason']})"
    print(f"{'nvml':<{width}} {text}")
    return 0
