"""Deep in a conversation, this checkout against another one, in the same run: time to first
token, requests/s and CPU per request (background work included), optionally with a profile.

    python -m bench.deep_bench --other ../base                       # C=1, 3 rounds of 100 requests
    python -m bench.deep_bench --other ../base --concurrency 1,10 --profile bench/results/deep
    python -m bench.deep_bench --other ../base --fresh               # each proxy loads and embeds its own
    python -m bench.deep_bench --other . --this-env EMBEDDING_THREADS=1   # one setting against the default

The workload is `proxy_bench.py`'s on-history variant: `--history-sessions` conversations of
`--history` messages, each request the newest 20 turns plus a new question, streamed from the
offline fake upstream. Both proxies (one uvicorn worker each, SQLite) start from copies of one
loaded and embedded store, prepared once under data/bench/ and reused (`--fresh` loads each
proxy through the memory API instead: needed when the two store different vectors).

Levels alternate between the targets (the other checkout, this one, the upstream direct), the
order flipped every round, so machine noise hits both alike. CPU per request is the proxy
process's user + system time from the start of a level until its writer has nothing pending
(every turn and reply embedded and scored), divided by the requests sent. `--profile PREFIX`
first runs one level per proxy under py-spy (not counted): PREFIX-<name>-c<N>.svg (a flame graph)
.txt (collapsed stacks per thread) and .cpu.json (each thread's CPU per request over that level),
read by `python -m bench.profile_split`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.fakes.serve import free_port  # noqa: E402
from bench.proxy_bench import Conversations, level, start  # noqa: E402

ENV = {"HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING", "MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false",
       "TOKENIZERS_PARALLELISM": "false",
       "EMBEDDING_CACHE_DIR": os.environ.get("EMBEDDING_CACHE_DIR") or str(ROOT / "data" / "models")}
BENCH = ROOT / "data" / "bench"


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


class Proxy:
    """One proxy process from a checkout, on its own copy of the store."""

    def __init__(self, name: str, root: Path, upstream: str, data: Path, extra: dict | None = None) -> None:
        self.name, self.port, self.data = name, free_port(), data
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**ENV, "UPSTREAM_BASE_URL": upstream, "PORT": str(self.port), "DATA_DIR": str(data), **(extra or {})}
        self.proc = start_in(root, [sys.executable, "-m", "app.cli", "serve"], env, f"{self.base}/health")

    def pending(self, sessions: list[str]) -> int:
        with httpx.Client(timeout=30) as client:
            return sum(client.get(f"{self.base}/v1/sessions/{sid}").json()["pending"] for sid in sessions)

    def settle(self, sessions: list[str], timeout: float = 300) -> None:
        """Wait until every turn sent so far is embedded and scored."""
        deadline = time.monotonic() + timeout
        while self.pending(sessions):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: background work did not finish")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_in(root: Path, cmd: list[str], env: dict, url: str) -> subprocess.Popen:
    """`proxy_bench.start` with the checkout's own directory as the working directory."""
    return start(cmd, env if root == ROOT else {**env, "PYTHONPATH": str(root)}, url, cwd=root)


def prepared_store(args: argparse.Namespace, upstream: str) -> Path:
    """A store holding the conversations, loaded and embedded once (by this checkout) and reused."""
    path = BENCH / f"deep-store-{args.history}x{args.history_sessions}"
    if (path / "ready").exists():
        return path
    shutil.rmtree(path, ignore_errors=True)
    proxy = Proxy("prepare", ROOT, upstream, path)
    try:
        Conversations("fake-model", args.history_sessions, args.history).load(proxy.base)
    finally:
        proxy.stop()
    (path / "ready").write_text("loaded and embedded\n")
    return path


def open_proxy(name: str, root: Path, upstream: str, args: argparse.Namespace,
               store: Path | None) -> tuple[Proxy, Conversations]:
    data = BENCH / f"deep-{name}-{os.getpid()}"
    shutil.rmtree(data, ignore_errors=True)
    if store is not None:
        shutil.copytree(store, data)
    proxy = Proxy(name, root, upstream, data, dict(pair.split("=", 1) for pair in args.env.get(name, [])))
    body = Conversations("fake-model", args.history_sessions, args.history)
    if store is None:
        body.load(proxy.base)
    warm_up(proxy, body)
    return proxy, body


def warm_up(proxy: Proxy, body: Conversations) -> None:
    """One request per conversation, so each one's index and caches are in RAM before timing."""
    async def go() -> None:
        async with httpx.AsyncClient(timeout=60) as client:
            for w in range(len(body.windows)):
                from bench.proxy_bench import one
                await one(client, f"{proxy.base}/v1/chat/completions", body, w, len(body.windows))
    asyncio.run(go())
    proxy.settle(list(body.windows))


