"""When and how long to wait before calling the server again: the one retry policy of selfsup.

A worker must ride out server restarts and network cuts, and so must a user's script polling
a run. Every call the worker makes, and every call of ``ApiWorkflowClient`` that is safe to
repeat (reads and downloads), goes through :func:`call_with_retry`, which retries
*transient* failures (:func:`is_transient`) after :meth:`RetryPolicy.delay` seconds: capped
exponential back-off with full jitter, i.e. a uniform draw from
``[0, min(cap, base * 2**attempt)]`` (AWS architecture blog, "Exponential Backoff And
Jitter"), so that many clients coming back after one restart do not hammer the server in
lock step. Each retry is logged with its attempt, wait and error.

Everything here is pure apart from the injected ``clock``, ``sleep`` and ``rng``, so the
policy is tested with a fake clock.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from selfsup.errors import ConfigError
from selfsup.openapi_generated.swagger_client.rest import ApiException

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Answers of a proxy or a server that is (re)starting or overloaded: the request was not
# handled, or it does not matter whether it was for a call that is safe to repeat.
GATEWAY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential back-off with full jitter, and when to stop trying.

    Attributes:
        base: seconds of the first back-off window (attempt 0 waits up to ``base``).
        cap: the longest single wait in seconds, whatever the attempt.
        give_up_after: seconds of failing calls after which :func:`call_with_retry` raises
            :class:`GaveUpError`; 0 = never give up.
    """

    base: float = 0.5
    cap: float = 60.0
    give_up_after: float = 0.0

    def __post_init__(self) -> None:
        for key in ("base", "cap", "give_up_after"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"retry {key} must be a finite number >= 0, got {value!r}")
        if self.base == 0 or self.cap == 0:
            raise ConfigError(
                f"retry base and cap must be > 0 seconds, got base={self.base!r}, cap={self.cap!r}"
            )
        if self.base > self.cap:
            raise ConfigError(
                f"retry base ({self.base!r} s) must not exceed the cap ({self.cap!r} s)"
            )

    def window(self, attempt: int) -> float:
        """The upper bound of the wait before retry number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # 2**attempt overflows a float near attempt 1024; the cap is reached long before.
        if attempt >= 64:
            return self.cap
        return min(self.cap, self.base * 2.0**attempt)

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt``: uniform in ``[0, window]``.

        ``rng`` returns a float in ``[0, 1)`` (``random.random``; tests pass a fixed one).
        """
        return rng() * self.window(attempt)


class GaveUpError(ConnectionError):
    """The server stayed unreachable for longer than ``give_up_after`` seconds."""


class RetryStoppedError(Exception):
    """``should_stop`` said to stop retrying (e.g. the worker is stopping, the lease ran out).

    ``__cause__`` is the last transient error.
    """


def is_transient(exc: BaseException, *, idempotent: bool = True) -> bool:
    """Whether repeating the call that raised ``exc`` may succeed and is safe.

    Transient: the server could not be reached or the connection broke
    (:class:`ConnectionError`, which ``selfsup.api._http`` raises for every transport error
    including timeouts), a gateway or overload answer (429, 502, 503, 504), and a 500 when the
    call is ``idempotent`` (doing it twice is the same as once). A 4xx is an answer about the
    request itself and is never retried; 409 in particular means the run was taken back.
    """
    if isinstance(exc, GaveUpError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, ApiException):
        status = getattr(exc, "status", None)
        if status in GATEWAY_STATUSES:
            return True
        return idempotent and status == 500
    return False


def describe(exc: BaseException) -> str:
    """A one-line description of an error for retry logs."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def call_with_retry(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    idempotent: bool = True,
    should_stop: Callable[[], bool] | None = None,
    max_wait: Callable[[], float] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
    rng: Callable[[], float] = random.random,
    log: logging.Logger = logger,
    give_up_setting: str = "worker.give_up_after",
) -> T:
    """Call ``fn`` until it succeeds, retrying transient errors after the policy's back-off.

    Args:
        fn: the call (no arguments; wrap with a lambda).
        policy: back-off and give-up time.
        what: name of the call for the retry log ("claim", "state COMPLETED of run ...").
        idempotent: whether a 500 may be retried (see :func:`is_transient`).
        should_stop: checked before and after each wait; True raises :class:`RetryStoppedError`
            (so a stopping worker never sends the call again).
        max_wait: the longest wait allowed right now (e.g. time left on a lease); the
            back-off is clipped to it.
        clock, sleep, rng: time source, sleeper and random source (tests inject fakes;
            ``threading.Event.wait`` as ``sleep`` makes the wait interruptible).
        log: where each retry is logged at WARNING.
        give_up_setting: the name of the setting behind ``policy.give_up_after``, for the
            give-up message (the worker's key, or the API client's argument).

    Raises:
        the first non-transient error of ``fn`` unchanged; :class:`GaveUpError` after
        ``policy.give_up_after`` seconds of failures; :class:`RetryStoppedError`.
    """
    started = clock()
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc, idempotent=idempotent):
                raise
            failing_for = clock() - started
            if policy.give_up_after and failing_for >= policy.give_up_after:
                raise GaveUpError(
                    f"{what}: gave up after {failing_for:.1f} s and {attempt + 1} attempts "
                    f"({give_up_setting}={policy.give_up_after:g} s); last error: "
                    f"{describe(exc)}"
                ) from exc
            if should_stop is not None and should_stop():
                raise RetryStoppedError(
                    f"{what}: stopped retrying after {attempt + 1} attempts"
                ) from exc
            wait = policy.delay(attempt, rng)
            if policy.give_up_after:
                wait = min(wait, max(policy.give_up_after - failing_for, 0.0))
            if max_wait is not None:
                wait = min(wait, max(max_wait(), 0.0))
            attempt += 1
            log.warning(
                "%s failed (attempt %d, failing for %.1f s); retrying in %.2f s: %s",
                what,
                attempt,
                failing_for,
                wait,
                describe(exc),
            )
            sleep(wait)
            if should_stop is not None and should_stop():
                raise RetryStoppedError(
                    f"{what}: stopped retrying after {attempt} attempts"
                ) from exc
