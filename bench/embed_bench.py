"""Embedding speed and agreement: sentence-transformers on torch (the baseline) against ONNX Runtime.

    python bench/embed_bench.py                       # torch, onnx with 1 and 2 threads
    python bench/embed_bench.py --onnx-threads 1 --calls 100

Reports one-sentence latency (median, p95), batch throughput (texts/s at batch 1, 8, 32, 128),
the shared `Embedder`'s own one-sentence latency (cache off, so the model runs every time), a
query's latency while the memory writer's background work arrives just before it (back-to-back
turns with long replies; background sharing the model against its own lane), and how often the
top-5 neighbours of a query agree between onnx and torch. Backends are measured in alternating
blocks so machine noise hits all alike; ratios are against torch in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.memory.embedding.embedder import Embedder, load_backend  # noqa: E402

SUBJECTS = ["I", "My sister", "The neighbour", "Our team", "My grandfather", "The new manager", "We", "My cat"]
VERBS = ["talked about", "worried about", "laughed at", "dreamed of", "argued over", "planned", "remembered",
         "complained about", "cooked", "painted", "forgot", "wrote a song about"]
OBJECTS = ["the holiday in Greece", "a broken bicycle", "the thunderstorm last night", "my job interview",
           "an old photograph", "the football final", "a recipe for lemon cake", "the rent going up",
           "a lost passport", "the piano lesson", "the garden tomatoes", "a strange dream",
           "the hospital visit", "our wedding anniversary", "the chemistry exam", "a noisy concert"]
TAILS = ["", " yesterday", " for hours", " again this morning", " and felt much better afterwards",
         " while it rained outside", " with a cup of tea", " before going to bed"]


def sentences(n: int, seed: int) -> list[str]:
    """`n` distinct everyday sentences, the same every run for a given seed."""
    rng, seen = random.Random(seed), dict[str, None]()
    while len(seen) < n:
        seen[f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}."] = None
    return list(seen)


def ms(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    return statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def latency(backends: dict, texts: list[str], blocks: int) -> dict[str, list[float]]:
    """One-sentence encode, timed per call; backends take turns in blocks of calls.

    Blocks, not single calls, because a pool of threads just left by one backend (torch's
    OpenMP threads keep spinning for a while) would slow the next and measure the mix.
    """
    out = {name: [] for name in backends}
    size = max(1, len(texts) // blocks)
    for start in range(0, len(texts), size):
        for name, backend in backends.items():
            out[name] += [timed(backend.encode, [text]) for text in texts[start:start + size]]
    return out


def throughput(backends: dict, texts: list[str], batch: int, rounds: int) -> dict[str, float]:
    """Texts per second at `batch`: the median batch time over rounds of a few batches each."""
    times = {name: [] for name in backends}
    for r in range(rounds):
        chunks = [[texts[(r * batch * 3 + i) % len(texts)] for i in range(j * batch, (j + 1) * batch)]
                  for j in range(3)]
        for name, backend in backends.items():
            times[name] += [timed(backend.encode, chunk) for chunk in chunks]
    return {name: batch / statistics.median(t) for name, t in times.items()}


def service_latency(backend, texts: list[str]) -> list[float]:
    """`Embedder.embed_one` with the cache off: the model plus the hop to its thread and back."""
    async def main() -> list[float]:
        embedder = Embedder(backend, cache_size=0)
        await embedder.start()
        spent = []
        for text in texts:
            start = time.perf_counter()
            await embedder.embed_one(text)
            spent.append(time.perf_counter() - start)
        await embedder.aclose()
        return spent
    return asyncio.run(main())


def under_background(backend, turns: int, seed: int, lane: bool) -> list[float]:
    """Query latency (s) when each turn's background work (a long reply and the user's message,
    as the writer sends them) is queued 2 ms before the next query, through the `Embedder`."""
    replies = [" ".join(sentences(8, seed=seed * 1000 + i)) for i in range(turns)]  # ~100 tokens
    asked = sentences(2 * turns, seed=seed + 500)

    async def main() -> list[float]:
        embedder = Embedder(backend, cache_size=0, background_threads=1 if lane else 0)
        await embedder.start()
        spent, pending = [], []
        for i in range(turns):
            work = [replies[i], asked[2 * i]]
            pending.append(asyncio.create_task(embedder.embed(work, background=True)))
            await asyncio.sleep(0.002)  # the next request's own preparation
            start = time.perf_counter()
            await embedder.embed_one(asked[2 * i + 1])
            spent.append(time.perf_counter() - start)
            await asyncio.sleep(0.03)  # search, context, the upstream's first tokens
        await asyncio.gather(*pending)
        await embedder.aclose()
        return spent
    return asyncio.run(main())


def background_report(backend, turns: int) -> None:
    lanes = {"background shares the model": False, "background on its own lane": True}
    spent = {name: [] for name in lanes}
    for block in range(4):  # alternating blocks, as above
        for name, lane in lanes.items():
            spent[name] += under_background(backend, max(1, turns // 4), seed=block, lane=lane)
    print(f"\nquery while background work arrives ({turns} turns)   median ms     p95 ms")
    for name, times in spent.items():
        med, p95 = ms(times)
        print(f"  {name:<40} {med:9.2f} {p95:10.2f}")


def top5(queries: np.ndarray, corpus: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ corpus.T), axis=1, kind="stable")[:, :5]


def agreement(onnx, torch, corpus: list[str], queries: list[str]) -> dict[str, float]:
    a = top5(onnx.encode(queries), onnx.encode(corpus))
    b = top5(torch.encode(queries), torch.encode(corpus))
    cosines = np.sum(onnx.encode(corpus) * torch.encode(corpus), axis=1)
    return {"same order": float(np.mean([list(x) == list(y) for x, y in zip(a, b)])),
            "same set": float(np.mean([set(x) == set(y) for x, y in zip(a, b)])),
            "min cosine": float(cosines.min())}


def load(args: argparse.Namespace) -> dict:
    backends = {"torch": load_backend(args.model, "torch", args.cache_dir, threads=0)}
    for threads in args.onnx_threads:
        backends[f"onnx t={threads}"] = load_backend(args.model, "onnx", args.cache_dir, threads=threads)
    for backend in backends.values():
        backend.encode(sentences(32, seed=9))  # warm up
    return backends


def report(args: argparse.Namespace) -> None:
    backends = load(args)
    texts = sentences(max(args.calls, 256), seed=1)
    lat = latency(backends, texts[:args.calls], blocks=4)
    base = statistics.median(lat["torch"])
    print(f"\none sentence, {args.calls} calls          median ms     p95 ms   vs torch")
    for name, spent in lat.items():
        med, p95 = ms(spent)
        print(f"  {name:<32} {med:9.2f} {p95:10.2f} {base * 1000 / med:9.2f}x")
    for name, backend in backends.items():
        if name != "torch":
            med, p95 = ms(service_latency(backend, texts[:args.calls]))
            print(f"  {'Embedder.embed_one, ' + name:<32} {med:9.2f} {p95:10.2f} {base * 1000 / med:9.2f}x")
    print("\ntexts/s        " + "".join(f"{'batch ' + str(b):>12}" for b in args.batches))
    rates = {b: throughput(backends, texts, b, rounds=max(2, args.rounds * 8 // b)) for b in args.batches}
    for name in backends:
        cells = "".join(f"{rates[b][name]:8.0f} {rates[b][name] / rates[b]['torch']:3.1f}x" for b in args.batches)
        print(f"  {name:<12} {cells}")
    onnx = backends[f"onnx t={args.onnx_threads[-1]}"]
    if args.turns:
        background_report(onnx, args.turns)
    agree = agreement(onnx, backends["torch"], sentences(500, seed=2), sentences(100, seed=3))
    print(f"\ntop-5 neighbours, 100 queries over 500 sentences, onnx vs torch: same order "
          f"{agree['same order']:.0%}, same set {agree['same set']:.0%}; "
          f"lowest cosine between them {agree['min cosine']:.6f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models"))
    parser.add_argument("--onnx-threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 128])
    parser.add_argument("--calls", type=int, default=200, help="one-sentence calls per backend")
    parser.add_argument("--rounds", type=int, default=4, help="rounds at batch 8 (scaled for others)")
    parser.add_argument("--turns", type=int, default=80, help="turns for the background test (0: skip it)")
    report(parser.parse_args())


if __name__ == "__main__":
    main()
