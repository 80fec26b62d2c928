"""Why questions are missed: never a candidate, ranked too low, or ranked well but not packed.

    python -m bench.recall.misses                       # tuning seeds 1 5 6 7 8, 1,000 turns, 2k budget
    python -m bench.recall.misses --sizes 1000 --budget 4096 --show
    python -m bench.recall.misses --long                # the same conversations with long turns

For each question the product misses at the budget, the search is run again deep (200 hits, a
question's partner turns counted as found with it) and the worst rank among the messages it
needs decides the cause: `not-a-candidate` (no ranking read deep enough found it),
`ranked-low` (found, below the k the product asks for) or `packing` (within k, but its passage
did not fit the memory share). `--show` prints each miss with its query. Use tuning seeds only:
held-out seeds are for `bench.recall.run`.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

from app.memory.search.passages import companions
from app.memory.search.recall import memory_room
from app.memory.search.retrieval import build_query, hits_for_budget
from bench.recall import strategies as S
from bench.recall.generate import generate, lengthen
from bench.recall.run import Embeddings, replay
from bench.recall.tune import TUNING_SEEDS


def causes(conversation: dict[str, Any], budget: int, embed: Embeddings) -> list[dict[str, Any]]:
    """One row per missed question: its type, cause, worst rank, k and query."""
    out = []
    for q, index, history in replay(conversation, embed):
        probe = S.Probe(history=history, window=S.client_window(history, q["turns"], budget), budget=budget)
        ids, _ = S.covered(S.product(probe, index=index, embed=embed), probe)
        needed = [i for fact in q["facts"] for i in fact]
        if all(i in ids for i in needed):
            continue
        query = build_query(probe.window)
        rank: dict[int, int] = {}
        for r, hit in enumerate(index.search(query, embed([query])[0], exclude_from_position=probe.boundary(), k=200)):
            for i in (hit.id, *companions(index, hit.id)):
                rank.setdefault(i, r)
        k = hits_for_budget(memory_room(probe.plan, None, probe.window))
        worst = max(rank.get(i, 10**6) for i in needed)
        cause = "not-a-candidate" if worst == 10**6 else "ranked-low" if worst >= k else "packing"
        out.append({"type": q["type"], "cause": cause, "rank": None if worst == 10**6 else worst, "k": k,
                    "query": query})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall.misses", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=TUNING_SEEDS)
    parser.add_argument("--budget", type=int, default=2048)
    parser.add_argument("--show", action="store_true", help="print every miss")
    parser.add_argument("--long", action="store_true", help="lengthen every turn as in role-play (`generate.lengthen`)")
    args = parser.parse_args(argv)
    embed, total = Embeddings(), Counter()
    for size in args.sizes:
        for seed in args.seeds:
            conversation = generate(size, seed)
            conversation = lengthen(conversation) if args.long else conversation
            found = causes(conversation, args.budget, embed)
            total.update((size, row["cause"]) for row in found)
            for row in found if args.show else ():
                print(f"{size:>5} {seed:>3} {row['type']:>10} {row['cause']:>15} rank {row['rank']} k {row['k']}: "
                      f"{row['query'][-80:]!r}")
            print(f"size {size} seed {seed}: {len(conversation['questions'])} questions, {len(found)} missed",
                  flush=True)
        why = ", ".join(f"{c} {n}" for (s, c), n in sorted(total.items()) if s == size)
        print(f"size {size}: " + (why or "nothing missed"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
