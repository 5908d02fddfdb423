"""Preflight: what a run needs, checked in seconds before its first cell.

The first GPU run of a study is short and rare; a missing C compiler found by the first
Triton launch, three minutes in, costs the run. :func:`preflight` checks, in this order, and
returns one record (written as ``preflight.json`` into the run's bundle):

* versions: Python, torch, triton, CUDA, cuDNN, NumPy, and which optional packages the bench
  uses are importable (pandas, tqdm, pytest, nvidia-ml-py, matplotlib);
* the device: CUDA -- name, compute capability, SMs, L2 size, shared memory per block (the
  opt-in maximum a kernel may ask for) and per SM, memory, SM and memory clocks (NVML), the
  compute mode (NVML: ``Prohibited`` refuses every process, ``Exclusive_Process`` refuses
  the two ranks that share the GPU in the layout cells); CPU -- model, cores, threads;
* the toolchain: Triton builds its launcher (a C extension) with ``$CC``, else ``gcc``, else
  ``clang``, against ``Python.h``; inductor on CPU compiles C++ with ``$CXX`` (default
  ``g++``). What the device needs must be there (:func:`toolchain_problems`);
* one tiny Triton kernel launched (compiled on a GPU, interpreted on a CPU) and one
  ``torch.compile``'d function run, each checked against its eager result.

``record["ok"]`` is False when something is missing; ``record["problems"]`` says what, one
line each, and :func:`summary` makes the one line the run ends with. The CUDA-only parts
are the device properties, NVML and the compute mode (listed in the README); everything
else runs on CPU in CI through the same function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["preflight", "toolchain", "toolchain_problems", "summary", "BUDGET_S", "OPTIONAL_PACKAGES"]

BUDGET_S = 10.0  # what the whole preflight may take
OPTIONAL_PACKAGES = ("numpy", "pandas", "tqdm", "pytest", "pynvml", "matplotlib")
COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}


def _versions() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "python_executable": sys.executable,
                           "torch": torch.__version__, "cuda": torch.version.cuda}
    try:
        import triton

        out["triton"] = triton.__version__
    except ImportError:
        out["triton"] = None
    out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out["packages"] = {name: importlib.util.find_spec(name) is not None for name in OPTIONAL_PACKAGES}
    return out


def _nvml_device(index: int) -> dict[str, Any]:
    """Clocks and the compute mode from NVML (CUDA only); ``{"nvml": reason}`` without it."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:
        return {"nvml": f"unavailable ({type(e).__name__}: {e})"}
    try:
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
        mode = int(pynvml.nvmlDeviceGetComputeMode(h))
        return {"nvml": "ok", "compute_mode": COMPUTE_MODES.get(mode, str(mode)),
                "sm_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
                "mem_clock_max_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM),
                "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
                "driver": pynvml.nvmlSystemGetDriverVersion()}
    except Exception as e:
        return {"nvml": f"query failed ({type(e).__name__}: {e})"}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def _device(device: str) -> dict[str, Any]:
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":  # the CUDA branch: properties of the measured GPU
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        p = torch.cuda.get_device_properties(index)
        out = {"type": "cuda", "name": p.name, "capability": f"{p.major}.{p.minor}",
               "sms": p.multi_processor_count, "memory_gib": round(p.total_memory / 2**30, 1)}
        for key, attr in (("l2_bytes", "L2_cache_size"), ("smem_per_block_optin_bytes", "shared_memory_per_block_optin"),
                          ("smem_per_block_bytes", "shared_memory_per_block"),
                          ("smem_per_sm_bytes", "shared_memory_per_multiprocessor"), ("clock_khz", "clock_rate"),
                          ("memory_clock_khz", "memory_clock_rate"), ("memory_bus_width", "memory_bus_width")):
            out[key] = getattr(p, attr, None)
        out.update(_nvml_device(index))
        return out
    from alexnet_fast.profiling.results import device_name

    return {"type": "cpu", "name": device_name("cpu"), "cores": os.cpu_count(), "threads": torch.get_num_threads()}


def _find(name: str | None, which: Callable[[str], str | None]) -> str | None:
    if not name:
        return None
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    return which(name)


def toolchain(env: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which,
              include_dir: str | None = None) -> dict[str, Any]:
    """The compilers and header a run builds with: Triton's C compiler (its rule: ``$CC``,
    else ``gcc``, else ``clang``), ``Python.h`` (``sysconfig``'s include directory), and the
    C++ compiler inductor uses on CPU (``$CXX``, else ``g++``). Paths, or None when missing."""
    env = os.environ if env is None else env
    if env.get("CC"):
        cc, cc_wanted = _find(env["CC"], which), f"$CC={env['CC']}"
    else:
        cc, cc_wanted = _find("gcc", which) or _find("clang", which), "gcc or clang"
    cxx_name = env.get("CXX") or "g++"
    include = Path(include_dir if include_dir is not None else sysconfig.get_paths()["include"])
    header = include / "Python.h"
    return {"cc": cc, "cc_wanted": cc_wanted, "cxx": _find(cxx_name, which), "cxx_wanted": cxx_name,
            "python_h": str(header) if header.is_file() else None, "python_h_wanted": str(header)}


