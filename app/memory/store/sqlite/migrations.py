"""How a database file is opened and brought to the current schema.

Three kinds of database: ``"registry"`` (one file listing every conversation), ``"session"``
(one file per conversation) and ``"documents"`` (the knowledge base: documents and their chunks). Each kind has an ordered list of numbered migrations; a
``_migrations`` table in the file records which ones ran, so opening an old file applies only
what is missing. A migration that has shipped is never edited: change the schema by adding the
next one (and a test that upgrades a file made by the previous release).

    conn = sqlite3.connect(path, isolation_level=None)
    configure(conn)
    migrate(conn, "session")            # -> names applied now, e.g. ["m001_initial", ...]
    migrate(conn, "session", upto=1)    # tests: a file as the first release left it

The async side (`open_database`, `run`) wraps aiosqlite so that a whole transaction runs on the
connection's thread in one hop (see `run`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")
Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: dict[str, list[Migration]] = {"registry": [], "session": [], "documents": []}


def migration(kind: str) -> Callable[[Migration], Migration]:
    """Register the decorated function as the next migration of `kind` (its name is its id)."""
    def register(fn: Migration) -> Migration:
        MIGRATIONS[kind].append(fn)
        return fn
    return register


def configure(conn: sqlite3.Connection, *, cache_kib: int = 2048) -> None:
    """Pragmas every connection gets, registry and sessions alike.

    WAL lets readers run beside the one writer. synchronous=NORMAL in WAL mode writes each
    commit into the -wal file (handed to the OS) but fsyncs only at checkpoints: a committed
    transaction therefore survives SIGKILL or a crash of this process, because the kernel
    still holds and later writes those pages; only a power cut or OS crash can drop the last
    few commits, and even then the file stays consistent (sqlite.org/wal.html#durability).
    """
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    conn.execute("PRAGMA journal_size_limit=4194304")  # truncate a grown -wal after checkpoints


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection is in autocommit)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def applied(conn: sqlite3.Connection) -> list[str]:
    """Names of the migrations already applied to this file, oldest first."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='_migrations'").fetchone()
    if not exists:
        return []
    return [name for (name,) in conn.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(conn: sqlite3.Connection, kind: str, *, upto: int | None = None) -> list[str]:
    """Apply the missing migrations of `kind` (the first `upto` only, if given); return their names.

    Each migration and its `_migrations` row commit together, so a crash mid-upgrade leaves the
    file at the previous step, never half-way.
    """
    done = set(applied(conn))
    ran = []
    for fn in MIGRATIONS[kind][:upto]:
        if fn.__name__ in done:
            continue
        with transaction(conn):
            conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
            fn(conn)
            conn.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (fn.__name__, time.time()))
        ran.append(fn.__name__)
    return ran


def _script(conn: sqlite3.Connection, sql: str) -> None:
    """Run `;`-separated DDL statement by statement (executescript would COMMIT our transaction)."""
    for statement in sql.split(";"):
        if statement.strip():
            conn.execute(statement)


# --------------------------------------------------------------------------- aiosqlite side


async def open_database(path: Path, kind: str, *, cache_kib: int = 2048) -> aiosqlite.Connection:
    """Connect (creating the file if needed), configure and migrate, in two hops."""
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await run(db, _prepare, kind, cache_kib)
    except BaseException:
        await db.close()
        raise
    return db


def _prepare(conn: sqlite3.Connection, kind: str, cache_kib: int) -> None:
    configure(conn, cache_kib=cache_kib)
    migrate(conn, kind)


