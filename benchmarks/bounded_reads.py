"""Cost of bounding every image read in time (``selfsup.utils.safe_open.read_bytes``).

    python benchmarks/bounded_reads.py                  # 2,000 reads of a 20 kB file, 3 rounds
    python benchmarks/bounded_reads.py --size 200000 --reads 500

A curation run reads each image again after the check (training, embedding, the report),
each read bounded by ``check_timeout_s``: the read runs in the process's reader thread and
the caller waits for it with a timeout. This prints the time per read with the bound and,
interleaved in the same run (A B A B), without it (a plain read in the caller's thread),
their ratio and the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from selfsup.utils import safe_open


def per_read_us(path: Path, reads: int, timeout: float | None) -> float:
    """Mean microseconds of one ``read_bytes(path)`` under a read timeout (None: none)."""
    with safe_open.read_timeout(timeout):
        safe_open.read_bytes(path)  # warm: the reader thread is started once per process
        start = time.perf_counter()
        for _ in range(reads):
            safe_open.read_bytes(path)
        return (time.perf_counter() - start) / reads * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--size", type=int, default=20_000, help="file size in bytes")
    parser.add_argument("--reads", type=int, default=2_000, help="reads per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved A/B rounds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "image.png"
        path.write_bytes(os.urandom(args.size))
        for round_ in range(args.rounds):
            plain = per_read_us(path, args.reads, None)
            bounded = per_read_us(path, args.reads, 60.0)
            print(
                f"round {round_}: plain {plain:.1f} us/read, bounded {bounded:.1f} us/read, "
                f"ratio {bounded / plain:.2f}, load average {os.getloadavg()[0]:.2f}"
            )


if __name__ == "__main__":
    main()
