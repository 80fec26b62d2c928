"""Per-key limits on requests and tokens per minute, reported the way OpenAI reports them.

    limiter = MemoryRateLimiter(Limits(rpm=60, tpm=100_000))
    decision = await limiter.admit("t-3b1f")     # counts the request when it is allowed
    decision.allowed, rate_headers(decision)      # False -> 429 with Retry-After
    limiter.spend("t-3b1f", 812)                  # the exchange's tokens, once it is over

Both limits are sliding windows of one minute: at most `rpm` requests are admitted in any 60
seconds, and a request is admitted only while fewer than `tpm` tokens were spent in the last
60 seconds (a request's tokens, prompt and reply, are known only when it ends, so they are
charged then, as OpenAI-compatible gateways do). A refused request is not counted.

`RateLimiter` is the interface the routes use: `admit` is async so a limiter shared by several
replicas (one row per tenant in PostgreSQL) can count in one round trip; `spend` never waits,
so such a limiter queues the charge and writes it on its own task. `MemoryRateLimiter` keeps
the counters in this process: `admit` checks and counts without awaiting anything in between,
so concurrent requests on one event loop can never both take the last slot.

Headers follow https://platform.openai.com/docs/guides/rate-limits: `x-ratelimit-limit-requests`,
`-remaining-requests`, `-reset-requests` (the time until the window is empty again, as "1s",
"6m0s", "120ms") and the `-tokens` counterparts.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

WINDOW_SECONDS = 60.0
SLOT_SECONDS = 0.1  # charges this close together share one slot: at most 600 slots per window


@dataclass(frozen=True, slots=True)
class Limits:
    """Requests and tokens per minute; 0 switches a limit off."""

    rpm: int = 0
    tpm: int = 0

    @property
    def active(self) -> bool:
        return self.rpm > 0 or self.tpm > 0


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit as it stands after the request: its size, what is left, seconds until it is full."""

    limit: int
    remaining: int
    reset: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    requests: Quota | None = None
    tokens: Quota | None = None
    retry_after: float = 0.0
    exceeded: str | None = None  # "requests" or "tokens" when refused


ALLOW = Decision(allowed=True)


class RateLimiter(Protocol):
    async def admit(self, tenant: str | None) -> Decision: ...

    def spend(self, tenant: str | None, tokens: int) -> None: ...


class SlidingWindow:
    """Amounts added over time; `used(now)` is the sum of those added in the last `span` seconds.

    Additions closer together than `slot` share a slot stamped with the latest of them, so an
    amount is forgotten at most `slot` seconds late, never early: the limit is never exceeded.
    """

    def __init__(self, span: float = WINDOW_SECONDS, slot: float = SLOT_SECONDS) -> None:
        self.span = span
        self.slot = slot
        self._slots: deque[list[float]] = deque()  # [stamp, amount, opened]
        self._total = 0.0

    def used(self, now: float) -> float:
        slots = self._slots
        while slots and slots[0][0] <= now - self.span:
            self._total -= slots.popleft()[1]
        if not slots:
            self._total = 0.0  # no float drift survives an empty window
        return self._total

    def add(self, now: float, amount: float) -> None:
        slots = self._slots
        if slots and now - slots[-1][2] < self.slot:
            slots[-1][0] = max(slots[-1][0], now)
            slots[-1][1] += amount
        else:
            slots.append([now, amount, now])
        self._total += amount

    @classmethod
    def of(cls, slots: list[tuple[float, float]], span: float = WINDOW_SECONDS) -> SlidingWindow:
        """A window holding these (stamp, amount) slots, oldest first (as a shared store keeps them)."""
        window = cls(span)
        window._slots.extend([stamp, amount, stamp] for stamp, amount in slots)
        window._total = float(sum(amount for _, amount in slots))
        return window

    def reset_in(self, now: float) -> float:
        """Seconds until everything in the window is forgotten."""
        return max(0.0, self._slots[-1][0] + self.span - now) if self._slots else 0.0

    def free_in(self, now: float, limit: float, need: float) -> float:
        """Seconds until `used + need <= limit` (call `used(now)` first)."""
        excess = self._total + need - limit
        for stamp, amount, _ in self._slots:
            if excess <= 0:
                break
            excess -= amount
            if excess <= 0:
                return max(0.0, stamp + self.span - now)
        return 0.0


