"""Soak: many conversations driven as real clients drive them, with upstream faults and a SIGKILL.

    python -m bench.soak                                  # 40 conversations x 25 turns, 5% faults, a SIGKILL
    python -m bench.soak --conversations 8 --turns 6 --no-kill    # a quick look

Four processes on 127.0.0.1: the offline fake upstream (`--fault-rate` of its answers fail at
random: 429, 500, a stall past the first-byte timeout, a stream cut short, a malformed chunk), a
relay in this process that refuses a share of connections outright, the proxy, and this driver.
Each conversation is a client that resends its whole visible chat (half SillyTavern-style with
no session id, half with `X-Session-Id`), streamed or not, and now and then regenerates, edits an
earlier message, deletes its last exchange or continues a reply. A failed request leaves the
client's chat as a real client leaves it (the user's message stays, no reply).

Phase one runs `--turns` turns in every conversation at once. Phase two runs more turns and
SIGKILLs the proxy mid-burst, restarts it on the same data and finishes them (requests in flight
at the kill count as failed). Then every conversation sends one last turn (a conversation that
cannot get an answer within 20 s is stuck) and its live messages are compared with the client's.
It prints, and writes to bench/results/soak.json: lost messages, duplicate live messages,
conversations that differ from the client, stuck conversations, 5xx not caused by an injected
fault, and files failing SQLite's integrity check. Every one should be 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.fakes.serve import free_port  # noqa: E402
from bench.proxy_bench import start  # noqa: E402

SYSTEM = "You are Seraphina, a gentle guardian of the glade. Stay in character."
GREETING = "*Seraphina smiles.* You're awake. Welcome to the glade."
NUDGE = ("[Continue the following message. Do not include ANY parts of the original message. Use capitalization "
         "and punctuation as if your reply is a part of the original message: {0}]")
ACTIONS = (("turn", 70), ("regenerate", 10), ("edit", 6), ("delete", 7), ("continue", 7))
UPSTREAM_FAULT_TYPES = {"upstream_error", "rate_limit_error"}


class Relay:
    """A TCP relay to the fake upstream that refuses `rate` of connections (closes them at once)."""

    def __init__(self, target: int, rate: float, seed: int) -> None:
        self.target, self.rate, self.random = target, rate, random.Random(seed)
        self.refused = 0

    async def serve(self) -> tuple[asyncio.Server, int]:
        server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return server, server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.random.random() < self.rate:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class Conversation:
    """One client: its visible chat, resent whole on every request."""

    def __init__(self, n: int, rng: random.Random, with_header: bool) -> None:
        self.n, self.rng = n, rng
        self.header = {"X-Session-Id": f"soak-{n}"} if with_header else {}
        self.chat: list[dict] = [{"role": "assistant", "content": GREETING}]
        self.session: str | None = f"soak-{n}" if with_header else None
        self.said = 0
        self.outcomes: Counter = Counter()

    def line(self) -> str:
        self.said += 1
        return f"Conversation {self.n}, message {self.said}: the lantern number {self.rng.randint(1, 10**6)}."

    async def step(self, client: httpx.AsyncClient, url: str, stats: Counter) -> None:
        action = self.rng.choices([a for a, _ in ACTIONS], [w for _, w in ACTIONS])[0]
        last_is_reply = self.chat[-1]["role"] == "assistant" and len(self.chat) > 1
        if action == "regenerate" and last_is_reply:
            reply = await self.send(client, url, self.chat[:-1], stats)
            if reply is not None:
                self.chat[-1] = {"role": "assistant", "content": reply}
            return
        if action == "continue" and last_is_reply:
            nudge = {"role": "system", "content": NUDGE.format(self.chat[-1]["content"])}
            more = await self.send(client, url, self.chat + [nudge], stats)
            if more:
                self.chat[-1] = {"role": "assistant", "content": self.chat[-1]["content"] + " " + more}
            return
        if action == "edit" and len(self.chat) > 4:
            users = [k for k, m in enumerate(self.chat) if m["role"] == "user"]
            self.chat[self.rng.choice(users[:-1] or users)]["content"] = self.line() + " (edited)"
        if action == "delete" and len(self.chat) > 5 and last_is_reply:
            del self.chat[-2:]
        await self.turn(client, url, stats)

    async def turn(self, client: httpx.AsyncClient, url: str, stats: Counter, timeout: float = 30.0) -> bool:
        if self.chat[-1]["role"] != "user":
            self.chat.append({"role": "user", "content": self.line()})
        reply = await self.send(client, url, self.chat, stats, timeout)
        if reply is not None:
            self.chat.append({"role": "assistant", "content": reply})
        return reply is not None

    async def send(self, client: httpx.AsyncClient, url: str, messages: list[dict], stats: Counter,
                   timeout: float = 30.0) -> str | None:
        stream = self.rng.random() < 0.5
        body = {"model": "fake-model", "stream": stream, "max_tokens": 300,
                "messages": [{"role": "system", "content": SYSTEM}] + messages}
        try:
            response = await client.post(f"{url}/chat/completions", json=body, headers=self.header, timeout=timeout)
        except httpx.HTTPError as exc:
            stats[f"transport:{type(exc).__name__}"] += 1
            return None
        if response.status_code != 200:
            _count_error(stats, response.status_code, _error(response))
            return None
        self.session = response.headers.get("x-session-id") or self.session
        return _reply(response, stream, stats)


def _error(response: httpx.Response) -> dict:
    try:
        return response.json().get("error") or {}
    except ValueError:
        return {}


def _count_error(stats: Counter, status: int, error: dict) -> None:
    stats[f"http {status}"] += 1
    if status >= 500 and error.get("type") not in UPSTREAM_FAULT_TYPES:
        stats["5xx without an injected fault"] += 1


def _reply(response: httpx.Response, stream: bool, stats: Counter) -> str | None:
    if not stream:
        return response.json()["choices"][0]["message"]["content"]
    text = ""
    for line in response.text.splitlines():
        if not line.startswith("data: {"):
            continue
        frame = json.loads(line[6:])
        if "error" in frame:
            _count_error(stats, 502, frame["error"])
            stats["mid-stream error frames"] += 1
            return None
        text += "".join((c.get("delta") or {}).get("content") or "" for c in frame.get("choices") or ())
    return text if response.text.rstrip().endswith("data: [DONE]") else None


async def burst(conversations: list[Conversation], url: str, turns: int, stats: Counter) -> None:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200)) as client:
        async def run(conversation: Conversation) -> None:
            for _ in range(turns):
                await conversation.step(client, url, stats)
        await asyncio.gather(*(run(c) for c in conversations))


async def killed_burst(conversations: list[Conversation], url: str, turns: int, stats: Counter,
                       proxy: subprocess.Popen, after: float) -> None:
    """Turns in every conversation, with the proxy SIGKILLed `after` seconds in."""
    async def kill() -> None:
        await asyncio.sleep(after)
        proxy.send_signal(signal.SIGKILL)
        stats["killed at"] = int(sum(c.said for c in conversations))
    await asyncio.gather(burst(conversations, url, turns, stats), kill())


async def check(conversations: list[Conversation], url: str, stats: Counter) -> dict:
    """One last turn each (the stuck probe), then the live messages against the client's chat."""
    result: Counter = Counter()
    async with httpx.AsyncClient() as client:
        async def last(conversation: Conversation) -> None:
            for _ in range(5):  # an injected fault may hit the probe too: a client tries again
                if await conversation.turn(client, url, stats, timeout=20.0):
                    return
            result["stuck conversations"] += 1
        await asyncio.gather(*(last(c) for c in conversations))
        for conversation in conversations:
            rows = (await client.get(f"{url}/sessions/{conversation.session}/messages",
                                     params={"limit": 10000})).json()["data"]
            compare(conversation, [(r["role"], r["content"]) for r in rows], result)
    return result


