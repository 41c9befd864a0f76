"""Worker functions for test_pool.py; a module of its own so worker processes can import it."""

from __future__ import annotations

import os
import signal
import time


def square_or_die(item: int) -> int:
    """``item ** 2``; the process dies for -1 (exit) and -2 (SIGKILL, like the OOM killer)."""
    if item == -1:
        os._exit(3)
    if item == -2:
        os.kill(os.getpid(), signal.SIGKILL)
    return item * item


def raise_for_negative(item: int) -> int:
    if item < 0:
        raise ValueError(f"negative item {item}")
    return item


def die_on_start() -> None:
    """Pool initializer that kills every worker before it runs anything."""
    os._exit(5)


def square_or_hang(item: int) -> int:
    """``item ** 2``; -3 never returns (a read on a hung mount, a decoder in an endless loop)."""
    if item == -3:
        while True:
            time.sleep(1)
    return item * item


def square_or_hang_deaf(item: int) -> int:
    """Like :func:`square_or_hang`, but -4 blocks SIGALRM first (like C code that never
    returns to the interpreter): only killing the process stops it."""
    if item == -4:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(1)
    return square_or_hang(item)
