"""The proxy's resident memory through a phase of hostile and oversized input, and after it.

    python -m bench.memory_growth

One proxy (memory on) and the offline fake upstream on 127.0.0.1. The phase sends: a request of
100,001 messages, a 7 MB message, deep nesting, and then `--big` accepted requests each holding a
message just under MAX_MESSAGE_CHARS, in as many conversations, plus `--small` ordinary turns.
It samples the proxy's RSS (from /proc) before, right after, and after `--settle` seconds, and
writes bench/results/memory_growth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.fakes.serve import free_port  # noqa: E402
from bench.proxy_bench import start  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def metrics(url: str) -> dict[str, float]:
    wanted = ("proxy_active_sessions", "proxy_indexed_messages", "proxy_working_memory_messages")
    lines = httpx.get(url).text.splitlines()
    return {line.split()[0]: float(line.split()[1]) for line in lines if line.split(" ")[0] in wanted}


def hostile(url: str, big: int, small: int) -> dict[str, int]:
    statuses: dict[str, int] = {}

    def post(name: str, body: dict, headers: dict | None = None) -> None:
        response = httpx.post(f"{url}/chat/completions", json=body, headers=headers or {}, timeout=120)
        statuses[name] = response.status_code

    many = [{"role": "user", "content": f"m{k}"} for k in range(100_001)]
    post("100,001 messages", {"model": "fake-model", "messages": many})
    post("a 7 MB message", {"model": "fake-model", "messages": [{"role": "user", "content": "x " * 3_500_000}]})
    deep: dict = {"leaf": 1}
    for _ in range(300):
        deep = {"x": deep}
    post("300-level nesting", {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "x": deep})
    for k in range(big):
        text = f"Conversation {k}. " + " ".join(f"word{k}-{i}" for i in range(20_000))
        post("near-limit messages", {"model": "fake-model", "messages": [{"role": "user", "content": text}]},
             {"X-Session-Id": f"big-{k}"})
    for k in range(small):
        post("ordinary turns", {"model": "fake-model", "messages": [{"role": "user", "content": f"Turn {k}."}]},
             {"X-Session-Id": f"small-{k % 50}"})
    return statuses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=40)
    parser.add_argument("--small", type=int, default=400)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "memory_growth.json")
    args = parser.parse_args(argv)
    fake_port, port = free_port(), free_port()
    fake = start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(fake_port)], {},
                 f"http://127.0.0.1:{fake_port}/v1/models")
    data = Path(tempfile.mkdtemp(prefix="memgrowth-"))
    env = {"PORT": str(port), "DATA_DIR": str(data), "LOG_DIR": str(data / "logs"), "LOG_LEVEL": "WARNING",
           "MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false",
           "UPSTREAM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
           "EMBEDDING_CACHE_DIR": os.environ.get("EMBEDDING_CACHE_DIR") or str(ROOT / "data" / "models")}
    proxy = start([sys.executable, "-m", "app.cli", "serve"], env, f"http://127.0.0.1:{port}/health")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        httpx.post(f"{url}/chat/completions", json={"model": "fake-model",
                                                    "messages": [{"role": "user", "content": "warm up"}]})
        before = rss_mb(proxy.pid)
        started = time.monotonic()
        statuses = hostile(url, args.big, args.small)
        seconds = time.monotonic() - started
        after = rss_mb(proxy.pid)
        time.sleep(args.settle)
        settled = rss_mb(proxy.pid)
        gauges = metrics(f"http://127.0.0.1:{port}/metrics")
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(60)
        fake.terminate()
    report = {"rss_mb": {"before": round(before), "after": round(after), "settled": round(settled)},
              "held": gauges,
              "seconds": round(seconds, 1), "statuses": statuses, "big": args.big, "small": args.small}
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