def compare(conversation: Conversation, live: list[tuple[str, str]], result: Counter) -> None:
    shown = [(m["role"], m["content"]) for m in conversation.chat]
    have, want = Counter(live), Counter(shown)
    result["lost messages"] += sum((want - have).values())
    result["duplicate live messages"] += sum(n - 1 for m, n in have.items() if n > 1 and n > want[m])
    result["conversations differing from the client"] += live != shown
    result["messages compared"] += len(shown)


def integrity(data: Path) -> int:
    failures = 0
    for path in data.rglob("*.sqlite"):
        with sqlite3.connect(path) as conn:
            failures += conn.execute("PRAGMA integrity_check").fetchone() != ("ok",)
    return failures


def proxy_env(data: Path, upstream: int) -> dict[str, str]:
    return {"DATA_DIR": str(data), "LOG_DIR": str(data / "logs"), "LOG_LEVEL": "WARNING",
            "UPSTREAM_BASE_URL": f"http://127.0.0.1:{upstream}/v1", "MEMORY_ENABLED": "true",
            "SUMMARY_ENABLED": "false", "UPSTREAM_FIRST_BYTE_TIMEOUT": "1", "UPSTREAM_MAX_RETRIES": "2",
            "UPSTREAM_RETRY_MAX_WAIT": "0.2", "CIRCUIT_FAILURES": "1000", "HF_HUB_OFFLINE": "1",
            "EMBEDDING_CACHE_DIR": os.environ.get("EMBEDDING_CACHE_DIR") or str(ROOT / "data" / "models")}


