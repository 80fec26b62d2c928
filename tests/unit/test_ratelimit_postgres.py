"""Rate limits in PostgreSQL: the same decisions as the RAM limiter, step by step, and exactly `rpm`
admitted when two replicas (two limiters, two pools) are hammered on one key at once."""

from __future__ import annotations

import asyncio

import pytest

from app.memory.store.postgres.pool import open_pool
from app.ratelimit import Limits, MemoryRateLimiter, rate_headers
from app.ratelimit_postgres import PgRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def replica(url: str, limits: Limits, clock=None) -> PgRateLimiter:
    limiter = PgRateLimiter(await open_pool(url, max_size=8), limits, clock=clock)
    await limiter.start()
    return limiter


async def close(*limiters: PgRateLimiter) -> None:
    for limiter in limiters:
        await limiter.stop()
        await limiter.pool.close()


# (seconds since the start, tenant, tokens spent after the request or None for no request at all)
STEPS = [(0, "a", 5), (1, "a", None), (2, "a", 0), (2, "b", 30), (3, "a", 15), (10, "a", 0), (30, "b", 0),
         (59, "a", 0), (60.5, "a", 0), (61.5, "a", 7), (62, None, 0), (75, "b", 0), (95, "b", 0), (121, "a", 0)]


@pytest.mark.parametrize("limits", [Limits(rpm=3), Limits(tpm=20), Limits(rpm=3, tpm=20)],
                         ids=["rpm", "tpm", "both"])
def test_every_decision_and_header_matches_the_ram_limiter(pg_url, limits):
    clock = Clock()
    start = clock.now
    ram = MemoryRateLimiter(limits, clock=clock)

    async def steps():
        shared = await replica(pg_url, limits, clock)
        try:
            pairs = []
            for at, tenant, spent in STEPS:
                clock.now = start + at
                if spent is None:
                    continue
                pairs.append((await ram.admit(tenant), await shared.admit(tenant)))
                if pairs[-1][0].allowed and spent:
                    ram.spend(tenant, spent)
                    shared.spend(tenant, spent)
                    await shared.flush()
            return pairs
        finally:
            await close(shared)

    pairs = asyncio.run(steps())
    assert [theirs for _, theirs in pairs] == [ours for ours, _ in pairs]
    assert {ours.allowed for ours, _ in pairs} == {True, False}  # the table reaches both answers
    assert [rate_headers(theirs) for _, theirs in pairs] == [rate_headers(ours) for ours, _ in pairs]


def test_two_replicas_hammering_one_key_admit_exactly_rpm(pg_url):
    async def hammer():
        first, second = await replica(pg_url, Limits(rpm=25)), await replica(pg_url, Limits(rpm=25))
        try:
            calls = [limiter.admit("t-shared") for _ in range(40) for limiter in (first, second)]
            return await asyncio.gather(*calls), await first.admit("t-other")
        finally:
            await close(first, second)

    decisions, other = asyncio.run(hammer())
    admitted = [d for d in decisions if d.allowed]
    assert len(admitted) == 25
    assert sorted(d.requests.remaining for d in admitted) == list(range(25))  # no slot handed out twice
    refused = [d for d in decisions if not d.allowed]
    assert all(d.exceeded == "requests" and 0 < d.retry_after <= 60 for d in refused)
    assert other.allowed and other.requests.remaining == 24  # another key has its own window


def test_tokens_spent_on_one_replica_are_seen_by_the_other_once_written(pg_url):
    async def steps():
        first, second = await replica(pg_url, Limits(tpm=100)), await replica(pg_url, Limits(tpm=100))
        try:
            first.spend("t-1", 60)
            first.spend("t-1", 40)
            first.spend(None, 10)
            await first.stop()  # writes what is queued
            return await second.admit("t-1"), await second.admit(None)
        finally:
            await close(second)
            await first.pool.close()

    spent, anonymous = asyncio.run(steps())
    assert not spent.allowed and spent.exceeded == "tokens" and spent.tokens.remaining == 0
    assert 59 < spent.retry_after <= 60
    assert anonymous.allowed and anonymous.tokens.remaining == 90


def test_prune_drops_the_slots_of_tenants_gone_quiet_and_keeps_the_rest(pg_url):
    clock = Clock()

    async def steps():
        limiter = await replica(pg_url, Limits(rpm=5, tpm=100), clock)
        try:
            await limiter.admit("t-quiet")
            limiter.spend("t-quiet", 10)
            await limiter.flush()
            clock.now += 30
            await limiter.admit("t-busy")
            clock.now += 31
            dropped = await limiter.prune()
            left = await limiter.pool.fetch("SELECT tenant, kind FROM rate_slots ORDER BY tenant, kind")
            return dropped, [tuple(r) for r in left], await limiter.admit("t-busy")
        finally:
            await close(limiter)

    dropped, left, busy = asyncio.run(steps())
    assert dropped == 2 and left == [("t-busy", "requests")]
    assert busy.requests.remaining == 3  # the busy tenant's window was kept whole
