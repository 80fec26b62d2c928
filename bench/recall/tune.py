"""Compare retrieval settings on the tuning seeds: recall at each budget and by question type.

    python -m bench.recall.tune                 # every setting in SETTINGS, 1,000 turns, seeds 1 5 6 7 8
    python -m bench.recall.tune --sizes 200 5000 --seeds 1 5 6 --only default no-bridge
    python -m bench.recall.tune --long          # the same conversations with role-play-long turns

Only tuning seeds (1 and 5-8) belong here; `bench.recall.run` reports on seeds 2-4, which the
settings were never tuned on. One seed holds about 57 questions at 1,000 turns, so a
difference of 0.01 on one seed is a single question: compare on all five.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from app.memory.search.scoring import RetrievalWeights
from bench.recall.generate import generate, lengthen
from bench.recall.run import Embeddings, evaluate, summarise

W = RetrievalWeights()
TUNING_SEEDS = [1, 5, 6, 7, 8]  # never 2-4: those are held out for bench.recall.run
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},
    "last-turn-only": {"max_turns": 1},
    "turns-2": {"max_turns": 2},
    "turns-4": {"max_turns": 4},
    "min-terms-1": {"min_terms": 1},
    "min-terms-3": {"min_terms": 3},
    "no-pair": {"pair": False},
    "replies": {"replies": True},
    "neighbour-100": {"neighbour_chars": 100},
    "neighbour-200": {"neighbour_chars": 200},
    "neighbour-300": {"neighbour_chars": 300},
    "dense-only": {"weights": dataclasses.replace(W, lexical=0.0, bridge=0.0)},
    "lexical-only": {"weights": dataclasses.replace(W, dense=0.0)},
    "no-lex-confidence": {"weights": dataclasses.replace(W, lexical_confidence=0.0)},
    "no-bridge": {"weights": dataclasses.replace(W, bridge=0.0)},
    "specificity-0.4-recency-0.05": {"weights": dataclasses.replace(W, specificity=0.4, recency=0.05)},
    "specificity-0.6-recency-0.05": {"weights": dataclasses.replace(W, specificity=0.6, recency=0.05)},
    "bridge-0.5": {"weights": dataclasses.replace(W, bridge=0.5)},
    "rrf-fusion": {"weights": dataclasses.replace(W, fusion="rrf")},
    "rrf-k-20": {"weights": dataclasses.replace(W, fusion="rrf", rrf_k=20)},
    "rrf-k-60": {"weights": dataclasses.replace(W, fusion="rrf", rrf_k=60)},
    "bm25-b-0.5": {"weights": dataclasses.replace(W, bm25_b=0.5)},
    "no-recency": {"weights": dataclasses.replace(W, recency=0.0)},
    "assistant-0.8": {"weights": dataclasses.replace(W, assistant=0.8)},
    "k-12": {"k": 12},  # a fixed k; by default k fills the memory share (retrieval.hits_for_budget)
    "k-8": {"k": 8},
    "k-16": {"k": 16},
    "k-24": {"k": 24},
    "spec-0": {"weights": dataclasses.replace(W, specificity=0.0)},
    "spec-0.3": {"weights": dataclasses.replace(W, specificity=0.3)},
    "spec-0.5": {"weights": dataclasses.replace(W, specificity=0.5)},
    "spec-1.2": {"weights": dataclasses.replace(W, specificity=1.2)},
    "spec-no-importance": {"weights": dataclasses.replace(W, importance=0.0)},
    "cand-32": {"weights": dataclasses.replace(W, candidates=32)},
    "cand-128": {"weights": dataclasses.replace(W, candidates=128)},
    "cand-256": {"weights": dataclasses.replace(W, candidates=256)},
    "cand-per-hit-0": {"weights": dataclasses.replace(W, candidates_per_hit=0)},
    "cand-per-hit-12": {"weights": dataclasses.replace(W, candidates_per_hit=12)},
    "rrf-k-5": {"weights": dataclasses.replace(W, fusion="rrf", rrf_k=5)},
    "k-32": {"k": 32},
    "lex-conf-1": {"weights": dataclasses.replace(W, lexical_confidence=1.0)},
    "lex-conf-2": {"weights": dataclasses.replace(W, lexical_confidence=2.0)},
    "lexical-1.0": {"weights": dataclasses.replace(W, lexical=1.0)},
    "lexical-0.4": {"weights": dataclasses.replace(W, lexical=0.4)},
    "bm25-b-0.9": {"weights": dataclasses.replace(W, bm25_b=0.9)},
    "bm25-b-0.3": {"weights": dataclasses.replace(W, bm25_b=0.3)},
    "bridge-0.6": {"weights": dataclasses.replace(W, bridge=0.6)},
    "importance-0.25": {"weights": dataclasses.replace(W, importance=0.25)},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall.tune")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=TUNING_SEEDS)
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--piece-words", type=int, default=4)
    parser.add_argument("--whole", action="store_true", help="one vector per message instead of statement pieces")
    parser.add_argument("--long", action="store_true", help="lengthen every turn as in role-play (`generate.lengthen`)")
    args = parser.parse_args(argv)
    embed = Embeddings(piece_words=args.piece_words, whole=args.whole)
    conversations = [generate(size, seed) for size in args.sizes for seed in args.seeds]
    conversations = [lengthen(c) for c in conversations] if args.long else conversations
    types = sorted({q["type"] for c in conversations for q in c["questions"]})
    print(f"{'setting':>16} " + " ".join(f"{b:>6}" for b in args.budgets) + "  | 2k by type: " + " ".join(
        f"{t[:6]:>6}" for t in types), flush=True)
    for name, extra in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        rows = [r for c in conversations for r in evaluate(c, args.budgets, embed, ["product"], extra)[0]]
        overall = summarise(rows, ("budget",))
        by_type = summarise([r for r in rows if r["budget"] == 2048], ("type",))
        print(f"{name:>16} " + " ".join(f"{overall[(b,)]['by_id']:>6.3f}" for b in args.budgets) + "  |             "
              + " ".join(f"{by_type[(t,)]['by_id']:>6.3f}" for t in types), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
