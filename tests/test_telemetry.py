"""NVML telemetry: sampling, throttle flags, and going on without NVML."""

import types

from alexnet_fast.profiling import telemetry as T


class FakeNVML(types.SimpleNamespace):
    class NVMLError(Exception):
        pass


def fake_nvml(mask):
    return FakeNVML(
        NVML_CLOCK_SM=0, NVML_CLOCK_MEM=1, NVML_TEMPERATURE_GPU=0,
        nvmlClocksEventReasonGpuIdle=0x1, nvmlClocksEventReasonSwPowerCap=0x4,
        nvmlClocksEventReasonHwSlowdown=0x8, nvmlClocksEventReasonSwThermalSlowdown=0x20,
        nvmlDeviceGetCurrentClocksEventReasons=lambda h: mask,
        nvmlDeviceGetClockInfo=lambda h, which: 1980 if which == 0 else 2619,
        nvmlDeviceGetPowerUsage=lambda h: 512_000, nvmlDeviceGetTemperature=lambda h, which: 61,
    )


def sampler(mask):
    t = T.Telemetry("cpu", quiet=True)
    t._nvml, t._handle, t.available = fake_nvml(mask), object(), True
    t._bits = T._reason_bits(t._nvml)
    return t


def test_sample_reads_clocks_power_and_flags_throttling():
    idle = sampler(0x1).sample()
    assert idle == {"sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "power_w": 512.0, "temperature_c": 61,
                    "throttle_reasons": "idle", "throttled": False}
    capped = sampler(0x4 | 0x20).sample()
    assert capped["throttle_reasons"] == "sw_power_cap|sw_thermal" and capped["throttled"] is True
    merged = T.merge_samples(capped, idle)  # throttled before the timing counts
    assert merged["throttled"] is True and merged["throttle_reasons"] == "idle|sw_power_cap|sw_thermal"
    assert merged["sm_clock_mhz"] == 1980


def test_without_nvml_it_says_so_once_and_goes_on(capsys, monkeypatch):
    monkeypatch.setattr(T.Telemetry, "_warned", False)
    first, second = T.Telemetry("cpu"), T.Telemetry("cpu")
    assert not first.available and not second.available
    assert first.sample() == T.EMPTY_SAMPLE
    assert capsys.readouterr().err.count("telemetry:") == 1
    assert T.merge_samples(first.sample(), second.sample())["throttled"] is None
