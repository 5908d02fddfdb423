"""The interference sampler on a fake /proc (exact figures), the real one, and none."""

import sys
import threading
import time
from pathlib import Path

import pytest

from alexnet_fast.profiling.interference import Sampler, _parse_pid_stat, interference_reasons


class FakeProc:
    """A /proc with stat, loadavg and self/stat that a test advances: ``tick(seconds, ours=,
    others=, steal=, iowait=)`` in cores (busy fractions of the whole machine's cores)."""

    def __init__(self, root: Path, cores: int = 2, hz: int = 100):
        self.root, self.cores, self.hz = root, cores, hz
        (root / "self").mkdir(parents=True)
        self.cpu = dict(user=1000, nice=0, system=500, idle=8000, iowait=10, irq=0, softirq=5, steal=0)
        self.ours = 300
        self.load = 0.5
        self.write()

    def write(self):
        c = self.cpu
        per_core = " ".join(str(v // self.cores) for v in c.values())
        lines = [f"cpu  {' '.join(str(v) for v in c.values())} 0 0"]
        lines += [f"cpu{i} {per_core} 0 0" for i in range(self.cores)]
        lines += ["intr 12345 0 0", "ctxt 999", "procs_running 2"]
        (self.root / "stat").write_text("\n".join(lines) + "\n")
        (self.root / "loadavg").write_text(f"{self.load:.2f} 0.40 0.30 2/300 4242\n")
        fields = ["R"] + ["0"] * 10 + [str(self.ours), "0"] + ["0"] * 30
        (self.root / "self" / "stat").write_text("4242 (python (bench)) " + " ".join(fields) + "\n")

    def tick(self, seconds, *, ours=1.0, others=0.0, steal=0.0, iowait=0.0, load=None):
        total = round(seconds * self.hz * self.cores)
        t = lambda cores: round(seconds * self.hz * cores)  # noqa: E731
        used = {"user": t(ours + others), "steal": t(steal), "iowait": t(iowait)}
        self.cpu["user"] += used["user"]
        self.cpu["steal"] += used["steal"]
        self.cpu["iowait"] += used["iowait"]
        self.cpu["idle"] += total - sum(used.values())
        self.ours += t(ours)
        if load is not None:
            self.load = load
        self.write()


@pytest.fixture
def proc(tmp_path):
    return FakeProc(tmp_path / "proc")


def sampled_cell(proc, steps, threads=1):
    sampler = Sampler(proc_root=proc.root, ticks_per_s=proc.hz)
    assert sampler.available
    with sampler.cell(threads=threads, background=False) as cell:
        for kw in steps:
            proc.tick(1.0, **kw)
            sampler.sample()
    return cell.summary()


def test_a_quiet_cell_is_not_flagged(proc):
    s = sampled_cell(proc, [dict(ours=1.0, others=0.1)] * 4)
    assert s.available and s.samples == 6 and s.cpu_count == 2
    assert s.ours_cores == pytest.approx(1.0) and s.others_cores == pytest.approx(0.1)
    assert s.steal_pct == 0.0 and s.load_max == 0.5 and not s.interfered
    cols = s.columns()
    assert cols["interference"] == "no" and cols["interference_why"] == "" and cols["others_cores"] == 0.1


def test_other_processes_on_our_cores_are_flagged(proc):
    """One thread of ours on 2 cores leaves 1 core idle; others taking 1.6 cores for 2 of the
    4 seconds means they ran on ours (we got 0.4)."""
    steps = [dict(ours=1.0, others=0.2)] * 2 + [dict(ours=0.4, others=1.6)] * 2
    s = sampled_cell(proc, steps)
    assert s.others_cores == pytest.approx(0.9) and s.others_cores_max == pytest.approx(1.6)
    assert s.ours_cores == pytest.approx(0.7)
    assert not s.interfered  # on average within the idle core; threads=2 leaves none:
    s2 = sampled_cell(proc, steps, threads=2)
    assert s2.interfered and "other processes used 0.90 cores, 0 left idle by our 2 thread(s)" in s2.reasons[0]


def test_steal_and_load_are_flagged(proc):
    s = sampled_cell(proc, [dict(ours=1.0, steal=0.1)] * 2)
    assert s.steal_pct == pytest.approx(5.0) and s.interfered and "CPU steal 5.0% > 2%" in s.reasons
    s = sampled_cell(proc, [dict(ours=1.0, load=3.5), dict(ours=1.0, load=1.0)])
    assert s.load_max == 3.5 and s.load_mean == pytest.approx((0.5 + 3.5 + 1.0 + 1.0) / 4)
    assert s.interfered and s.columns()["interference"] == "yes" and "load average 3.50 > 2 cores" in s.reasons
    assert s.iowait_pct == 0.0


def test_the_flag_rule():
    base = dict(cpu_count=4, threads=2, steal_pct=0.0, others_cores=2.2, ours_cores=2.0, load_max=3.0)
    assert interference_reasons(**base) == ()
    assert interference_reasons(**{**base, "others_cores": 2.3})  # > 2 idle cores + 0.25
    assert interference_reasons(**{**base, "steal_pct": 2.5})
    assert interference_reasons(**{**base, "load_max": 4.5})
    # threads unknown: our measured cores, rounded up
    assert interference_reasons(**{**base, "threads": None, "ours_cores": 2.6, "others_cores": 1.3})


def test_missing_proc_is_unavailable_not_an_error(tmp_path):
    sampler = Sampler(proc_root=tmp_path / "no-proc")
    assert not sampler.available and "interference unavailable" in sampler.note
    with sampler.cell(threads=1) as cell:
        sampler.sample()
    s = cell.summary()
    assert not s.available and not s.interfered
    assert s.columns() == {"interference": "unavailable", "interference_why": sampler.note}


def test_pid_stat_with_parentheses_in_the_name():
    fields = ["S"] + ["0"] * 10 + ["70", "30"] + ["0"] * 20
    assert _parse_pid_stat("99 (a) b (c)) " + " ".join(fields)) == 100


def test_background_thread_samples_and_stops(proc):
    sampler = Sampler(proc_root=proc.root, interval_s=0.01, ticks_per_s=proc.hz)
    with pytest.raises(RuntimeError, match="when its `with` block ends"):
        with sampler.cell(threads=1) as cell:
            for _ in range(5):
                time.sleep(0.02)
                proc.tick(0.5, ours=1.0)
            cell.summary()
    assert cell.summary().samples >= 4
    assert not any(t.name == "interference-sampler" for t in threading.enumerate())
    with sampler.cell() as cell:
        with pytest.raises(RuntimeError, match="one cell at a time"):
            with sampler.cell():
                pass


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="no /proc/stat on this OS")
def test_the_real_proc_sees_our_busy_loop():
    sampler = Sampler()
    assert sampler.available and sampler.note == ""
    with sampler.cell(threads=1, background=False) as cell:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
    s = cell.summary()
    assert s.available and s.samples == 2 and s.cpu_count >= 1
    assert 0.1 < s.ours_cores <= s.cpu_count + 0.1  # a busy loop on a shared machine: at least some


@pytest.mark.skipif(sys.platform.startswith("linux"), reason="checks the no-/proc path of non-Linux systems")
def test_non_linux_default_is_unavailable():
    assert not Sampler().available


def test_child_processes_are_ours_with_the_children_pid(proc):
    """A layout's ranks are our children: live ones through /proc/self/task/*/children (their
    children too), exited and reaped ones through our cutime + cstime; without "children"
    their work counts as other processes'."""
    def stat(ticks, reaped=0):
        fields = ["R"] + ["0"] * 10 + [str(ticks), "0", str(reaped), "0"] + ["0"] * 28
        return "1 (rank) " + " ".join(fields) + "\n"

    (proc.root / "self" / "task" / "4242").mkdir(parents=True)
    (proc.root / "self" / "task" / "4242" / "children").write_text("77 ")
    for pid, kids in (("77", "78"), ("78", "")):
        (proc.root / pid / "task" / pid).mkdir(parents=True)
        (proc.root / pid / "task" / pid / "children").write_text(kids)
    rank_ticks = {"77": 0, "78": 0}

    def write_ranks(reaped=0):
        for pid, t in rank_ticks.items():
            (proc.root / pid / "stat").write_text(stat(t))
        text = (proc.root / "self" / "stat").read_text().split()
        text[16] = str(reaped)  # cutime (field 16; "(python (bench))" splits in two)
        (proc.root / "self" / "stat").write_text(" ".join(text) + "\n")

    write_ranks()
    seen = {}
    for pids in (("self",), ("self", "children")):
        rank_ticks.update({"77": 0, "78": 0})
        write_ranks()
        sampler = Sampler(proc_root=proc.root, ticks_per_s=proc.hz, pids=pids)
        with sampler.cell(threads=2, background=False) as cell:
            for _ in range(2):  # each second: the parent idle, two ranks busy on both cores
                proc.tick(1.0, ours=0.0, others=2.0)
                rank_ticks.update({k: v + proc.hz for k, v in rank_ticks.items()})
                write_ranks()
                sampler.sample()
        seen[pids] = cell.summary()
    assert seen[("self",)].others_cores == pytest.approx(2.0) and seen[("self",)].interfered
    assert seen[("self", "children")].ours_cores == pytest.approx(2.0)
    assert seen[("self", "children")].others_cores == pytest.approx(0.0) and not seen[("self", "children")].interfered
    from alexnet_fast.profiling.interference import read_snapshot

    before = read_snapshot(proc.root, ("self", "children")).ours_ticks
    (proc.root / "77" / "task" / "77" / "children").write_text("")  # 78 exits, reaped by its parent 77
    (proc.root / "78" / "stat").unlink()
    (proc.root / "77" / "stat").write_text(stat(rank_ticks["77"], reaped=rank_ticks.pop("78")))
    assert read_snapshot(proc.root, ("self", "children")).ours_ticks == before  # its time still ours
    (proc.root / "self" / "task" / "4242" / "children").write_text("")  # then 77, reaped by us
    (proc.root / "77" / "stat").unlink()
    write_ranks(reaped=before - 300)  # our cutime: 77's time and the children it reaped
    assert read_snapshot(proc.root, ("self", "children")).ours_ticks == before
