"""Every example runs against a proxy and the offline fake model: a broken example fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], base: str | None = None, timeout: float = 120, **extra: str) -> str:
    env = {**os.environ, "MODEL": "fake-model", "PYTHONPATH": str(ROOT), **extra}
    if base:
        env["BASE_URL"] = base
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_openai_chat_example(memory_proxy):
    out = run([sys.executable, "examples/openai_chat.py"], memory_proxy)
    assert "reply:" in out and "Valparaíso" in out.split("streamed:")[1]
    assert "usage:" in out


def test_memory_api_example(memory_proxy):
    out = run([sys.executable, "examples/memory_api.py"], memory_proxy)
    assert "'pending': 0" in out and "search hit" in out and "deleted: True" in out
    assert "knee" in out.split("search hit", 1)[1]


@pytest.mark.skipif(not Path("/usr/bin/curl").exists() and not Path("/bin/curl").exists(), reason="needs curl")
def test_curl_example(memory_proxy):
    out = run(["bash", "examples/curl.sh"], memory_proxy)
    assert '"status":"ok"' in out.replace(" ", "") and "data: [DONE]" in out and '"deleted":true' in out


@pytest.mark.skipif(not Path("/usr/bin/curl").exists() and not Path("/bin/curl").exists(), reason="needs curl")
def test_the_examples_send_their_key(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, api_keys=["sk-example-0123456789"])
    out = run(["bash", "examples/curl.sh"], url, API_KEY="sk-example-0123456789")
    assert "data: [DONE]" in out and '"deleted":true' in out
    assert "reply:" in run([sys.executable, "examples/openai_chat.py"], url, API_KEY="sk-example-0123456789")


def test_long_conversation_example_recalls_every_fact():
    out = run([sys.executable, "examples/long_conversation.py"], timeout=300)
    assert "4 of 4 facts recalled" in out
