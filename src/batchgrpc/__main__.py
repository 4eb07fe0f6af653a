"""`python -m batchgrpc`: the `batchgrpc` command (how a supervisor starts its workers)."""

import sys

from batchgrpc.cli import main

sys.exit(main())
