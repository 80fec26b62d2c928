"""Recall benchmark: do facts told long ago reach the context when they are asked about?

    python -m bench.recall.run                                  # sizes 200 1000 5000, held-out seeds
    python -m bench.recall.run --sizes 1000 --seeds 1 --budgets 2048
    python -m bench.recall.run --long --sizes 1000                # turns as long as role-play replies

For every question of a generated conversation (`bench.recall.generate`), at its place in the
conversation: everything before it is stored history, the client sends the newest turns that fit
in the budget (a trimming client) plus the question, and the context is built at each budget by
`app.context.build_context` for three strategies (`bench.recall.strategies`). A question counts
as recalled when every message holding its fact(s) is in the context (`by_id`); `by_answer`
checks the answer strings in the context text instead (case-insensitive; dates as YYYY-MM-DD,
which only a memory's time label can show). Prints tables and writes bench/results/recall.json.

Seeds 1 and 5-8 are for tuning (`bench.recall.tune`); the default report uses seeds 2-4,
which the method never saw.
Message embeddings are computed once per conversation and cached under data/cache/recall/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from app.importance import score_importance
from app.tokens import count_message

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["TZ"] = "UTC"  # time labels and the generator's dates agree
time.tzset()

from app.memory.search.index import SessionIndex  # noqa: E402
from app.memory.search.recall import index_vectors  # noqa: E402
from app.memory.search.retrieval import pieces  # noqa: E402
from app.memory.search.scoring import RetrievalWeights  # noqa: E402
from app.memory.background.writer import embedding_texts, in_context, moved_in_context  # noqa: E402
from bench.recall import strategies as S  # noqa: E402
from bench.recall.generate import generate, lengthen  # noqa: E402

CACHE = ROOT / "data" / "cache" / "recall"
PIECE_WORDS = 4  # `retrieval.pieces` as the product cuts them
RESULTS = ROOT / "bench" / "results" / "recall.json"


class Embeddings:
    """The product's embedder, with message vectors cached on disk per conversation."""

    def __init__(self, threads: int = 2, piece_words: int = PIECE_WORDS, whole: bool = False,
                 query_int8: bool = True, stored_int8: bool = False, context_int8: bool = True) -> None:
        self.piece_words = piece_words
        self.whole = whole  # one vector per message, of its whole text
        self.stored_model = "int8" if stored_int8 else "float"  # part of the disk cache's key
        self.context_int8 = context_int8 and query_int8  # the writer's `context_on_query_model`
        from app.memory.embedding.embedder import Embedder, load_backend

        cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models")
        backend = load_backend("all-MiniLM-L6-v2", "auto", cache, threads, query_int8=query_int8,
                               stored_int8=stored_int8)
        self.embedder = Embedder(backend, cache_size=100_000)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Queries' vectors (the int8 model's with `query_int8`)."""
        return self.embedder.embed_blocking(texts)

    def stored(self, texts: list[str]) -> np.ndarray:
        """Stored messages' vectors, from the model the product's writer uses (`stored_int8`)."""
        return self.embedder.embed_blocking(texts, background=True)

    def whole_vectors(self, conversation: dict[str, Any]) -> np.ndarray:
        """One vector per message, of its whole text (what plain cosine search uses)."""
        return np.stack([v[0] for v in self.messages(conversation, whole=True)])

    def messages(self, conversation: dict[str, Any], whole: bool | None = None) -> list[np.ndarray]:
        """Per message, the vectors the product's index holds for it (`writer.embedding_texts`: its
        statement pieces, and a short turn read after the one before it); with `whole`, one
        vector of the whole text; with another `piece_words`, its statement pieces cut that way."""
        whole = self.whole if whole is None else whole
        said = [m["text"] for m in conversation["messages"]]
        if whole:
            split = [[t] for t in said]
        elif self.piece_words != PIECE_WORDS:
            split = [pieces(t, min_words=self.piece_words) for t in said]
        else:
            split = [embedding_texts(t, said[i - 1] if i else None) for i, t in enumerate(said)]
        contextual = [in_context(t, said[i - 1] if i else None) is not None for i, t in enumerate(said)]
        quick = [self.context_int8 and c and not whole and self.piece_words == PIECE_WORDS for c in contextual]
        texts = [t for p, q in zip(split, quick) for t in (p[:-1] if q else p)]
        context = [p[-1] for p, q in zip(split, quick) if q]
        main, nudging = iter(self._cached(texts)), iter(self._cached(context, query_model=True))
        out = [np.stack([next(nudging) if q and i == len(p) - 1 else next(main) for i in range(len(p))])
               for p, q in zip(split, quick)]
        if whole or self.piece_words != PIECE_WORDS:
            return out
        return [np.atleast_2d(index_vectors(moved_in_context(v, c), v.shape[1])) for v, c in zip(out, contextual)]


    def _cached(self, texts: list[str], query_model: bool = False) -> np.ndarray:
        """Stored texts' vectors (or, with `query_model`, the queries' model's), cached on disk."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = "query" if query_model else self.stored_model
        key = hashlib.sha1("\x00".join([model, *texts]).encode()).hexdigest()[:16]
        path = CACHE / f"{key}.npy"
        if path.exists():
            return np.load(path)
        step = 1 if query_model else 256  # the writer's int8 copy runs one text at a time (`query_copy`)
        vectors = np.concatenate([self.embedder.embed_blocking(texts[i:i + step], background=True,
                                                               query_model=query_model)
                                  for i in range(0, len(texts), step)])
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors


def replay(conversation: dict[str, Any],
           embed: Embeddings) -> Iterator[tuple[dict[str, Any], SessionIndex, list[dict[str, Any]]]]:
    """Each question in the order asked, with an index of everything said before it, and that history.

    The index grows as the product's does (statement pieces, importance); it is the same object
    from one question to the next.
    """
    messages = conversation["messages"]
    vectors = embed.messages(conversation)
    index, added = SessionIndex(), 0
    for q in sorted(conversation["questions"], key=lambda q: q["position"]):
        for i, m in enumerate(messages[added:q["position"]], start=added):
            index.add(m["id"], m["position"], m["role"], m["text"], created=m["created"],
                      embeddings=vectors[i], importance=score_importance(m["text"], m["role"]))
        added = max(added, q["position"])
        yield q, index, messages[:q["position"]]


def evaluate(conversation: dict[str, Any], budgets: list[int], embed: Embeddings, strategies: list[str],
             product_args: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[float]]:
    """One row per (question, budget, strategy), and product search latencies in ms."""
    messages = conversation["messages"]
    rows = {m["id"]: i for i, m in enumerate(messages)}
    whole = embed.whole_vectors(conversation)  # plain cosine: one vector per message
    out, latencies = [], []
    spans = S.extractive_spans(messages, embed) if "summaries" in strategies else []
    history_tokens = np.cumsum([0] + [count_message({"role": m["role"], "content": m["text"]}) for m in messages])
    for q, index, history in replay(conversation, embed):
        for budget in budgets:
            probe = S.Probe(history=history, window=S.client_window(history, q["turns"], budget), budget=budget)
            for name in strategies:
                started = time.perf_counter()
                built = S.STRATEGIES[name](probe, index=index, vectors=whole, rows=rows, embed=embed, spans=spans,
                                           **(product_args or {}))
                if name == "product" and budget == budgets[0]:
                    latencies.append((time.perf_counter() - started) * 1000)
                out.append({**_score(q, budget, name, built, probe),
                            "history_tokens": int(history_tokens[q["position"]]),
                            "context_tokens": built.budget["total_prompt"]})
    return out, latencies


def _score(q: dict[str, Any], budget: int, name: str, built: Any, probe: S.Probe) -> dict[str, Any]:
    ids, text = S.covered(built, probe)
    lowered = text.lower()
    return {"question": q["id"], "type": q["type"], "kind": q["kind"], "budget": budget, "strategy": name,
            "by_id": all(i in ids for fact in q["facts"] for i in fact),
            "by_answer": all(a.lower() in lowered for a in q["answers"]),
            "memory_tokens": built.budget["memories"]}