async def run(db: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn(sqlite3_connection, *args)`` on `db`'s own thread and return its result.

    aiosqlite sends every call through its connection thread's queue; a transaction written as
    N awaited statements costs N hops, each ~40 µs of event-loop time and more of wall time.
    Running the whole transaction as one function costs one hop (measured ~7x less loop time
    for an append of two messages). `_execute` is aiosqlite's own queueing primitive, which its
    public methods are built on.
    """
    return await db._execute(_call, db, fn, args)


def _call(db: aiosqlite.Connection, fn: Callable[..., T], args: tuple) -> T:
    return fn(db._conn, *args)


# --------------------------------------------------------------------------- registry


@migration("registry")
def m001_sessions(conn: sqlite3.Connection) -> None:
    _script(conn, """
        CREATE TABLE sessions (
            key TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            owner TEXT,
            fingerprint TEXT,
            created_at REAL NOT NULL,
            last_active REAL NOT NULL,
            message_count INTEGER NOT NULL DEFAULT 0,
            token_total INTEGER NOT NULL DEFAULT 0,
            pending INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX sessions_owner_fingerprint ON sessions (owner, fingerprint)
    """)


@migration("registry")
def m002_window_hashes(conn: sqlite3.Connection) -> None:
    _script(conn, """
        CREATE TABLE window_hashes (
            id INTEGER PRIMARY KEY,
            key TEXT NOT NULL,
            hash TEXT NOT NULL,
            UNIQUE (key, hash)
        );
        CREATE INDEX window_hashes_hash ON window_hashes (hash);
        CREATE INDEX sessions_owner_active ON sessions (owner, last_active)
    """)


@migration("registry")
def m003_people(conn: sqlite3.Connection) -> None:
    """The person a conversation belongs to, the character it is with and its recall scope."""
    _script(conn, """
        ALTER TABLE sessions ADD COLUMN person TEXT;
        ALTER TABLE sessions ADD COLUMN character TEXT;
        ALTER TABLE sessions ADD COLUMN scope TEXT;
        CREATE INDEX sessions_owner_person ON sessions (owner, person, last_active)
    """)


# --------------------------------------------------------------------------- session


@migration("session")
def m001_initial(conn: sqlite3.Connection) -> None:
    _script(conn, """
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            position INTEGER NOT NULL,
            role TEXT NOT NULL,
            name TEXT,
            content TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            token_count INTEGER NOT NULL DEFAULT 0,
            superseded_by INTEGER,
            kind TEXT NOT NULL DEFAULT 'turn',
            emotion TEXT,
            emotion_confidence REAL,
            emotion_intensity REAL,
            emotion_probs BLOB,
            importance REAL,
            embedding BLOB,
            scored_at REAL,
            tier TEXT NOT NULL DEFAULT 'working',
            access_count INTEGER NOT NULL DEFAULT 0,
            last_accessed REAL
        );
        CREATE INDEX messages_active ON messages (superseded_by, position);
        CREATE INDEX messages_hash ON messages (content_hash);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
        CREATE TABLE summaries (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            level INTEGER NOT NULL DEFAULT 0,
            start_position INTEGER NOT NULL,
            end_position INTEGER NOT NULL,
            text TEXT NOT NULL,
            created_at REAL NOT NULL,
            embedding BLOB,
            superseded INTEGER NOT NULL DEFAULT 0
        )
    """)


@migration("session")
def m002_position_and_pending_indexes(conn: sqlite3.Connection) -> None:
    # MAX(position) for the next turn, and the background writer's "what is left to score".
    _script(conn, """
        CREATE INDEX messages_position ON messages (position);
        CREATE INDEX messages_pending ON messages (id) WHERE scored_at IS NULL AND superseded_by IS NULL;
        CREATE INDEX summaries_current ON summaries (superseded, kind, level, start_position)
    """)


@migration("session")
def m003_persona_chunks(conn: sqlite3.Connection) -> None:
    # Pieces of every distinct system prompt the session sent, once each (by hash of the
    # whitespace-normalised text), with their vectors: the chunk, then its sentences.
    _script(conn, """
        CREATE TABLE persona_chunks (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL UNIQUE,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            embedding BLOB
        )
    """)


@migration("session")
def m004_whitespace_blind_hashes(conn: sqlite3.Connection) -> None:
    # Message hashes now ignore whitespace differences and speaker names (role + normalised text),
    # so a resend that differs by a space lines up with what was stored. Rehash every message.
    rows = conn.execute("SELECT id, role, content FROM messages").fetchall()
    conn.executemany("UPDATE messages SET content_hash = ? WHERE id = ?",
                     [(_hash_v2(role, content), id_) for id_, role, content in rows])


def _hash_v2(role: str, content: str) -> str:
    """The message hash as m004 defines it, frozen here: a shipped migration never changes."""
    material = role.lower() + "\x1f" + " ".join(content.split())
    return hashlib.sha256(material.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- documents


@migration("documents")
def m001_documents(conn: sqlite3.Connection) -> None:
    # A document is global (owner and session_id NULL), a tenant's (owner) or one conversation's
    # (owner and session_id). A folder document has its path under DOCS_DIR; an upload has none.
    # Chunks are written in one transaction with the status that says they are all there.
    _script(conn, """
        CREATE TABLE documents (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            source TEXT NOT NULL,
            path TEXT UNIQUE,
            owner TEXT,
            session_id TEXT,
            bytes INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            pages INTEGER,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE INDEX documents_owner ON documents (owner, session_id);
        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,
            document_id TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            page INTEGER,
            heading TEXT NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            is_table INTEGER NOT NULL DEFAULT 0,
            embedding BLOB NOT NULL
        );
        CREATE INDEX chunks_document ON chunks (document_id, ordinal)
    """)
