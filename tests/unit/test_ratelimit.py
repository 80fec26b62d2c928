"""Sliding one-minute windows for requests and tokens, OpenAI's headers, and exact counts under concurrency."""

from __future__ import annotations

import asyncio
import re

import pytest

from app.ratelimit import Limits, MemoryRateLimiter, SlidingWindow, duration, rate_headers, retry_headers


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.0004, "0s"), (0.001, "1ms"), (0.12, "120ms"), (0.9996, "1s"), (1, "1s"), (1.5, "1.5s"),
    (8.64, "8.64s"), (59.999, "59.999s"), (60, "1m0s"), (61.5, "1m1.5s"), (360, "6m0s"), (3600, "1h0m0s"),
    (-3, "0s"),
])
def test_durations_are_written_the_way_openai_writes_them(seconds, text):
    assert duration(seconds) == text


def test_a_window_forgets_what_is_a_minute_old_and_never_earlier():
    window = SlidingWindow(span=60, slot=0.1)
    window.add(0.0, 3)
    window.add(0.05, 2)  # shares the first slot, stamped 0.05
    window.add(10.0, 4)
    assert window.used(59.99) == 9
    assert window.used(60.04) == 9  # the shared slot lasts until its latest addition is a minute old
    assert window.used(60.06) == 4
    assert window.reset_in(60.06) == pytest.approx(9.94)
    assert window.used(70.0) == 0 and window.reset_in(70.0) == 0


def test_free_in_is_the_wait_until_enough_is_forgotten():
    window = SlidingWindow(span=60, slot=0.1)
    for t in (0.0, 1.0, 2.0):
        window.add(t, 1)
    window.used(5.0)
    assert window.free_in(5.0, limit=3, need=1) == pytest.approx(55.0)
    assert window.free_in(5.0, limit=2, need=1) == pytest.approx(56.0)
    assert window.free_in(5.0, limit=4, need=1) == 0


def test_exactly_rpm_requests_are_admitted_in_a_minute_and_refusals_are_not_counted():
    clock = Clock()
    limiter = MemoryRateLimiter(Limits(rpm=3), clock=clock)
    decisions = [limiter.admit_now("a", clock.now + i) for i in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert [d.requests.remaining for d in decisions] == [2, 1, 0, 0, 0]
    refused = decisions[3]
    assert refused.exceeded == "requests" and refused.retry_after == pytest.approx(57.0)
    assert limiter.admit_now("b", clock.now).allowed  # every key its own window
    assert limiter.admit_now("a", clock.now + 60.0).allowed  # the first one was forgotten
    assert not limiter.admit_now("a", clock.now + 60.5).allowed


def test_tokens_are_charged_after_the_fact_and_refuse_once_the_minute_is_spent():
    clock = Clock()
    limiter = MemoryRateLimiter(Limits(tpm=100), clock=clock)
    first = limiter.admit_now("a", clock.now)
    assert first.allowed and first.tokens.remaining == 100 and first.requests is None
    limiter.spend("a", 60)
    assert limiter.admit_now("a", clock.now).tokens.remaining == 40
    limiter.spend("a", 60)  # a request admitted with 40 left may spend more: limits are checked on entry
    clock.now += 1
    refused = limiter.admit_now("a", clock.now)
    assert not refused.allowed and refused.exceeded == "tokens" and refused.tokens.remaining == 0
    assert refused.retry_after == pytest.approx(59.0)
    clock.now += 59
    assert limiter.admit_now("a", clock.now).allowed


def test_headers_name_each_limit_in_force():
    clock = Clock()
    limiter = MemoryRateLimiter(Limits(rpm=10, tpm=1000), clock=clock)
    headers = rate_headers(limiter.admit_now("a", clock.now))
    assert headers == {"x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "9",
                       "x-ratelimit-reset-requests": "1m0s", "x-ratelimit-limit-tokens": "1000",
                       "x-ratelimit-remaining-tokens": "1000", "x-ratelimit-reset-tokens": "0s"}
    only_rpm = rate_headers(MemoryRateLimiter(Limits(rpm=2), clock=clock).admit_now("a", clock.now))
    assert set(only_rpm) == {"x-ratelimit-limit-requests", "x-ratelimit-remaining-requests",
                             "x-ratelimit-reset-requests"}


@pytest.mark.parametrize("seconds, after, after_ms", [(0.2, "1", "200"), (1.0, "1", "1000"), (56.01, "57", "56010")])
def test_retry_after_rounds_up(seconds, after, after_ms):
    assert retry_headers(seconds) == {"Retry-After": after, "retry-after-ms": after_ms}


def test_a_concurrent_burst_admits_exactly_the_limit():
    limiter = MemoryRateLimiter(Limits(rpm=7))

    async def burst() -> list[bool]:
        async def one() -> bool:
            await asyncio.sleep(0)
            return (await limiter.admit("a")).allowed
        return await asyncio.gather(*(one() for _ in range(50)))

    assert sum(asyncio.run(burst())) == 7


def test_no_limits_no_headers_and_reset_format():
    assert not Limits().active and Limits(rpm=1).active and Limits(tpm=1).active
    clock = Clock()
    decision = MemoryRateLimiter(Limits(rpm=5), clock=clock).admit_now("a", clock.now)
    assert re.fullmatch(r"(\d+h)?(\d+m)?[\d.]+s|\d+ms", rate_headers(decision)["x-ratelimit-reset-requests"])