def toolchain_problems(tools: Mapping[str, Any], device_type: str, compile_backend: str = "inductor") -> list[str]:
    """What the device type needs and ``tools`` lacks, one line each. CUDA: Triton's launcher
    build (a C compiler and Python.h). CPU: inductor's C++ compiler when the run compiles with
    inductor (the Triton kernels run interpreted: nothing to build)."""
    problems = []
    if device_type == "cuda":
        if tools["cc"] is None:
            problems.append(f"no C compiler ({tools['cc_wanted']} not found): Triton builds its kernel launcher "
                            f"with it; install gcc or set CC")
        if tools["python_h"] is None:
            problems.append(f"no Python.h (looked for {tools['python_h_wanted']}): Triton's launcher build needs "
                            f"the Python headers (python3-dev)")
    elif tools["cxx"] is None and compile_backend == "inductor":
        problems.append(f"no C++ compiler ({tools['cxx_wanted']} not found): torch.compile (inductor) compiles "
                        f"C++ on CPU; install g++ or set CXX")
    return problems


def _tiny_triton(device: str) -> str:
    """Launch one tiny Triton kernel (interpreted without a GPU) and check its result."""
    import torch
    import triton
    import triton.language as tl

    @triton.jit
    def add_one_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask) + 1.0, mask=mask)

    x = torch.arange(100, dtype=torch.float32, device=device)
    y = torch.empty_like(x)
    with (torch.cuda.device(x.device) if x.device.type == "cuda" else contextlib.nullcontext()):
        add_one_kernel[(triton.cdiv(100, 64),)](x, y, 100, BLOCK=64)
    if not torch.equal(y.cpu(), x.cpu() + 1):
        raise RuntimeError("the tiny Triton kernel computed a wrong result")
    return "interpreted" if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0") else "compiled and launched"


def _tiny_compile(device: str, backend: str) -> str:
    """Run one torch.compile'd function (the run's backend, inductor on a GPU) and check it."""
    import torch

    def f(x):
        return (x * 2.0).relu().sum(dim=0)

    x = torch.randn(64, 8, device=device)
    compiled = torch.compile(f, dynamic=False, backend=backend)
    if not torch.allclose(compiled(x), f(x)):
        raise RuntimeError("the torch.compile'd function computed a wrong result")
    return f"{backend} ok"


def _check(record: dict, name: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    try:
        value, ok = fn(), True
        detail = value if isinstance(value, str) else "ok"
    except Exception as e:
        detail, ok = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:240] if str(e).strip() else ''}", False
    record["checks"].append({"name": name, "ok": ok, "detail": detail, "seconds": round(time.perf_counter() - start, 2)})
    if not ok:
        record["problems"].append(f"{name} failed: {detail}")
    return value if ok else None


def preflight(device: str, *, launch: bool = True, tools: Mapping[str, Any] | None = None,
              compile_backend: str = "inductor") -> dict[str, Any]:
    """The preflight record of a run on ``device`` (module docstring). ``launch=False``
    skips the tiny Triton kernel and torch.compile (a record of the machine only);
    ``tools`` replaces the toolchain lookup (tests); ``compile_backend``: the run's."""
    start = time.perf_counter()
    import torch

    record: dict[str, Any] = {"device_arg": device, "checks": [], "problems": []}
    record["versions"] = _check(record, "versions", _versions) or {}
    record["device"] = _check(record, "device properties", lambda: _device(device)) or {}
    device_type = torch.device(device).type
    record["toolchain"] = dict(tools) if tools is not None else toolchain()
    record["problems"] += toolchain_problems(record["toolchain"], device_type, compile_backend)
    record["compile_backend"] = compile_backend
    mode = record["device"].get("compute_mode")
    if mode == "prohibited":
        record["problems"].append("the GPU's compute mode is Prohibited: no process may use it")
    if not record["problems"] and launch:  # launching needs the toolchain: no point without it
        _check(record, "tiny Triton kernel", lambda: _tiny_triton(device))
        _check(record, "tiny torch.compile", lambda: _tiny_compile(device, compile_backend))
    record["seconds"] = round(time.perf_counter() - start, 2)
    record["over_budget"] = record["seconds"] > BUDGET_S
    record["ok"] = not record["problems"]
    return record


def summary(record: Mapping[str, Any]) -> str:
    """One line: what is missing (a failed preflight), or what was found."""
    if not record.get("ok"):
        return "preflight failed: " + "; ".join(record.get("problems") or ["unknown problem"])
    d, v = record.get("device") or {}, record.get("versions") or {}
    where = (f"{d.get('name')} (sm_{str(d.get('capability', '?')).replace('.', '')}, {d.get('sms')} SMs, "
             f"L2 {_mib(d.get('l2_bytes'))}, smem/block {_kib(d.get('smem_per_block_optin_bytes'))}, "
             f"compute mode {d.get('compute_mode', '?')})" if d.get("type") == "cuda"
             else f"{d.get('name')} ({d.get('cores')} cores)")
    return (f"preflight ok in {record.get('seconds')} s: {where}; torch {v.get('torch')}, triton {v.get('triton')}, "
            f"Python {v.get('python')}")


def _mib(n) -> str:
    return f"{n / 2**20:.0f} MiB" if isinstance(n, (int, float)) else "?"


def _kib(n) -> str:
    return f"{n / 2**10:.0f} KiB" if isinstance(n, (int, float)) else "?"
