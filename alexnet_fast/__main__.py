import sys

from alexnet_fast.cli import main

sys.exit(main())
