"""Rate limits shared by every replica: the sliding windows of app.ratelimit, kept in PostgreSQL.

    limiter = PgRateLimiter(pool, Limits(rpm=60, tpm=100_000))
    await limiter.start()
    decision = await limiter.admit("t-3b1f")   # one round trip: checked and counted together
    limiter.spend("t-3b1f", 812)               # queued, written by the limiter's own task
    await limiter.stop()                       # the queued charges are written first

A window is the rows of `rate_slots` for one tenant and kind ("requests" or "tokens"): one row
per tenth of a second that saw an addition, stamped with its latest one, so a window holds at
most 600 rows and an amount is forgotten at most 0.1 s late, never early. `rate_admit` (a SQL
function) takes a per-tenant transaction-scoped advisory lock, drops what is a minute old,
checks both limits, counts the request when it is allowed and returns both windows (an admitted
request's headers need only each window's total and newest stamp, so then each comes back as
one slot); replicas admitting the same tenant at once queue on that lock, so no slot is ever
handed out twice.
The headers and the refusal are then worked out from the returned windows by the very code
`MemoryRateLimiter` uses. Time is the database's clock, the one clock every replica shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable

import asyncpg

from app.memory.store.postgres.migrations import migrate, migration
from app.ratelimit import SLOT_SECONDS, WINDOW_SECONDS, Decision, Limits, SlidingWindow, refusal, standing

KIND = "ratelimit"
NO_KEY = ""  # the tenant of requests made while no API keys are set
log = logging.getLogger("app.ratelimit")


@migration(KIND)
async def m001_rate_slots(conn: asyncpg.Connection) -> None:
    await conn.execute("""
        CREATE TABLE rate_slots (
            tenant TEXT NOT NULL,
            kind TEXT NOT NULL,
            slot BIGINT NOT NULL,
            stamp DOUBLE PRECISION NOT NULL,
            amount DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (tenant, kind, slot)
        );
        CREATE FUNCTION rate_admit(p_tenant TEXT, p_at DOUBLE PRECISION, p_span DOUBLE PRECISION,
                                   p_slot DOUBLE PRECISION, p_rpm INTEGER, p_tpm INTEGER,
                                   OUT clock DOUBLE PRECISION, OUT admitted BOOLEAN,
                                   OUT request_stamps DOUBLE PRECISION[], OUT request_amounts DOUBLE PRECISION[],
                                   OUT token_stamps DOUBLE PRECISION[], OUT token_amounts DOUBLE PRECISION[])
        LANGUAGE plpgsql AS $$
        DECLARE
            used_requests DOUBLE PRECISION;
            used_tokens DOUBLE PRECISION;
        BEGIN
            clock := coalesce(p_at, extract(epoch FROM clock_timestamp()));
            PERFORM pg_advisory_xact_lock(29292, hashtext(p_tenant));
            DELETE FROM rate_slots WHERE tenant = p_tenant AND stamp <= clock - p_span;
            SELECT coalesce(sum(amount) FILTER (WHERE kind = 'requests'), 0),
                   coalesce(sum(amount) FILTER (WHERE kind = 'tokens'), 0)
              INTO used_requests, used_tokens FROM rate_slots WHERE tenant = p_tenant;
            admitted := (p_rpm = 0 OR used_requests + 1 <= p_rpm) AND (p_tpm = 0 OR used_tokens < p_tpm);
            IF admitted AND p_rpm > 0 THEN
                INSERT INTO rate_slots VALUES (p_tenant, 'requests', floor(clock / p_slot), clock, 1)
                ON CONFLICT (tenant, kind, slot) DO UPDATE
                    SET amount = rate_slots.amount + 1, stamp = greatest(rate_slots.stamp, excluded.stamp);
            END IF;
            IF admitted THEN  -- the headers need each window's total and newest stamp: one slot
                SELECT array_remove(ARRAY[max(stamp) FILTER (WHERE kind = 'requests')], NULL),
                       array_remove(ARRAY[sum(amount) FILTER (WHERE kind = 'requests')], NULL),
                       array_remove(ARRAY[max(stamp) FILTER (WHERE kind = 'tokens')], NULL),
                       array_remove(ARRAY[sum(amount) FILTER (WHERE kind = 'tokens')], NULL)
                  INTO request_stamps, request_amounts, token_stamps, token_amounts
                  FROM rate_slots WHERE tenant = p_tenant;
            ELSE  -- the wait until a slot is free needs every slot
                SELECT array_agg(stamp ORDER BY stamp) FILTER (WHERE kind = 'requests'),
                       array_agg(amount ORDER BY stamp) FILTER (WHERE kind = 'requests'),
                       array_agg(stamp ORDER BY stamp) FILTER (WHERE kind = 'tokens'),
                       array_agg(amount ORDER BY stamp) FILTER (WHERE kind = 'tokens')
                  INTO request_stamps, request_amounts, token_stamps, token_amounts
                  FROM rate_slots WHERE tenant = p_tenant;
            END IF;
        END $$;
    """)


SPEND = """
    INSERT INTO rate_slots (tenant, kind, slot, stamp, amount)
    SELECT t, 'tokens', floor(c.now / $4), c.now, a
      FROM unnest($1::text[], $2::double precision[]) AS u(t, a),
           (SELECT coalesce($3::double precision, extract(epoch FROM clock_timestamp())) AS now) AS c
    ON CONFLICT (tenant, kind, slot) DO UPDATE
        SET amount = rate_slots.amount + excluded.amount, stamp = greatest(rate_slots.stamp, excluded.stamp)
