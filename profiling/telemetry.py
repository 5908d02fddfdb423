"""GPU telemetry from NVML, recorded with every GPU result.

:class:`Telemetry` samples the SM and memory clocks, power draw, temperature and the
current clock-event ("throttle") reasons of the GPU that ran a measurement. The harness
samples before and after each timing and flags the result ``throttled`` when either sample
shows a reason that slows the clocks (thermal, power cap, hardware slowdown, power brake).
Idle, application-clock and sync-boost reasons are reported but do not count as throttling.

Without NVML (no nvidia-ml-py, no driver, a CPU run) it says so once on stderr and every
sample is empty: the run goes on.

:func:`peak_memory`: the peak memory of one more call of a timed step (the CUDA allocator's
peak counter on a GPU, the profiler's memory events on a CPU), a column of every timed row.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import torch

__all__ = ["Telemetry", "THROTTLING_REASONS", "EMPTY_SAMPLE", "merge_samples", "peak_memory", "PEAK_MEMORY_SOURCES"]

# NVML reason bit name (nvmlClocksEventReason* / nvmlClocksThrottleReason*) -> short name;
# the ones in THROTTLING_REASONS mean the clocks were held below what was asked for.
REASON_NAMES = {
    "GpuIdle": "idle",
    "ApplicationsClocksSetting": "app_clocks",
    "SwPowerCap": "sw_power_cap",
    "HwSlowdown": "hw_slowdown",
    "SyncBoost": "sync_boost",
    "SwThermalSlowdown": "sw_thermal",
    "HwThermalSlowdown": "hw_thermal",
    "HwPowerBrakeSlowdown": "hw_power_brake",
    "DisplayClockSetting": "display_clocks",
}
THROTTLING_REASONS = frozenset({"sw_power_cap", "hw_slowdown", "sw_thermal", "hw_thermal", "hw_power_brake"})

EMPTY_SAMPLE: dict[str, Any] = {
    "sm_clock_mhz": None, "mem_clock_mhz": None, "power_w": None, "temperature_c": None,
    "throttle_reasons": None, "throttled": None,
}


def _reason_bits(nvml) -> dict[int, str]:
    bits = {}
    for suffix, short in REASON_NAMES.items():
        for prefix in ("nvmlClocksEventReason", "nvmlClocksThrottleReason"):
            value = getattr(nvml, prefix + suffix, None)
            if value is not None:
                bits[int(value)] = short
                break
    return bits


def merge_samples(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One record for a measurement: clocks/power/temperature after it (the steady state),
    reasons seen in either sample, throttled if either was."""
    if after.get("throttled") is None:
        return dict(EMPTY_SAMPLE)
    reasons = sorted(set(filter(None, (before.get("throttle_reasons") or "").split("|")))
                     | set(filter(None, (after.get("throttle_reasons") or "").split("|"))))
    return {**after, "throttle_reasons": "|".join(reasons),
            "throttled": bool(before.get("throttled")) or bool(after.get("throttled"))}


class Telemetry:
    """NVML sampler for one CUDA device (or a no-op for CPU / no NVML)."""

    _warned = False  # say "no NVML" once per process

    def __init__(self, device: torch.device | str = "cuda", *, quiet: bool = False) -> None:
        self.device = torch.device(device)
        self.available = False
        self.reason = ""
        self._nvml = None
        self._handle = None
        if self.device.type != "cuda":
            self._unavailable("CPU run: no NVML telemetry (clocks, power, throttling) for this device", quiet)
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            self._handle = self._find_handle(pynvml)
            self._nvml = pynvml
            self._bits = _reason_bits(pynvml)
            self.available = True
        except Exception as e:  # ImportError, NVMLError (no driver / library), lookup failures
            self._unavailable(f"NVML unavailable ({type(e).__name__}: {e}); results carry no clocks or "
                              f"throttle flags", quiet)

    def _unavailable(self, reason: str, quiet: bool) -> None:
        """Record why there is no telemetry and say so once per process."""
        self.reason = reason
        if not quiet and not Telemetry._warned:
            print(f"telemetry: {reason}", file=sys.stderr)
            Telemetry._warned = True

    def _find_handle(self, nvml):
        """The NVML handle of this torch device, matched by UUID (CUDA_VISIBLE_DEVICES may
        renumber devices), else by PCI bus id, else by index."""
        index = self.device.index if self.device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        uuid = getattr(props, "uuid", None)
        if uuid is not None:
            try:
                return nvml.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}")
            except nvml.NVMLError:
                pass
        if getattr(props, "pci_bus_id", None) is not None:
            bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
            try:
                return nvml.nvmlDeviceGetHandleByPciBusId(bus)
            except nvml.NVMLError:
                pass
        return nvml.nvmlDeviceGetHandleByIndex(index)

    def sample(self) -> dict[str, Any]:
        """Current clocks (MHz), power (W), temperature (C) and clock-event reasons."""
        if not self.available:
            return dict(EMPTY_SAMPLE)
        nvml, h = self._nvml, self._handle
        get_reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) \
            or nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        try:
            mask = int(get_reasons(h))
            reasons = sorted(name for bit, name in self._bits.items() if mask & bit)
            return {
                "sm_clock_mhz": nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
                "mem_clock_mhz": nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM),
                "power_w": nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
                "temperature_c": nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
                "throttle_reasons": "|".join(reasons),
                "throttled": bool(THROTTLING_REASONS.intersection(reasons)),
            }
        except nvml.NVMLError as e:
            if not Telemetry._warned:
                print(f"telemetry: NVML query failed ({e}); continuing without it", file=sys.stderr)
                Telemetry._warned = True
            return dict(EMPTY_SAMPLE)

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self.available = False


PEAK_MEMORY_SOURCES = {
    "cuda": "torch.cuda.max_memory_allocated after reset_peak_memory_stats: the allocator's peak over one step, "
            "weights, inputs and optimizer state included",
    "cpu": "torch.profiler's [memory] events over one step: the highest sum of the bytes allocated minus freed "
           "since the step started (activations, temporaries, gradients); the CPU allocator keeps no counters, so "
           "the weights, inputs and optimizer state allocated before it are not in it, nor oneDNN's own scratch",
}


def peak_memory(fn: Callable[[], object], device: str | torch.device) -> dict[str, Any]:
    """``peak_memory_mb`` (MiB) and ``peak_memory_source`` of one more call of ``fn`` (after
    the timed ones, so the timing runs without the profiler): see :data:`PEAK_MEMORY_SOURCES`."""
    device = torch.device(device)
    if device.type == "cuda":  # GPU only: the CUDA allocator's peak counter
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        from torch.profiler import ProfilerActivity, profile

        os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # no kineto lines: "gpuGetDeviceCount failed", USDT start/stop
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        peak = cpu_peak_bytes(prof.profiler.kineto_results.events())
    return {"peak_memory_mb": peak / 2**20, "peak_memory_source": PEAK_MEMORY_SOURCES[device.type]}


def cpu_peak_bytes(events) -> int:
    """The highest running sum of the CPU ``[memory]`` events' signed byte counts (kineto
    events: ``name()``, ``device_type()``, ``nbytes()``, ``start_ns()``), in time order."""
    cpu = torch.autograd.DeviceType.CPU
    total = peak = 0
    for e in sorted((e for e in events if e.name() == "[memory]" and e.device_type() == cpu), key=lambda e: e.start_ns()):
        total += e.nbytes()
        peak = max(peak, total)
    return peak
