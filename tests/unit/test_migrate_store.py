"""`migrate-store`: conversations written by the SQLite store, copied into PostgreSQL whole, once,
resumably; then read back the same through both stores."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from app.memory.records import NewMessage, PersonaChunk, ScoreUpdate
from app.memory.store.migrate import migrate_store
from app.memory.store.postgres.store import PgStore
from app.memory.store.sqlite.store import Store

pytestmark = pytest.mark.anyio

KEYS = [f"{n:016x}" for n in range(1, 6)]


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return v / np.linalg.norm(v)


async def write_conversations(data_dir) -> None:
    async with Store(data_dir) as store:
        for n, key in enumerate(KEYS):
            await store.create_session(key, f"chat-{n}", "alice" if n % 2 else None, f"fp-{n}")
            ids = await store.append(key, [NewMessage(role="user" if i % 2 == 0 else "assistant",
                                                      content=f"conversation {n} line {i}", token_count=3)
                                           for i in range(10 + n)])
            await store.apply(key, supersede=[(ids[3], NewMessage(role="assistant", content="edited")), (ids[5], None)])
            await store.save_scores(key, [ScoreUpdate(id=i, embedding=unit(100 * n + i), emotion="joy",
                                                      emotion_probs=[0.5, 0.5], importance=0.3) for i in ids[:6]])
            await store.add_summary(key, kind="rolling", level=0, start_position=1, end_position=5, text=f"s{n}",
                                    embedding=unit(n))
            await store.add_persona_chunks(key, [PersonaChunk(hash=f"h{n}", text="You are Ada.", embedding=unit(9))])
            await store.set_persona(key, f"persona {n}")
            await store.claim_session(key, "ann", "char")


async def snapshot(store, key: str) -> tuple:
    rows = [(r.id, r.position, r.role, r.content, r.content_hash, r.created_at, r.superseded_by, r.emotion,
             r.importance, None if r.embedding is None else r.embedding.tobytes(), r.scored_at)
            for r in await store.messages(key, include_superseded=True)]
    summaries = [(s.id, s.text, s.embedding.tobytes(), s.superseded) for s in await store.summaries(key)]
    chunks = [(c.id, c.hash, c.text, np.asarray(c.embedding).tobytes()) for c in await store.persona_chunks(key)]
    return rows, summaries, chunks, await store.meta(key), await store.get_session(key), await store.stats(key)


async def test_migration_copies_everything_resumes_and_is_harmless_to_repeat(tmp_path, pg_url):
    data = tmp_path / "data"
    await write_conversations(data)
    first = await migrate_store(data, pg_url, limit=2, progress=False)  # interrupted after two
    assert (first.copied, first.skipped) == (2, 0)
    rest = await migrate_store(data, pg_url, progress=False)
    assert (rest.copied, rest.skipped) == (3, 2)
    again = await migrate_store(data, pg_url, progress=False)
    assert (again.copied, again.skipped, again.messages) == (0, 5, 0)
    async with Store(data) as source, PgStore(pg_url) as target:
        assert sorted(await target.all_keys()) == KEYS
        for key in KEYS:
            assert await snapshot(target, key) == await snapshot(source, key)
        hits = await target.search_vectors(KEYS[2], unit(200 + 5), 1)
        assert hits[0][0] == 5 and hits[0][1] > 0.99  # the fifth message's vector came along
        assert await target.find_by_fingerprint("alice", "fp-1") == KEYS[1]


async def test_a_partial_copy_is_replaced(tmp_path, pg_url):
    data = tmp_path / "data"
    await write_conversations(data)
    async with Store(data) as source, PgStore(pg_url) as target:
        info = await source.get_session(KEYS[0])
        rows = await source.messages(KEYS[0], include_superseded=True)
        await target.import_session(info, {}, rows[:4], [], [])
    assert (await migrate_store(data, pg_url, progress=False)).copied == 5
    async with Store(data) as source, PgStore(pg_url) as target:
        assert await snapshot(target, KEYS[0]) == await snapshot(source, KEYS[0])


def test_the_command_copies_the_data_dir(tmp_path, pg_url):
    import asyncio

    asyncio.run(write_conversations(tmp_path / "data"))
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data")}
    run = lambda *extra: subprocess.run([sys.executable, "-m", "app.cli", "migrate-store", *extra],  # noqa: E731
                                        capture_output=True, text=True, env=env, timeout=120)
    done = run("--to", pg_url)
    assert done.returncode == 0, done.stderr
    assert "copied 5 conversations" in done.stdout and "conversations" in done.stderr  # the progress bars
    assert "copied 0 conversations (0 messages), 5 already there" in run("--to", pg_url).stdout
    assert run("--to", "sqlite:///x").returncode == 2
