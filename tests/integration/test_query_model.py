"""EMBEDDING_QUERY_INT8 and EMBEDDING_STORED_INT8 switch the running proxy's models (the health report
names the query model; what the writer stores is compared with each model's own vector)."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from app.memory.embedding.embedder import load_backend
from tests.conftest import model_cache_dir


@pytest.mark.parametrize(("query_int8", "name"), [(True, "onnx-int8"), (False, "onnx")])
def test_the_setting_switches_the_query_model(fake, start_proxy, query_int8, name):
    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, embedding_backend="onnx", embedding_query_int8=query_int8)
    body = httpx.get(url.removesuffix("/v1") + "/health").json()
    assert body["components"]["embedder"] == f"ok ({name}, 384 dims)"


@pytest.mark.parametrize("stored_int8", [True, False])
def test_the_setting_switches_the_model_of_what_is_stored(fake, start_proxy, tmp_path, stored_int8):
    import sqlite3

    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, embedding_backend="onnx", embedding_stored_int8=stored_int8)
    text = "I keep the spare key under the blue flowerpot."
    assert httpx.post(f"{url}/sessions/stored/messages", json={"messages": [{"role": "user", "content": text}]}
                      ).status_code == 200
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/sessions/stored").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    (path,) = list(tmp_path.rglob("sessions/*.sqlite"))
    (blob,) = sqlite3.connect(path).execute("SELECT embedding FROM messages").fetchone()
    vector = np.frombuffer(blob, dtype=np.float32)[:384]
    int8 = load_backend("all-MiniLM-L6-v2", "onnx", model_cache_dir(), threads=1, query_int8=True)
    expected = int8 if stored_int8 else int8.with_threads(1)  # the int8 model, or its float copy
    assert np.allclose(vector, expected.encode([text])[0], atol=1e-5)


@pytest.mark.parametrize("context_int8", [True, False])
def test_the_setting_switches_the_model_of_a_short_turn_read_in_context(fake, start_proxy, tmp_path, context_int8):
    """A short reply's stored statement vector is its own (float) vector moved towards the reply
    read after the question: that reading on the int8 copy, or on the float model."""
    import sqlite3

    from app.memory.background.writer import CONTEXT_MIX, in_context

    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, embedding_backend="onnx", embedding_context_int8=context_int8)
    question, reply = "How is your family doing these days?", "They're a real support."
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
    assert httpx.post(f"{url}/sessions/ctx/messages", json={"messages": turns}).status_code == 200
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/sessions/ctx").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    (path,) = list(tmp_path.rglob("sessions/*.sqlite"))
    (blob,) = sqlite3.connect(path).execute("SELECT embedding FROM messages WHERE role = 'assistant'").fetchone()
    stored = np.frombuffer(blob, dtype=np.float32).reshape(-1, 384)
    int8 = load_backend("all-MiniLM-L6-v2", "onnx", model_cache_dir(), threads=1, query_int8=True)
    float_model = int8.with_threads(1)
    own = float_model.encode([reply])[0]
    context = (int8 if context_int8 else float_model).encode([in_context(reply, question)])[0]
    moved = own + CONTEXT_MIX * context
    assert np.allclose(stored[0], own, atol=1e-5)  # the whole message, as said, stays float
    assert np.allclose(stored[1], moved / np.linalg.norm(moved), atol=1e-5)
