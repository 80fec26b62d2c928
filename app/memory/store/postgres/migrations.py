"""Numbered migrations for the PostgreSQL backend, the same discipline as SQLite's
(`app.memory.store.sqlite.migrations`): each kind has an ordered list, a `_migrations` table
records what ran, a shipped migration is never edited, the next change is the next migration.

Kinds share one database: ``"store"`` (sessions, messages, vectors, summaries, persona), and
whatever else keeps its rows here (``"jobs"``, ``"requests"``, ``"documents"``...). Replicas
starting at once take a session-level advisory lock, so only one of them migrates; each migration
and its `_migrations` row commit together.

    @migration("store")
    async def m001_initial(conn): await conn.execute("CREATE TABLE ...")

    await migrate(pool, "store")            # -> names applied now
    await migrate(pool, "store", upto=1)    # tests: a database as the first release left it
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

Migration = Callable[[asyncpg.Connection], Awaitable[None]]
MIGRATIONS: dict[str, list[Migration]] = {}
_LOCK = 0x6D656D6F7279  # advisory lock id held while migrating ("memory")


def migration(kind: str) -> Callable[[Migration], Migration]:
    """Register the decorated coroutine as the next migration of `kind` (its name is its id)."""
    def register(fn: Migration) -> Migration:
        MIGRATIONS.setdefault(kind, []).append(fn)
        return fn
    return register


async def applied(conn: asyncpg.Connection, kind: str) -> list[str]:
    exists = await conn.fetchval("SELECT to_regclass('_migrations') IS NOT NULL")
    if not exists:
        return []
    rows = await conn.fetch("SELECT name FROM _migrations WHERE kind = $1 ORDER BY applied_at, name", kind)
    return [r["name"] for r in rows]


async def migrate(pool: asyncpg.Pool, kind: str, *, upto: int | None = None) -> list[str]:
    """Apply the missing migrations of `kind` (the first `upto` only, if given); return their names."""
    ran = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
        try:
            await conn.execute("CREATE TABLE IF NOT EXISTS _migrations (kind TEXT NOT NULL, name TEXT NOT NULL, "
                               "applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (kind, name))")
            done = set(await applied(conn, kind))
            for fn in MIGRATIONS.get(kind, [])[:upto]:
                if fn.__name__ in done:
                    continue
                async with conn.transaction():
                    await fn(conn)
                    await conn.execute("INSERT INTO _migrations (kind, name) VALUES ($1, $2)", kind, fn.__name__)
                ran.append(fn.__name__)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return ran
