"""The job queue in PostgreSQL, on the real server: replicas claim disjoint jobs, a dead replica's
job is done by another, failures back off, NOTIFY wakes idle workers, and the writer's jobs run
on any replica (here against a SQLite store: the queue does not care which store)."""

from __future__ import annotations

import asyncio
import statistics
import time
from contextlib import asynccontextmanager

import asyncpg
import pytest

from app.memory.background.jobs import Job
from app.memory.background.pg_jobs import PgJobs
from app.memory.store.postgres.migrations import migrate

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def replica(url: str, handlers: dict | None = None, **options):
    """A started PgJobs, as one replica would run it; stopped after."""
    jobs = PgJobs(url, **options)
    for kind, handler in (handlers or {}).items():
        jobs.handle(kind, handler)
    await jobs.start()
    try:
        yield jobs
    finally:
        await jobs.stop()


async def rows(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch("SELECT kind, key, claimed_by, attempts, last_error FROM jobs ORDER BY id")
    finally:
        await conn.close()


async def test_jobs_migrate_from_blank_once(pg_url):
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    try:
        assert await migrate(pool, "jobs") == ["m001_jobs"]
        assert await migrate(pool, "jobs") == []
    finally:
        await pool.close()


async def test_two_replicas_do_every_job_once_between_them(pg_url):
    done: list[tuple[str, str]] = []

    def worker(name: str):
        async def run(job: Job) -> None:
            done.append((name, job.key))
            await asyncio.sleep(0.01)
        return run

    keys = [f"k{i:02d}" for i in range(40)]
    async with replica(pg_url, {"score": worker("a")}) as a, replica(pg_url, {"score": worker("b")}) as b:
        for key in keys:
            (a if int(key[1:]) % 2 else b).submit("score", key)
        assert await a.idle(timeout=20)
    assert sorted(key for _, key in done) == keys  # each once
    assert {name for name, _ in done} == {"a", "b"}  # and both took part
    assert await rows(pg_url) == []


async def test_claims_of_two_replicas_are_disjoint(pg_url):
    async with replica(pg_url) as a, replica(pg_url) as b:
        for i in range(30):
            a.submit("score", f"k{i}")
        await a.flush()

        async def drain(jobs: PgJobs) -> list[str]:
            taken = []
            while (job := await jobs.claim("score")) is not None:
                taken.append(job.key)
            return taken

        got_a, got_b = await asyncio.gather(drain(a), drain(b))
        assert not set(got_a) & set(got_b)
        assert sorted(got_a + got_b) == sorted(f"k{i}" for i in range(30))
        assert len(got_a) == len(set(got_a))


async def test_a_dead_replicas_job_is_done_by_another_after_its_lease(pg_url):
    seen: list[tuple[str, float]] = []

    async def run(job: Job) -> None:
        seen.append((job.key, time.monotonic()))

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    await migrate(pool, "jobs")
    dead = PgJobs(pool=pool, replica="dead", lease=1.0)
    dead.submit("score", "k")
    await dead.flush()
    job = await dead.claim("score")
    claimed_at = time.monotonic()
    pool.terminate()  # the replica dies holding the job: no release, its connections gone
    assert job.key == "k" and (await rows(pg_url))[0]["claimed_by"] == "dead"
    async with replica(pg_url, {"score": run}, poll=0.1) as survivor:
        assert await survivor.idle(["score"], timeout=10)
    assert [key for key, _ in seen] == ["k"]
    assert seen[0][1] - claimed_at >= 0.9  # not before the lease ran out
    assert survivor.stats["score"].reclaimed == 1
    assert await rows(pg_url) == []


async def test_a_failed_job_waits_its_backoff_then_runs_again(pg_url):
    tries: list[tuple[int, float]] = []

    async def flaky(job: Job) -> None:
        tries.append((job.attempts, time.monotonic()))
        if len(tries) == 1:
            raise RuntimeError("upstream down")

    async with replica(pg_url, {"summary": flaky}, poll=0.05, backoff_base=0.6) as jobs:
        jobs.submit("summary", "k", "model-x")
        deadline = time.monotonic() + 3
        while len(tries) < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        (row,) = await rows(pg_url)
        assert (row["claimed_by"], row["attempts"], row["last_error"]) == (None, 1, "RuntimeError: upstream down")
        assert await jobs.idle(timeout=5)
    assert [attempts for attempts, _ in tries] == [0, 1]
    assert tries[1][1] - tries[0][1] >= 0.55
    assert (jobs.stats["summary"].failed, jobs.stats["summary"].done) == (1, 1)


async def test_a_submit_while_the_job_runs_makes_it_run_again(pg_url):
    gate, entered, runs = asyncio.Event(), asyncio.Event(), []

    async def run(job: Job) -> None:
        runs.append(job.key)
        entered.set()
        await gate.wait()

    async with replica(pg_url, {"score": run}, poll=0.1) as jobs:
        jobs.submit("score", "k")
        await asyncio.wait_for(entered.wait(), 5)
        jobs.submit("score", "k")
        jobs.submit("score", "k")  # while marked, once more is still once
        await jobs.flush()
        gate.set()
        assert await jobs.idle(timeout=5)
    assert runs == ["k", "k"]


async def test_notify_wakes_an_idle_worker_well_before_its_poll(pg_url):
    handled: dict[str, float] = {}

    async def run(job: Job) -> None:
        handled[job.key] = time.monotonic()

    async with replica(pg_url, {"score": run}, poll=5.0) as worker, replica(pg_url) as submitter:
        await asyncio.sleep(0.3)  # the worker has found nothing and sleeps
        latencies = []
        for i in range(5):
            sent = time.monotonic()
            submitter.submit("score", f"k{i}")
            while f"k{i}" not in handled and time.monotonic() - sent < 6:
                await asyncio.sleep(0.002)
            latencies.append(handled[f"k{i}"] - sent)
            await asyncio.sleep(0.1)
    assert statistics.median(latencies) < 0.25, latencies  # against a 5 s poll


async def test_stop_hands_a_running_job_back_at_once(pg_url):
    async def hang(job: Job) -> None:
        await asyncio.Event().wait()

    done: list[str] = []

    async def run(job: Job) -> None:
        done.append(job.key)

    first = PgJobs(pg_url, lease=60.0)
    first.handle("score", hang)
    await first.start()
    first.submit("score", "k")
    while not first.claimed("score"):
        await asyncio.sleep(0.01)
    await first.stop(timeout=0.1)
    assert (await rows(pg_url))[0]["claimed_by"] is None  # handed back, not left to its lease
    async with replica(pg_url, {"score": run}, poll=0.1) as second:
        assert await second.idle(timeout=5)
    assert done == ["k"]


async def test_a_job_longer_than_its_lease_keeps_it_while_it_runs(pg_url):
    runs: list[str] = []

    async def slow(job: Job) -> None:
        runs.append("a")
        await asyncio.sleep(1.5)

    async def other(job: Job) -> None:
        runs.append("b")

    async with replica(pg_url, {"score": slow}, lease=0.6, poll=0.05) as a:
        a.submit("score", "k")
        while not runs:
            await asyncio.sleep(0.01)
        async with replica(pg_url, {"score": other}, lease=0.6, poll=0.05) as b:
            assert await b.idle(timeout=10)
    assert runs == ["a"]  # renewed every lease/3: never taken over
    assert b.stats["score"].reclaimed == 0 and a.stats["score"].done == 1
