"""The list of conversations: one row per session, found by key, opening fingerprint or recent hashes.

DATA_DIR/registry.sqlite holds `sessions` (who owns it, counters, last activity) and
`window_hashes`, the content hashes of each session's last `WINDOW` messages, so a client that
trims the front of a long conversation can still be matched to it. The conversation itself
lives in its own file (see app.memory.store.sqlite.store); the registry is an index over those files and its
counters are updated right after each session commit.

    registry = Registry(data_dir / "registry.sqlite")
    await registry.open()
    await registry.create(key, "chat-42", owner=None, fingerprint=None, now=time.time())
    await registry.find_by_hashes(None, ["9f2c...", "17ab..."])   # -> key or None
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from app.memory.records import SessionInfo
from app.memory.store.sqlite.migrations import open_database, run, transaction

WINDOW = 64  # hashes kept per session: the last 64 messages written
MAX_HASHES = 512  # hashes looked up per call, far below SQLite's bound on query parameters

_SESSION_COLUMNS = ("key, session_id, owner, fingerprint, created_at, last_active, message_count, token_total, "
                    "pending, person, character, scope")


class Registry:
    """Async access to registry.sqlite over one connection (its writes are a few µs each)."""

    def __init__(self, path: Path, *, window: int = WINDOW) -> None:
        self.path = path
        self.window = window
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        self._db = await open_database(self.path, "registry")

    async def aclose(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def _run(self, fn, *args):
        if self._db is None:
            raise RuntimeError("the store is closed")
        return await run(self._db, fn, *args)

    async def get(self, key: str) -> SessionInfo | None:
        return await self._run(_get, key)

    async def create(self, key: str, session_id: str, owner: str | None, fingerprint: str | None,
                     now: float) -> SessionInfo:
        """Insert the row unless it exists; return the row either way."""
        return await self._run(_create, key, session_id, owner, fingerprint, now)

    async def claim(self, key: str, person: str | None, character: str | None) -> None:
        """Give a conversation its person and character where it has none yet (the first one stays)."""
        await self._run(_claim, key, person, character)

    async def set_scope(self, key: str, scope: str | None) -> None:
        await self._run(_set_scope, key, scope)

    async def of_person(self, owner: str | None, person: str) -> list[SessionInfo]:
        """The person's conversations within `owner`'s tenant, most recently active first."""
        return await self._run(_of_person, owner, person)

    async def find_by_fingerprint(self, owner: str | None, fingerprint: str) -> str | None:
        return await self._run(_find_by_fingerprint, owner, fingerprint)

    async def find_by_hashes(self, owner: str | None, hashes: list[str], min_matches: int) -> str | None:
        if not hashes:
            return None
        recent = list(dict.fromkeys(hashes))[-MAX_HASHES:]
        return await self._run(_find_by_hashes, owner, recent, min_matches)

    async def list_sessions(self, owner: str | None, limit: int, offset: int, *,
                            every_owner: bool = False, search: str | None = None) -> list[SessionInfo]:
        return await self._run(_list, owner, limit, offset, every_owner, search)

    async def owners_of(self, session_id: str) -> list[str | None]:
        return await self._run(_owners, session_id)

    async def count(self) -> int:
        return await self._run(_count)

    async def all_keys(self) -> list[str]:
        return await self._run(_keys, "")

    async def keys_with_pending(self) -> list[str]:
        return await self._run(_keys, "WHERE pending > 0")

    async def record_activity(self, key: str, count: int, tokens: int, pending: int, hashes: list[str],
                              now: float) -> None:
        """Add to the counters, set `pending`, stamp `last_active`, remember `hashes` (the oldest
        beyond the window are dropped)."""
        await self._run(_record_activity, key, count, tokens, pending, hashes, now, self.window)

    async def set_pending(self, key: str, pending: int) -> None:
        await self._run(_set_pending, key, pending)

    async def delete(self, key: str) -> bool:
        return await self._run(_delete, key)


# --------------------------------------------------------------------------- on the connection's thread


def _info(row: tuple | None) -> SessionInfo | None:
    return SessionInfo(*row) if row else None


def _get(conn: sqlite3.Connection, key: str) -> SessionInfo | None:
    return _info(conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE key = ?", (key,)).fetchone())


def _create(conn: sqlite3.Connection, key: str, session_id: str, owner: str | None, fingerprint: str | None,
            now: float) -> SessionInfo:
    conn.execute("INSERT INTO sessions (key, session_id, owner, fingerprint, created_at, last_active) "
                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                 (key, session_id, owner, fingerprint, now, now))
    return _get(conn, key)


def _claim(conn: sqlite3.Connection, key: str, person: str | None, character: str | None) -> None:
    conn.execute("UPDATE sessions SET person = COALESCE(person, ?), character = COALESCE(character, ?) "
                 "WHERE key = ?", (person, character, key))


def _set_scope(conn: sqlite3.Connection, key: str, scope: str | None) -> None:
    conn.execute("UPDATE sessions SET scope = ? WHERE key = ?", (scope, key))


def _of_person(conn: sqlite3.Connection, owner: str | None, person: str) -> list[SessionInfo]:
    rows = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE owner IS ? AND person = ? "
                        "ORDER BY last_active DESC", (owner, person))
    return [SessionInfo(*row) for row in rows]


def _find_by_fingerprint(conn: sqlite3.Connection, owner: str | None, fingerprint: str) -> str | None:
    row = conn.execute("SELECT key FROM sessions WHERE owner IS ? AND fingerprint = ? "
                       "ORDER BY last_active DESC LIMIT 1", (owner, fingerprint)).fetchone()
    return row[0] if row else None


def _find_by_hashes(conn: sqlite3.Connection, owner: str | None, hashes: list[str], min_matches: int) -> str | None:
    """The owner's session sharing the most hashes (at least `min_matches`), most recent on ties."""
    marks = ",".join("?" * len(hashes))
    row = conn.execute(
        f"SELECT w.key, COUNT(*) AS matches FROM window_hashes w JOIN sessions s ON s.key = w.key "
        f"WHERE w.hash IN ({marks}) AND s.owner IS ? GROUP BY w.key "
        f"ORDER BY matches DESC, s.last_active DESC LIMIT 1", (*hashes, owner)).fetchone()
    if row is None or row[1] < min(min_matches, len(hashes)):
        return None
    return row[0]


