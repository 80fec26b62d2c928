"""Recall across conversations on LoCoMo: each dated session its own conversation, all one person's.

    python -m bench.recall.locomo_people                 # 2k, the three dev conversations
    python -m bench.recall.locomo_people --budgets 2048 4096 --data /tmp/locomo-people

The same data and measure as `bench.recall.locomo` (strict and lenient evidence recall by word
4-grams), asked two ways through the real proxy:

- `merged`: every session in one conversation (`X-Session-Id: conv-26`), as `bench.recall.locomo`;
- `people`: every dated session loaded as its own conversation (`conv-26-s1`, `conv-26-s2`, …)
  with `X-User-Id: conv-26`, and each question previewed alone in a new conversation of that
  person (`X-Session-Id: conv-26-q<n>`, nothing stored), so everything it is shown came from the
  person's other conversations.

Writes bench/results/locomo_people.json; the two must stay within 0.05 strict at 2k.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.recall.locomo import ROOT, conversations, context_text, judge, serve, summarise

RESULTS = ROOT / "bench" / "results" / "locomo_people.json"
REPLY = 256


def sessions_of(conversation: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The conversation's turns by dated session: {"conv-26-s1": [...], ...} (from `dia_id` "D1:3")."""
    split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for turn in conversation["turns"]:
        split[f"{conversation['id']}-s{turn['dia_id'][1:].split(':')[0]}"].append(turn)
    return dict(split)


class Loader:
    def __init__(self, client: Any) -> None:
        self.client = client

    def load(self, sid: str, turns: list[dict[str, Any]], person: str | None = None) -> None:
        have = self.client.get(f"/v1/sessions/{sid}")
        if have.status_code == 200 and have.json()["messages"] == len(turns):
            return
        if have.status_code == 200:
            self.client.delete(f"/v1/sessions/{sid}").raise_for_status()
        body = [{k: t[k] for k in ("role", "name", "created_at")} | {"content": t["text"]} for t in turns]
        headers = {"X-User-Id": person} if person else {}
        self.client.post(f"/v1/sessions/{sid}/messages", json={"messages": body}, headers=headers).raise_for_status()

    def wait(self, sids: list[str]) -> None:
        for sid in sids:
            while self.client.get(f"/v1/sessions/{sid}").json()["pending"]:
                time.sleep(0.5)

    def ask(self, headers: dict[str, str], question: str, budget: int) -> tuple[list[dict[str, Any]], float]:
        started = time.perf_counter()
        reply = self.client.post("/v1/chat/completions/preview", headers={**headers, "X-Context-Budget": str(budget)},
                                 json={"model": "fake-model", "max_tokens": REPLY,
                                       "messages": [{"role": "user", "content": question}]})
        reply.raise_for_status()
        return reply.json()["messages"], (time.perf_counter() - started) * 1000


def run(convs: list[dict[str, Any]], budgets: list[int], loader: Loader) -> tuple[list[dict[str, Any]], dict]:
    rows, times = [], defaultdict(list)
    for conv in convs:
        split = sessions_of(conv)
        loader.load(conv["id"], conv["turns"])
        for sid, turns in split.items():
            loader.load(sid, turns, person=conv["id"])
        loader.wait([conv["id"], *split])
        by_id = {t["dia_id"]: t for t in conv["turns"]}
        for n, q in enumerate(conv["questions"]):
            ways = {"merged": {"X-Session-Id": conv["id"]},
                    "people": {"X-Session-Id": f"{conv['id']}-q{n}", "X-User-Id": conv["id"]}}
            for budget in budgets:
                for way, headers in ways.items():
                    messages, ms = loader.ask(headers, q["question"], budget)
                    times[way].append(ms)
                    rows.append({"conversation": conv["id"], "question": q["question"], "budget": budget,
                                 "strategy": way, **judge(q, by_id, context_text(messages))})
    return rows, times


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(prog="python -m bench.recall.locomo_people", description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[2048])
    parser.add_argument("--conversations", nargs="+", default=None, help="sample ids, e.g. conv-26")
    parser.add_argument("--data", type=Path, default=None, help="keep the proxy's data here (reused when loaded)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    convs = [c for c in conversations() if not args.conversations or c["id"] in args.conversations]
    with tempfile.TemporaryDirectory() as scratch:
        stack, url = serve(args.data or Path(scratch))
        with stack, httpx.Client(base_url=url, timeout=120) as client:
            rows, times = run(convs, args.budgets, Loader(client))
    overall = summarise(rows, ("budget", "strategy"))
    for row in overall:
        print(f"{row['budget']:>6} {row['strategy']:>8}  n={row['n']}  strict {row['strict']:.3f}  "
              f"lenient {row['lenient']:.3f}")
    report = {"data": "LoCoMo development conversations " + ", ".join(c["id"] for c in convs),
              "conversations_per_person": {c["id"]: len(sessions_of(c)) for c in convs},
              "overall": overall, "by_conversation": summarise(rows, ("conversation", "budget", "strategy")),
              "preview_ms_median": {w: round(statistics.median(t), 2) for w, t in times.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
