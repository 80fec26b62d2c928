"""An offline fake of the Gemini REST API, for tests, benchmarks and trying the proxy without a key.

    python -m app.fakes.gemini_server --port 8002 --api-key k
    # then GEMINI_API_KEY=k GEMINI_BASE_URL=http://127.0.0.1:8002 GEMINI_MODELS=gemini-2.5-flash

It serves what the google-genai SDK calls, in Google's wire format (camelCase JSON; streams as
`data: {...}` SSE frames separated by CRLF CRLF):

    GET  /v1beta/models                                        the model list
    POST /v1beta/models/{model}:generateContent                one answer
    POST /v1beta/models/{model}:streamGenerateContent?alt=sse  the answer in chunks
    (and the same under /v1)

Keys are checked as Google does: none is 403 PERMISSION_DENIED, a wrong one 400 INVALID_ARGUMENT
with reason API_KEY_INVALID. Tests script it through `FakeGemini.script`: each generate request pops
the next `Behaviour` (a reply, function calls, a safety block of the reply or of the prompt, an
error such as 429 RESOURCE_EXHAUSTED with a RetryInfo delay, a stall, a stream cut in the middle).
Unscripted requests are answered like the OpenAI fake (`app.fakes.openai_server.answer`).
Every request body is kept in `requests` (and its "model:method" in `paths`); `cancelled` counts
streams whose client went away.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.fakes.openai_server import answer

API_VERSIONS = ("v1beta", "v1")  # the SDK's default differs between its releases; Google serves both
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
QUOTA_MESSAGE = ("You exceeded your current quota, please check your plan and billing details. "
                 "For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.")


@dataclass
class Behaviour:
    """What the next generate request gets.

    `function_calls` are {"name", "args"} (optionally "id"); `signature` is the thought signature
    (base64 text) put on the first call. `finish_reason` ends the reply that way (e.g. "SAFETY");
    `block_reason` blocks the prompt instead (no candidates). `status` >= 400 answers an error.
    """

    text: str | None = None
    function_calls: list[dict[str, Any]] | None = None
    signature: str | None = None
    finish_reason: str | None = None
    block_reason: str | None = None
    status: int = 200
    message: str | None = None
    retry_delay: float | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None


@dataclass
class FakeGemini:
    api_key: str = "k"
    models: list[str] = field(default_factory=lambda: ["gemini-2.5-flash", "gemini-2.5-pro"])
    script: deque[Behaviour] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # the client port of each request: one per connection
    paths: list[str] = field(default_factory=list)
    cancelled: int = 0
    chunk_words: int = 3

    def app(self) -> Starlette:
        routes = []
        for version in API_VERSIONS:
            routes += [Route(f"/{version}/models", self._models),
                       Route(f"/{version}/models/{{target}}", self._generate, methods=["POST"])]
        return Starlette(routes=routes)

    async def _models(self, request: Request) -> Response:
        if (refused := self._refuse_key(request)) is not None:
            return refused
        return JSONResponse({"models": [_model(name) for name in self.models]})

    async def _generate(self, request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        if (refused := self._refuse_key(request)) is not None:
            return refused
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.ports.append(request.client.port if request.client else 0)
        self.paths.append(f"{model}:{method}")
        behaviour = self.script.popleft() if self.script else Behaviour()
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.status >= 400:
            return google_error(behaviour.status, behaviour.message, behaviour.retry_delay)
        if model not in self.models or method not in ("generateContent", "streamGenerateContent"):
            return google_error(404, f"models/{model} is not found for API version v1beta, or is not supported "
                                     f"for {method}. Call ListModels to see the list of available models.")
        reply = Reply.of(model, body, behaviour, self.chunk_words)
        if method == "generateContent":
            return JSONResponse(reply.whole())
        return StreamingResponse(self._stream(reply, behaviour), media_type="text/event-stream")

    def _refuse_key(self, request: Request) -> Response | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
        if not key:
            return google_error(403, "Method doesn't allow unregistered callers (callers without established "
                                     "identity). Please use API Key or other form of API consumer identity "
                                     "to call this API.")
        if key != self.api_key:
            return google_error(400, "API key not valid. Please pass a valid API key.", reason="API_KEY_INVALID")
        return None

    async def _stream(self, reply: Reply, behaviour: Behaviour):
        try:
            for i, chunk in enumerate(reply.chunks()):
                if behaviour.cut_after is not None and i >= behaviour.cut_after:
                    raise ConnectionResetError("stream cut")  # the server drops the connection
                if behaviour.chunk_delay and i:
                    await asyncio.sleep(behaviour.chunk_delay)
                yield b"data: " + orjson.dumps(chunk) + b"\r\n\r\n"
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def google_error(status: int, message: str | None = None, retry_delay: float | None = None,
                 reason: str | None = None) -> JSONResponse:
    """An error as Google's APIs send it: {"error": {"code", "message", "status", "details"}}."""
    details: list[dict[str, Any]] = []
    if reason:
        details.append({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})
    if status == 429:
        message = message or QUOTA_MESSAGE
        details.append({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaValue": "10"}]})
        if retry_delay is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay:.3f}s"})
    error = {"code": status, "message": message or f"fake Gemini error {status}",
             "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status)


def _model(name: str) -> dict[str, Any]:
    return {"name": f"models/{name}", "version": "001", "displayName": name, "inputTokenLimit": 1048576,
            "outputTokenLimit": 65536, "supportedGenerationMethods": ["generateContent", "countTokens"]}


@dataclass
class Reply:
    model: str
    body: dict[str, Any]
    behaviour: Behaviour
    text: str
    finish: str
    chunk_words: int

    @classmethod
    def of(cls, model: str, body: dict[str, Any], behaviour: Behaviour, chunk_words: int) -> Reply:
        text = behaviour.text if behaviour.text is not None else answer(_as_messages(body))
        finish = behaviour.finish_reason or "STOP"
        limit = (body.get("generationConfig") or {}).get("maxOutputTokens")
        if limit and len(text.split()) > limit:
            text, finish = " ".join(text.split()[:limit]), "MAX_TOKENS"
        return cls(model, body, behaviour, "" if behaviour.function_calls else text, finish, chunk_words)

    @property
    def count(self) -> int:
        return int((self.body.get("generationConfig") or {}).get("candidateCount") or 1)

    def whole(self) -> dict[str, Any]:
        if self.behaviour.block_reason:
            return self._blocked()
        parts = ([{"text": self.text}] if self.text else []) + self._calls()
        return self._response([self._candidate(i, parts, final=True) for i in range(self.count)], final=True)

    def chunks(self) -> list[dict[str, Any]]:
        if self.behaviour.block_reason:
            return [self._blocked()]
        words, size = (self.text.split(" ") if self.text else []), self.chunk_words
        steps = [[{"text": " ".join(words[i:i + size]) + (" " if i + size < len(words) else "")}]
                 for i in range(0, len(words), size)]
        steps += [self._calls()] if self.behaviour.function_calls else []
        if self.finish in ("SAFETY", "RECITATION", "PROHIBITED_CONTENT"):
            steps = steps[:1] + [[]]  # the reply stops where Gemini blocked it; the finish comes alone
        steps = steps or [[]]
        last = len(steps) - 1
        return [self._response([self._candidate(c, parts, i == last) for c in range(self.count)], i == last)
                for i, parts in enumerate(steps)]

    def _calls(self) -> list[dict[str, Any]]:
        parts = []
        for i, call in enumerate(self.behaviour.function_calls or ()):
            part: dict[str, Any] = {"functionCall": {k: v for k, v in call.items() if k in ("id", "name", "args")}}
            if i == 0 and self.behaviour.signature:
                part["thoughtSignature"] = self.behaviour.signature
            parts.append(part)
        return parts

    def _candidate(self, index: int, parts: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"index": index}
        if parts:
            candidate["content"] = {"parts": parts, "role": "model"}
        if final:
            candidate["finishReason"] = self.finish
            if self.finish == "SAFETY":
                candidate["safetyRatings"] = [_rating("HARM_CATEGORY_DANGEROUS_CONTENT", blocked=True)]
        return candidate

    def _blocked(self) -> dict[str, Any]:
        feedback = {"blockReason": self.behaviour.block_reason,
                    "safetyRatings": [_rating("HARM_CATEGORY_HARASSMENT", blocked=True)]}
        return {"promptFeedback": feedback, "usageMetadata": self._usage(final=False),
                "modelVersion": self.model, "responseId": uuid.uuid4().hex[:22]}

    def _response(self, candidates: list[dict[str, Any]], final: bool) -> dict[str, Any]:
        return {"candidates": candidates, "usageMetadata": self._usage(final), "modelVersion": self.model,
                "responseId": uuid.uuid4().hex[:22]}

    def _usage(self, final: bool) -> dict[str, int]:
        prompt = sum(len(m["content"].split()) + 4 for m in _as_messages(self.body))
        done = max(1, len(self.text.split())) * self.count if final else 0
        usage = {"promptTokenCount": prompt, "totalTokenCount": prompt + done}
        if final:
            usage["candidatesTokenCount"] = done
        return usage


def _rating(category: str, blocked: bool) -> dict[str, Any]:
    return {"category": category, "probability": "HIGH", "blocked": blocked}


def _as_messages(body: dict[str, Any]) -> list[dict[str, str]]:
    """The request as OpenAI-like messages (system instruction first), for the canned answers."""
    turns = ([{"role": "system", **body["systemInstruction"]}] if body.get("systemInstruction") else [])
    turns += body.get("contents") or []
    return [{"role": t.get("role", "user"),
             "content": " ".join(p["text"] for p in t.get("parts") or () if "text" in p)} for t in turns]


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Offline fake of the Gemini REST API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--api-key", default="k")
    args = parser.parse_args()
    uvicorn.run(FakeGemini(api_key=args.api_key).app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