def _list(conn: sqlite3.Connection, owner: str | None, limit: int, offset: int,
          every_owner: bool = False, search: str | None = None) -> list[SessionInfo]:
    """Most recently active first; `search` keeps the ids containing it (any case)."""
    clauses, args = ([], []) if every_owner else (["owner IS ?"], [owner])
    if search:
        clauses.append("session_id LIKE ? ESCAPE '\\'")
        args.append(f"%{like_escape(search)}%")
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    rows = conn.execute(f"SELECT {_SESSION_COLUMNS} FROM sessions {where}"
                        "ORDER BY last_active DESC LIMIT ? OFFSET ?", (*args, limit, offset))
    return [SessionInfo(*row) for row in rows]


def like_escape(text: str) -> str:
    """`text` as a literal inside a LIKE pattern whose escape character is a backslash."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _owners(conn: sqlite3.Connection, session_id: str) -> list[str | None]:
    rows = conn.execute("SELECT DISTINCT owner FROM sessions WHERE session_id = ?", (session_id,))
    return [owner for (owner,) in rows]


def _count(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]


def _keys(conn: sqlite3.Connection, where: str) -> list[str]:
    return [key for (key,) in conn.execute(f"SELECT key FROM sessions {where} ORDER BY last_active DESC")]


def _set_pending(conn: sqlite3.Connection, key: str, pending: int) -> None:
    conn.execute("UPDATE sessions SET pending = ? WHERE key = ?", (pending, key))


def _record_activity(conn: sqlite3.Connection, key: str, count: int, tokens: int, pending: int, hashes: list[str],
                     now: float, window: int) -> None:
    with transaction(conn):
        conn.execute("UPDATE sessions SET message_count = message_count + ?, token_total = token_total + ?, "
                     "pending = ?, last_active = ? WHERE key = ?", (count, tokens, pending, now, key))
        if hashes:
            # REPLACE gives a repeated hash a new id, so it counts as recent again.
            conn.executemany("INSERT OR REPLACE INTO window_hashes (key, hash) VALUES (?, ?)",
                             [(key, h) for h in hashes])
            conn.execute("DELETE FROM window_hashes WHERE key = ? AND id < (SELECT id FROM window_hashes "
                         "WHERE key = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", (key, key, window - 1))


def _delete(conn: sqlite3.Connection, key: str) -> bool:
    with transaction(conn):
        deleted = conn.execute("DELETE FROM sessions WHERE key = ?", (key,)).rowcount
        conn.execute("DELETE FROM window_hashes WHERE key = ?", (key,))
    return deleted > 0
