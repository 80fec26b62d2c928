"""What the proxy adds: time to first token, total time and throughput, against the upstream direct.

    python bench/proxy_bench.py                                # pass-through, concurrency 1, 10, 50
    python bench/proxy_bench.py --variants off,off-noobs,on,gemini
    python bench/proxy_bench.py --variants off,keys --concurrency 1,10      # what keys and limits cost
    python bench/proxy_bench.py --variants on-history,litellm --concurrency 1,10   # deep, against LiteLLM

Variants: `off` memory off (pass-through) with metrics and the request log on; `off-noobs` the
same with metrics, request log and info logs off; `on` memory on (each request a new user turn
in one of 50 sessions: sync, query embedding, hybrid search, context build, reply recorded); `gemini`
memory off, served by the Gemini provider from a local fake of the Gemini API (its own direct
baseline is not comparable, so compare it with `off`); `on-history` memory on in conversations
that already hold `--history` messages each (`--history-sessions` of them, loaded through the
memory API from the recall benchmark's generator and embedded before timing starts): each
request sends the newest 20 turns plus a new question, as a trimming client does, so the proxy
syncs, searches the whole history and builds the context as it would deep into a real chat; its
baseline, `direct-history`, sends such a window and question straight to the upstream. `keys` is
`off` with an API key checked on every request and per-key limits on requests and tokens (set
high enough never to refuse), so `keys` against `off` is what access control adds. `litellm` is
LiteLLM's proxy with no memory in front of the same upstream (bench/litellm_gateway.py installs it
into a virtualenv of its own on first use); it is sent `on-history`'s deep windows when that
variant runs too, and measured against them sent direct, else the plain request.

Three processes on 127.0.0.1: the offline fake upstream, the proxy (one uvicorn worker) and this
load generator. The fake answers at once unless `--chunk-delay-ms` paces its chunks like a model
writing (the proxy's background work then runs while the reply streams, as it does in use). Each concurrency level runs the same streamed requests against the upstream
directly and through the proxy, interleaved in rounds so machine noise hits both alike; the
report gives medians and the ratio. Results also go to bench/results/proxy.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

BODY = {"model": "fake-model", "stream": True,
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Tell me something nice about the sea?"}]}


VARIANTS = {
    "off": {"MEMORY_ENABLED": "false"},
    "off-noobs": {"MEMORY_ENABLED": "false", "METRICS_ENABLED": "false", "REQUEST_LOG_ENABLED": "false"},
    "on": {"MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false"},
    "gemini": {"MEMORY_ENABLED": "false"},
    "on-history": {"MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false"},
    "keys": {"MEMORY_ENABLED": "false", "API_KEYS": "bench-key-0123456789,bench-other-key-42",
             "RATE_LIMIT_RPM": "100000000", "RATE_LIMIT_TPM": "100000000000"},
}
VARIANT_HEADERS = {"keys": {"Authorization": "Bearer bench-key-0123456789"}}  # what the client sends
WINDOW = 20  # turns a trimming client keeps
BASELINES = {"proxy-on-history": "direct-history"}  # what a variant's added time is measured against


def start(cmd: list[str], env: dict[str, str], url: str, cwd: Path = ROOT) -> subprocess.Popen:
    """Start a server (in `cwd`: another checkout runs from its own directory); its output goes to a
    file (an unread pipe would fill up and stall it)."""
    logs = ROOT / "data" / "bench" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    err = open(logs / f"{url.split(':')[2].split('/')[0]}.log", "wb")
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=cwd, stdout=err, stderr=err)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited; see {err.name}")
    proc.kill()  # never leave a server that did not come up running behind the benchmark
    raise RuntimeError(f"{cmd} did not start; see {err.name}")


COUNTER = iter(range(10**9))
WORDS = "sea tide harbour gull storm sail anchor reef wave lighthouse island shell coral current".split()


def fresh_body(model: str) -> dict:
    """A new user turn each time, so memory does real work (no cache hits on the query)."""
    n = next(COUNTER)
    text = f"Message {n}: tell me about the {WORDS[n % len(WORDS)]} and the {WORDS[(n * 7) % len(WORDS)]}?"
    return {**BODY, "model": model, "user": f"bench-session-{n % 50}",
            "messages": [BODY["messages"][0], {"role": "user", "content": text}]}


class Conversations:
    """Sessions that already hold a long history; each request continues one of them.

    A worker owns its sessions (worker w uses sessions w, w + workers, ...), so one conversation
    has one request in flight at a time while there are at least as many conversations as
    workers (more workers share them, and the proxy takes a session's requests one at a time).
    Each request's window is the newest `WINDOW` turns the session holds, the previous bench
    turns included, plus a new question.
    """

    def __init__(self, model: str, sessions: int, history: int) -> None:
        from bench.recall.generate import generate

        self.model = model
        self.windows: dict[str, list[dict]] = {}
        self.loads: dict[str, list[dict]] = {}
        for i in range(sessions):
            messages = generate(history, 100 + i)["messages"]
            sid = f"bench-history-{i}"
            self.loads[sid] = [{"role": m["role"], "content": m["text"], "created_at": m["created"]}
                               for m in messages]
            self.windows[sid] = [{"role": m["role"], "content": m["text"]} for m in messages[-WINDOW:]]
        self.turn = 0

    def load(self, base: str) -> None:
        """Store every history through the memory API and wait until all of it is embedded."""
        with httpx.Client(timeout=120) as client:
            for sid, messages in self.loads.items():
                for start in range(0, len(messages), 500):
                    client.post(f"{base}/v1/sessions/{sid}/messages",
                                json={"messages": messages[start:start + 500]}).raise_for_status()
            deadline = time.monotonic() + 600
            while any(client.get(f"{base}/v1/sessions/{sid}").json()["pending"] for sid in self.loads):
                if time.monotonic() > deadline:
                    raise RuntimeError("background embedding of the bench histories did not finish")
                time.sleep(0.5)

    def session(self, worker: int, workers: int) -> str:
        ids = list(self.windows)
        mine = ids[worker % len(ids)::workers] or ids[worker % len(ids):][:1]
        self.turn += 1
        return mine[self.turn % len(mine)]

    def body(self, sid: str) -> dict:
        n = next(COUNTER)
        question = f"By the way, what did I say about the {WORDS[n % len(WORDS)]} back then? (asked {n})"
        return {"model": self.model, "stream": True, "messages": [
            {"role": "system", "content": BODY["messages"][0]["content"]}, *self.windows[sid],
            {"role": "user", "content": question}], "metadata": {"session_id": sid}}

    def done(self, sid: str, body: dict, reply: str) -> None:
        self.windows[sid] = [*self.windows[sid], body["messages"][-1],
                             {"role": "assistant", "content": reply}][-WINDOW:]


async def one(client: httpx.AsyncClient, url: str, body, worker: int = 0,
              workers: int = 1) -> tuple[float, float]:
    sid = None
    if isinstance(body, Conversations):
        conversations, sid = body, body.session(worker, workers)
        body = conversations.body(sid)
    elif callable(body):
        body = body()
    t0 = time.perf_counter()
    first, reply = None, []
    async with client.stream("POST", url, json=body) as response:
        response.raise_for_status()  # a refused request (a missing key, a limit) is no measurement
        async for line in response.aiter_lines():
            if first is None and '"content"' in line:
                first = time.perf_counter()
            if sid is not None and line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                reply.append(delta.get("content") or "")
    if sid is not None:
        conversations.done(sid, body, "".join(reply))
    return (first or time.perf_counter()) - t0, time.perf_counter() - t0


async def level(url: str, concurrency: int, requests: int, headers: dict, body: dict) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60, headers=headers) as client:
        await asyncio.gather(*(one(client, url, body, w, concurrency) for w in range(concurrency)))  # warm up
        queue = list(range(requests))
        results: list[tuple[float, float]] = []

        async def worker(w: int) -> None:
            while queue:
                queue.pop()
                results.append(await one(client, url, body, w, concurrency))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"ttft_ms": [r[0] * 1000 for r in results], "total_ms": [r[1] * 1000 for r in results],
            "rps": requests / wall}


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of these processes and their children so far."""
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def summarize(samples: list[dict]) -> dict:
    ttft = [x for s in samples for x in s["ttft_ms"]]
    total = [x for s in samples for x in s["total_ms"]]
    out = {"ttft_ms": statistics.median(ttft), "total_ms": statistics.median(total),
           "rps": statistics.median(s["rps"] for s in samples)}
    if all("cpu_ms" in s for s in samples):
        out["cpu_ms"] = statistics.median(s["cpu_ms"] for s in samples)
    return out


def run(args: argparse.Namespace) -> dict:
    up_port, env_base = free_port(), {"HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING"}
    upstream = start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(up_port),
                      "--chunk-delay", str(args.chunk_delay_ms / 1000)], env_base, f"http://127.0.0.1:{up_port}/v1/models")
    procs = [upstream]
    targets = {"direct": (f"http://127.0.0.1:{up_port}/v1/chat/completions", {}, BODY)}
    pids: dict[str, int] = {}  # whose CPU each target's requests cost
    try:
        gemini_port = None
        for variant in args.variants:
            if variant == "litellm":
                procs.append(start_litellm(targets, up_port))
                pids["litellm"] = procs[-1].pid
                continue
            if variant == "gemini" and gemini_port is None:
                gemini_port = free_port()
                procs.append(start([sys.executable, "-m", "app.fakes.gemini_server", "--port", str(gemini_port),
                                    "--api-key", "bench"], env_base, f"http://127.0.0.1:{gemini_port}/v1beta/models?key=bench"))
            port = free_port()
            env = {**env_base, "UPSTREAM_BASE_URL": f"http://127.0.0.1:{up_port}/v1", "PORT": str(port),
                   "DATA_DIR": str(ROOT / "data" / "bench" / f"{variant}-{port}"), **VARIANTS[variant],
                   **dict(pair.split("=", 1) for pair in args.env)}
            if variant == "gemini":
                env.update({"UPSTREAM_BASE_URL": "", "GEMINI_API_KEY": "bench", "GEMINI_MODELS": "gemini-2.5-flash",
                            "GEMINI_BASE_URL": f"http://127.0.0.1:{gemini_port}"})
            procs.append(start([sys.executable, "-m", "app.cli", "serve"], env, f"http://127.0.0.1:{port}/health"))
            pids[f"proxy-{variant}"] = procs[-1].pid
            model = "gemini-2.5-flash" if variant == "gemini" else "fake-model"
            body = (lambda m=model: fresh_body(m)) if variant == "on" else {**BODY, "model": model}
            if variant == "on-history":
                body = Conversations(model, args.history_sessions, args.history)
                body.load(f"http://127.0.0.1:{port}")
                # its baseline: the same window and question sent straight to the upstream
                targets["direct-history"] = (targets["direct"][0], {}, body.body(next(iter(body.windows))))
            targets[f"proxy-{variant}"] = (f"http://127.0.0.1:{port}/v1/chat/completions",
                                           VARIANT_HEADERS.get(variant, {}), body)
        if "litellm" in targets:  # the same requests as memory's deepest variant, when there is one
            url, headers, _ = targets["litellm"]
            targets["litellm"] = (url, headers, targets.get("direct-history", targets["direct"])[2])
        return measure(targets, args, pids)
    finally:
        stop(procs)


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_litellm(targets: dict, up_port: int) -> subprocess.Popen:
    """LiteLLM's proxy, no memory, in front of the same fake upstream (bench/litellm_gateway.py)."""
    from bench import litellm_gateway

    port = free_port()
    cmd, env = litellm_gateway.command(port, f"http://127.0.0.1:{up_port}/v1")
    proc = start(cmd, env, f"http://127.0.0.1:{port}{litellm_gateway.HEALTH}")
    print(f"LiteLLM {litellm_gateway.version()} on port {port}", file=sys.stderr)
    targets["litellm"] = (f"http://127.0.0.1:{port}/v1/chat/completions", litellm_gateway.HEADERS, None)
    return proc


