"""What access control costs per request, in microseconds, without a network in between.

    python bench/access_bench.py

Times, on one event loop, each piece a chat request passes with keys and limits on: the guard
middleware (Host, Origin, body type, key) around an ASGI app that answers at once, with no keys and
with keys (the key hashed and compared with every configured digest); the rate limiter's
`admit` with its x-ratelimit-* headers; the token charge after the answer. Medians of `--rounds`
runs of `--n` calls each. `proxy_bench.py --variants off,keys` measures the same end to end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth import KeyRing  # noqa: E402
from app.browser import BrowserPolicy  # noqa: E402
from app.ratelimit import Limits, MemoryRateLimiter, rate_headers  # noqa: E402
from app.routes.guard import Guard  # noqa: E402

KEY = "bench-key-0123456789"
HEADERS = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"OpenAI/Python 1.0"), (b"accept", b"application/json"),
           (b"content-type", b"application/json"), (b"authorization", f"Bearer {KEY}".encode()),
           (b"x-stainless-lang", b"python"), (b"content-length", b"120")]


async def _answer(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def _send(message) -> None:
    pass


async def _receive():
    return {"type": "http.request", "body": b"", "more_body": False}


def guard(keys: list[str]) -> Guard:
    policy = BrowserPolicy.build(origins=[], hosts=[], bind_host="127.0.0.1")
    return Guard(_answer, policy=policy, keys=KeyRing(keys))


async def per_call(fn, n: int) -> float:
    """Microseconds per awaited call of `fn()`."""
    t0 = time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.perf_counter() - t0) / n * 1e6


async def measure(n: int, rounds: int) -> dict[str, float]:
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": HEADERS}
    open_guard, keyed_guard = guard([]), guard([KEY, "other-key-1", "other-key-2"])
    limiter = MemoryRateLimiter(Limits(rpm=10**9, tpm=10**12))

    async def admit() -> None:
        rate_headers(await limiter.admit("t-bench"))

    async def spend() -> None:
        limiter.spend("t-bench", 120)

    cases = {"app alone": lambda: _answer(dict(scope), _receive, _send),
             "guard, no keys": lambda: open_guard(dict(scope), _receive, _send),
             "guard, 3 keys": lambda: keyed_guard(dict(scope), _receive, _send),
             "limiter admit + headers": admit, "token charge": spend}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            samples[name].append(await per_call(fn, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "access.json")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.n, args.rounds))
    for name, micros in result.items():
        print(f"{name:<26} {micros:7.2f} µs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
