"""A process-pool map that survives worker processes dying on an input.

Decoding untrusted files runs C code (libjpeg, libpng, FFmpeg) that can crash or be killed
for memory. :func:`map_isolating_crashes` runs a function over items in a pool of worker
processes; when a worker dies, the items that were in flight are retried one at a time in a
fresh single-worker pool so that exactly the item that kills a worker is reported (through
``on_crash``) and every other item still gets its real result.

In-flight work is bounded (``2 * num_workers`` chunks) so that one crash costs at most that
many chunks of retries, and so that results do not pile up in memory.

With a ``timeout`` (seconds per item) nothing can stall the map either. Each item runs
under an alarm (``SIGALRM``) in its worker: an overrun in Python code or in a blocking system
call (a read on a hung network mount) is reported through ``on_timeout`` and the worker goes
on with the next item. Code the alarm cannot interrupt (a decoder looping in C) is caught
by the parent: a chunk still running ``2 * timeout * len(chunk)`` seconds after it was
handed out (it may wait behind one chunk per worker) gets its pool's processes killed, and
its items, with the other items in flight, are retried one at a time, each with
``timeout`` seconds of its own (plus a grace of :data:`_GRACE_S`); an item that overruns
them is reported through ``on_timeout`` and its process is killed.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Final, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

#: Start method for worker processes. Not "fork": a forked child inherits the parent's
#: threads' locks (torch, tqdm monitor) in whatever state they were and can deadlock.
#: "forkserver" forks workers from a clean single-threaded server process that has imported
#: the main module once, so a new pool (also after a crash) starts in milliseconds; "spawn"
#: (where forkserver is missing) starts and imports a fresh interpreter per worker.
START_METHOD = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


#: Seconds the parent waits past an item's timeout before it kills the worker.
_GRACE_S: Final = 2.0


class _ItemTimeout(BaseException):
    """Raised by SIGALRM in a worker when an item overruns (a BaseException, so that a
    function catching ``Exception`` for its own error handling does not swallow it)."""


@dataclass(frozen=True)
class _TimedOut:
    """Stands in (picklable) for the result of an item that overran its time in a worker."""

    seconds: float


def _on_alarm(signum: int, frame: object) -> None:
    raise _ItemTimeout


def _apply_chunk(
    fn: Callable[[T], R], chunk: Sequence[T], timeout: float | None = None
) -> list[R | _TimedOut]:
    """``fn`` over ``chunk`` in a worker; with ``timeout``, each item under its own alarm.

    The alarm interrupts Python code and blocking system calls (a read on a hung mount),
    not a C function that never returns to the interpreter; the parent's chunk deadline
    (see the module docstring) kills the worker in that case.
    """
    if timeout is None:
        return [fn(item) for item in chunk]
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    out: list[R | _TimedOut] = []
    try:
        for item in chunk:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                out.append(fn(item))
            except _ItemTimeout:
                out.append(_TimedOut(timeout))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return out


def map_isolating_crashes(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    num_workers: int,
    chunksize: int,
    on_crash: Callable[[T, str], R],
    on_done: Callable[[int], object] | None = None,
    initializer: Callable[[], None] | None = None,
    timeout: float | None = None,
    on_timeout: Callable[[T, str], R] | None = None,
) -> list[R]:
    """``[fn(item) for item in items]`` computed in ``num_workers`` processes, in order.

    Args:
        fn: Picklable (module-level) function; it should handle its own errors. An exception
            it raises is re-raised here: only a dying process is turned into a result.
        items: Picklable inputs.
        num_workers: Number of worker processes (>= 1).
        chunksize: Items per task; larger chunks cost less inter-process traffic.
        on_crash: Called in this process with an item whose worker died and a message;
            its return value stands in for ``fn(item)``.
        on_done: Called with the number of items finished each time a chunk completes
            (for progress bars).
        initializer: Picklable function run once in every worker process.
        timeout: Seconds one item may take (see the module docstring); ``None``: no limit.
        on_timeout: Called with an item that ran out of time and a message; its return value
            stands in for ``fn(item)``. Required with ``timeout``.
    """
    if timeout is not None and (timeout <= 0 or on_timeout is None):
        raise ValueError("timeout must be > 0 and comes with an on_timeout callback")
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1 for a process pool, got {num_workers}")
    if chunksize < 1:
        raise ValueError(f"chunksize must be >= 1, got {chunksize}")
    results: list[R | None] = [None] * len(items)
    done_flags = [False] * len(items)
    context = multiprocessing.get_context(START_METHOD)
    queue: deque[range] = deque(
        range(start, min(start + chunksize, len(items)))
        for start in range(0, len(items), chunksize)
    )

    def store(indices: range, values: Sequence[R | _TimedOut]) -> None:
        for index, value in zip(indices, values, strict=True):
            if isinstance(value, _TimedOut):
                assert on_timeout is not None  # a _TimedOut only comes with a timeout
                value = on_timeout(items[index], _timeout_message(value.seconds))
            results[index] = value
            done_flags[index] = True
        if on_done is not None:
            on_done(len(indices))

    while queue:
        suspects: list[int] = []
        with ProcessPoolExecutor(
            max_workers=num_workers, mp_context=context, initializer=initializer
        ) as pool:
            in_flight: dict[Future[list[R | _TimedOut]], tuple[range, float]] = {}
            broken = False
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < 2 * num_workers:
                    indices = queue.popleft()
                    chunk = [items[i] for i in indices]
                    deadline = (
                        float("inf")
                        if timeout is None
                        else time.monotonic() + 2 * timeout * len(indices)
                    )
                    future = pool.submit(_apply_chunk, fn, chunk, timeout)
                    in_flight[future] = (indices, deadline)
                wait_s = None
                if timeout is not None:
                    first = min(deadline for _, deadline in in_flight.values())
                    wait_s = max(0.0, first - time.monotonic())
                finished, _ = wait(in_flight, timeout=wait_s, return_when=FIRST_COMPLETED)
                for future in finished:
                    indices, _ = in_flight.pop(future)
                    try:
                        store(indices, future.result())
                    except BrokenProcessPool:
                        suspects.extend(indices)
                        broken = True
                if not finished and not broken:
                    # A chunk overran its time: stop every worker; what was in flight is
                    # retried item by item below, each with a time limit of its own.
                    _kill_workers(pool)
                    broken = True
            # After a crash every other in-flight chunk either finished or failed with it.
            for future, (indices, _) in in_flight.items():
                try:
                    store(indices, future.result())
                except BrokenProcessPool:
                    suspects.extend(indices)
        if suspects:
            _isolate(
                fn,
                items,
                sorted(suspects),
                context,
                initializer,
                on_crash,
                store,
                timeout,
                on_timeout,
            )
    assert all(done_flags)
    return cast(list[R], results)  # every slot was filled (asserted above)


def _timeout_message(seconds: float) -> str:
    return (
        f"reading and decoding took longer than {seconds:g} s; the check of this file was stopped"
    )


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the worker processes of ``pool``; its futures then fail with BrokenProcessPool."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()


def _noop() -> None:
    """Health-check task: succeeds in any worker process that manages to start."""


def _check_pool_starts(
    context: multiprocessing.context.BaseContext, initializer: Callable[[], None] | None
) -> None:
    """Raise if worker processes die before running any item (so no item is to blame)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=initializer) as pool:
        try:
            pool.submit(_noop).result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "worker processes die on start-up, before checking any file. When calling "
                "this from a script, put the call under `if __name__ == '__main__':` "
                f"(worker processes are started with {START_METHOD!r} and import the main "
                "module), or use num_workers=0"
            ) from exc