"""


PRUNE = """
    DELETE FROM rate_slots
     WHERE stamp <= coalesce($1::double precision, extract(epoch FROM clock_timestamp())) - $2
       AND pg_try_advisory_xact_lock(29292, hashtext(tenant))
"""
PRUNE_EVERY = 60.0


class PgRateLimiter:
    """`clock`, when given, stands in for the database's clock (tests compare with the RAM limiter)."""

    def __init__(self, pool: asyncpg.Pool, limits: Limits, clock: Callable[[], float] | None = None) -> None:
        self.pool = pool
        self.limits = limits
        self.clock = clock
        self._charges: dict[str, int] = defaultdict(int)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._pruned_at = time.monotonic()

    async def start(self) -> None:
        await migrate(self.pool, KIND)
        self._task = asyncio.create_task(self._run(), name="rate-limit-spend")

    async def admit(self, tenant: str | None) -> Decision:
        row = await self.pool.fetchrow("SELECT * FROM rate_admit($1, $2, $3, $4, $5, $6)", _key(tenant),
                                       self._now(), WINDOW_SECONDS, SLOT_SECONDS, self.limits.rpm, self.limits.tpm)
        requests = _window(row["request_stamps"], row["request_amounts"])
        tokens = _window(row["token_stamps"], row["token_amounts"])
        now = row["clock"]
        if row["admitted"]:
            return standing(requests, tokens, self.limits, now, allowed=True)
        return refusal(requests, tokens, self.limits, now) or standing(
            requests, tokens, self.limits, now, allowed=False, exceeded="requests", retry_after=SLOT_SECONDS)

    def spend(self, tenant: str | None, tokens: int) -> None:
        if self.limits.tpm and tokens > 0:
            self._charges[_key(tenant)] += tokens
            self._wake.set()

    async def flush(self) -> None:
        """Write the queued charges: one statement, tenants in order (replicas lock rows alike)."""
        charges, self._charges = self._charges, defaultdict(int)
        if charges:
            tenants = sorted(charges)
            await self.pool.execute(SPEND, tenants, [float(charges[t]) for t in tenants], self._now(),
                                    SLOT_SECONDS)

    async def prune(self) -> int:
        """Drop every tenant's slots that are a minute old (a tenant's own admits drop its own; this
        catches tenants gone quiet). A tenant being admitted right now is skipped, not waited for."""
        status = await self.pool.execute(PRUNE, self._now(), WINDOW_SECONDS)
        return int(status.split()[-1])

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), PRUNE_EVERY)
            self._wake.clear()
            try:
                await self.flush()
                if time.monotonic() - self._pruned_at > PRUNE_EVERY:
                    self._pruned_at = time.monotonic()
                    await self.prune()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                log.warning("token charges lost: the database refused them", exc_info=True)

    async def stop(self) -> None:
        """Write what is queued, then end the task."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()

    def _now(self) -> float | None:
        return self.clock() if self.clock is not None else None


def _key(tenant: str | None) -> str:
    return NO_KEY if tenant is None else tenant


def _window(stamps: list[float] | None, amounts: list[float] | None) -> SlidingWindow:
    return SlidingWindow.of(list(zip(stamps or [], amounts or [])))
