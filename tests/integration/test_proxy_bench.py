"""The proxy benchmark's deep-history variant: its conversations continue, and the bench runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from bench.proxy_bench import Conversations, level

ROOT = Path(__file__).resolve().parents[2]


def test_history_conversations_are_loaded_embedded_and_continued_never_edited(memory_proxy):
    base = memory_proxy.removesuffix("/v1")
    conversations = Conversations("fake-model", sessions=2, history=40)
    conversations.load(base)
    asyncio.run(level(f"{memory_proxy}/chat/completions", 1, 6, {}, conversations))  # and one to warm up
    stats = [httpx.get(f"{memory_proxy}/sessions/bench-history-{i}").json() for i in range(2)]
    assert sum(s["messages"] for s in stats) == 2 * 40 + 2 * 7  # each request added its turn and reply
    assert [s["superseded"] for s in stats] == [0, 0]  # a continuation, never read as an edit or a swipe
    assert all(len(w) == 20 and w[-1]["role"] == "assistant" for w in conversations.windows.values())


def test_the_proxy_bench_runs_the_history_variant_against_its_own_baseline(tmp_path: Path):
    out = tmp_path / "proxy.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "bench/proxy_bench.py", "--variants", "on-history", "--concurrency", "1",
                           "--requests", "3", "--rounds", "1", "--history", "30", "--history-sessions", "1",
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(out.read_text())["1"]
    assert {"direct", "direct-history", "proxy-on-history"} <= set(rows)
    assert rows["proxy-on-history"]["ttft_ms"] > rows["direct-history"]["ttft_ms"] > 0
    assert "proxy-on-history" in done.stdout
