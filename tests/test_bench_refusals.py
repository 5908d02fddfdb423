"""`alexnet-fast bench` / `report` refuse bad input up front, in one line, before any work."""

from __future__ import annotations

import pytest
import torch

from alexnet_fast.cli import main
from profiling import plan as P

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
        from profiling.results import write_results

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
