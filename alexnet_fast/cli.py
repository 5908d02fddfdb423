"""`alexnet-fast` command line: one subcommand per module.

Each subcommand lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``; this file only lists them, so modules stay apart and heavy imports
(torch, triton) happen only for the subcommand that runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Configs as data: add a subcommand by adding a row.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("alexnet_fast.info", "versions, devices, Triton mode, NVML, CPU threads"),
    "codegen": ("alexnet_fast.profiling.codegen", "compile every Triton kernel config for sm_80/sm_90/sm_100 and report registers, spills, smem, MMA"),
    "bench": ("alexnet_fast.profiling.bench", "run the variant x precision x batch x pass x layout matrix"),
    "profile": ("alexnet_fast.profiling.profile_cli", "torch.profiler traces and time per layer / op / kernel of a few cells"),
    "report": ("alexnet_fast.profiling.report", "re-render reports/ from saved results"),
    "regress": ("alexnet_fast.profiling.regress", "compare a benchmark run with a baseline and plot history"),
    "train": ("alexnet_fast.train", "train AlexNet with any variant and layout"),
    "predict": ("alexnet_fast.predict", "top-5 classes of images with a trained checkpoint"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alexnet-fast",
        description="A Triton / torch.compile performance study of AlexNet.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if name == only:  # import only the module of the command being run
            importlib.import_module(module_name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
