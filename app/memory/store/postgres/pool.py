"""Connections to PostgreSQL: one asyncpg pool per process, vectors through the pgvector codec.

    pool = await open_pool("postgresql://user:pass@host:5432/memory", min_size=1, max_size=10)
    async with pool.acquire() as conn:
        await conn.fetchval("SELECT 1")
    await pool.close()

Every connection registers pgvector's `vector` type, so a numpy float32 array goes in and comes
out of a `vector(384)` column as is. The `vector` extension is created when missing (the role
needs the right to; on a managed server create it once as an administrator).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector


async def _init(conn: asyncpg.Connection) -> None:
    await register_vector(conn)


async def ensure_extension(dsn: str) -> None:
    """Create the `vector` extension if the database lacks it (before any pooled connection
    registers its codec)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()


async def open_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any) -> asyncpg.Pool:
    await ensure_extension(dsn)
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init, **kwargs)


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and url.split(":", 1)[0] in ("postgres", "postgresql")
