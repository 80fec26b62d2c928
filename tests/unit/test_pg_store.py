"""What only the PostgreSQL store has: versions and stale plans, other replicas' writes seen through
`changed`, writes serialised across stores by the advisory lock, search in pgvector, bulk import,
and the schema's migrations (from blank, and from a database the first release left)."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np
import pytest

from app.memory.records import Changes, NewMessage, ScoreUpdate, StaleSession
from app.memory.store.postgres.migrations import applied, migrate
from app.memory.store.postgres.pool import open_pool
from app.memory.store.postgres.store import PgStore
from app.memory.store.postgres.writes import recent
from app.memory.store.sqlite.store import Store

KEY = "0123456789abcdef"
DIM = 384


def msg(content: str, role: str = "user", **extra) -> NewMessage:
    return NewMessage(role=role, content=content, token_count=1, **extra)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
async def two(pg_url):
    """Two stores on one database, as two replicas would have."""
    async with PgStore(pg_url) as a, PgStore(pg_url) as b:
        await a.create_session(KEY, "chat-1")
        yield a, b


# --------------------------------------------------------------------------- versions


@pytest.mark.anyio
async def test_apply_based_on_a_stale_version_writes_nothing(two):
    a, b = two
    first = await a.apply(KEY, append=[msg("one")], based_on=0)
    assert first.version == 1
    await b.apply(KEY, append=[msg("from b")], based_on=1)
    with pytest.raises(StaleSession):
        await a.apply(KEY, append=[msg("planned on 1")], based_on=1)
    assert [r.content for r in await a.messages(KEY)] == ["one", "from b"]
    assert (await a.get_session(KEY)).message_count == 2
    assert (await a.apply(KEY, append=[msg("replanned")], based_on=2)).version == 3


@pytest.mark.anyio
async def test_changed_returns_exactly_what_the_other_replica_wrote(two):
    a, b = two
    ids = await a.append(KEY, [msg("a1"), msg("a2")])
    assert await b.changed(KEY) is None and b.version_seen(KEY) == 1  # first look: nothing cached yet
    assert await a.changed(KEY) is None and a.version_seen(KEY) == 1
    await a.append(KEY, [msg("a3")])
    assert a.version_seen(KEY) == 2  # its own write, on top of what it had seen
    assert await a.changed(KEY) is None
    edit = await b.apply(KEY, supersede=[(ids[1], msg("a2 edited"))])
    await b.save_scores(KEY, [ScoreUpdate(id=ids[0], embedding=unit(1), importance=0.5)])
    assert b.version_seen(KEY) == 1  # b had seen 1 and found 2: its writes do not move what it saw
    changes = await a.changed(KEY)
    assert changes.version == 4 and a.version_seen(KEY) == 4
    got = {r.id: r for r in changes.rows}
    assert set(got) == {ids[0], ids[1], edit.replacements[0]}
    assert got[ids[1]].superseded_by == edit.replacements[0]
    assert np.array_equal(got[ids[0]].embedding, unit(1)) and got[ids[0]].importance == 0.5
    assert await a.changed(KEY) is None
    assert (await b.changed(KEY)).version == 4  # b catches up with everything since 1


@pytest.mark.anyio
async def test_a_plan_made_before_the_conversation_existed_is_stale_once_another_replica_wrote(two):
    a, b = two
    new = "ab" * 8
    assert await a.changed(new) is None and await b.changed(new) is None
    assert a.version_seen(new) == 0 == b.version_seen(new)
    for store in (a, b):
        await store.create_session(new, "same-chat")
    await a.apply(new, append=[msg("hello")], based_on=a.version_seen(new))
    with pytest.raises(StaleSession):
        await b.apply(new, append=[msg("hello")], based_on=b.version_seen(new))
    assert [r.content for r in (await b.changed(new)).rows] == ["hello"]
    assert [r.content for r in await b.messages(new)] == ["hello"]


@pytest.mark.anyio
async def test_a_conversation_deleted_and_written_again_comes_back_whole(two):
    a, b = two
    await a.append(KEY, [msg("old 1"), msg("old 2")])
    await a.append(KEY, [msg("old 3")])
    await b.changed(KEY)
    assert b.version_seen(KEY) == 2
    await a.delete_session(KEY)
    await a.create_session(KEY, "chat-1")
    await a.append(KEY, [msg("new")])
    changes = await b.changed(KEY)  # at version 1, below the 2 it had seen
    assert changes.version == 1 and [r.content for r in changes.rows] == ["new"]
    await a.delete_session(KEY)
    assert await b.changed(KEY) == Changes(0, [])  # gone: nothing left to hold


@pytest.mark.anyio
async def test_touch_accessed_is_not_a_change(two):
    a, b = two
    ids = await a.append(KEY, [msg("x")])
    await b.changed(KEY)
    await a.touch_accessed(KEY, ids)
    assert await b.changed(KEY) is None
    assert (await b.messages(KEY))[0].access_count == 1


@pytest.mark.anyio
async def test_concurrent_plans_on_one_version_exactly_one_wins(two):
    a, b = two
    await a.append(KEY, [msg("start")])

    async def send(store: PgStore) -> str:
        try:
            await store.apply(KEY, append=[msg("the same resend")], based_on=1)
            return "won"
        except StaleSession:
            return "stale"

    results = await asyncio.gather(*(send(s) for s in (a, b) * 5))
    assert sorted(results) == ["stale"] * 9 + ["won"]
    assert [r.content for r in await a.messages(KEY)] == ["start", "the same resend"]


@pytest.mark.anyio
async def test_unconditional_writes_from_two_stores_never_share_ids_or_positions(two):
    a, b = two
    await asyncio.gather(*(s.append(KEY, [msg(f"{n}-{i}") for i in range(3)]) for n, s in enumerate((a, b) * 10)))
    rows = await a.messages(KEY)
    assert [r.id for r in rows] == list(range(1, 61)) and [r.position for r in rows] == list(range(1, 61))
    assert (await b.get_session(KEY)).message_count == 60


# --------------------------------------------------------------------------- vectors


@pytest.mark.anyio
async def test_search_vectors_finds_the_message_and_forgets_dropped_vectors(two):
    a, _ = two
    ids = await a.append(KEY, [msg(f"m{i}") for i in range(40)])
    await a.save_scores(KEY, [ScoreUpdate(id=i, embedding=np.stack([unit(i), unit(1000 + i)])) for i in ids])
    whole = unit(ids[17]) + 0.05 * unit(7)  # near message 17's whole vector (row 0, in the HNSW index)
    hits = await a.search_vectors(KEY, whole, 3)
    assert hits[0][0] == ids[17] and hits[0][1] > 0.9 and len(hits) == 3
    query = unit(1000 + ids[17]) + 0.05 * unit(7)  # near one of its pieces: only the exact search compares those
    exact = await a.search_vectors(KEY, query, 3, exact=True)
    q = query / np.linalg.norm(query)
    truth = sorted(((i, max(float(unit(i) @ q), float(unit(1000 + i) @ q))) for i in ids), key=lambda t: -t[1])
    assert [i for i, _ in exact] == [i for i, _ in truth[:3]]
    assert np.allclose([s for _, s in exact], [s for _, s in truth[:3]], atol=1e-5)
    await a.apply(KEY, supersede=[(ids[17], msg("m17 edited"))])
    assert ids[17] not in [i for i, _ in await a.search_vectors(KEY, whole, 3)]
    assert ids[17] not in [i for i, _ in await a.search_vectors(KEY, query, 3, exact=True)]
    await a.set_tiers(KEY, [_Tier(ids[18], "archive", True)])
    assert ids[18] not in [i for i, _ in await a.search_vectors(KEY, unit(ids[18]), 40)]
    assert await a.search_vectors("f" * 16, query, 3) == []


class _Tier:
    def __init__(self, id: int, tier: str, drop_embedding: bool) -> None:
        self.id, self.tier, self.drop_embedding = id, tier, drop_embedding


# --------------------------------------------------------------------------- import


@pytest.mark.anyio
async def test_import_session_copies_a_conversation_as_is_and_only_once(tmp_path, pg_url):
    async with Store(tmp_path / "data") as source:
        await source.create_session(KEY, "chat-1", "alice", "fp")
        ids = await source.append(KEY, [msg("a"), msg("b"), msg("c")])
        await source.apply(KEY, supersede=[(ids[1], msg("b2"))])
        await source.save_scores(KEY, [ScoreUpdate(id=ids[0], embedding=unit(3), emotion="joy")])
        await source.add_summary(KEY, kind="rolling", level=0, start_position=1, end_position=3, text="s")
        snapshot = (await source.get_session(KEY), await source.meta(KEY),
                    await source.messages(KEY, include_superseded=True), await source.summaries(KEY), [])
    async with PgStore(pg_url) as target:
        assert await target.import_session(*snapshot) is True
        assert await target.import_session(*snapshot) is False
        rows = await target.messages(KEY, include_superseded=True)
        assert [(r.id, r.position, r.content, r.superseded_by) for r in rows] == \
            [(r.id, r.position, r.content, r.superseded_by) for r in snapshot[2]]
        assert await target.get_session(KEY) == snapshot[0]
        assert (await target.search_vectors(KEY, unit(3), 1))[0][0] == ids[0]
        assert (await target.apply(KEY, append=[msg("d")])).appended == [len(rows) + 1]
        assert await target.find_by_hashes("alice", [r.content_hash for r in rows[-3:]]) == KEY


# --------------------------------------------------------------------------- schema


@pytest.mark.anyio
async def test_migrates_a_blank_database_to_current(pg_url):
    pool = await open_pool(pg_url)
    try:
        names = ["m001_initial", "m002_message_vectors", "m003_lighter_vector_index"]
        assert await migrate(pool, "store") == names
        assert await migrate(pool, "store") == []
        async with pool.acquire() as conn:
            assert await applied(conn, "store") == names
            index = await conn.fetchval("SELECT indexdef FROM pg_indexes WHERE indexname = 'message_vectors_hnsw'")
    finally:
        await pool.close()
    assert "hnsw" in index and "vector_cosine_ops" in index
    assert "m='8'" in index and "ef_construction='32'" in index and "WHERE (\"row\" = 0)" in index, index


@pytest.mark.anyio
async def test_upgrades_a_database_left_at_m001_with_its_data(pg_url):
    pool = await open_pool(pg_url)
    try:
        await migrate(pool, "store", upto=1)
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO sessions (key, session_id, created_at, last_active, message_count, "
                               "seq, last_message) VALUES ($1, 'old', 1, 2, 2, 3, 2)", KEY)
            await conn.execute("INSERT INTO messages (session_key, id, position, role, content, content_hash, "
                               "created_at, embedding) VALUES ($1, 1, 1, 'user', 'hello', 'h1', 1, $2), "
                               "($1, 2, 2, 'assistant', 'hi', 'h2', 2, NULL)", KEY, unit(5).tobytes())
    finally:
        await pool.close()
    async with PgStore(pg_url) as store:
        assert [r.content for r in await store.messages(KEY)] == ["hello", "hi"]
        assert np.array_equal((await store.messages(KEY))[0].embedding, unit(5))
        assert (await store.search_vectors(KEY, unit(5), 1))[0][0] == 1  # filled from the stored embedding
        assert (await store.apply(KEY, append=[msg("next")], based_on=3)).appended == [3]


@pytest.mark.anyio
async def test_writes_take_the_sessions_advisory_lock(two):
    a, _ = two
    from app.memory.store.postgres.store_sql import lock_id

    conn = await asyncpg.connect(a.dsn)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_id(KEY))
            write = asyncio.create_task(a.append(KEY, [msg("waits")]))
            await asyncio.sleep(0.3)
            assert not write.done()
        assert await write == [1]
    finally:
        await conn.close()


@pytest.mark.parametrize("held, written, window, expected", [
    ([], ["a", "b"], 4, ["a", "b"]),
    (["a", "b"], ["c"], 4, ["a", "b", "c"]),
    (["a", "b", "c"], ["a"], 4, ["b", "c", "a"]),          # written again: recent again
    (["a", "b", "c", "d"], ["e", "f"], 4, ["c", "d", "e", "f"]),  # the oldest drop out
    (["a"], ["x", "y", "x"], 4, ["a", "y", "x"]),            # a repeat within one write counts once, last
    (["a", "b"], [], 4, ["a", "b"]),
    ([], [str(i) for i in range(10)], 3, ["7", "8", "9"]),
])
def test_recent_hashes_window(held, written, window, expected):
    assert recent(held, written, window) == expected
