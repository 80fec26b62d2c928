"""The conversation store on both backends (real SQLite files, a real PostgreSQL): registry, writes,
reads, locks and deletion; the SQLite connection pool on its own."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import numpy as np
import pytest

from app.memory.records import InvalidSessionKey, NewMessage, ScoreUpdate, SessionNotFound, check_key
from app.memory.store.sqlite.store import Store
from app.memory.working import WorkingMemory

pytestmark = pytest.mark.anyio

KEY = "0123456789abcdef"
OTHER = "fedcba9876543210"


def key(n: int) -> str:
    return f"{n:016x}"


def msg(content: str, role: str = "user", tokens: int = 1, **extra) -> NewMessage:
    return NewMessage(role=role, content=content, token_count=tokens, **extra)


@pytest.fixture
async def store(make_store):
    async with make_store() as s:
        await s.create_session(KEY, "chat-1", None, "fp-1")
        yield s


async def contents(store: Store, k: str = KEY, **kwargs) -> list[tuple[int, str]]:
    return [(r.position, r.content) for r in await store.messages(k, **kwargs)]


def session_files(store) -> list[str]:
    """The session files on disk (SQLite); PostgreSQL keeps none."""
    if store.backend != "sqlite":
        return []
    return sorted(p.name for p in store.sessions_dir.iterdir())


async def window_size(store, k: str) -> int:
    if store.backend == "sqlite":
        conn = sqlite3.connect(store.data_dir / "registry.sqlite")
        return conn.execute("SELECT COUNT(*) FROM window_hashes WHERE key = ?", (k,)).fetchone()[0]
    return await store.pool.fetchval("SELECT cardinality(recent_hashes) FROM sessions WHERE key = $1", k)


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("bad", ["", "0123456789abcde", "0" * 65, "0123456789ABCDEF", "../../etc/passwd0000",
                                 "0123456789abcdeg", "0123456789abcdef/", " 0123456789abcdef", None, 123])
async def test_invalid_keys_are_rejected_before_any_file_is_touched(store, bad):
    with pytest.raises(InvalidSessionKey):
        check_key(bad)
    with pytest.raises(InvalidSessionKey):
        await store.append(bad, [msg("x")])
    with pytest.raises(InvalidSessionKey):
        await store.messages(bad)
    with pytest.raises(InvalidSessionKey):
        await store.create_session(bad, "s")
    with pytest.raises(InvalidSessionKey):
        await store.get_session(bad)
    assert [s.key for s in await store.list_sessions(None, every_owner=True)] == [KEY]
    assert [p for p in session_files(store) if p.endswith(".sqlite")] in ([], [f"{KEY}.sqlite"])


@pytest.mark.parametrize("good", ["0" * 16, "a" * 64, "0123456789abcdef" * 2])
def test_valid_keys_pass(good):
    assert check_key(good) == good


# --------------------------------------------------------------------------- registry


async def test_create_session_makes_file_row_and_meta_and_is_idempotent(store):
    info = await store.get_session(KEY)
    assert (info.session_id, info.owner, info.fingerprint, info.message_count) == ("chat-1", None, "fp-1", 0)
    assert store.backend != "sqlite" or store.session_path(KEY).exists()
    again = await store.create_session(KEY, "other-id", "someone", "fp-2")
    assert again == info
    assert (await store.meta(KEY))["session_id"] == "chat-1"


async def test_unknown_session_reads_are_empty_and_create_nothing(store):
    assert await store.get_session(OTHER) is None
    assert await store.messages(OTHER) == []
    assert await store.active_tail(OTHER, 10) == []
    assert await store.pending_count(OTHER) == 0
    assert await store.get_persona(OTHER) is None
    assert (await store.stats(OTHER)).messages == 0
    assert await store.summaries(OTHER) == [] and await store.meta(OTHER) == {}
    assert await store.turns_before(OTHER, [1]) == {} and await store.persona_chunks(OTHER) == []
    assert await store.get_session(OTHER) is None and OTHER not in await store.all_keys()
    assert f"{OTHER}.sqlite" not in session_files(store)


async def test_unknown_session_writes_raise(store):
    with pytest.raises(SessionNotFound):
        await store.append(OTHER, [msg("x")])
    with pytest.raises(SessionNotFound):
        await store.record_reply(OTHER, msg("x", "assistant"))
    with pytest.raises(SessionNotFound):
        await store.save_scores(OTHER, [ScoreUpdate(id=1, importance=0.5)])
    with pytest.raises(SessionNotFound):
        await store.add_summary(OTHER, kind="rolling", level=0, start_position=1, end_position=2, text="x")
    assert await store.get_session(OTHER) is None
    assert f"{OTHER}.sqlite" not in session_files(store)


async def test_find_by_fingerprint_is_scoped_by_owner(store):
    await store.create_session(OTHER, "chat-2", "alice", "fp-1")
    assert await store.find_by_fingerprint(None, "fp-1") == KEY
    assert await store.find_by_fingerprint("alice", "fp-1") == OTHER
    assert await store.find_by_fingerprint("bob", "fp-1") is None
    assert await store.find_by_fingerprint(None, "nope") is None


async def test_find_by_hashes_matches_a_front_trimmed_window(store):
    await store.create_session(OTHER, "chat-2", None, None)
    await store.append(KEY, [msg(f"turn {i}") for i in range(100)])
    await store.append(OTHER, [msg("turn 98"), msg("something else")])
    tail = [r.content_hash for r in await store.active_tail(KEY, 10)]
    assert await store.find_by_hashes(None, tail) == KEY
    assert await store.find_by_hashes("alice", tail) is None
    early = [r.content_hash for r in (await store.messages(KEY))[:5]]
    assert await store.find_by_hashes(None, early) is None  # older than the kept window
    one = [r.content_hash for r in await store.active_tail(OTHER, 1)]
    assert await store.find_by_hashes(None, one) == OTHER  # fewer hashes than min_matches: all must match


async def test_window_hashes_stay_bounded(store):
    await store.append(KEY, [msg(f"m{i}") for i in range(300)])
    assert await window_size(store, KEY) == 64
    await store.append(KEY, [msg("m0"), msg("m0")])  # a repeated hash counts as recent again
    assert await window_size(store, KEY) == 64
    assert await store.find_by_hashes(None, [h.content_hash for h in (await store.messages(KEY))[-2:]]) == KEY


async def test_list_sessions_by_owner_most_recent_first(store):
    for i in range(3):
        await store.create_session(key(i + 1), f"s{i}", "alice", None)
    await store.append(key(1), [msg("bump")])
    listed = await store.list_sessions("alice", limit=2)
    assert [s.session_id for s in listed] == ["s0", "s2"]
    assert [s.session_id for s in await store.list_sessions("alice", limit=2, offset=2)] == ["s1"]
    assert [s.key for s in await store.list_sessions(None)] == [KEY]


# --------------------------------------------------------------------------- writes


async def test_append_gives_consecutive_positions_and_updates_counters(store):
    ids = await store.append(KEY, [msg("a", tokens=3), msg("b", "assistant", tokens=4)])
    ids += await store.append(KEY, [msg("c", tokens=5)])
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert await contents(store) == [(1, "a"), (2, "b"), (3, "c")]
    info = await store.get_session(KEY)
    assert (info.message_count, info.token_total, info.pending) == (3, 12, 3)
    assert await store.append(KEY, []) == []


async def test_apply_supersedes_in_place_and_appends_in_one_transaction(store):
    _, b, c = await store.append(KEY, [msg("a"), msg("b", tokens=2), msg("c", tokens=4)])
    applied = await store.apply(KEY, append=[msg("d")], supersede=[(b, msg("b edited", tokens=3)), (c, None)])
    assert applied.superseded == [b, c]
    assert applied.replacements[1] == -1 and applied.appended == [applied.rows[-1].id]
    assert await contents(store) == [(1, "a"), (2, "b edited"), (4, "d")]
    everything = await store.messages(KEY, include_superseded=True)
    assert {r.id: r.superseded_by for r in everything}[b] == applied.replacements[0]
    assert {r.id: r.superseded_by for r in everything}[c] == -1
    info = await store.get_session(KEY)
    assert (info.message_count, info.token_total) == (3, 1 + 3 + 1)


async def test_apply_never_loses_a_replacement_for_a_stale_id(store):
    (a,) = await store.append(KEY, [msg("a")])
    await store.apply(KEY, supersede=[(a, msg("a2"))])
    applied = await store.apply(KEY, supersede=[(a, msg("a3")), (999, msg("z"))])
    assert applied.superseded == []
    assert await contents(store) == [(1, "a2"), (2, "a3"), (3, "z")]


async def test_failed_write_leaves_nothing_behind(store):
    await store.append(KEY, [msg("a")])
    with pytest.raises((sqlite3.IntegrityError, asyncpg.NotNullViolationError)):
        await store.append(KEY, [msg("b"), NewMessage(role=None, content="no role", content_hash="h")])  # NOT NULL role
    assert await contents(store) == [(1, "a")]
    assert (await store.get_session(KEY)).message_count == 1


@pytest.mark.parametrize("replace, expected", [
    ([], [(1, "u1"), (2, "a1"), (3, "u2"), (4, "a2"), (5, "reply")]),   # a new turn goes last
    (["a2"], [(1, "u1"), (2, "a1"), (3, "u2"), (4, "reply")]),          # a regenerated reply takes its place
    (["a1"], [(1, "u1"), (3, "u2"), (4, "a2"), (5, "reply")]),          # something active follows: goes last
    (["u2", "a2"], [(1, "u1"), (2, "a1"), (3, "reply")]),
    ([12345], [(1, "u1"), (2, "a1"), (3, "u2"), (4, "a2"), (5, "reply")]),  # unknown ids are ignored
])
async def test_record_reply_position(store, replace, expected):
    ids = dict(zip(["u1", "a1", "u2", "a2"], await store.append(
        KEY, [msg("u1"), msg("a1", "assistant"), msg("u2"), msg("a2", "assistant")])))
    reply_id = await store.record_reply(KEY, msg("reply", "assistant"), [ids.get(r, r) for r in replace])
    assert await contents(store) == expected
    marked = {r.id: r.superseded_by for r in await store.messages(KEY, include_superseded=True)}
    assert all(marked[ids[r]] == reply_id for r in replace if r in ids)


async def test_applied_rows_keep_working_memory_equal_to_the_stored_tail(store):
    working = WorkingMemory(max_messages=4)
    ids = await store.append(KEY, [msg(f"m{i}") for i in range(6)])
    working.load(KEY, await store.active_tail(KEY, 4))
    steps = [dict(append=[msg("n1")]), dict(supersede=[(ids[5], msg("m5 edited"))]),
             dict(supersede=[(ids[4], None)], append=[msg("n2"), msg("n3")])]
    for step in steps:
        applied = await store.apply(KEY, **step)
        assert working.apply(KEY, added=applied.rows, removed=applied.superseded)
        held = [(m.id, m.position, m.content, m.content_hash) for m in working.get(KEY)]
        stored = [(r.id, r.position, r.content, r.content_hash) for r in await store.active_tail(KEY, len(held))]
        assert held == stored


async def test_scores_round_trip_as_float32_and_clear_pending(store):
    ids = await store.append(KEY, [msg("happy"), msg("sad"), msg("later")])
    assert [r.id for r in await store.pending(KEY, 2)] == ids[:2]
    vector = np.linspace(-1, 1, 384, dtype=np.float32)
    await store.save_scores(KEY, [ScoreUpdate(id=ids[0], emotion="joy", emotion_confidence=0.9, emotion_intensity=0.5,
                                              emotion_probs=[0.9, 0.1], importance=0.7, embedding=vector),
                                  ScoreUpdate(id=ids[1], embedding=list(vector * 2))])
    assert await store.pending_count(KEY) == 1
    assert [r.id for r in await store.pending(KEY, 10)] == [ids[2]]
    assert await store.keys_with_pending() == [KEY]
    rows = await store.active_for_index(KEY)
    assert [r.id for r in rows] == ids[:2]
    assert rows[0].embedding.dtype == np.float32 and np.array_equal(rows[0].embedding, vector)
    assert np.allclose(rows[0].emotion_probs, [0.9, 0.1]) and rows[0].scored_at is not None
    await store.save_scores(KEY, [ScoreUpdate(id=ids[2], embedding=vector)])
    assert await store.keys_with_pending() == []


async def test_active_tail_is_the_last_active_turns_oldest_first(store):
    ids = await store.append(KEY, [msg(f"m{i}") for i in range(10)] + [msg("who I am", "system", kind="persona")])
    await store.apply(KEY, supersede=[(ids[9], None)])
    tail = await store.active_tail(KEY, 3)
    assert [r.content for r in tail] == ["m6", "m7", "m8"]
    assert [r.content for r in await store.active_tail(KEY, 100)] == [f"m{i}" for i in range(9)]


async def test_touch_accessed_counts_retrievals(store):
    a, b = await store.append(KEY, [msg("a"), msg("b")])
    await store.touch_accessed(KEY, [a])
    await store.touch_accessed(KEY, [a, b])
    rows = {r.id: r for r in await store.messages(KEY)}
    assert (rows[a].access_count, rows[b].access_count) == (2, 1)
    assert rows[a].last_accessed is not None


async def test_persona_and_stats(store):
    assert await store.get_persona(KEY) is None
    await store.set_persona(KEY, "You are Ada.")
    await store.set_persona(KEY, "You are Ada, a pirate.")
    assert await store.get_persona(KEY) == "You are Ada, a pirate."
    a, _ = await store.append(KEY, [msg("a", tokens=2), msg("b", tokens=3)])
    await store.apply(KEY, supersede=[(a, None)])
    stats = await store.stats(KEY)
    assert (stats.messages, stats.superseded, stats.token_total, stats.pending) == (1, 1, 3, 1)
    assert stats.first_activity <= stats.last_activity


async def test_summaries_are_stored_and_superseded(store):
    first = await store.add_summary(KEY, kind="rolling", level=0, start_position=1, end_position=20, text="early")
    second = await store.add_summary(KEY, kind="higher", level=1, start_position=1, end_position=40, text="all",
                                     embedding=[0.5, 0.25], supersedes=[first])
    assert [s.id for s in await store.summaries(KEY)] == [second]
    every = await store.summaries(KEY, include_superseded=True)
    assert [(s.id, s.superseded) for s in every] == [(first, True), (second, False)]
    assert every[1].embedding.tolist() == [0.5, 0.25]


# --------------------------------------------------------------------------- locks, pool, lifecycle


async def test_session_lock_serialises_read_plan_write(store):
    async def exchange() -> None:
        async with store.session_lock(KEY):
            seen = len(await store.active_tail(KEY, 100))
            await asyncio.sleep(0)  # another request would interleave here without the lock
            await store.append(KEY, [msg(f"after {seen}")])

    await asyncio.gather(*(exchange() for _ in range(20)))
    rows = await store.messages(KEY)
    assert [r.position for r in rows] == list(range(1, 21))
    assert sorted(r.content for r in rows) == sorted(f"after {i}" for i in range(20))


async def test_pool_closes_least_recently_used_and_reopens_transparently(tmp_path):
    async with Store(tmp_path, max_open=2) as store:
        keys = [key(i + 1) for i in range(5)]
        for k in keys:
            await store.create_session(k, k, None, None)
            await store.append(k, [msg(f"first in {k}")])
            assert store.open_connections <= 2
        for k in keys:
            await store.append(k, [msg(f"second in {k}")])
        assert store.open_connections == 2
        for k in keys:
            assert [c for _, c in await contents(store, k)] == [f"first in {k}", f"second in {k}"]


async def test_pool_bound_holds_under_concurrent_sessions(tmp_path):
    async with Store(tmp_path, max_open=3) as store:
        keys = [key(i + 1) for i in range(12)]
        await asyncio.gather(*(store.create_session(k, k) for k in keys))
        await asyncio.gather(*(store.append(k, [msg(str(n))]) for n in range(5) for k in keys))
        assert store.open_connections <= 3
        assert [len(await store.messages(k)) for k in keys] == [5] * len(keys)


async def test_concurrent_first_uses_of_a_session_share_one_connection(tmp_path):
    async with Store(tmp_path) as store:
        await store.create_session(KEY, "chat-1")
    async with Store(tmp_path) as store:
        results = await asyncio.gather(*(store.messages(KEY) for _ in range(10)), store.append(KEY, [msg("x")]))
        assert store.open_connections == 1
        assert results[-1] == [1]


async def test_data_survives_closing_and_reopening(make_store):
    async with make_store() as store:
        await store.create_session(KEY, "chat-1")
        await store.append(KEY, [msg("remember me")])
    async with make_store() as store:
        assert await contents(store) == [(1, "remember me")]
        assert (await store.get_session(KEY)).message_count == 1


async def test_aclose_is_idempotent_and_refuses_later_use(make_store):
    store = make_store()
    await store.open()
    await store.create_session(KEY, "chat-1")
    await store.aclose()
    await store.aclose()
    assert store.backend != "sqlite" or store.open_connections == 0
    with pytest.raises(RuntimeError):
        await store.append(KEY, [msg("late")])


async def test_delete_removes_files_and_registry_rows(store):
    await store.append(KEY, [msg("secret")])
    await store.add_summary(KEY, kind="rolling", level=0, start_position=1, end_position=1, text="s")
    if store.backend == "sqlite":
        path = store.session_path(KEY)
        assert path.exists() and path.with_name(path.name + "-wal").exists()
    assert await store.delete_session(KEY) is True
    assert session_files(store) == []
    assert await store.get_session(KEY) is None
    assert await store.find_by_fingerprint(None, "fp-1") is None
    assert await store.messages(KEY) == [] and await store.summaries(KEY) == [] and await store.meta(KEY) == {}
    assert await store.delete_session(KEY) is False


async def test_delete_waits_for_a_reader_in_flight(store):
    await store.append(KEY, [msg(str(i)) for i in range(200)])
    reads = asyncio.gather(*(store.messages(KEY) for _ in range(5)))
    await asyncio.sleep(0)
    deleted = await store.delete_session(KEY)
    assert deleted and all(len(rows) in (0, 200) for rows in await reads)
    assert session_files(store) == []



async def test_turns_before_names_the_live_turn_before_each_message(store):
    a, b, c = await store.append(KEY, [msg("a"), msg("b"), msg("c")])
    applied = await store.apply(KEY, append=[msg("persona line", kind="persona"), msg("d")],
                                supersede=[(b, msg("b edited")), (c, None)])
    d = applied.appended[-1]
    before = await store.turns_before(KEY, [a, applied.replacements[0], d])
    assert before == {applied.replacements[0]: "a", d: "b edited"}  # not the deleted c, not the persona
    assert await store.turns_before(OTHER, [a]) == {}
