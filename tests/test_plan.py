"""`alexnet-fast bench` / `report` refuse bad input up front, in one line, before any work."""

from __future__ import annotations

import pytest
import torch

from alexnet_fast.cli import main
from alexnet_fast.profiling import plan as P

TINY = ["--variant", "eager", "--width-mult", "0.125", "--input-size", "67", "--layer", "none",
        "--batch-size", "2", "--no-progress"]


def refused(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("argv, message", [
    (["--device", "foo"], "--device 'foo' is not a device"),
    (["--device", "cpu", "--peak-gemm-n", "0"], "--peak-gemm-n must be an integer >= 1, got 0"),
    (["--device", "cpu", "--peak-copy-mib", "-1"], "--peak-copy-mib must be an integer >= 1"),
    (["--device", "cpu", "--layout", "data_parallel", "--batch-size", "1"],
     "--layout data_parallel --batch-size 1: data_parallel splits the batch"),
])
def test_bad_bench_input_is_one_line(capsys, tmp_path, argv, message):
    line = refused(capsys, ["bench", *TINY, "--output-dir", str(tmp_path / "out"), *argv])
    assert message in line
    assert not (tmp_path / "out").exists()  # nothing written


def test_bf16_with_interpreted_triton_is_refused(capsys, tmp_path):
    line = refused(capsys, ["bench", "--device", "cpu", "--precision", "fp16,bf16", "--output-dir", str(tmp_path)])
    assert "bf16 with the triton variants on CPU" in line


def test_a_precision_the_device_cannot_run_is_refused(capsys, tmp_path, monkeypatch):
    """A precision whose eager cell raises on this device (here: an LRN without half
    kernels, as CPU PyTorch has for a model cast to fp16) is refused before any cell runs."""
    real = torch.nn.LocalResponseNorm.forward

    def no_half(self, x):
        if x.dtype == torch.float16:
            raise RuntimeError('"avg_pool3d_out_frame" not implemented for \'Half\'')
        return real(self, x)

    monkeypatch.setattr(torch.nn.LocalResponseNorm, "forward", no_half)
    line = refused(capsys, ["bench", *TINY, "--device", "cpu", "--precision", "fp32,fp16",
                            "--output-dir", str(tmp_path)])
    assert line.endswith("""precision fp16 cannot run on cpu: "avg_pool3d_out_frame" not implemented for 'Half'""")


@pytest.mark.parametrize("command", ["bench", "report"])
def test_output_dir_that_is_a_file(capsys, tmp_path, command):
    path = tmp_path / "results"
    path.write_text("not a directory")
    extra = TINY + ["--device", "cpu"] if command == "bench" else ["--input", str(tmp_path / "in")]
    if command == "report":  # a readable input, so only the output directory is wrong
        from alexnet_fast.profiling.results import write_results

        write_results([{"scope": "model", "variant": "eager", "precision": "fp32", "batch_size": 1,
                        "pass": "inference", "status": "ok", "machine": "m", "device": "d"}], tmp_path / "in")
    line = refused(capsys, [command, *extra, "--output-dir", str(path)])
    assert f"--output-dir {path} is a file, not a directory" in line


def test_triton_interpret_left_on_a_gpu_machine_is_refused(monkeypatch):
    """TRITON_INTERPRET=1 on a CUDA machine would time the interpreter as Triton speed."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(P, "_probe_precision", lambda device, precision: None)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    plan = P.BenchPlan(device="cuda", variants=[P.VariantSpec("triton")], precisions=["fp32"], batch_sizes=[2],
                       passes=["inference"])
    with pytest.raises(ValueError, match="TRITON_INTERPRET=1 is set on a CUDA machine"):
        P.validate_plan(plan)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    P.validate_plan(plan)  # compiled Triton on a GPU: accepted


def _simulate_gpus(monkeypatch, gpus: int) -> None:
    """``gpus`` CUDA devices as far as the plan can tell; what would launch work on them (the
    precision probe, a tiny training step; Triton's mode, the interpreter being on in the
    tests) is stubbed. With 0, nothing is: the CPU plan is validated for real."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    if gpus:
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(P, "_probe_precision", lambda device, precision: None)
        monkeypatch.setattr(P, "_check_triton_mode", lambda device: None)


def _plan(argv):
    from alexnet_fast.cli import build_parser

    return P.plan_from_args(build_parser("bench").parse_args(["bench", *argv]))  # validate_plan included


@pytest.mark.parametrize("gpus", [0, 1, 2, 8])
def test_the_default_plan_validates_with_any_number_of_gpus(monkeypatch, gpus):
    """`make report` on a 2-GPU machine was refused: its default had batch 1 and data_parallel."""
    _simulate_gpus(monkeypatch, gpus)
    P.validate_plan(P.default_plan())
    plan = _plan([])  # `alexnet-fast bench` with no flags
    assert plan.device == ("cuda" if gpus else "cpu")
    assert ("data_parallel" in plan.layouts) == (gpus >= 2)
    assert plan.batch_sizes == ([1, 4, 16] if not gpus else [1, 32, 128, 256] if gpus == 1 else [2, 32, 128, 256])


@pytest.mark.parametrize("gpus", [0, 2])
def test_data_parallel_without_batch_size_takes_batches_that_split(monkeypatch, gpus):
    _simulate_gpus(monkeypatch, gpus)
    assert _plan(["--layout", "data_parallel"]).batch_sizes == ([2, 4, 16] if not gpus else [2, 32, 128, 256])
    assert _plan(["--layout", "single"]).batch_sizes == ([1, 4, 16] if not gpus else [1, 32, 128, 256])
    assert _plan(["--layout", "model_parallel"]).batch_sizes[0] == 1  # it does not split the batch
    with pytest.raises(ValueError, match="--layout data_parallel --batch-size 3: data_parallel splits the batch"):
        _plan(["--layout", "single,data_parallel", "--batch-size", "2,3"])  # given: checked, never changed


def test_fit_batches_to_layouts():
    assert P.fit_batches_to_layouts([1, 2, 3, 16], ["single", "data_parallel"], 2) == [2, 4, 16]
    assert P.fit_batches_to_layouts([1, 5], ["data_parallel"], 4) == [4, 8]
    assert P.fit_batches_to_layouts([1, 5], ["single", "model_parallel"], 2) == [1, 5]
