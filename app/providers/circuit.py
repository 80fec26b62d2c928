"""A small circuit breaker, so a dead upstream is skipped quickly instead of timing out each time.

closed --(N failures in a row)--> open --(reset_seconds later)--> half-open
half-open --(the trial call succeeds)--> closed;  half-open --(it fails)--> open again

Half-open lets one trial call through at a time: the requests that arrive while it is out are
refused as if the circuit were open, so a burst after the reset does not all wait on an upstream
that may still be down. A trial that never reports back (its caller was cancelled and did not
call `release`) stops blocking others after another `reset_seconds`.

    breaker = CircuitBreaker(failures=3, reset_seconds=30)
    if breaker.allow(): ...call...; breaker.record_success()
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    def __init__(self, failures: int = 3, reset_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._count = 0
        self._opened_at: float | None = None
        self._trial_at: float | None = None  # when the half-open trial call went out

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_seconds:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """True when a call may go through: closed, or half-open with no other trial out."""
        state = self.state
        if state != "half-open":
            return state == "closed"
        now = self._clock()
        if self._trial_at is not None and now - self._trial_at < self.reset_seconds:
            return False
        self._trial_at = now
        return True

    def release(self) -> None:
        """The call `allow` let through ended without a verdict (cancelled): let another try."""
        self._trial_at = None

    def record_success(self) -> None:
        self._count = 0
        self._opened_at = None
        self._trial_at = None

    def record_failure(self) -> None:
        self._count += 1
        if self.state == "half-open" or self._count >= self.failures:
            self._opened_at = self._clock()
        self._trial_at = None