def start_proxy(data: Path, upstream: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "app.cli", "serve"]
    proc = start(cmd, {**proxy_env(data, upstream), "PORT": str(port)}, f"http://127.0.0.1:{port}/health")
    return proc, f"http://127.0.0.1:{port}/v1"


async def soak(args: argparse.Namespace) -> dict:
    rng = random.Random(args.seed)
    fake_port = free_port()
    fake = start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(fake_port), "--numbered",
                  "--fault-rate", str(args.fault_rate), "--seed", str(args.seed)], {},
                 f"http://127.0.0.1:{fake_port}/v1/models")
    try:
        return await drive(args, rng, fake_port)
    finally:
        fake.terminate()


async def drive(args: argparse.Namespace, rng: random.Random, fake_port: int) -> dict:
    """The bursts and the check, against a proxy started (and restarted) here, through the relay."""
    relay = Relay(fake_port, args.fault_rate / 6, args.seed)
    server, relay_port = await relay.serve()
    data = Path(tempfile.mkdtemp(prefix="soak-"))
    proxy, url = await asyncio.to_thread(start_proxy, data, relay_port)  # the relay runs on this loop
    stats: Counter = Counter()
    conversations = [Conversation(n, random.Random(rng.random()), n % 2 == 0) for n in range(args.conversations)]
    started = time.monotonic()
    try:
        await burst(conversations, url, args.turns, stats)
        if args.kill:
            await killed_burst(conversations, url, args.turns // 2, stats, proxy, args.kill_after)
            proxy.wait()
            proxy, url = await asyncio.to_thread(start_proxy, data, relay_port)
            await burst(conversations, url, 2, stats)
        result = await check(conversations, url, stats)
    finally:
        proxy.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proxy.wait, 60)
        server.close()
    injected = httpx.get(f"http://127.0.0.1:{fake_port}/faults").json()
    result["files failing the integrity check"] = integrity(data)
    return {"conversations": args.conversations, "turns": args.turns, "fault_rate": args.fault_rate,
            "kill": args.kill, "seconds": round(time.monotonic() - started, 1), "result": dict(result),
            "requests": dict(stats), "injected": injected["injected"], "refused by the relay": relay.refused,
            "upstream requests": injected["served"]}


MUST_BE_ZERO = ("lost messages", "duplicate live messages", "conversations differing from the client",
                "stuck conversations", "5xx without an injected fault", "files failing the integrity check")


def report(summary: dict) -> None:
    counts = {**summary["requests"], **summary["result"]}
    print(f"{summary['conversations']} conversations x {summary['turns']} turns, fault rate "
          f"{summary['fault_rate']:.0%}, SIGKILL {'yes' if summary['kill'] else 'no'}, {summary['seconds']} s")
    print(f"injected upstream faults: {summary['injected']}; connections refused: {summary['refused by the relay']}")
    for name in MUST_BE_ZERO:
        print(f"  {name:45s} {counts.get(name, 0)}")
    print(f"  messages compared: {counts.get('messages compared', 0)}; client-side outcomes: "
          + ", ".join(f"{k} {v}" for k, v in sorted(summary["requests"].items())))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=40)
    parser.add_argument("--turns", type=int, default=25)
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kill", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--kill-after", type=float, default=3.0, help="seconds into the second burst")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "soak.json")
    args = parser.parse_args(argv)
    summary = asyncio.run(soak(args))
    report(summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    counts = {**summary["requests"], **summary["result"]}
    return 1 if any(counts.get(name, 0) for name in MUST_BE_ZERO) else 0


if __name__ == "__main__":
    sys.exit(main())
