"""The timer measures known durations; its statistics and thread pinning are right."""

import time

import pytest
import torch

from alexnet_fast.profiling.timers import fixed_threads, measure, summarize, time_first_call


def test_measures_a_known_sleep():
    timing = measure(lambda: time.sleep(0.02), warmup=1, repeats=5)
    # sleep never returns early; the upper bound only guards against gross unit errors
    assert 20.0 <= timing.min_ms <= timing.median_ms < 200.0
    assert timing.repeats == 5 and timing.warmup == 1 and timing.method == "perf_counter"
    assert timing.min_ms <= timing.p20_ms <= timing.median_ms <= timing.p80_ms


def test_measures_a_busy_loop_and_excludes_warmup():
    calls = []

    def busy():
        calls.append(1)
        end = time.perf_counter() + (0.05 if len(calls) == 1 else 0.005)  # slow first call
        while time.perf_counter() < end:
            pass

    timing = measure(busy, warmup=1, repeats=4)
    assert len(calls) == 5
    assert 5.0 <= timing.median_ms < 45.0  # the 50 ms first call was warm-up, not timed
    seconds, _ = time_first_call(lambda: time.sleep(0.01))
    assert seconds >= 0.01


def test_summary_statistics():
    t = summarize([4.0, 1.0, 3.0, 2.0, 5.0], warmup=0, method="perf_counter", threads=1, l2_flushed=False)
    assert (t.median_ms, t.min_ms, t.mean_ms) == (3.0, 1.0, 3.0)
    assert t.p20_ms == pytest.approx(1.8) and t.p80_ms == pytest.approx(4.2)


def test_threads_are_fixed_recorded_and_restored():
    before = torch.get_num_threads()
    seen = []
    timing = measure(lambda: seen.append(torch.get_num_threads()), warmup=0, repeats=2, threads=1)
    assert timing.threads == 1 and seen == [1, 1]
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        with fixed_threads(0):
            pass
    with pytest.raises(ValueError, match="repeats"):
        measure(lambda: None, repeats=0)


@pytest.mark.gpu
def test_cuda_events_time_device_work():
    a = torch.randn(4096, 4096, device="cuda")
    timing = measure(lambda: a @ a, device="cuda", warmup=2, repeats=5)
    assert timing.method == "cuda_events" and timing.l2_flushed
    assert timing.median_ms > 0.05  # 137 GFLOP of work takes visible time on any GPU


class _FakeEvent:
    recorded: list = []

    def __init__(self, enable_timing=False):
        pass

    def record(self, stream=None):
        _FakeEvent.recorded.append(stream)

    def elapsed_time(self, other):
        return 1.5


def test_cuda_events_record_on_the_measured_devices_stream(monkeypatch):
    """``measure(device="cuda:1")`` while cuda:0 is current: every event is recorded on
    cuda:1's stream (CPU-only check with the CUDA calls replaced)."""
    streams = []

    def current_stream(device=None):
        streams.append(torch.device(device))
        return f"stream of {torch.device(device)}"

    _FakeEvent.recorded = []
    monkeypatch.setattr(torch.cuda, "Event", _FakeEvent)
    monkeypatch.setattr(torch.cuda, "current_stream", current_stream)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    timing = measure(lambda: None, device="cuda:1", warmup=1, repeats=3, flush_l2=False)
    assert timing.method == "cuda_events" and timing.median_ms == 1.5 and timing.times_ms == (1.5, 1.5, 1.5)
    assert streams == [torch.device("cuda:1")]
    assert _FakeEvent.recorded == ["stream of cuda:1"] * 6  # start and end of each repeat


def test_before_repeat_runs_untimed_before_each_repeat():
    calls = []
    timing = measure(lambda: calls.append("call"), warmup=2, repeats=3,
                     before_repeat=lambda: (calls.append("hook"), time.sleep(0.02)))
    assert calls == ["call", "call"] + ["hook", "call"] * 3
    assert timing.median_ms < 10 and len(timing.times_ms) == 3  # the hook's sleep is not timed
