"""What recall across a person's conversations adds before the upstream call.

    python -m bench.recall.people_speed                       # 50 conversations x 200 messages
    python -m bench.recall.people_speed --conversations 10 --messages 100 --requests 40

Through the real proxy (default settings, a fake upstream that answers at once): person `many`
has `--conversations` conversations of `--messages` messages each (the recall generator's
conversations, one seed each, loaded with `X-User-Id`), person `lone` has one such conversation
and nothing else. Then, alternately (with `X-Memory-Scope: person`: conversations loaded through
the API have no character, so a request with a system prompt reaches them only so), each sends a new question into its first conversation,
streamed, and the time to the first content byte is taken at the client; the request log's
server-side stages (sync, embed, retrieval including the person's other conversations, build)
are read back for the same requests. The added pre-upstream time is the difference of the two
medians (`many` - `lone`); the first request of `many` (its person index read from SQLite) is
reported apart and left out of the medians. Writes bench/results/people_speed.json.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.recall.generate import generate
from bench.recall.locomo import ROOT, serve

RESULTS = ROOT / "bench" / "results" / "people_speed.json"
SYSTEM = "You are Juniper, a warm companion."
QUESTIONS = ["What's my sister's name again?", "Where did I say I grew up?", "Which band do I keep talking about?",
             "When did I start the new job?", "What car do I drive these days?", "What did I tell you about the trip?"]


def load(client: Any, person: str, conversations: int, messages: int) -> list[str]:
    sids = []
    for n in range(conversations):
        sid = f"{person}-{n}"
        sids.append(sid)
        if client.get(f"/v1/sessions/{sid}").status_code == 200:
            continue  # kept from an earlier run (--data)
        turns = [{"role": m["role"], "content": m["text"], "created_at": m["created"]}
                 for m in generate(messages, seed=n)["messages"]]
        client.post(f"/v1/sessions/{sid}/messages", json={"messages": turns[:messages]},
                    headers={"X-User-Id": person}).raise_for_status()
    return sids


def wait(client: Any, sids: list[str]) -> None:
    for sid in sids:
        while client.get(f"/v1/sessions/{sid}").json()["pending"]:
            time.sleep(0.5)


def ask(client: Any, person: str, question: str) -> float:
    """Milliseconds from sending a streamed turn to its first content byte."""
    body = {"model": "fake-model", "stream": True, "max_tokens": 64,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]}
    started = time.perf_counter()
    with client.stream("POST", "/v1/chat/completions", json=body,
                       headers={"X-Session-Id": f"{person}-0", "X-User-Id": person,
                                "X-Memory-Scope": "person"}) as response:
        response.raise_for_status()
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data: {"):
                elapsed = (time.perf_counter() - started) * 1000
                break
        for _ in lines:  # the rest of the stream, so the reply is recorded before the next turn
            pass
    return elapsed


def stages(data_dir: Path, session_id: str, since: float) -> dict[str, float]:
    """Median server-side stages (ms) of a session's requests logged since `since`, the first left out."""
    conn = sqlite3.connect(data_dir / "requests.sqlite")
    rows = conn.execute("SELECT sync_ms, embed_ms, retrieval_ms, build_ms FROM requests WHERE session_id = ? "
                        "AND ts >= ? ORDER BY ts", (session_id, since)).fetchall()[1:]
    names = ("sync_ms", "embed_ms", "retrieval_ms", "build_ms")
    return {name: round(statistics.median(r[i] or 0.0 for r in rows), 3) for i, name in enumerate(names)} if rows else {}


def measure(client: Any, requests: int) -> dict[str, Any]:
    first = {p: ask(client, p, "Hello again, it's me.") for p in ("many", "lone")}
    times: dict[str, list[float]] = {"many": [], "lone": []}
    for i in range(requests):
        question = f"{QUESTIONS[i % len(QUESTIONS)]} ({i})"
        for person in ("many", "lone") if i % 2 else ("lone", "many"):
            times[person].append(ask(client, person, question))
    medians = {p: round(statistics.median(t), 2) for p, t in times.items()}
    return {"first_request_ms": {p: round(t, 2) for p, t in first.items()}, "ttfb_ms_median": medians,
            "ttfb_ms_p95": {p: round(sorted(t)[int(0.95 * len(t)) - 1], 2) for p, t in times.items()},
            "added_ms_median": round(medians["many"] - medians["lone"], 2)}


def main(argv: list[str] | None = None) -> int:
    import httpx

    parser = argparse.ArgumentParser(prog="python -m bench.recall.people_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--data", type=Path, default=None, help="keep the proxy's data here (reused when loaded)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or Path(scratch)
        stack, url = serve(data)
        with stack, httpx.Client(base_url=url, timeout=300) as client:
            started = time.perf_counter()
            sids = load(client, "many", args.conversations, args.messages) + load(client, "lone", 1, args.messages)
            wait(client, sids)
            loaded, since = time.perf_counter() - started, time.time()
            report = measure(client, args.requests)
            time.sleep(1.0)  # the request log writes every 0.5 s
            report["server_stages_ms_median"] = {p: stages(data, f"{p}-0", since) for p in ("many", "lone")}
    report.update(conversations=args.conversations, messages=args.messages, requests=args.requests,
                  load_and_index_s=round(loaded, 1))
    print(json.dumps(report, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
