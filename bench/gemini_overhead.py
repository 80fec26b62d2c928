"""What the Gemini path costs per request, beside the OpenAI-compatible path, all in-process.

    python bench/gemini_overhead.py              # 300 requests per variant, 5 interleaved rounds
    python bench/gemini_overhead.py --requests 1000 --chunks 50

One request: a system prompt, 10 turns of history and a tool, answered by a stream of `--chunks`
text chunks. Two levels are timed, interleaved in rounds so machine noise hits both paths alike:

  mapping   our own code only: the request mapped (Gemini: `request_payload`; OpenAI: the body
            encoded) and every chunk turned into events (Gemini: `StreamMapper` over SDK objects;
            OpenAI: `orjson.loads` + `chunk_events`)
  provider  the whole provider over an in-memory HTTP transport (no sockets): for Gemini that adds
            the google-genai SDK's own request building and response parsing

Prints the median µs per request and the Gemini/OpenAI ratio; results go to bench/results/gemini.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from google.genai import types  # noqa: E402

from app.providers.base import UpstreamRequest  # noqa: E402
from app.providers.gemini import GeminiProvider  # noqa: E402
from app.providers.gemini_mapping import StreamMapper, request_payload  # noqa: E402
from app.providers.openai_compat import OpenAICompatProvider, chunk_events  # noqa: E402

TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def make_request() -> UpstreamRequest:
    messages = [{"role": "system", "content": "You are a warm, concise assistant. " * 20}]
    for i in range(10):
        messages.append({"role": "user", "content": f"Question number {i} about the sea and the weather? " * 3})
        messages.append({"role": "assistant", "content": f"Answer number {i}: the sea is calm today. " * 3})
    messages.append({"role": "user", "content": "And tomorrow?"})
    return UpstreamRequest("gemini-2.5-flash", messages, {"temperature": 0.7, "max_tokens": 512, "tools": [TOOL]})


def gemini_chunks(n: int) -> list[dict]:
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [{"text": f"word{i} word word "}]}, "index": 0}],
               "usageMetadata": {"promptTokenCount": 400, "totalTokenCount": 400}, "modelVersion": "gemini-2.5-flash"}
              for i in range(n)]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = {"promptTokenCount": 400, "candidatesTokenCount": 3 * n, "totalTokenCount": 550}
    return chunks


def openai_chunks(n: int) -> list[dict]:
    base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": f"word{i} word word "}, "finish_reason": None}]}
              for i in range(n)]
    chunks[0]["choices"][0]["delta"]["role"] = "assistant"
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 400, "completion_tokens": 150,
                                                     "total_tokens": 550}})
    return chunks


# ---------------------------------------------------------------- mapping only

def map_gemini(request: UpstreamRequest, responses: list[types.GenerateContentResponse]) -> int:
    request_payload(request)
    mapper = StreamMapper()
    events = [e for r in responses for e in mapper.events(r)] + mapper.finish()
    return len(events)


def map_openai(request: UpstreamRequest, raw_chunks: list[bytes]) -> int:
    orjson.dumps({**request.params, "model": request.model, "messages": request.messages, "stream": True,
                  "stream_options": {"include_usage": True}})
    return len([e for raw in raw_chunks for e in chunk_events(orjson.loads(raw))])


# ---------------------------------------------------------------- whole provider, in-memory transport

def sse(chunks: list[dict], done: bool) -> bytes:
    body = b"".join(b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks)
    return body + (b"data: [DONE]\n\n" if done else b"")


def transport(body: bytes) -> httpx.MockTransport:
    async def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})
    return httpx.MockTransport(answer)


async def drain(provider, request: UpstreamRequest) -> int:
    return len([event async for event in provider.stream(request)])


# ---------------------------------------------------------------- timing

def timed_sync(fn, *args, requests: int) -> float:
    t0 = time.perf_counter()
    for _ in range(requests):
        fn(*args)
    return (time.perf_counter() - t0) / requests * 1e6


async def timed_async(provider, request: UpstreamRequest, requests: int) -> float:
    t0 = time.perf_counter()
    for _ in range(requests):
        await drain(provider, request)
    return (time.perf_counter() - t0) / requests * 1e6


async def run(requests: int, rounds: int, n_chunks: int) -> dict[str, dict[str, float]]:
    request = make_request()
    g_chunks, o_chunks = gemini_chunks(n_chunks), openai_chunks(n_chunks)
    responses = [types.GenerateContentResponse.model_validate(c) for c in g_chunks]
    raw = [orjson.dumps(c) for c in o_chunks]
    gemini = GeminiProvider("k", base_url="http://127.0.0.1:9", transport=transport(sse(g_chunks, done=False)))
    openai = OpenAICompatProvider("http://127.0.0.1:9/v1", transport=transport(sse(o_chunks, done=True)))
    assert await drain(gemini, request) == await drain(openai, request) == n_chunks + 2
    samples: dict[str, list[float]] = {k: [] for k in ("mapping/gemini", "mapping/openai",
                                                       "provider/gemini", "provider/openai")}
    for _ in range(rounds):
        samples["mapping/gemini"].append(timed_sync(map_gemini, request, responses, requests=requests))
        samples["mapping/openai"].append(timed_sync(map_openai, request, raw, requests=requests))
        samples["provider/gemini"].append(await timed_async(gemini, request, requests // 5 or 1))
        samples["provider/openai"].append(await timed_async(openai, request, requests // 5 or 1))
    await gemini.aclose()
    await openai.aclose()
    return {level: {"gemini_us": statistics.median(samples[f"{level}/gemini"]),
                    "openai_us": statistics.median(samples[f"{level}/openai"])} for level in ("mapping", "provider")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", type=int, default=50)
    args = parser.parse_args()
    results = asyncio.run(run(args.requests, args.rounds, args.chunks))
    print(f"per request: {args.chunks} streamed chunks, median of {args.rounds} rounds")
    print(f"{'level':<10}{'gemini µs':>12}{'openai µs':>12}{'ratio':>8}")
    for level, r in results.items():
        r["ratio"] = r["gemini_us"] / r["openai_us"]
        print(f"{level:<10}{r['gemini_us']:>12.0f}{r['openai_us']:>12.0f}{r['ratio']:>8.2f}")
    out = ROOT / "bench" / "results" / "gemini.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"chunks": args.chunks, "rounds": args.rounds, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
