"""CPU per request by component, from a py-spy profile of the proxy (`deep_bench.py --profile`).

    python -m bench.profile_split bench/results/deep-this-c1.txt

Reads py-spy's collapsed stacks (`--format raw --threads`: each stack starts with its thread's
name; sampled at `--rate` Hz, idle threads not sampled) and gives each sample to one component: the model runs by the thread they run on (the query's, the background
lane's), SQLite by its connection threads, and work on the event loop by the deepest of the
request's steps or background tasks on its stack. py-spy counts a thread that is ready to run
but waiting for a core as busy, so on a loaded machine its samples overstate CPU (most for the
background lane, which runs at a lower priority): the "CPU ms/req" column therefore takes each
thread's measured CPU time over the level (PREFIX.cpu.json) and shares it among that thread's
components by their samples; "sampled" is samples x (1000 / rate) / requests, for comparison.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

# (component, function, file): a sample on the event loop goes to the deepest of these on its stack
MARKERS = [
    ("event loop (uvloop, native)", "run", "asyncio/runners.py"),
    ("request: HTTP server and routing", "", "uvicorn/protocols/"),
    ("request: HTTP server and routing", "", "starlette/"),
    ("request: HTTP server and routing", "", "fastapi/"),
    ("request: body (JSON, schema)", "", "app/routes/body.py"),
    ("request: route and limits", "", "app/routes/chat.py"),
    ("the benchmark's polls for pending work", "", "app/routes/sessions.py"),
    ("request: pipeline prepare (model, messages)", "prepare", "app/pipeline.py"),
    ("request: memory prepare (other)", "prepare", "app/memory/service.py"),
    ("request: which session", "_resolve", "app/memory/service.py"),
    ("request: sync", "_sync", "app/memory/service.py"),
    ("request: persona", "_persona", "app/memory/service.py"),
    ("request: retrieval", "recall", "app/memory/search/recall.py"),
    ("request: retrieval", "_documents", "app/memory/service.py"),
    ("request: build context", "build_context", "app/context.py"),
    ("request: open upstream", "open", "app/pipeline.py"),
    ("request: stream relay", "stream", "app/pipeline.py"),
    ("request: stream relay (upstream read)", "stream", "app/providers/openai_compat.py"),
    ("request: stream relay (SSE out)", "encode", "app/sse.py"),
    ("request: stream relay (SSE out)", "chunk_for", "app/completion.py"),
    ("request: record reply", "record", "app/memory/service.py"),
    ("request: request log, metrics", "", "app/observability/"),
    ("background: writer (store, scores)", "process", "app/memory/background/writer.py"),
    ("background: writer (emotion, importance)", "_score", "app/memory/background/writer.py"),
    ("background: index update", "scored", "app/memory/search/recall.py"),
    ("background: small calls (access counts)", "_run_calls", "app/memory/background/writer.py"),
    ("background: embedder batching (loop)", "_work", "app/memory/embedding/embedder.py"),
]
FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


def component(frames: list[str], thread: str) -> str:
    if thread.startswith("embedder-background"):
        return "background: model (stored texts: float, and int8 readings in context)"
    if thread.startswith("embedder"):
        return "request: model (query, int8)"
    if "_connection_worker_thread" in thread:
        return "SQLite connection threads"
    found = "event loop, other"
    for frame in frames:
        match = FRAME.match(frame)
        if not match:
            continue
        for name, func, file in MARKERS:
            if file in match["file"] and (not func or match["func"].rpartition(".")[2] == func):
                found = name
    return found if thread in ("MainThread", "") else f"thread {thread}: other"


def split(lines: list[str]) -> dict[str, Counter]:
    """Samples per component, for each thread (by native id)."""
    threads: dict[str, Counter] = {}
    for line in lines:
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        head = re.match(r"thread \((\w+)\): (.*)", frames[0])
        tid, name = (head.group(1), head.group(2)) if head else ("?", "")
        threads.setdefault(tid, Counter())[component(frames, name)] += int(n)
    return threads


def cpu_split(threads: dict[str, Counter], cpu: dict[str, float]) -> Counter:
    """Each thread's measured CPU per request, shared among its components by their samples."""
    out: Counter = Counter()
    for tid, ms in cpu.items():
        counts = threads.get(tid)
        if not counts:
            out["threads never sampled (native)"] += ms
            continue
        total = sum(counts.values())
        for name, n in counts.items():
            out[name] += ms * n / total
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", type=Path, help="PREFIX.txt from deep_bench.py --profile")
    parser.add_argument("--rate", type=float, default=200)
    args = parser.parse_args(argv)
    threads = split(args.stacks.read_text().splitlines())
    measured = json.loads(args.stacks.with_suffix(".cpu.json").read_text())
    samples = Counter()
    for counts in threads.values():
        samples.update(counts)
    sampled = {name: n * 1000.0 / args.rate / measured["requests"] for name, n in samples.items()}
    cpu = cpu_split(threads, measured["cpu_ms_per_request_by_thread"])
    print(f"{'CPU ms/req':>10} {'sampled':>8}  component")
    for name in sorted(set(cpu) | set(sampled), key=lambda k: -cpu.get(k, 0.0)):
        print(f"{cpu.get(name, 0.0):10.2f} {sampled.get(name, 0.0):8.2f}  {name}")
    print(f"{sum(cpu.values()):10.2f} {sum(sampled.values()):8.2f}  total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
