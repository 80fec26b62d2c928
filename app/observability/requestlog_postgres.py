"""The request log in PostgreSQL: the `request_log` table every replica writes to, so `report`
and the inspector see the exchanges of all of them.

Each flush is one COPY of the buffered rows; retention and the row bound are enforced by
whichever replica flushes (each at most once a minute). The table comes from the numbered
migrations of kind "requests" (app.memory.store.postgres.migrations).

    log = PgRequestLog(pool, days=30, max_rows=200_000)
    await log.start(); log.add(row); rows = await log.rows(since=t0); await log.stop()
"""

from __future__ import annotations

import asyncpg

from app.memory.store.postgres.migrations import migrate, migration
from app.observability.requestlog import COLUMNS, BufferedLog, RequestRow

KIND = "requests"


@migration(KIND)
async def m001_request_log(conn: asyncpg.Connection) -> None:
    # The columns of the SQLite log's newest schema, owner included; ts in seconds since the epoch.
    await conn.execute("""
        CREATE TABLE request_log (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ts DOUBLE PRECISION NOT NULL,
            request_id TEXT,
            session_id TEXT,
            model TEXT,
            provider TEXT,
            status INTEGER NOT NULL,
            error_code TEXT,
            error_message TEXT,
            stream BOOLEAN,
            ttft_ms DOUBLE PRECISION,
            total_ms DOUBLE PRECISION,
            sync_ms DOUBLE PRECISION,
            embed_ms DOUBLE PRECISION,
            retrieval_ms DOUBLE PRECISION,
            build_ms DOUBLE PRECISION,
            upstream_ms DOUBLE PRECISION,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            memories INTEGER,
            finish_reason TEXT,
            user_chars INTEGER,
            retries INTEGER,
            owner TEXT
        );
        CREATE INDEX request_log_ts ON request_log (ts);
        CREATE INDEX request_log_session ON request_log (session_id, ts);
    """)


class PgRequestLog(BufferedLog):
    """The rows in the shared database; `pool` is the process's pool, not owned here."""

    errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)

    def __init__(self, pool: asyncpg.Pool, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pool = pool

    async def _start(self) -> None:
        await migrate(self.pool, KIND)

    async def _insert(self, rows: list[RequestRow]) -> None:
        records = [tuple(getattr(r, c) for c in COLUMNS) for r in rows]
        async with self.pool.acquire() as conn:
            await conn.copy_records_to_table("request_log", records=records, columns=COLUMNS)

    async def _prune(self, before: float, max_rows: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute("DELETE FROM request_log WHERE ts < $1", before)
            await conn.execute("DELETE FROM request_log WHERE id <= (SELECT max(id) FROM request_log) - $1",
                               max_rows)

    async def _delete(self, session_ids: list[str], owner: str | None) -> int:
        status = await self.pool.execute("DELETE FROM request_log WHERE owner IS NOT DISTINCT FROM $1 "
                                         "AND session_id = ANY($2::text[])", owner, session_ids)
        return int(status.split()[-1])

    async def _select(self, since: float, until: float, session_id: str | None,
                      owner: str | None) -> list[RequestRow]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM request_log WHERE ts >= $1 AND ts < $2"
        args: list = [since, until]
        if session_id is not None:
            sql += " AND session_id = $3 AND owner IS NOT DISTINCT FROM $4"
            args += [session_id, owner]
        return [RequestRow(*r) for r in await self.pool.fetch(sql + " ORDER BY ts, id", *args)]

    async def _close(self) -> None:
        pass  # the pool belongs to whoever passed it in
