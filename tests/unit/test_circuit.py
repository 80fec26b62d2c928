"""The circuit breaker's states, driven step by step on a fake clock."""

from __future__ import annotations

import pytest

from app.providers.circuit import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# Each step: "fail", "ok" or "wait:<seconds>", then the state expected after it.
@pytest.mark.parametrize("steps", [
    [("fail", "closed"), ("fail", "closed"), ("fail", "open")],
    [("fail", "closed"), ("fail", "closed"), ("ok", "closed"), ("fail", "closed"), ("fail", "closed")],
    [("fail", "closed"), ("fail", "closed"), ("fail", "open"), ("wait:9.9", "open"), ("wait:0.1", "half-open")],
    [("fail", "closed"), ("fail", "closed"), ("fail", "open"), ("wait:10", "half-open"), ("ok", "closed"),
     ("fail", "closed")],
    [("fail", "closed"), ("fail", "closed"), ("fail", "open"), ("wait:10", "half-open"), ("fail", "open"),
     ("wait:5", "open"), ("wait:5", "half-open")],
], ids=["opens-after-three", "success-resets-count", "half-open-after-reset", "trial-success-closes",
        "trial-failure-reopens"])
def test_breaker_states(steps):
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_seconds=10, clock=clock)
    for step, expected in steps:
        if step == "fail":
            breaker.record_failure()
        elif step == "ok":
            breaker.record_success()
        else:
            clock.now += float(step.split(":")[1])
        assert breaker.state == expected, (step, expected)
        assert breaker.allow() == (expected != "open")


def test_a_single_failure_threshold_opens_at_once():
    breaker = CircuitBreaker(failures=1, reset_seconds=1, clock=Clock())
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()


def half_open() -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    return breaker, clock


def test_half_open_lets_one_trial_through_at_a_time():
    breaker, _ = half_open()
    assert [breaker.allow() for _ in range(3)] == [True, False, False]
    breaker.record_success()
    assert breaker.state == "closed" and all(breaker.allow() for _ in range(3))


def test_a_failed_trial_reopens_and_the_next_reset_allows_one_more():
    breaker, clock = half_open()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 10
    assert [breaker.allow() for _ in range(2)] == [True, False]


def test_a_released_trial_lets_the_next_caller_try():
    breaker, _ = half_open()
    assert breaker.allow() and not breaker.allow()
    breaker.release()
    assert breaker.allow() and not breaker.allow()


def test_a_trial_that_never_reports_back_stops_blocking_after_a_reset_period():
    breaker, clock = half_open()
    assert breaker.allow()
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
