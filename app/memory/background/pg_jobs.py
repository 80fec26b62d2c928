"""The job queue in PostgreSQL: every replica submits to and claims from one `jobs` table.

One row per (kind, session key). A replica claims the oldest ready row with
`FOR UPDATE SKIP LOCKED`, writing its id and a lease into it, and renews the lease while the job
runs; a done job is deleted, a failed one released with a backoff and an attempts count. A row
whose lease ran out (its replica died) is claimable by any replica. A submit for a row being
worked on marks it `again`, so it is released instead of deleted once done: the work runs once
more and sees what arrived meanwhile. Each job is done once in the normal case, at least once
across crashes; the work is idempotent.

Submits are buffered in RAM and written in one statement by a flusher task (the request path
never waits for the database); the flush NOTIFYs `memory_jobs`, which wakes idle workers
LISTENing on a dedicated connection; they also poll every `poll` seconds.

    jobs = PgJobs("postgresql://.../memory")           # or PgJobs(pool=pool)
    jobs.handle("score", run)
    await jobs.start(); jobs.submit("score", key); ...; await jobs.stop()
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable

import asyncpg

from app.memory.background.jobs import Handler, Job, KindStats, QueueState, backoff
from app.memory.store.postgres.migrations import migrate, migration
from app.tasks import cancel

log = logging.getLogger("app.memory.background.pg_jobs")
CHANNEL = "memory_jobs"
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


@migration("jobs")
async def m001_jobs(conn: asyncpg.Connection) -> None:
    await conn.execute("""
        CREATE TABLE jobs (
            id BIGSERIAL PRIMARY KEY,
            kind TEXT NOT NULL,
            key TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            run_after TIMESTAMPTZ NOT NULL DEFAULT now(),
            claimed_by TEXT,
            lease_until TIMESTAMPTZ,
            attempts INT NOT NULL DEFAULT 0,
            again BOOLEAN NOT NULL DEFAULT false,
            last_error TEXT,
            UNIQUE (kind, key));
        CREATE INDEX jobs_ready ON jobs (kind, run_after) WHERE claimed_by IS NULL;
        CREATE INDEX jobs_leases ON jobs (kind, lease_until) WHERE claimed_by IS NOT NULL""")


SUBMIT = """
    INSERT INTO jobs (kind, key, note) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
    ON CONFLICT (kind, key) DO UPDATE SET again = jobs.claimed_by IS NOT NULL,
        note = CASE WHEN EXCLUDED.note = '' THEN jobs.note ELSE EXCLUDED.note END"""
CLAIM = """
    WITH next AS (
        SELECT id, claimed_by AS was FROM jobs
        WHERE kind = $2 AND ((claimed_by IS NULL AND run_after <= now()) OR lease_until < now())
        ORDER BY run_after, id LIMIT 1 FOR UPDATE SKIP LOCKED)
    UPDATE jobs SET claimed_by = $1, lease_until = now() + make_interval(secs => $3), again = false,
        attempts = jobs.attempts + (next.was IS NOT NULL)::int
    FROM next WHERE jobs.id = next.id
    RETURNING jobs.id, jobs.kind, jobs.key, jobs.note, jobs.attempts, next.was"""
RENEW = "UPDATE jobs SET lease_until = now() + make_interval(secs => $3) WHERE id = $1 AND claimed_by = $2"
FINISH_AGAIN = ("UPDATE jobs SET claimed_by = NULL, lease_until = NULL, again = false, attempts = 0, "
                "run_after = now(), created_at = now() WHERE id = $1 AND claimed_by = $2 AND again")
FINISH = "DELETE FROM jobs WHERE id = $1 AND claimed_by = $2 AND NOT again"
FAIL = ("UPDATE jobs SET claimed_by = NULL, lease_until = NULL, again = false, attempts = attempts + 1, "
        "run_after = now() + make_interval(secs => $3), last_error = $4 WHERE id = $1 AND claimed_by = $2")
RELEASE = "UPDATE jobs SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1"
STATE = """
    SELECT kind, count(*) FILTER (WHERE claimed_by IS NULL) AS waiting,
           count(*) FILTER (WHERE claimed_by IS NOT NULL AND lease_until >= now()) AS claimed,
           coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest
    FROM jobs GROUP BY kind"""


def replica_id() -> str:
    """This process among the replicas: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class PgJobs:
    backend = "postgresql"

    def __init__(self, dsn: str | None = None, *, pool: asyncpg.Pool | None = None, replica: str | None = None,
                 poll: float = 1.0, lease: float = 60.0, backoff_base: float = 2.0,
                 backoff_cap: float = 300.0) -> None:
        if dsn is None and pool is None:
            raise ValueError("PgJobs needs a DSN or a pool")
        self.dsn, self.pool, self._own_pool = dsn, pool, pool is None
        self.replica = replica or replica_id()
        self.poll, self.lease = poll, lease
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.stats: dict[str, KindStats] = {}
        self._handlers: dict[str, tuple[Handler, bool]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._outbox: dict[tuple[str, str], str] = {}
        self._flushing: dict[tuple[str, str], str] = {}
        self._outbox_ready = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._held: dict[int, Job] = {}
        self._cached: dict[str, QueueState] = {}
        self._workers: dict[str, asyncio.Task] = {}
        self._tasks: list[asyncio.Task] = []
        self._listener: asyncpg.Connection | None = None
        self._closing = False

    # ------------------------------------------------------------------ the queue's interface

    def handle(self, kind: str, handler: Handler, *, drain: bool = True) -> None:
        """Claim and do `kind`'s jobs here with `handler` (`drain` has no effect: waiting jobs
        stay in the table for any replica)."""
        self._handlers[kind] = (handler, drain)
        self._wake[kind] = asyncio.Event()
        self.stats.setdefault(kind, KindStats())

    def submit(self, kind: str, key: str, note: str = "") -> None:
        """Queue `key`'s `kind` job; written by the flusher, never blocks, never raises."""
        self._outbox[(kind, key)] = note or self._outbox.get((kind, key), "")
        self._outbox_ready.set()

    def depth(self, kind: str | None = None) -> int:
        """Jobs waiting in the table, as last read (at most `poll` seconds old), plus unflushed submits."""
        unflushed = sum(1 for k, _ in self._outbox if kind in (None, k))
        return unflushed + sum(s.waiting for k, s in self._cached.items() if kind in (None, k))

    def claimed(self, kind: str | None = None) -> int:
        """Jobs this replica is doing right now."""
        return sum(1 for job in self._held.values() if kind in (None, job.kind))

    async def state(self) -> QueueState:
        """The whole queue, read now: waiting, claimed by any replica, the oldest job's age."""
        await self._refresh()
        states = self._cached.values()
        return QueueState(waiting=sum(s.waiting for s in states) + len(self._outbox),
                          claimed=sum(s.claimed for s in states), oldest=max((s.oldest for s in states), default=0.0))

    async def idle(self, kinds: Iterable[str] | None = None, timeout: float = 30.0) -> bool:
        """Wait until no job of `kinds` (all by default) is waiting or claimed by any replica."""
        wanted = None if kinds is None else list(kinds)
        deadline = time.monotonic() + timeout
        while True:
            buffered = any(wanted is None or k in wanted for k, _ in (*self._outbox, *self._flushing))
            if not buffered and not await self._count(wanted):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)

    async def start(self) -> None:
        self._closing = False
        if self.pool is None:
            self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=3 + len(self._handlers))
        await migrate(self.pool, "jobs")
        await self._listen()
        self._tasks = [asyncio.create_task(self._flusher(), name="jobs-flusher"),
                       asyncio.create_task(self._housekeeping(), name="jobs-housekeeping")]
        self._workers = {kind: asyncio.create_task(self._work(kind, handler), name=f"jobs-{kind}")
                         for kind, (handler, _) in self._handlers.items()}

    async def stop(self, timeout: float = 3.0) -> None:
        """Claim nothing more; let running jobs finish within `timeout`, hand back the rest (any
        replica takes them at once), write the buffered submits."""
        self._closing = True
        for wake in self._wake.values():
            wake.set()
        if self._workers:
            await asyncio.wait(self._workers.values(), timeout=timeout)
        for task in [*self._workers.values(), *self._tasks]:
            await cancel(task)
        self._workers, self._tasks = {}, []
        await self._close()

    # ------------------------------------------------------------------ claiming (also for tests)

    async def claim(self, kind: str) -> Job | None:
        """Take the oldest ready `kind` job (or one whose lease ran out) for this replica."""
        row = await self.pool.fetchrow(CLAIM, self.replica, kind, self.lease)
        if row is None:
            return None
        job = Job(row["kind"], row["key"], row["note"], row["attempts"], row["id"])
        if row["was"] is not None:
            self.stats.setdefault(kind, KindStats()).reclaimed += 1
            log.warning("job taken over from replica %s", row["was"], extra={"session_key": job.key, "kind": kind})
        self._held[job.id] = job
        return job

    async def finish(self, job: Job) -> None:
        """The job is done: delete it, or make it wait again if it was submitted meanwhile."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.execute(FINISH, job.id, self.replica) == "DELETE 0":
                await conn.execute(FINISH_AGAIN, job.id, self.replica)
        self._held.pop(job.id, None)

    async def fail(self, job: Job, error: str) -> float:
        """Hand the job back to wait `backoff` seconds; returns the wait."""
        wait = backoff(job.attempts + 1, self.backoff_base, self.backoff_cap)
        await self.pool.execute(FAIL, job.id, self.replica, wait, error[:2000])
        self._held.pop(job.id, None)
        return wait

    async def renew(self, job: Job) -> bool:
        """Extend the job's lease; False when it is no longer this replica's."""
        return await self.pool.execute(RENEW, job.id, self.replica, self.lease) == "UPDATE 1"

    # ------------------------------------------------------------------ the tasks

    async def _work(self, kind: str, handler: Handler) -> None:
        while not self._closing:
            try:
                job = await self.claim(kind)
                if job is None:
                    await self._sleep(kind)
                else:
                    await self._run(job, handler)
            except DB_ERRORS as exc:
                log.warning("the %s job queue failed, retrying: %s", kind, exc)
                await self._sleep(kind)

    async def _run(self, job: Job, handler: Handler) -> None:
        """Do one job with its lease kept alive; finished, or failed and handed back with a backoff."""
        keeper = asyncio.create_task(self._keep_lease(job), name="jobs-lease")
        error = None
        try:
            await handler(job)
        except Exception as exc:  # noqa: BLE001 - a failed job waits and is tried again
            log.exception("background job failed", extra={"session_key": job.key, "kind": job.kind})
            error = f"{type(exc).__name__}: {exc}"
        finally:
            await cancel(keeper)
        if error is None:
            await self.finish(job)
            self.stats[job.kind].done += 1
        else:
            self.stats[job.kind].failed += 1
            await self.fail(job, error)

    async def _keep_lease(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await self.renew(job):
                    log.warning("lost the lease of a job", extra={"session_key": job.key, "kind": job.kind})
                    return
            except DB_ERRORS as exc:
                log.warning("renewing a lease failed: %s", exc)

    async def _sleep(self, kind: str) -> None:
        wake = self._wake[kind]
        try:
            await asyncio.wait_for(wake.wait(), self.poll)
        except TimeoutError:
            pass
        wake.clear()

    async def _flusher(self) -> None:
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            try:
                await self.flush()
            except DB_ERRORS as exc:
                log.warning("submitting jobs failed, retrying: %s", exc)
                await asyncio.sleep(self.poll)

    async def flush(self) -> None:
        """Write the buffered submits in one statement and wake the workers of their kinds."""
        async with self._flush_lock:
            self._flushing, self._outbox = self._outbox, {}
            if self._flushing:
                try:
                    await self._insert(self._flushing)
                except BaseException:
                    self._outbox = {**self._flushing, **self._outbox}
                    self._outbox_ready.set()
                    raise
                finally:
                    self._flushing = {}

    async def _insert(self, batch: dict[tuple[str, str], str]) -> None:
        kinds, keys = zip(*batch)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(SUBMIT, list(kinds), list(keys), list(batch.values()))
            for kind in set(kinds):
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, kind)

    async def _housekeeping(self) -> None:
        """Every `poll` seconds: the cached state for the metrics, and a listener that is alive."""
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self._refresh()
                if self._listener is None or self._listener.is_closed():
                    await self._listen()
            except DB_ERRORS as exc:
                log.warning("job queue housekeeping failed: %s", exc)

    async def _refresh(self) -> None:
        rows = await self.pool.fetch(STATE)
        self._cached = {r["kind"]: QueueState(r["waiting"], r["claimed"], r["oldest"]) for r in rows}

    async def _count(self, kinds: list[str] | None) -> int:
        if kinds is None:
            return await self.pool.fetchval("SELECT count(*) FROM jobs")
        return await self.pool.fetchval("SELECT count(*) FROM jobs WHERE kind = ANY($1::text[])", kinds)

    async def _listen(self) -> None:
        """LISTEN on a connection of its own (a pooled one could be handed to other work)."""
        await self._drop_listener()
        self._listener = await self.pool.acquire()
        await self._listener.add_listener(CHANNEL, self._notified)

    def _notified(self, _conn: object, _pid: int, _channel: str, kind: str) -> None:
        if kind in self._wake:
            self._wake[kind].set()

    async def _drop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        try:
            if not listener.is_closed():
                await listener.remove_listener(CHANNEL, self._notified)
        finally:
            await self.pool.release(listener)

    async def _close(self) -> None:
        try:
            await self.flush()
            if self._held:
                await self.pool.execute(RELEASE, self.replica)
            self._held.clear()
            await self._drop_listener()
        finally:
            if self._own_pool and self.pool is not None:
                await self.pool.close()
                self.pool = None