def summarise(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[tuple, dict[str, float]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return {key: {"n": len(g), "by_id": sum(r["by_id"] for r in g) / len(g),
                  "by_answer": sum(r["by_answer"] for r in g) / len(g),
                  "context_tokens": sum(r.get("context_tokens", 0) for r in g) / len(g),
                  "history_tokens": sum(r.get("history_tokens", 0) for r in g) / len(g)}
            for key, g in sorted(groups.items())}


def print_tables(rows: list[dict[str, Any]], strategies: list[str]) -> None:
    overall = summarise(rows, ("size", "budget", "strategy"))
    print(f"\n{'size':>6} {'budget':>6} {'n':>5}  " + "  ".join(f"{s:>17}" for s in strategies))
    print(f"{'':>20}  " + "  ".join(f"{'by id / answer':>17}" for _ in strategies))
    for size, budget in sorted({(k[0], k[1]) for k in overall}):
        cells = [overall.get((size, budget, s)) for s in strategies]
        n = next(c["n"] for c in cells if c)
        print(f"{size:>6} {budget:>6} {n:>5}  " + "  ".join(
            f"{c['by_id']:>8.3f} / {c['by_answer']:.3f}" if c else f"{'-':>17}" for c in cells))
    if "summaries" in strategies:
        print(f"\nsummaries on: change against the product, and tokens against sending the whole history\n"
              f"{'size':>6} {'budget':>6}  {'by id':>7} {'by answer':>9}  {'context':>8} {'history':>8} {'saved':>6}")
        for size, budget in sorted({(k[0], k[1]) for k in overall}):
            a, b = overall.get((size, budget, "product")), overall.get((size, budget, "summaries"))
            if a and b:
                saved = 1 - b["context_tokens"] / b["history_tokens"] if b["history_tokens"] else 0.0
                print(f"{size:>6} {budget:>6}  {b['by_id'] - a['by_id']:+7.3f} {b['by_answer'] - a['by_answer']:+9.3f}  "
                      f"{b['context_tokens']:8.0f} {b['history_tokens']:8.0f} {saved:6.1%}")
    by_type = summarise(rows, ("budget", "type", "strategy"))
    print(f"\nby question type (all sizes), by id\n{'budget':>6} {'type':>11} {'n':>5}  " +
          "  ".join(f"{s:>8}" for s in strategies))
    for budget, qtype in sorted({(k[0], k[1]) for k in by_type}):
        cells = [by_type.get((budget, qtype, s)) for s in strategies]
        n = next(c["n"] for c in cells if c)
        print(f"{budget:>6} {qtype:>11} {n:>5}  " + "  ".join(f"{c['by_id']:>8.3f}" if c else f"{'-':>8}"
                                                            for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall.run", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--strategies", nargs="+", default=list(S.STRATEGIES))
    parser.add_argument("--long", action="store_true",
                        help="role-play-long turns (`generate.lengthen`); writes recall_long.json by default")
    parser.add_argument("--float-query", dest="query_int8", action="store_false",
                        help="questions on the float model (as EMBEDDING_QUERY_INT8=false); default: its int8 copy")
    parser.add_argument("--float-context", dest="context_int8", action="store_false",
                        help="a short turn read in context on the float model (as EMBEDDING_CONTEXT_INT8=false)")
    parser.add_argument("--int8-stored", dest="stored_int8", action="store_true",
                        help="stored texts on the int8 model (as EMBEDDING_STORED_INT8=true); default: the float one")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out = args.out or (RESULTS.with_name("recall_long.json") if args.long else RESULTS)
    embed, rows, timing = Embeddings(query_int8=args.query_int8, stored_int8=args.stored_int8,
                                     context_int8=args.context_int8), [], {}
    for size in args.sizes:
        for seed in args.seeds:
            started = time.perf_counter()
            conversation = lengthen(generate(size, seed)) if args.long else generate(size, seed)
            found, latencies = evaluate(conversation, args.budgets, embed, args.strategies)
            rows += [{**r, "size": size, "seed": seed} for r in found]
            timing[f"{size}/{seed}"] = {"seconds": round(time.perf_counter() - started, 1),
                                        "product_ms_median": round(statistics.median(latencies), 2) if latencies else None}
            print(f"size {size} seed {seed}: {len(conversation['questions'])} questions, {timing[f'{size}/{seed}']}",
                  flush=True)
    print_tables(rows, args.strategies)
    write(args, rows, timing)
    return 0


def write(args: argparse.Namespace, rows: list[dict[str, Any]], timing: dict[str, Any]) -> None:
    def flat(table: dict[tuple, dict[str, float]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{**dict(zip(keys, k)), **v} for k, v in table.items()]

    report = {"sizes": args.sizes, "seeds": args.seeds, "budgets": args.budgets, "long_turns": args.long,
              "query_int8": args.query_int8, "stored_int8": args.stored_int8, "context_int8": args.context_int8,
              "weights": RetrievalWeights().__dict__,
              "notes": "seeds 1 and 5-8 tuned (bench.recall.tune); these seeds held out. Packed by app.context.build_context "
                       "with the default budget split, no persona. by_id: every message holding the fact(s) is in "
                       "the context; by_answer: every answer string is in the context text.",
              "overall": flat(summarise(rows, ("size", "budget", "strategy")), ("size", "budget", "strategy")),
              "by_type": flat(summarise(rows, ("size", "budget", "type", "strategy")),
                              ("size", "budget", "type", "strategy")),
              "timing": timing}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
