"""The request log, the rate limits and the documents each bring their own kind of numbered
migrations to the shared database: a blank database gets all of them, a second run none, and
each kind's tables appear only with it."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from app.memory.store.postgres.migrations import applied, migrate
from app.memory.store.postgres.pool import open_pool

KINDS = [("app.observability.requestlog_postgres", "requests", {"request_log"}),
         ("app.ratelimit_postgres", "ratelimit", {"rate_slots"}),
         ("app.documents.store_postgres", "documents", {"documents", "document_chunks"})]


async def tables(conn) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {r["tablename"] for r in rows} - {"_migrations"}


@pytest.mark.parametrize("module, kind, expected", KINDS, ids=[k for _, k, _ in KINDS])
def test_a_blank_database_gets_every_migration_of_the_kind_and_only_its_tables(pg_url, module, kind, expected):
    importlib.import_module(module)  # registers the kind's migrations

    async def steps():
        pool = await open_pool(pg_url)
        try:
            first, again = await migrate(pool, kind), await migrate(pool, kind)
            async with pool.acquire() as conn:
                return first, again, await applied(conn, kind), await tables(conn)
        finally:
            await pool.close()

    first, again, done, made = asyncio.run(steps())
    assert first == done and first[0].startswith("m001_") and again == []
    assert made == expected
