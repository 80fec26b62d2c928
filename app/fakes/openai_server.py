"""An offline OpenAI-compatible model server, for tests, benchmarks and trying the proxy without a key.

    python -m app.fakes.openai_server --port 8001      # then UPSTREAM_BASE_URL=http://127.0.0.1:8001/v1

It answers deterministically: a question (a last user message ending in "?") is answered with
the sentence of the context that shares most words with it — so a demo shows plainly whether
memory put the right fact in front of the model — anything else with a short acknowledgement.
Tests script it through `FakeUpstream.script`: each request pops the next `Behaviour`
(a reply, a tool call, an HTTP error with Retry-After, a stall, a stream cut in the middle,
raw SSE payloads sent as they are, malformed ones included).
Every request body is kept in `requests`; `cancelled` counts streams whose client went away.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

WORD = re.compile(r"[a-z0-9']+")
STOP = frozenset("a an the is are was were do does did what who when where which how i you me my your "
                 "of to in on at and or it that this for with be have has had again".split())


@dataclass
class Behaviour:
    """What the next request gets. `status` >= 400 answers an error; `cut_after` breaks the stream."""

    text: str | None = None
    tool_call: dict[str, Any] | None = None
    status: int = 200
    retry_after: float | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    finish_reason: str | None = None
    usage: bool = True
    frames: list[str] | None = None  # raw `data:` payloads streamed as they are, then nothing else


@dataclass
class FakeUpstream:
    models: list[str] = field(default_factory=lambda: ["fake-model", "fake-model-large"])
    script: deque[Behaviour] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # the client port of each chat request: one per connection
    cancelled: int = 0
    chunk_words: int = 3
    chunk_delay: float = 0.0  # between chunks when the script has nothing to say: a model's pace
    numbered: bool = False    # unscripted replies say "Reply N to: …", each one different
    faults: Faults | None = None  # unscripted requests fail now and then, at random
    served: int = 0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/models", self._models), Route("/models", self._models),
                                 Route("/v1/chat/completions", self._chat, methods=["POST"]),
                                 Route("/chat/completions", self._chat, methods=["POST"]),
                                 Route("/faults", self._faults)])

    async def _faults(self, _: Request) -> Response:
        """What was injected so far, by kind, and how many unscripted requests were served."""
        return JSONResponse({"served": self.served, "injected": dict(self.faults.seen) if self.faults else {}})

    async def _models(self, _: Request) -> Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.ports.append(request.client.port if request.client else 0)
        behaviour = self.script.popleft() if self.script else self._unscripted(body)
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.status >= 400:
            return _error(behaviour)
        if body.get("model") not in self.models:
            return JSONResponse({"error": {"message": f"model {body.get('model')!r} not found",
                                           "type": "invalid_request_error", "code": "model_not_found"}}, 404)
        if behaviour.frames is not None:
            return StreamingResponse(_raw(behaviour.frames), media_type="text/event-stream")
        reply = Reply.of(body, behaviour, self.chunk_words)
        if body.get("stream"):
            return StreamingResponse(self._stream(reply, behaviour), media_type="text/event-stream")
        return JSONResponse(reply.completion())

    def _unscripted(self, body: dict[str, Any]) -> Behaviour:
        self.served += 1
        fault = self.faults.draw() if self.faults else None
        if fault is not None:
            return fault
        text = None
        if self.numbered:
            last = _text((body.get("messages") or [{}])[-1])
            text = f"Reply {self.served} to: {' '.join(last.split())[:60]} (answered by the fake model)"
        return Behaviour(text=text, chunk_delay=self.chunk_delay)

    async def _stream(self, reply: Reply, behaviour: Behaviour):
        try:
            for i, chunk in enumerate(reply.chunks()):
                if behaviour.cut_after is not None and i >= behaviour.cut_after:
                    raise ConnectionResetError("stream cut")  # the server drops the connection
                if behaviour.chunk_delay and i and _writes(chunk):  # like a model: the finish and the
                    await asyncio.sleep(behaviour.chunk_delay)    # usage follow the last token at once
                yield b"data: " + orjson.dumps(chunk) + b"\n\n"
            yield b"data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def _raw(frames: list[str]):
    for frame in frames:
        yield f"data: {frame}\n\n".encode()


@dataclass
class Faults:
    """Random upstream faults, `rate` of requests, spread evenly over the kinds (seeded).

    429 with Retry-After, 500, a stall past the proxy's first-byte timeout, a stream cut after its
    first chunks, and a malformed chunk after the first one. `seen` counts what was injected.
    """

    rate: float
    seed: int = 0
    stall: float = 3.0
    kinds: tuple[str, ...] = ("429", "500", "stall", "cut", "malformed")
    seen: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def draw(self) -> Behaviour | None:
        if self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.seen[kind] = self.seen.get(kind, 0) + 1
        return {"429": Behaviour(status=429, retry_after=0.1), "500": Behaviour(status=500),
                "stall": Behaviour(delay=self.stall), "cut": Behaviour(text="cut short " * 10, cut_after=2),
                "malformed": Behaviour(frames=['{"choices": [{"index": 0, "delta": {"content": "Hel"}}]}',
                                               '{"choices": [{"index": 0, "delta": "oops"}]}'])}[kind]


def _writes(chunk: dict[str, Any]) -> bool:
    """Whether a chunk carries text or a tool call (a model's work), not just a finish or usage."""
    return any(c.get("delta") for c in chunk.get("choices") or ())


def _error(behaviour: Behaviour) -> Response:
    headers = {"Retry-After": str(behaviour.retry_after)} if behaviour.retry_after is not None else {}
    kind = "rate_limit_error" if behaviour.status == 429 else "server_error"
    message = behaviour.text or f"fake upstream error {behaviour.status}"
    return JSONResponse({"error": {"message": message, "type": kind, "code": str(behaviour.status)}},
                        behaviour.status, headers=headers)


@dataclass
class Reply:
    body: dict[str, Any]
    text: str
    tool_call: dict[str, Any] | None
    finish_reason: str
    usage: bool
    chunk_words: int

    @classmethod
    def of(cls, body: dict[str, Any], behaviour: Behaviour, chunk_words: int) -> Reply:
        text = behaviour.text if behaviour.text is not None else answer(body.get("messages", []))
        finish = behaviour.finish_reason or ("tool_calls" if behaviour.tool_call else "stop")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens and len(text.split()) > max_tokens:
            text, finish = " ".join(text.split()[:max_tokens]), "length"
        return cls(body, "" if behaviour.tool_call else text, behaviour.tool_call, finish,
                   behaviour.usage, chunk_words)

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": "chatcmpl-fake" + uuid.uuid4().hex[:8], "object": obj, "created": int(time.time()),
                "model": self.body.get("model")}

    def _usage(self) -> dict[str, int]:
        prompt = sum(len(str(m.get("content") or "").split()) + 4 for m in self.body.get("messages", []))
        completion = max(1, len(self.text.split()))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text or None}
        if self.tool_call:
            message["tool_calls"] = [{"id": "call_fake1", "type": "function", "function": self.tool_call}]
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}
        return {**self._base("chat.completion"), "choices": [choice], "usage": self._usage()}

    def chunks(self) -> list[dict[str, Any]]:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        words = self.text.split(" ") if self.text else []
        for i in range(0, len(words), self.chunk_words):
            piece = " ".join(words[i:i + self.chunk_words])
            deltas.append({"content": piece if i == 0 else " " + piece})
        if self.tool_call:
            deltas += _tool_deltas(self.tool_call)
        out = [self._chunk(d) for d in deltas]
        out.append(self._chunk({}, self.finish_reason))
        if self.usage and (self.body.get("stream_options") or {}).get("include_usage"):
            out.append({**self._base("chat.completion.chunk"), "choices": [], "usage": self._usage()})
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._base("chat.completion.chunk"), "choices": [choice]}


