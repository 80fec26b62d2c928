"""Numbered migrations: a blank file reaches the latest schema; an old file upgrades keeping its rows."""

from __future__ import annotations

import re
import sqlite3

import pytest

from app.memory.store.sqlite.migrations import MIGRATIONS, applied, configure, migrate, open_database, run

MESSAGE_COLUMNS = ["id", "position", "role", "name", "content", "content_hash", "created_at", "token_count",
                   "superseded_by", "kind", "emotion", "emotion_confidence", "emotion_intensity", "emotion_probs",
                   "importance", "embedding", "scored_at", "tier", "access_count", "last_accessed"]


def connect(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    configure(conn)
    return conn


def names(kind: str) -> list[str]:
    return [fn.__name__ for fn in MIGRATIONS[kind]]


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def indexes(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


@pytest.mark.parametrize("kind", ["registry", "session", "documents"])
def test_migration_names_are_numbered_in_order_and_unique(kind):
    found = names(kind)
    numbers = [int(re.match(r"m(\d{3})_", name).group(1)) for name in found]
    assert numbers == list(range(1, len(found) + 1))
    assert len(set(found)) == len(found)


@pytest.mark.parametrize("kind", ["registry", "session", "documents"])
def test_blank_database_gets_every_migration_once(tmp_path, kind):
    conn = connect(tmp_path / "db.sqlite")
    assert migrate(conn, kind) == names(kind)
    assert applied(conn) == names(kind)
    assert migrate(conn, kind) == []


def test_session_schema_has_the_documented_tables_and_columns(tmp_path):
    conn = connect(tmp_path / "s.sqlite")
    migrate(conn, "session")
    assert columns(conn, "messages") == MESSAGE_COLUMNS
    assert columns(conn, "meta") == ["key", "value"]
    assert columns(conn, "summaries") == ["id", "kind", "level", "start_position", "end_position", "text",
                                          "created_at", "embedding", "superseded"]
    assert {"messages_active", "messages_hash", "messages_position", "messages_pending"} <= indexes(conn)
    defaults = {row[1]: row[4] for row in conn.execute("PRAGMA table_info(messages)")}
    assert (defaults["kind"], defaults["tier"], defaults["access_count"]) == ("'turn'", "'working'", "0")


def test_persona_chunks_table_stores_each_hash_once(tmp_path):
    conn = connect(tmp_path / "s.sqlite")
    migrate(conn, "session")
    assert columns(conn, "persona_chunks") == ["id", "hash", "text", "token_count", "created_at", "embedding"]
    insert = "INSERT OR IGNORE INTO persona_chunks (hash, text, created_at) VALUES (?, ?, ?)"
    assert conn.execute(insert, ("h1", "The gate opens at moonrise.", 1.0)).rowcount == 1
    assert conn.execute(insert, ("h1", "The gate opens at moonrise.", 2.0)).rowcount == 0


def old_session(path, upto: int, rows: list[tuple]) -> list[str]:
    """A session database migrated only up to `upto`, holding `rows` and a persona; closed."""
    conn = connect(path)
    ran = migrate(conn, "session", upto=upto)
    conn.executemany("INSERT INTO messages (position, role, content, content_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                     rows)
    conn.execute("INSERT INTO meta (key, value) VALUES ('persona', 'A patient tutor')")
    conn.close()
    return ran


def test_session_database_from_before_persona_chunks_upgrades(tmp_path):
    path = tmp_path / "old.sqlite"
    old_session(path, 2, [(1, "user", "hello", "h1", 1.0)])
    conn = connect(path)
    ran = migrate(conn, "session")
    assert ran == names("session")[2:] and ran[0] == "m003_persona_chunks"
    assert conn.execute("SELECT content FROM messages").fetchall() == [("hello",)]
    assert conn.execute("SELECT COUNT(*) FROM persona_chunks").fetchone() == (0,)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_registry_schema(tmp_path):
    conn = connect(tmp_path / "r.sqlite")
    migrate(conn, "registry")
    assert columns(conn, "sessions") == ["key", "session_id", "owner", "fingerprint", "created_at", "last_active",
                                         "message_count", "token_total", "pending", "person", "character", "scope"]
    assert columns(conn, "window_hashes") == ["id", "key", "hash"]
    assert {"sessions_owner_fingerprint", "window_hashes_hash", "sessions_owner_person"} <= indexes(conn)


def test_old_session_database_upgrades_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.sqlite"
    ran = old_session(path, 1, [(1, "user", "hello", "h1", 1.0), (2, "assistant", "hi there", "h2", 2.0)])
    assert ran == ["m001_initial"]
    assert "messages_pending" not in indexes(connect(path))
    conn = connect(path)
    assert migrate(conn, "session") == names("session")[1:]
    rows = conn.execute("SELECT position, role, content, tier, scored_at FROM messages ORDER BY id").fetchall()
    assert rows == [(1, "user", "hello", "working", None), (2, "assistant", "hi there", "working", None)]
    assert conn.execute("SELECT value FROM meta WHERE key = 'persona'").fetchone() == ("A patient tutor",)
    assert "messages_pending" in indexes(conn)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_old_registry_upgrades_and_keeps_its_rows(tmp_path):
    path = tmp_path / "registry.sqlite"
    conn = connect(path)
    migrate(conn, "registry", upto=1)
    conn.execute("INSERT INTO sessions (key, session_id, created_at, last_active, message_count) "
                 "VALUES ('k1', 'chat-1', 1.0, 2.0, 5)")
    conn.close()

    conn = connect(path)
    migrate(conn, "registry")
    assert conn.execute("SELECT session_id, message_count, pending FROM sessions").fetchall() == [("chat-1", 5, 0)]
    assert applied(conn) == names("registry")
    conn.execute("INSERT INTO window_hashes (key, hash) VALUES ('k', 'h')")


def test_registry_from_before_people_upgrades_with_no_person(tmp_path):
    """A registry written before people existed: its conversations belong to no one, as before."""
    path = tmp_path / "registry.sqlite"
    conn = connect(path)
    migrate(conn, "registry", upto=2)
    conn.execute("INSERT INTO sessions (key, session_id, owner, created_at, last_active) "
                 "VALUES ('k1', 'chat-1', 't1', 1.0, 2.0)")
    conn.execute("INSERT INTO window_hashes (key, hash) VALUES ('k1', 'h')")
    conn.close()

    conn = connect(path)
    assert migrate(conn, "registry") == ["m003_people"]
    assert conn.execute("SELECT session_id, owner, person, character, scope FROM sessions").fetchall() == [
        ("chat-1", "t1", None, None, None)]
    assert conn.execute("SELECT key, hash FROM window_hashes").fetchall() == [("k1", "h")]
    assert "sessions_owner_person" in indexes(conn)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.anyio
async def test_open_database_configures_durable_wal(tmp_path):
    db = await open_database(tmp_path / "s.sqlite", "session")
    try:
        def pragmas(conn):
            return [conn.execute(f"PRAGMA {p}").fetchone()[0]
                    for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
        assert await run(db, pragmas) == ["wal", 1, 1, 5000]  # synchronous 1 = NORMAL
        assert await run(db, applied) == names("session")
    finally:
        await db.close()


def test_hashes_written_before_m004_are_rewritten_to_the_one_message_hash(tmp_path):
    from app.sessions import message_hash

    path = tmp_path / "old.sqlite"
    raw = "0" * 32  # what the old raw-text hash looked like: anything but the new one
    old_session(path, 3, [(1, "user", "Hello,\n  world ", raw, 1.0), (2, "assistant", "Hi  there", raw, 2.0)])
    conn = connect(path)
    assert migrate(conn, "session")[0] == "m004_whitespace_blind_hashes"
    hashes = [h for (h,) in conn.execute("SELECT content_hash FROM messages ORDER BY id")]
    assert hashes == [message_hash("user", "Hello, world"), message_hash("assistant", "Hi there")]


def test_blank_documents_database_has_documents_and_chunks_that_go_with_them(tmp_path):
    conn = connect(tmp_path / "documents.sqlite")
    migrate(conn, "documents")
    assert columns(conn, "documents") == ["id", "name", "source", "path", "owner", "session_id", "bytes", "sha256",
                                          "status", "error", "pages", "chunk_count", "created_at", "updated_at"]
    assert columns(conn, "chunks") == ["id", "document_id", "ordinal", "page", "heading", "text", "token_count",
                                       "is_table", "embedding"]
    assert {"documents_owner", "chunks_document"} <= indexes(conn)
    conn.execute("INSERT INTO documents (id, name, source, bytes, sha256, status, created_at, updated_at) "
                 "VALUES ('d1', 'a.md', 'upload', 1, 'x', 'indexed', 0, 0)")
    conn.execute("INSERT INTO chunks (document_id, ordinal, heading, text, token_count, embedding) "
                 "VALUES ('d1', 0, '', 'hi', 1, x'00')")
    conn.execute("DELETE FROM documents WHERE id = 'd1'")
    assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone() == (0,)
