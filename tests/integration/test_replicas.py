"""Two replicas, one PostgreSQL database: resends recorded once, the same memory from either, and a
replica's death loses nothing.

Every replica is its own `memory-proxy serve` process on its own port, on a real PostgreSQL with
pgvector (the `pg_url` fixture). Twenty SillyTavern-style clients (no session id: the whole visible
chat resent each time) send each request to a random replica, and now and then send it to both at
once, as a retrying client or a double click does. After a last plain turn, every conversation's
live messages must equal the client's chat, and a search gives the same recollections through
either replica. Then one replica is SIGKILLed mid-burst: the other keeps answering, and every
message written ends up embedded and scored (a dead replica's claimed jobs are taken over).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from app.fakes.serve import free_port
from bench.proxy_bench import start
from bench.soak import Conversation, compare, proxy_env

ROOT = Path(__file__).resolve().parents[2]
CONVERSATIONS = 20


@pytest.fixture
def upstream():
    port = free_port()
    proc = start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(port), "--numbered"], {},
                 f"http://127.0.0.1:{port}/v1/models")
    yield port
    proc.terminate()
    proc.wait(30)


def replica(tmp_path: Path, name: str, upstream: int, database_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**proxy_env(tmp_path / name, upstream), "PORT": str(port), "DATABASE_URL": database_url,
           "JOBS_LEASE_SECONDS": "3", "JOBS_SWEEP_SECONDS": "2"}
    proc = start([sys.executable, "-m", "app.cli", "serve"], env, f"http://127.0.0.1:{port}/health")
    return proc, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def replicas(tmp_path, upstream, pg_url):
    procs = [replica(tmp_path, name, upstream, pg_url) for name in ("a", "b")]
    yield procs
    for proc, _ in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc, _ in procs:
        proc.wait(60)


class Client(Conversation):
    """A SillyTavern-style client that sends to a random replica, sometimes to both at once."""

    def __init__(self, n: int, urls: list[str], duplicate: float) -> None:
        super().__init__(n, random.Random(n), with_header=False)
        self.urls, self.duplicate, self.dead = urls, duplicate, set()

    async def send(self, client, url, messages, stats, timeout=30.0):
        live = [u for u in self.urls if u not in self.dead]
        if len(live) > 1 and self.rng.random() < self.duplicate:
            replies = await asyncio.gather(*(super(Client, self).send(client, u, messages, stats, timeout)
                                             for u in live))
            stats["duplicated sends"] += 1
            return next((r for r in replies if r is not None), None)
        return await super().send(client, self.rng.choice(live), messages, stats, timeout)


async def drive(clients: list[Client], turns: int, stats: Counter) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as http:
        async def run(c: Client) -> None:
            for _ in range(turns):
                await c.turn(http, "", stats)
        await asyncio.gather(*(run(c) for c in clients))


async def last_turns_and_compare(clients: list[Client], url: str, stats: Counter) -> Counter:
    """One plain turn each (never duplicated), then each conversation's live messages against the chat."""
    result: Counter = Counter()
    async with httpx.AsyncClient() as http:
        for c in clients:
            c.duplicate = 0.0
        await asyncio.gather(*(c.turn(http, "", stats) for c in clients))
        for c in clients:
            rows = (await http.get(f"{url}/sessions/{c.session}/messages", params={"limit": 10000})).json()["data"]
            compare(c, [(r["role"], r["content"]) for r in rows], result)
    return result


async def recollections(url: str, session: str, query: str) -> dict[int, tuple[float, float]]:
    """Every message the search finds (k past the conversation's length): id -> (cosine, score)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{url}/sessions/{session}/search", params={"q": query, "k": 100})
        response.raise_for_status()
        return {r["id"]: (r["cosine"], r["score"]) for r in response.json()["data"] if r["kind"] == "message"}


async def settled(url: str, sessions: list[str], timeout: float = 60.0) -> dict[str, int]:
    """Wait until no session has pending background work; returns what is still pending."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            pending = {s: (await http.get(f"{url}/sessions/{s}")).json()["pending"] for s in sessions}
            if not any(pending.values()) or time.monotonic() > deadline:
                return {s: n for s, n in pending.items() if n}
            await asyncio.sleep(0.25)


def test_two_replicas_record_each_resend_once_and_recall_alike(replicas):
    urls = [url for _, url in replicas]
    clients = [Client(n, urls, duplicate=0.3) for n in range(CONVERSATIONS)]
    stats: Counter = Counter()
    asyncio.run(drive(clients, 5, stats))
    result = asyncio.run(last_turns_and_compare(clients, urls[0], stats))
    assert stats["duplicated sends"] > 10, stats
    assert result["messages compared"] >= CONVERSATIONS * 12
    assert result["lost messages"] == 0, (result, stats)
    assert result["duplicate live messages"] == 0, (result, stats)
    assert result["conversations differing from the client"] == 0, (result, stats)
    assert len({c.session for c in clients}) == CONVERSATIONS
    sessions = [c.session for c in clients]
    assert asyncio.run(settled(urls[0], sessions)) == {}
    for c in clients[:6]:
        query = f"Which lantern number came up in message 2 of conversation {c.n}?"  # new text to both
        a, b = (asyncio.run(recollections(url, c.session, query)) for url in urls)
        assert len(a) >= 5 and a.keys() == b.keys(), (c.session, a.keys() ^ b.keys(), a, b)  # the same messages
        for id in a:  # the same vectors; scores differ only by the recency of the moment each was asked
            assert a[id][0] == b[id][0] and abs(a[id][1] - b[id][1]) < 0.01, (c.session, id, a[id], b[id])


def test_a_replica_killed_mid_burst_loses_no_message_and_no_background_job(replicas):
    (proc_a, url_a), (_, url_b) = replicas
    clients = [Client(n, [url_a, url_b], duplicate=0.0) for n in range(CONVERSATIONS)]
    stats: Counter = Counter()
    asyncio.run(drive(clients, 2, stats))

    async def burst_and_kill() -> None:
        async def kill() -> None:
            await asyncio.sleep(1.5)
            proc_a.send_signal(signal.SIGKILL)
            for c in clients:
                c.dead.add(url_a)
        await asyncio.gather(drive(clients, 4, stats), kill())

    asyncio.run(burst_and_kill())
    assert proc_a.wait(30) == -signal.SIGKILL
    result = asyncio.run(last_turns_and_compare(clients, url_b, stats))
    assert result["lost messages"] == 0, (result, stats)
    assert result["duplicate live messages"] == 0, (result, stats)
    assert result["conversations differing from the client"] == 0, (result, stats)
    assert asyncio.run(settled(url_b, [c.session for c in clients], timeout=90)) == {}
