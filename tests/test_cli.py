import json

from alexnet_fast.cli import COMMANDS, main


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    import torch

    assert info["torch"] == torch.__version__
    assert info["cpu_count"] >= 1 and info["torch_threads"] >= 1
    assert "available" in info["nvml"]
    if not torch.cuda.is_available():
        assert info["cuda_devices"] == []
        assert info["triton_mode"].startswith("interpreted")  # conftest sets TRITON_INTERPRET


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "triton_mode" in out and "nvml" in out


def test_every_command_module_is_listed():
    assert {"info", "codegen", "bench", "report", "regress", "train"} <= set(COMMANDS)
