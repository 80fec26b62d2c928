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
