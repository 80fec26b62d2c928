"""A small circuit breaker, so a dead upstream is skipped quickly instead of timing out each time.

closed --(N failures in a row)--> open --(reset_seconds later)--> half-open
half-open --(one success)--> closed;  half-open --(one failure)--> open again

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

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_seconds:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """True when a call may go through (closed, or half-open trying one call)."""
        return self.state != "open"

    def record_success(self) -> None:
        self._count = 0
        self._opened_at = None

    def record_failure(self) -> None:
        self._count += 1
        if self.state == "half-open" or self._count >= self.failures:
            self._opened_at = self._clock()