def profiled(proxy: Proxy, body: Conversations, prefix: Path, concurrency: int, requests: int) -> dict:
    """One level under py-spy (not counted in the figures): a flame graph and per-thread stacks."""
    spy = str(Path(sys.executable).parent / "py-spy")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    common = ["record", "--pid", str(proxy.proc.pid), "--rate", "200", "--nonblocking"]
    spies = [subprocess.Popen([spy, *common, "--format", "flamegraph", "-o", f"{prefix}.svg"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen([spy, *common, "--threads", "--format", "raw", "-o", f"{prefix}.txt"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    time.sleep(1.0)  # py-spy attaches
    before = thread_cpu(proxy.proc.pid)
    try:
        row = timed(proxy, body, concurrency, requests)
        after = thread_cpu(proxy.proc.pid)
        per_thread = {tid: (after[tid] - before.get(tid, 0.0)) * 1000 / (requests + concurrency) for tid in after}
        Path(f"{prefix}.cpu.json").write_text(json.dumps({"requests": requests + concurrency,
                                                          "cpu_ms_per_request_by_thread": per_thread}))
        return row
    finally:
        for spy_proc in spies:
            spy_proc.send_signal(signal.SIGINT)  # py-spy writes its file on an interrupt
        for spy_proc in spies:
            spy_proc.wait(60)


def thread_cpu(pid: int) -> dict[str, float]:
    """Seconds of CPU each thread of the process has used, by native thread id."""
    return {str(t.id): t.user_time + t.system_time for t in psutil.Process(pid).threads()}


def timed(proxy: Proxy, body: Conversations, concurrency: int, requests: int) -> dict:
    before = cpu_seconds(proxy.proc.pid)
    result = asyncio.run(level(f"{proxy.base}/v1/chat/completions", concurrency, requests, {}, body))
    proxy.settle(list(body.windows))
    result["cpu_ms_per_request"] = (cpu_seconds(proxy.proc.pid) - before) * 1000 / (requests + concurrency)
    return result


def measure(args: argparse.Namespace, targets: dict, direct: tuple[str, dict]) -> dict:
    report: dict = {}
    for concurrency in args.concurrency:
        if args.profile:
            for name, (proxy, body) in targets.items():
                prefix = args.profile.with_name(f"{args.profile.name}-{name}-c{concurrency}")
                row = profiled(proxy, body, prefix, concurrency, args.requests)
                print(f"profiled {name} c={concurrency}: {args.requests + concurrency} requests, "
                      f"{row['cpu_ms_per_request']:.1f} ms CPU each", flush=True)
        samples: dict[str, list] = {name: [] for name in [*targets, "direct"]}
        for r in range(args.rounds):
            for name in (list(targets) if r % 2 == 0 else list(reversed(targets))):
                samples[name].append(timed(*targets[name], concurrency, args.requests))
            samples["direct"].append(asyncio.run(level(direct[0], concurrency, args.requests, {}, direct[1])))
        report[concurrency] = {name: summarize(s) for name, s in samples.items()}
        for name in targets:
            report[concurrency][name]["added_ttft_ms"] = (report[concurrency][name]["ttft_ms"]
                                                          - report[concurrency]["direct"]["ttft_ms"])
            report[concurrency][name]["request_log"] = request_log(targets[name][0], args.rounds * args.requests)
        print(json.dumps({concurrency: report[concurrency]}), flush=True)
    return report


STEPS = ("ttft_ms", "sync_ms", "embed_ms", "retrieval_ms", "build_ms", "upstream_ms")


def request_log(proxy: Proxy, last: int) -> dict:
    """Medians of the proxy's own request log over its `last` requests: where its time went."""
    import sqlite3

    with sqlite3.connect(proxy.data / "requests.sqlite") as db:
        rows = db.execute(f"SELECT {', '.join(STEPS)} FROM requests ORDER BY id DESC LIMIT ?", (last,)).fetchall()
    return {step: round(statistics.median(r[i] or 0.0 for r in rows), 2) for i, step in enumerate(STEPS)}


def summarize(samples: list[dict]) -> dict:
    out = {"ttft_ms": statistics.median(x for s in samples for x in s["ttft_ms"]),
           "rps": statistics.median(s["rps"] for s in samples)}
    if "cpu_ms_per_request" in samples[0]:
        out["cpu_ms_per_request"] = statistics.median(s["cpu_ms_per_request"] for s in samples)
        out["cpu_ms_per_round"] = [round(s["cpu_ms_per_request"], 2) for s in samples]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1])
    parser.add_argument("--requests", type=int, default=100, help="requests per level per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--history-sessions", type=int, default=10)
    parser.add_argument("--this-env", action="append", default=[], help="KEY=VALUE for this checkout's proxy")
    parser.add_argument("--other-env", action="append", default=[], help="KEY=VALUE for the other's proxy")
    parser.add_argument("--fresh", action="store_true", help="each proxy loads and embeds its own store")
    parser.add_argument("--profile", type=Path, help="py-spy output prefix for this checkout's proxy")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "deep.json")
    args = parser.parse_args(argv)
    args.env = {"this": args.this_env, "other": args.other_env}
    up_port = free_port()
    upstream = start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(up_port)],
                     {"HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING"}, f"http://127.0.0.1:{up_port}/v1/models")
    proxies: list[Proxy] = []
    try:
        store = None if args.fresh else prepared_store(args, f"http://127.0.0.1:{up_port}/v1")
        targets = {}
        for name, root in (("other", args.other.resolve()), ("this", ROOT)):
            proxy, body = open_proxy(name, root, f"http://127.0.0.1:{up_port}/v1", args, store)
            proxies.append(proxy)
            targets[name] = (proxy, body)
        direct = (f"http://127.0.0.1:{up_port}/v1/chat/completions", body.body(next(iter(body.windows))))
        report = measure(args, targets, direct)
    finally:
        for proxy in proxies:
            proxy.stop()
            shutil.rmtree(proxy.data, ignore_errors=True)
        upstream.terminate()
        upstream.wait(30)
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "report": report}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