def _isolate(
    fn: Callable[[T], R],
    items: Sequence[T],
    suspects: list[int],
    context: multiprocessing.context.BaseContext,
    initializer: Callable[[], None] | None,
    on_crash: Callable[[T, str], R],
    store: Callable[[range, Sequence[R | _TimedOut]], None],
    timeout: float | None = None,
    on_timeout: Callable[[T, str], R] | None = None,
) -> None:
    """Run each suspect alone so that a crash (or an overrun) is pinned on exactly one item.

    One single-worker pool serves all suspects until one of them kills it or runs out of
    time; the worker processes are reused because starting one costs an import of ``fn``'s
    module. A fresh pool first runs a no-op, so start-up time never counts against an item.
    """
    pool: ProcessPoolExecutor | None = None
    try:
        for index in suspects:
            if pool is None:
                pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=context, initializer=initializer
                )
                if timeout is not None:
                    _check_started(pool)
            future = pool.submit(_apply_chunk, fn, [items[index]], timeout)
            # Keep the worker's process object: a broken executor forgets its processes.
            workers = list((getattr(pool, "_processes", None) or {}).values())
            value: list[R | _TimedOut]
            try:
                # The worker's own alarm reports an overrun at `timeout` and keeps the
                # process; killing it is the backstop for code the alarm cannot interrupt.
                value = future.result(timeout=None if timeout is None else timeout + _GRACE_S)
            except FutureTimeout:
                assert timeout is not None  # result() only times out with a timeout
                _kill_workers(pool)
                pool.shutdown(wait=True)
                pool = None
                value = [_TimedOut(timeout)]  # store() reports it through on_timeout
            except BrokenProcessPool:
                pool.shutdown(wait=True)
                pool = None
                _check_pool_starts(context, initializer)
                value = [
                    on_crash(
                        items[index],
                        f"the worker process checking this file died{_describe_exit(workers)}",
                    )
                ]
            store(range(index, index + 1), value)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _check_started(pool: ProcessPoolExecutor) -> None:
    """Wait until ``pool``'s worker runs; raise like :func:`_check_pool_starts` if it dies."""
    try:
        pool.submit(_noop).result()
    except BrokenProcessPool as exc:
        raise RuntimeError(
            f"worker processes die on start-up (started with {START_METHOD!r}), before "
            "checking any file"
        ) from exc


def _describe_exit(workers: list[multiprocessing.process.BaseProcess]) -> str:
    """``" (exit code N)"`` or ``" (killed by signal N: ...)"`` for a dead worker."""
    for process in workers:
        process.join(timeout=5)
        code = process.exitcode
        if code is not None and code != 0:
            if code < 0:
                return f" (killed by signal {-code}: out of memory or a crash in a decoder)"
            return f" (exit code {code})"
    return " (out of memory or a crash in a decoder)"
