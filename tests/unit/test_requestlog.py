"""The request log's file: a blank one and one from before rows had an owner both reach the newest
schema, and a session's rows are read per owner."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from app.observability.requestlog import MIGRATIONS, RequestLog, RequestRow, migrate


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