def measure(targets: dict, args: argparse.Namespace, pids: dict[str, int]) -> dict:
    """Each level's samples; a server's CPU per request counts its whole process tree over the
    level (warm-up requests included), background work left from the level before included."""
    report: dict = {}
    for concurrency in args.concurrency:
        samples: dict[str, list] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, (url, headers, body) in targets.items():
                server = [pids[name]] if name in pids else []
                before = cpu_seconds(server)
                sample = asyncio.run(level(url, concurrency, args.requests, headers, body))
                if server:
                    sample["cpu_ms"] = (cpu_seconds(server) - before) * 1000 / (args.requests + concurrency)
                samples[name].append(sample)
        report[concurrency] = {name: summarize(s) for name, s in samples.items()}
    return report


def baseline(name: str, rows: dict) -> str:
    """What a target's added time is measured against: LiteLLM is sent the deep windows when
    on-history runs beside it, so it is measured against the same windows sent direct."""
    wanted = "direct-history" if name == "litellm" else BASELINES.get(name, "direct")
    return wanted if wanted in rows else "direct"


def print_report(report: dict) -> None:
    print(f"{'conc':>4} {'target':<17} {'ttft ms':>8} {'added':>7} {'total ms':>9} {'req/s':>7} {'vs direct':>9} "
          f"{'cpu ms/req':>10}")
    for concurrency, rows in report.items():
        for name, row in rows.items():
            base = rows[baseline(name, rows)]
            added = row["ttft_ms"] - base["ttft_ms"]
            cpu = f"{row['cpu_ms']:10.2f}" if "cpu_ms" in row else f"{'–':>10}"
            print(f"{concurrency:>4} {name:<17} {row['ttft_ms']:8.2f} {added:7.2f} {row['total_ms']:9.2f} "
                  f"{row['rps']:7.1f} {row['rps'] / base['rps']:9.2f} {cpu}")
        if {"proxy-keys", "proxy-off"} <= set(rows):
            print(f"{concurrency:>4} keys - off: {rows['proxy-keys']['ttft_ms'] - rows['proxy-off']['ttft_ms']:+.3f} ms "
                  f"time to first token")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10, 50])
    parser.add_argument("--requests", type=int, default=200, help="requests per level per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", type=lambda s: s.split(","), default=["off"],
                        help="proxy variants: off, off-noobs, on, on-history, gemini, keys, litellm (see above)")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for the proxy")
    parser.add_argument("--history", type=int, default=1000, help="messages per conversation for on-history")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0,
                        help="the fake model's pause between streamed chunks (0: it answers at once)")
    parser.add_argument("--history-sessions", type=int, default=10, help="conversations for on-history")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "proxy.json")
    args = parser.parse_args(argv)
    report = run(args)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
