"""``python -m alexnet_fast.profiling.codegen``: the same as ``alexnet-fast codegen``."""

import sys

from alexnet_fast.cli import main

if __name__ == "__main__":
    sys.exit(main(["codegen", *sys.argv[1:]]))
