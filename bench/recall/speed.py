"""Search speed and memory of `SessionIndex` as a conversation grows: 1k, 10k, 100k messages.

    python -m bench.recall.speed
    python -m bench.recall.speed --sizes 10000 --queries 200 --threads 1
    python -m bench.recall.speed --long     # role-play-long turns

Texts come from the recall generator (repeated with a counter past its length); vectors are
random unit vectors, as many per message as the product's writer keeps for its text (one per
statement, `writer.embedding_texts`);
`--long` uses the generator's role-play-long turns.
Reports the median and p95 of a full search (dense + BM25 + bridge + fusion + re-scoring, k=12), the median add() cost, and
the index's own estimate of its RAM, with each size's ratio to the smallest in the same run.

It also times everything memory adds before the upstream call for a new message, end to end:
embedding the query with the real model (ONNX; each query text is new, so no cache hit), the
search (k as the product sizes it for an 8k context and a window of 20 turns: the room left for
recollections, `recall.memory_room`), growing hits into passages and building the context (`pre_upstream_ms_median` and
`_p95`), with the embedding's own share (`embed_ms_median`); `--threads` is the model's
(`EMBEDDING_THREADS`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.memory.search.index import SessionIndex  # noqa: E402
from bench.recall.generate import generate, lengthen  # noqa: E402

PERSONA = "You are a helpful companion."
QUERIES = ["What's my sister's name?", "Where did I grow up?", "When did I start my new job?",
           "What did I tell you about the trip?", "Which band do I love?", "What car do I drive?"]


def build(size: int, texts: list[str], rng: np.random.Generator) -> tuple[SessionIndex, list[float]]:
    """An index of `size` messages, each with as many (random) vectors as the product's writer
    keeps for its text (`stored_vectors`)."""
    index, costs = SessionIndex(), []
    for i in range(size):
        text = texts[i % len(texts)] + ("" if i < len(texts) else f" ({i})")
        vectors = _unit(rng.standard_normal((stored_vectors(text), 384)))
        started = time.perf_counter()
        index.add(i, i, "user" if i % 2 == 0 else "assistant", text, created=1.7e9 + i, embeddings=vectors)
        costs.append(time.perf_counter() - started)
    return index, costs


def stored_vectors(text: str) -> int:
    """How many vectors the index holds for a message: one per statement (`writer.embedding_texts`
    without the whole; the message read in context moves them and adds none, `writer.moved_in_context`)."""
    from app.memory.background.writer import embedding_texts

    texts = len(embedding_texts(text))
    return texts - 1 if texts > 1 else 1


def measure(index: SessionIndex, queries: int, rng: np.random.Generator) -> list[float]:
    times = []
    for i in range(queries):
        vector = _unit(rng.standard_normal(384))
        started = time.perf_counter()
        index.search(QUERIES[i % len(QUERIES)], vector, exclude_from_position=len(index) - 20, k=12)
        times.append((time.perf_counter() - started) * 1000)
    return times


def pre_upstream(index: SessionIndex, queries: int, threads: int,
                 query_int8: bool = True) -> tuple[list[float], list[float]]:
    """Embed a new question, search, make passages, build an 8k context: ms per request, and ms
    of it spent embedding."""
    from app.budget import BudgetSplit, plan_budget
    from app.context import WHOLE_SHARE, build_context
    from app.memory.embedding.embedder import load_backend
    from app.memory.search.passages import BRIEF_TOKENS, passages, turn_budget
    from app.memory.search.recall import memory_room, passage_item
    from app.memory.search.retrieval import hits_for_budget

    cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models")
    backend = load_backend("all-MiniLM-L6-v2", "auto", cache, threads, query_int8=query_int8)
    plan = plan_budget(8192, None, BudgetSplit())  # the default CONTEXT_TOKENS
    window = [{"role": "user" if i % 2 == 0 else "assistant", "content": index.text_of(i)}
              for i in range(len(index) - 20, len(index))]
    memory_tokens = memory_room(plan, PERSONA, window)  # the room the product gives out by value
    k = hits_for_budget(memory_tokens)  # as many as the product asks for
    times, embeds = [], []
    for i in range(queries):
        question = f"{QUERIES[i % len(QUERIES)]} (asked {i} times)"
        started = time.perf_counter()
        vector = backend.encode([question])[0]
        embeds.append((time.perf_counter() - started) * 1000)
        hits = index.search(question, vector, exclude_from_position=len(index) - 20, k=k)
        items = [passage_item(p) for p in passages(index, hits, turn_tokens=turn_budget(memory_tokens),
                                                   brief_tokens=BRIEF_TOKENS,
                                                   brief_from=int(memory_tokens * WHOLE_SHARE))]
        build_context(persona=PERSONA, client_messages=window + [
            {"role": "user", "content": question}], memories=items, summaries=[], story_so_far=None,
            emotion_line=None, plan=plan)
        times.append((time.perf_counter() - started) * 1000)
    return times, embeds


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall.speed")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="the embedding model's threads")
    parser.add_argument("--long", action="store_true", help="role-play-long turns")
    parser.add_argument("--float-query", dest="query_int8", action="store_false",
                        help="the question on the float model (as EMBEDDING_QUERY_INT8=false); default: its int8 copy")
    parser.add_argument("--numpy-threads", type=int, default=1,
                        help="BLAS threads, as the product's NUMPY_THREADS (0: numpy's default)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from app.blas import limit_blas_threads

    limit_blas_threads(args.numpy_threads)
    args.out = args.out or ROOT / "bench" / "results" / ("recall_speed_long.json" if args.long else "recall_speed.json")
    conversation = generate(5000, 1)
    texts = [m["text"] for m in (lengthen(conversation) if args.long else conversation)["messages"]]
    rng = np.random.default_rng(7)
    rows = []
    for size in args.sizes:
        index, adds = build(size, texts, rng)
        times = measure(index, args.queries, rng)
        total, embeds = pre_upstream(index, args.queries, args.threads, args.query_int8)
        rows.append({"messages": size, "search_ms_median": round(statistics.median(times), 3),
                     "pre_upstream_ms_median": round(statistics.median(total), 3),
                     "pre_upstream_ms_p95": round(float(np.percentile(total, 95)), 3),
                     "embed_ms_median": round(statistics.median(embeds), 3),
                     "search_ms_p95": round(float(np.percentile(times, 95)), 3),
                     "add_us_median": round(statistics.median(adds) * 1e6, 1), "ram_mb": round(index.nbytes() / 2**20, 1),
                     "vectors": index.vector_count()})
        base = rows[0]
        rows[-1]["ratio_to_smallest"] = round(rows[-1]["search_ms_median"] / base["search_ms_median"], 2)
        print(json.dumps(rows[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
