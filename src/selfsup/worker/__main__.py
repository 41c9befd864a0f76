"""``python -m selfsup.worker token=... worker.name=...``: the same as ``selfsup worker``."""

import sys

from selfsup.worker.cli import worker_main

sys.exit(worker_main(sys.argv[1:]))
