"""The retry policy with a fake clock: back-off bounds and cap, full jitter, give-up, what is
retried and what is not, stopping and clipping the wait."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import pytest

from selfsup.api.retry import (
    GaveUpError,
    RetryPolicy,
    RetryStoppedError,
    call_with_retry,
    is_transient,
)
from selfsup.errors import ConfigError
from selfsup.openapi_generated.swagger_client.rest import ApiException


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def _failing(times: int, exc: Exception, result: str = "ok") -> Callable[[], str]:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return result

    return fn


def test_the_window_doubles_from_base_up_to_the_cap() -> None:
    policy = RetryPolicy(base=0.5, cap=60.0)
    assert [policy.window(a) for a in range(9)] == [0.5, 1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.window(10_000) == 60.0  # no overflow for very long outages
    assert policy.delay(3, rng=lambda: 0.0) == 0.0
    assert policy.delay(3, rng=lambda: 0.999) == pytest.approx(4 * 0.999)
    with pytest.raises(ValueError, match="attempt"):
        policy.window(-1)


def test_full_jitter_is_uniform_over_the_window() -> None:
    policy = RetryPolicy(base=1.0, cap=8.0)
    rng = random.Random(7)
    for attempt, window in ((0, 1.0), (2, 4.0), (5, 8.0)):
        draws = [policy.delay(attempt, rng.random) for _ in range(4000)]
        assert min(draws) >= 0
        assert max(draws) <= window
        assert sum(draws) / len(draws) == pytest.approx(window / 2, rel=0.05)
        # Each quarter of the window gets about a quarter of the draws.
        quarters = [
            sum(1 for d in draws if q * window / 4 <= d < (q + 1) * window / 4) for q in range(4)
        ]
        assert all(850 <= n <= 1150 for n in quarters), quarters


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": 0.0}, "must be > 0"),
        ({"cap": -1.0}, "cap must be a finite number >= 0"),
        ({"base": 5.0, "cap": 1.0}, "must not exceed the cap"),
        ({"give_up_after": float("inf")}, "give_up_after must be a finite number"),
    ],
)
def test_bad_policies_name_the_value(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RetryPolicy(**kwargs)


def test_transient_errors_are_retried_with_a_logged_back_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    t = FakeTime()
    fn = _failing(4, ConnectionError("connection refused"))
    with caplog.at_level(logging.WARNING):
        got = call_with_retry(
            fn,
            policy=RetryPolicy(base=1.0, cap=3.0),
            what="claim",
            clock=t.clock,
            sleep=t.sleep,
            rng=lambda: 0.5,
        )
    assert got == "ok"
    assert t.sleeps == [0.5, 1.0, 1.5, 1.5]  # half of windows 1, 2, 3 (cap), 3
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    assert messages[0].startswith("claim failed (attempt 1, failing for 0.0 s); retrying in 0.50 s")
    assert "ConnectionError: connection refused" in messages[0]
    assert "attempt 4" in messages[3]


@pytest.mark.parametrize("status", [502, 503, 504, 429])
def test_gateway_answers_are_transient_even_for_calls_not_safe_to_repeat(status: int) -> None:
    assert is_transient(ApiException(status, "BAD_GATEWAY", "x"), idempotent=False)


def test_a_500_is_retried_only_for_calls_safe_to_repeat() -> None:
    error = ApiException(500, "INTERNAL", "boom")
    assert is_transient(error, idempotent=True)
    assert not is_transient(error, idempotent=False)
    t = FakeTime()
    with pytest.raises(ApiException, match="boom"):
        call_with_retry(
            _failing(1, error),
            policy=RetryPolicy(),
            what="log append",
            idempotent=False,
            clock=t.clock,
            sleep=t.sleep,
        )
    assert t.sleeps == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_answers_about_the_request_are_raised_at_once(status: int) -> None:
    t = FakeTime()
    with pytest.raises(ApiException) as info:
        call_with_retry(
            _failing(1, ApiException(status, "NO", "no")),
            policy=RetryPolicy(),
            what="x",
            clock=t.clock,
            sleep=t.sleep,
        )
    assert info.value.status == status
    assert t.sleeps == []


def test_give_up_after_bounds_the_whole_outage() -> None:
    t = FakeTime()
    with pytest.raises(GaveUpError, match=r"claim: gave up after 10\.0 s") as info:
        call_with_retry(
            _failing(10**6, ConnectionError("refused")),
            policy=RetryPolicy(base=1.0, cap=4.0, give_up_after=10.0),
            what="claim",
            clock=t.clock,
            sleep=t.sleep,
            rng=lambda: 0.999,
        )
    assert "worker.give_up_after=10 s" in str(info.value)
    assert "refused" in str(info.value)
    assert isinstance(info.value.__cause__, ConnectionError)
    # The last wait is shortened so the give-up comes on time, not a cap later.
    assert sum(t.sleeps) == pytest.approx(10.0)
    assert not is_transient(info.value)  # an outer retry loop does not retry a give-up


def test_zero_give_up_after_never_gives_up() -> None:
    t = FakeTime()
    fn = _failing(500, ConnectionError("refused"))
    assert (
        call_with_retry(
            fn, policy=RetryPolicy(base=1.0, cap=60.0), what="x", clock=t.clock, sleep=t.sleep
        )
        == "ok"
    )
    assert t.now - 1000.0 > 3600  # hours of outage, still trying


def test_should_stop_ends_the_retries_and_max_wait_clips_them() -> None:
    t = FakeTime()
    stop_after = {"n": 3}

    def should_stop() -> bool:
        stop_after["n"] -= 1
        return stop_after["n"] < 0

    with pytest.raises(RetryStoppedError) as info:
        call_with_retry(
            _failing(10**6, ConnectionError("refused")),
            policy=RetryPolicy(base=8.0, cap=8.0),
            what="state TRAINING",
            should_stop=should_stop,
            max_wait=lambda: 0.25,
            clock=t.clock,
            sleep=t.sleep,
            rng=lambda: 0.9,
        )
    assert isinstance(info.value.__cause__, ConnectionError)
    # Checked before and after each wait: stopped right after the second wait, never called
    # again; each wait is clipped from up to 7.2 s to max_wait.
    assert t.sleeps == [0.25, 0.25]
