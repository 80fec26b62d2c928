"""What the conversation store costs per request, and how it scales with a conversation's length.

    python bench/store_bench.py             # 100, 1,000 and 10,000 stored messages
    python bench/store_bench.py --quick     # fewer repetitions
    python bench/store_bench.py --json bench/results/store.json

For each size, one session is filled with that many scored messages (200-character turns with
384-dim float32 embeddings), then a request is timed as the proxy does it:

    write   append(user turn) + record_reply(reply): two transactions + two registry updates
    read    active_tail(key, 64): the stored tail a history diff needs when working memory misses
    wm get  WorkingMemory.get(key): the same tail when it is held in RAM
    index   active_for_index(key): every embedding, to rebuild the search index on a cold start

"loop" is CPU time of the event-loop thread (what a request takes away from every other
request); "wall" is elapsed time. Medians; the baseline is one bare aiosqlite `SELECT 1` round
trip measured in the same run. RAM per idle session is the RSS growth of holding many sessions,
each with an open connection and a full working memory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.memory.records import NewMessage, ScoreUpdate  # noqa: E402
from app.memory.store.sqlite.store import Store  # noqa: E402
from app.memory.working import WorkingMemory  # noqa: E402

SIZES = (100, 1_000, 10_000)
TEXT = ("I walked down to the harbour this morning and the fog was so thick I could hear the boats "
        "before I saw them. It made me think about what you said yesterday, about waiting. ")[:200]
rng = np.random.default_rng(7)


def key(n: int) -> str:
    return f"{n:016x}"


async def timed(call: Callable[[], Awaitable[object]], reps: int) -> tuple[float, float]:
    """Median (loop CPU µs, wall µs) of `reps` calls."""
    loop, wall = [], []
    for _ in range(reps):
        c0, w0 = time.thread_time(), time.perf_counter()
        await call()
        loop.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(loop) * 1e6, statistics.median(wall) * 1e6


async def baseline(tmp: Path, reps: int) -> tuple[float, float]:
    async with aiosqlite.connect(tmp / "baseline.sqlite") as db:
        return await timed(lambda: db.execute_fetchall("SELECT 1"), reps)


async def fill(store: Store, k: str, n: int) -> None:
    await store.create_session(k, f"bench-{n}")
    for start in range(0, n, 1000):
        batch = [NewMessage(role="user" if i % 2 == 0 else "assistant", content=f"{i} {TEXT}", token_count=50)
                 for i in range(start, min(n, start + 1000))]
        ids = await store.append(k, batch)
        vectors = rng.standard_normal((len(ids), 384)).astype(np.float32)
        await store.save_scores(k, [ScoreUpdate(id=i, emotion="neutral", emotion_confidence=0.8, importance=0.3,
                                                embedding=v) for i, v in zip(ids, vectors)])


async def measure_size(store: Store, n: int, reps: int) -> dict[str, float]:
    k = key(n)
    await fill(store, k, n)
    counter = iter(range(10**9))

    async def exchange() -> None:
        i = next(counter)
        await store.append(k, [NewMessage(role="user", content=f"question {i}", token_count=3)])
        await store.record_reply(k, NewMessage(role="assistant", content=f"answer {i} {TEXT}", token_count=52), [])

    working = WorkingMemory()
    working.load(k, await store.active_tail(k, 64))
    result = {"messages": n}
    result["write_loop_us"], result["write_wall_us"] = await timed(exchange, reps)
    result["read_loop_us"], result["read_wall_us"] = await timed(lambda: store.active_tail(k, 64), reps)
    result["wm_get_loop_us"], result["wm_get_wall_us"] = await timed(_async(lambda: working.get(k)), reps)
    result["index_loop_ms"], result["index_wall_ms"] = [x / 1000 for x in
                                                        await timed(lambda: store.active_for_index(k), 5)]
    return result


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[object]]:
    async def call() -> object:
        return fn()
    return call


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def measure_ram(tmp: Path, sessions: int) -> dict[str, float]:
    """RSS growth per idle session: an open pooled connection, then a full working memory."""
    async with Store(tmp / "ram", max_open=sessions) as store:
        keys = [key(10**6 + i) for i in range(sessions)]
        for k in keys:
            await store.create_session(k, k)
            await store.append(k, [NewMessage(role="user", content=f"{i} {TEXT}", token_count=50) for i in range(64)])
        await store.aclose()
    async with Store(tmp / "ram", max_open=sessions) as store:
        gc.collect()
        before = rss_kib()
        for k in keys:
            await store.pending_count(k)  # opens the connection with a tiny read
        gc.collect()
        opened = rss_kib()
        working = WorkingMemory(max_sessions=sessions)
        for k in keys:
            working.load(k, await store.active_tail(k, 64))
        gc.collect()
        held = rss_kib()
        return {"sessions": sessions, "connection_kib": (opened - before) / sessions,
                "working_kib": (held - opened) / sessions, "total_kib": (held - before) / sessions,
                "cache_kib": store.cache_kib}


def report(base: tuple[float, float], sizes: list[dict], ram: dict) -> None:
    print(f"baseline: one aiosqlite round trip (execute_fetchall SELECT 1) = {base[0]:.0f} µs loop, "
          f"{base[1]:.0f} µs wall\n")
    print(f"{'messages':>9} | {'write loop':>10} {'wall':>7} {'x base':>6} | {'read loop':>9} {'wall':>6} | "
          f"{'wm get':>6} | {'index loop':>10} {'wall':>8}")
    print("-" * 92)
    for r in sizes:
        print(f"{r['messages']:>9,} | {r['write_loop_us']:>7.0f} µs {r['write_wall_us']:>4.0f} µs "
              f"{r['write_loop_us'] / base[0]:>6.1f} | {r['read_loop_us']:>6.0f} µs {r['read_wall_us']:>3.0f} µs | "
              f"{r['wm_get_loop_us']:>3.1f} µs | {r['index_loop_ms']:>7.1f} ms {r['index_wall_ms']:>5.1f} ms")
    print("\nwrite = append(user) + record_reply(reply) per request; read = active_tail(64); "
          "index = active_for_index (cold start)")
    print(f"RAM per idle session ({ram['sessions']} sessions, 64 messages each): "
          f"{ram['total_kib']:.0f} KiB = open connection {ram['connection_kib']:.0f} KiB "
          f"+ working memory {ram['working_kib']:.0f} KiB (a connection's page cache can grow to "
          f"{ram['cache_kib']} KiB after large reads)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    reps = 50 if args.quick else 300
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = await baseline(tmp, reps)
        async with Store(tmp / "data") as store:
            sizes = [await measure_size(store, n, reps) for n in SIZES]
        ram = await measure_ram(tmp, 50 if args.quick else 200)
    report(base, sizes, ram)
    if args.json:
        args.json.write_text(json.dumps({"baseline_loop_us": base[0], "baseline_wall_us": base[1],
                                         "sizes": sizes, "ram": ram}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
