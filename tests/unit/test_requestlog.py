"""The request log: a blank SQLite file and one from before rows had an owner both reach the newest
schema; on both backends rows come back as written, per session and owner, and are forgotten and
pruned alike."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import pytest

from app.memory.store.postgres.pool import open_pool
from app.observability.requestlog import MIGRATIONS, RequestLog, RequestRow, migrate
from app.observability.requestlog_postgres import PgRequestLog


def columns(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute("PRAGMA table_info(requests)")]


def test_a_blank_file_gets_every_migration(tmp_path):
    conn = sqlite3.connect(tmp_path / "requests.sqlite", isolation_level=None)
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert columns(conn)[-1] == "owner"


def test_an_old_file_keeps_its_rows_which_have_no_owner(tmp_path):
    path = tmp_path / "requests.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    old.execute("INSERT INTO requests (ts, request_id, session_id, model, status) VALUES (?, 'r1', 'chat', 'm', 200)",
                (time.time(),))
    old.close()

    async def read() -> tuple[list, list, list]:
        log = RequestLog(path)
        await log.start()
        try:
            log.add(RequestRow(ts=time.time(), request_id="r2", session_id="chat", model="m", provider="p",
                               status=200, owner="t-alice"))
            return (await log.rows(session_id="chat"), await log.rows(session_id="chat", owner="t-alice"),
                    await log.rows())
        finally:
            await log.stop()

    legacy, alices, everything = asyncio.run(read())
    assert [r.request_id for r in legacy] == ["r1"] and legacy[0].owner is None
    assert [r.request_id for r in alices] == ["r2"]
    assert [r.request_id for r in everything] == ["r1", "r2"]


# ---------------------------------------------------------------- both backends, one behaviour


@pytest.fixture(params=["sqlite", "postgres"])
def open_log(request, tmp_path):
    """`async with open_log(**kwargs) as log`: a started log on either backend, stopped after."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None

    @contextlib.asynccontextmanager
    async def opened(**kwargs):
        pool = await open_pool(url) if url else None
        log = PgRequestLog(pool, **kwargs) if pool else RequestLog(tmp_path / "requests.sqlite", **kwargs)
        await log.start()
        try:
            yield log
        finally:
            await log.stop()
            if pool:
                await pool.close()
    return opened


def exchange(request_id: str, ts: float, session_id: str = "chat", owner: str | None = "t-alice") -> RequestRow:
    return RequestRow(ts=ts, request_id=request_id, session_id=session_id, model="m", provider="p", status=200,
                      stream=True, ttft_ms=12.5, prompt_tokens=40, owner=owner)


def test_rows_come_back_as_written_in_time_order_per_session_and_owner(open_log):
    async def steps():
        async with open_log() as log:
            now = time.time()
            for i, (session, owner) in enumerate([("chat", "t-alice"), ("chat", "t-bob"), ("other", "t-alice")]):
                log.add(exchange(f"r{i}", now - i, session, owner))
            log.add(exchange("anon", now - 10, "chat", None))
            return (await log.rows(), await log.rows(session_id="chat", owner="t-alice"),
                    await log.rows(session_id="chat"), await log.rows(since=now - 2.5, until=now))
    everything, alices, anonymous, window = asyncio.run(steps())
    assert [r.request_id for r in everything] == ["anon", "r2", "r1", "r0"]
    assert everything[-1] == exchange("r0", everything[-1].ts)
    assert [r.request_id for r in alices] == ["r0"] and [r.request_id for r in anonymous] == ["anon"]
    assert [r.request_id for r in window] == ["r2", "r1"]


def test_forget_deletes_only_those_sessions_of_that_owner(open_log):
    async def steps():
        async with open_log() as log:
            now = time.time()
            for i, (session, owner) in enumerate([("a", "t-1"), ("b", "t-1"), ("a", "t-2"), ("c", "t-1")]):
                log.add(exchange(f"r{i}", now - 4 + i, session, owner))
            gone = await log.forget(["a", "b"], "t-1")
            return gone, await log.rows()
    gone, left = asyncio.run(steps())
    assert gone == 2 and [r.request_id for r in left] == ["r2", "r3"]


def test_retention_and_the_row_bound_apply_after_a_flush(open_log):
    async def steps():
        async with open_log(days=1, max_rows=3) as log:
            now = time.time()
            log.add(exchange("old", now - 2 * 86400))
            for i in range(5):
                log.add(exchange(f"r{i}", now - 5 + i))
            await log.flush()
            return await log.rows()
    assert [r.request_id for r in asyncio.run(steps())] == ["r2", "r3", "r4"]

