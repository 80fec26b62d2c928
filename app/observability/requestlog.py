"""The request log: one row per exchange, for reports and audits, in `DATA_DIR/requests.sqlite`
(`RequestLog`) or, with DATABASE_URL, in PostgreSQL (app.observability.requestlog_postgres).

Rows are buffered in RAM by `add()` (no I/O on the request path) and written in batches by the
log's own task, started and stopped by the app's lifespan. Retention (days) and a row bound
keep the table small; both are enforced after a flush at most once a minute. `BufferedLog`
holds that buffering; a backend supplies five coroutines (insert, prune, delete, select, close).

    log = RequestLog(path, days=30, max_rows=200_000)
    await log.start(); log.add(row); rows = await log.rows(since=t0); await log.stop()
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from app.memory.store.sqlite.migrations import transaction

MIGRATIONS = [
    """
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        request_id TEXT,
        session_id TEXT,
        model TEXT,
        provider TEXT,
        status INTEGER NOT NULL,
        error_code TEXT,
        error_message TEXT,
        stream INTEGER,
        ttft_ms REAL,
        total_ms REAL,
        sync_ms REAL,
        embed_ms REAL,
        retrieval_ms REAL,
        build_ms REAL,
        upstream_ms REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        memories INTEGER,
        finish_reason TEXT,
        user_chars INTEGER,
        retries INTEGER
    );
    CREATE INDEX requests_ts ON requests (ts);
    CREATE INDEX requests_session ON requests (session_id, ts);
    """,
    # the tenant (app.auth) whose exchange it was: a session id is only unique within one
    "ALTER TABLE requests ADD COLUMN owner TEXT",
]


@dataclass(slots=True)
class RequestRow:
    ts: float
    request_id: str
    session_id: str | None
    model: str
    provider: str | None
    status: int
    error_code: str | None = None
    error_message: str | None = None
    stream: bool = False
    ttft_ms: float | None = None
    total_ms: float | None = None
    sync_ms: float | None = None
    embed_ms: float | None = None
    retrieval_ms: float | None = None
    build_ms: float | None = None
    upstream_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    memories: int | None = None
    finish_reason: str | None = None
    user_chars: int | None = None
    retries: int | None = None
    owner: str | None = None


COLUMNS = [f.name for f in fields(RequestRow)]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the scripts past the file's `user_version`; returns the version reached."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    return len(MIGRATIONS)


class BufferedLog:
    """The buffer, the flushing task and the public interface, whatever keeps the rows."""

    errors: tuple[type[BaseException], ...] = ()  # a failed flush loses its rows, never the service

    def __init__(self, *, days: float = 30, max_rows: int = 200_000, flush_every: float = 0.5) -> None:
        self.days = days
        self.max_rows = max_rows
        self.flush_every = flush_every
        self._buffer: list[RequestRow] = []
        self._task: asyncio.Task | None = None
        self._pruned_at = 0.0
        self._stopping = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._open = False

    async def start(self) -> None:
        await self._start()
        self._open = True
        self._task = asyncio.create_task(self._run(), name="request-log")

    def add(self, row: RequestRow) -> None:
        self._buffer.append(row)

    async def flush(self) -> None:
        """Write buffered rows; one flush at a time, and never cancelled half-way (shielded)."""
        async with self._flushing:
            rows, self._buffer = self._buffer, []
            if rows and self._open:
                await asyncio.shield(self._write(rows))

    async def _write(self, rows: list[RequestRow]) -> None:
        await self._insert(rows)
        if time.time() - self._pruned_at > 60:
            self._pruned_at = time.time()
            await self._prune(time.time() - self.days * 86400, self.max_rows)

    async def forget(self, session_ids: list[str], owner: str | None) -> int:
        """Delete every row of these sessions of `owner` (buffered ones included); how many went."""
        await self.flush()
        if not session_ids or not self._open:
            return 0
        return await self._delete(session_ids, owner)

    async def rows(self, since: float = 0.0, until: float | None = None,
                   session_id: str | None = None, owner: str | None = None) -> list[RequestRow]:
        """Rows in [since, until) by time; with `session_id`, that session's rows of `owner` only."""
        await self.flush()
        return await self._select(since, until or time.time() + 1, session_id, owner)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await asyncio.wait_for(self._stopping.wait(), self.flush_every)
            except TimeoutError:
                pass
            try:
                await self.flush()
            except self.errors:
                pass  # the rows are lost, the service is not

    async def stop(self) -> None:
        """Stop after the write in progress (a connection is never closed under a running write)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        if self._open:
            self._open = False
            await self._close()

    async def _start(self) -> None: ...
    async def _insert(self, rows: list[RequestRow]) -> None: ...
    async def _prune(self, before: float, max_rows: int) -> None: ...
    async def _delete(self, session_ids: list[str], owner: str | None) -> int: ...
    async def _select(self, since: float, until: float, session_id: str | None,
                      owner: str | None) -> list[RequestRow]: ...
    async def _close(self) -> None: ...


class RequestLog(BufferedLog):
    """The rows in one SQLite file; deleted rows are overwritten in it (`secure_delete`)."""

    errors = (sqlite3.Error,)

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(**kwargs)
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def _start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA secure_delete=ON")
        migrate(self._conn)

    async def _insert(self, rows: list[RequestRow]) -> None:
        sql = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        await asyncio.to_thread(self._in_transaction, sql, [tuple(asdict(r).values()) for r in rows])

    def _in_transaction(self, sql: str, many: list[tuple]) -> None:
        with transaction(self._conn):  # the connection is in autocommit: one commit for the batch
            self._conn.executemany(sql, many)

    async def _prune(self, before: float, max_rows: int) -> None:
        await asyncio.to_thread(self._delete_where, "ts < ?", (before,))
        await asyncio.to_thread(self._delete_where, "id <= (SELECT max(id) FROM requests) - ?", (max_rows,))

    async def _delete(self, session_ids: list[str], owner: str | None) -> int:
        marks = ",".join("?" * len(session_ids))
        return await asyncio.to_thread(self._delete_where, f"owner IS ? AND session_id IN ({marks})",
                                       (owner, *session_ids))

    def _delete_where(self, where: str, args: tuple) -> int:
        with self._conn:
            return self._conn.execute(f"DELETE FROM requests WHERE {where}", args).rowcount

    async def _select(self, since: float, until: float, session_id: str | None,
                      owner: str | None) -> list[RequestRow]:
        return await asyncio.to_thread(self._select_rows, since, until, session_id, owner)

    def _select_rows(self, since: float, until: float, session_id: str | None,
                     owner: str | None) -> list[RequestRow]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM requests WHERE ts >= ? AND ts < ?"
        args: list = [since, until]
        if session_id is not None:
            sql += " AND session_id = ? AND owner IS ?"
            args += [session_id, owner]
        return [RequestRow(*r) for r in self._conn.execute(sql + " ORDER BY ts, id", args)]

    async def _close(self) -> None:
        self._conn.close()
        self._conn = None
