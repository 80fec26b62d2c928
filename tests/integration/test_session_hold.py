"""The conversation a request holds is freed on every path: each kind of failure, injected for real.

Our chat route and pipeline run on a real server, with a provider that fails the way it is told
(before its first event, after it, with our error or anyone's, or by stalling until the client
leaves) and a memory that holds a real `asyncio.Lock` from prepare until release.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI

from app.auth import KeyRing
from app.browser import BrowserPolicy
from app.errors import UpstreamHTTPError
from app.fakes.serve import serving
from app.main import _install_error_handlers
from app.pipeline import Pipeline
from app.providers.base import Delta
from app.providers.router import RetryPolicy, Route, Router
from app.routes import chat
from app.routes.guard import Guard
from tests.conftest import proxy_settings


class Failing:
    """A provider that fails at `when` ("open", "mid", "stall") with `error`, or answers."""

    name = "failing"

    def __init__(self) -> None:
        self.when, self.error = "", None

    async def stream(self, request):
        if self.when == "open":
            raise self.error
        yield Delta(role="assistant", content="Hello")
        if self.when == "mid":
            raise self.error
        if self.when == "stall":
            await asyncio.sleep(30)
        yield Delta(content=" there", finish_reason="stop")

    async def list_models(self):
        return ["m"]

    async def health(self):
        return "ok"

    async def aclose(self):
        pass


@dataclass
class Held:
    session_id: str = "one"
    read_only: bool = False
    holding: bool = True


class HoldingMemory:
    """Holds one lock per request, like the real memory service; counts what it was told."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.recorded = 0

    async def prepare(self, exchange, *, preview=False):
        await asyncio.wait_for(self.lock.acquire(), 5)
        return Held()

    async def record(self, exchange, assembler):
        self.recorded += 1
        self.release(exchange)

    def record_later(self, exchange, assembler):
        pass

    def release(self, exchange):
        if exchange.memory.holding:
            exchange.memory.holding = False
            self.lock.release()


@pytest.fixture
def served(tmp_path):
    provider, memory = Failing(), HoldingMemory()
    router = Router({"failing": provider}, {"m": [Route("failing", "m")]}, retry=RetryPolicy(attempts=1))
    app = FastAPI()
    app.add_middleware(Guard, keys=KeyRing([], []), policy=BrowserPolicy.build(origins=[], hosts=[],
                                                                               bind_host="127.0.0.1"))
    _install_error_handlers(app)
    app.include_router(chat.router)
    app.state.settings = proxy_settings(tmp_path)
    app.state.pipeline = Pipeline(router, memory=memory)
    with serving(app) as url:
        yield url, provider, memory


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ERRORS = {"ours": lambda: UpstreamHTTPError(400, "no"), "anyone's": lambda: AttributeError("boom"),
          "a bug's": lambda: KeyError("x")}


def freed(memory: HoldingMemory, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while memory.lock.locked() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not memory.lock.locked()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("when", ["open", "mid"])
@pytest.mark.parametrize("error", list(ERRORS))
def test_every_failure_frees_the_conversation(served, when, error, stream):
    url, provider, memory = served
    provider.when, provider.error = when, ERRORS[error]()
    response = httpx.post(url + "/v1/chat/completions", json={**BODY, "stream": stream}, timeout=10)
    assert response.status_code in (200, 400, 500, 502)
    assert freed(memory)
    provider.when = ""
    again = httpx.post(url + "/v1/chat/completions", json=BODY, timeout=10)
    assert again.status_code == 200 and again.json()["choices"][0]["message"]["content"] == "Hello there"
    assert freed(memory) and memory.recorded == 1


def test_a_client_that_leaves_mid_stream_frees_the_conversation(served):
    url, provider, memory = served
    provider.when = "stall"
    with httpx.stream("POST", url + "/v1/chat/completions", json={**BODY, "stream": True}, timeout=10) as r:
        next(r.iter_lines())
    assert freed(memory)


def test_a_finished_stream_records_and_frees(served):
    url, provider, memory = served
    response = httpx.post(url + "/v1/chat/completions", json={**BODY, "stream": True}, timeout=10)
    assert response.text.rstrip().endswith("data: [DONE]")
    assert freed(memory) and memory.recorded == 1