def _tool_deltas(call: dict[str, Any]) -> list[dict[str, Any]]:
    args = call.get("arguments", "")
    half = len(args) // 2
    head = {"index": 0, "id": "call_fake1", "type": "function",
            "function": {"name": call["name"], "arguments": args[:half]}}
    return [{"tool_calls": [head]}, {"tool_calls": [{"index": 0, "function": {"arguments": args[half:]}}]}]


def answer(messages: list[dict[str, Any]]) -> str:
    """A question is answered with the best-matching context sentence; anything else acknowledged."""
    last = _text(messages[-1]) if messages else ""
    if not last.strip().endswith("?"):
        return "I hear you. Tell me more."
    asked = set(WORD.findall(last.lower())) - STOP
    best, best_score = "", 0
    for message in messages[:-1]:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", _text(message)):
            score = len(asked & (set(WORD.findall(sentence.lower())) - STOP))
            if score > best_score:
                best, best_score = sentence.strip(), score
    return f"From what I remember: {best}" if best else "I don't remember that."


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Offline OpenAI-compatible fake model server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed chunks")
    parser.add_argument("--numbered", action="store_true", help='replies say "Reply N to: …", each different')
    parser.add_argument("--fault-rate", type=float, default=0.0, help="share of requests that fail at random")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    faults = Faults(args.fault_rate, args.seed) if args.fault_rate else None
    fake = FakeUpstream(chunk_delay=args.chunk_delay, numbered=args.numbered, faults=faults)
    uvicorn.run(fake.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