@dataclass(slots=True)
class _Tenant:
    requests: SlidingWindow = field(default_factory=SlidingWindow)
    tokens: SlidingWindow = field(default_factory=SlidingWindow)


class MemoryRateLimiter:
    """The counters in this process's RAM, one pair of windows per tenant."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._tenants: dict[str | None, _Tenant] = {}

    async def admit(self, tenant: str | None) -> Decision:
        return self.admit_now(tenant, self.clock())

    def admit_now(self, tenant: str | None, now: float) -> Decision:
        """Check both limits and count the request if it is allowed; nothing here awaits."""
        state = self._tenants.get(tenant) or self._tenants.setdefault(tenant, _Tenant())
        refused = refusal(state.requests, state.tokens, self.limits, now)
        if refused is not None:
            return refused
        if self.limits.rpm:
            state.requests.add(now, 1)
        return standing(state.requests, state.tokens, self.limits, now, allowed=True)

    def spend(self, tenant: str | None, tokens: int) -> None:
        if self.limits.tpm and tokens > 0:
            state = self._tenants.get(tenant) or self._tenants.setdefault(tenant, _Tenant())
            state.tokens.add(self.clock(), tokens)


def refusal(requests: SlidingWindow, tokens: SlidingWindow, limits: Limits, now: float) -> Decision | None:
    """The refusal of one more request at `now`, or None when both limits let it in."""
    rpm, tpm = limits.rpm, limits.tpm
    if rpm and requests.used(now) + 1 > rpm:
        wait = requests.free_in(now, rpm, 1)
        return standing(requests, tokens, limits, now, allowed=False, exceeded="requests", retry_after=wait)
    if tpm and tokens.used(now) >= tpm:
        wait = tokens.free_in(now, tpm, 1)
        return standing(requests, tokens, limits, now, allowed=False, exceeded="tokens", retry_after=wait)
    return None


def standing(requests: SlidingWindow, tokens: SlidingWindow, limits: Limits, now: float, **kwargs) -> Decision:
    """The decision with both limits' quotas as they stand at `now`."""
    rpm, tpm = limits.rpm, limits.tpm
    return Decision(requests=_quota(requests, now, rpm) if rpm else None,
                    tokens=_quota(tokens, now, tpm) if tpm else None, **kwargs)


def _quota(window: SlidingWindow, now: float, limit: int) -> Quota:
    return Quota(limit, max(0, limit - math.ceil(window.used(now))), window.reset_in(now))


def duration(seconds: float) -> str:
    """A duration the way OpenAI's reset headers write it (Go's format).

        >>> [duration(s) for s in (0, 0.02, 1, 1.5, 60, 360, 3725.25)]
        ['0s', '20ms', '1s', '1.5s', '1m0s', '6m0s', '1h2m5.25s']
    """
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def rate_headers(decision: Decision) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for the limits in force."""
    headers = {}
    for name, quota in (("requests", decision.requests), ("tokens", decision.tokens)):
        if quota is not None:
            headers[f"x-ratelimit-limit-{name}"] = str(quota.limit)
            headers[f"x-ratelimit-remaining-{name}"] = str(quota.remaining)
            headers[f"x-ratelimit-reset-{name}"] = duration(quota.reset)
    return headers


def retry_headers(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds (rounded up, at least 1) and the `retry-after-ms` the SDKs prefer."""
    return {"Retry-After": str(max(1, math.ceil(seconds))), "retry-after-ms": str(max(1, math.ceil(seconds * 1000)))}
