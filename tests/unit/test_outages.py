"""Which failures are the database being out of reach (503, retry) and which are faults (500)."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest

from app.memory.store.outages import is_outage


@pytest.mark.parametrize("exc, outage", [
    (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), True),
    (asyncpg.CannotConnectNowError("the database system is shutting down"), True),
    (asyncpg.AdminShutdownError("terminating connection due to administrator command"), True),
    (asyncpg.TooManyConnectionsError("sorry, too many clients already"), True),
    (sqlite3.OperationalError("database is locked"), True),
    (asyncpg.UniqueViolationError("duplicate key value violates unique constraint"), False),
    (asyncpg.UndefinedTableError('relation "messages" does not exist'), False),
    (sqlite3.OperationalError("no such table: messages"), False),
    (FileNotFoundError(2, "No such file or directory"), False),  # not raised by the driver
    (ValueError("bad"), False),
])
def test_outage_or_fault(exc, outage):
    assert is_outage(exc) is outage


def test_a_socket_error_is_an_outage_only_when_the_driver_meets_it(tmp_path):
    async def connect():
        await asyncpg.connect(host=str(tmp_path), user="nobody", database="nothing", timeout=2)

    with pytest.raises(OSError) as driver:
        asyncio.run(connect())
    assert is_outage(driver.value)
    with pytest.raises(OSError) as own:
        (tmp_path / "missing.txt").read_text()
    assert not is_outage(own.value)
