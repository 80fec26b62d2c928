"""The memory API: list, inspect, load, persona, import (HTTP and CLI), export, emotions, delete."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import openai
import pytest

SAD = "My dog Biscuit died this morning and I can't stop crying."


@pytest.fixture
def memory_proxy(store_overrides, fake, start_proxy) -> str:
    """The memory proxy on each store backend (SQLite files, PostgreSQL); the database outlives it."""
    return start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, **store_overrides)


def wait_indexed(base: str, session: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        info = httpx.get(f"{base}/sessions/{session}").json()
        if info["pending"] == 0 or time.monotonic() > deadline:
            return info
        time.sleep(0.05)


def st_file(tmp_path, n: int = 30):
    lines = [json.dumps({"user_name": "Ann", "character_name": "Seraphina", "chat_metadata": {}})]
    for i in range(n):
        lines.append(json.dumps({"name": "Ann" if i % 2 else "Seraphina", "is_user": bool(i % 2),
                                 "mes": f"Imported line {i}.", "send_date": "May 1, 2024 10:00am"}))
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sessions_are_listed_inspected_scored_exported_and_deleted(memory_proxy, fake, tmp_path, store_overrides):
    messages = [{"role": "user", "content": SAD}, {"role": "assistant", "content": "I'm so sorry."},
                {"role": "user", "content": "Thanks for listening."}]
    ids = httpx.post(f"{memory_proxy}/sessions/api-1/messages", json={"messages": messages}).json()["data"]
    assert len(ids) == 3
    httpx.post(f"{memory_proxy}/sessions/api-2/messages", json={"messages": messages[:1]})
    info = wait_indexed(memory_proxy, "api-1")
    assert (info["messages"], info["superseded"], info["pending"]) == (3, 0, 0) and info["token_total"] > 0
    page = httpx.get(f"{memory_proxy}/sessions", params={"limit": 1}).json()
    assert len(page["data"]) == 1 and page["has_more"]
    both = httpx.get(f"{memory_proxy}/sessions").json()["data"]
    assert {s["id"] for s in both} == {"api-1", "api-2"}

    rows = httpx.get(f"{memory_proxy}/sessions/api-1/messages").json()["data"]
    assert rows[0]["emotion"] == "sadness" and rows[0]["emotion_confidence"] > 0.5
    assert rows[0]["importance"] > rows[2]["importance"] and rows[0]["tier"] == "working"
    emotions = httpx.get(f"{memory_proxy}/sessions/api-1/emotions").json()
    assert emotions["trajectory"][0]["emotion"] == "sadness" and abs(sum(emotions["shares"].values()) - 1) < 1e-9

    exported = httpx.get(f"{memory_proxy}/sessions/api-1/export").json()
    assert [m["content"] for m in exported["messages"]] == [m["content"] for m in messages]
    consolidated = httpx.post(f"{memory_proxy}/sessions/api-1/consolidate").json()
    assert consolidated["object"] == "session.consolidate"

    assert httpx.delete(f"{memory_proxy}/sessions/api-1").json()["deleted"] is True
    assert httpx.get(f"{memory_proxy}/sessions/api-1").status_code == 404
    assert [s["id"] for s in httpx.get(f"{memory_proxy}/sessions").json()["data"]] == ["api-2"]
    if not store_overrides:
        assert len(list((tmp_path / "data" / "sessions").glob("*.sqlite"))) == 1  # only api-2's file is left


def test_persona_is_used_when_the_request_has_no_system_prompt(memory_proxy, fake):
    persona = "You are Orla, a lighthouse keeper who speaks in short, salty sentences."
    assert httpx.put(f"{memory_proxy}/sessions/orla/persona", json={"persona": persona}).status_code == 200
    openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0).chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "Ahoy!"}], extra_headers={"X-Session-Id": "orla"})
    assert fake.requests[-1]["messages"][0] == {"role": "system", "content": persona}


def test_sillytavern_import_over_http_and_from_the_command_line(memory_proxy, tmp_path):
    path = st_file(tmp_path)
    result = httpx.post(f"{memory_proxy}/sessions/imported/import", content=path.read_bytes()).json()
    assert result["imported"] == 30 and result["character_name"] == "Seraphina"
    bad = httpx.post(f"{memory_proxy}/sessions/imported/import", content=b"not json at all")
    assert bad.status_code == 400 and "SillyTavern" in bad.json()["error"]["message"]
    done = subprocess.run([sys.executable, "-m", "app.cli", "import", str(path), "--session", "from-cli",
                           "--url", memory_proxy.removesuffix("/v1"), "--batch", "7", "--user", "ann"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "imported 30 messages" in done.stdout and "msg" in done.stderr  # the progress bar
    rows = httpx.get(f"{memory_proxy}/sessions/from-cli/messages").json()["data"]
    assert [r["content"] for r in rows] == [f"Imported line {i}." for i in range(30)]
    assert rows[0]["role"] == "assistant" and rows[1]["role"] == "user"
    assert [s["id"] for s in httpx.get(f"{memory_proxy}/users/ann").json()["data"]] == ["from-cli"]


def test_unknown_sessions_and_bad_bodies_get_openai_errors(memory_proxy):
    missing = httpx.get(f"{memory_proxy}/sessions/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "session_not_found"
    bad = httpx.post(f"{memory_proxy}/sessions/x/messages", json={"messages": [{"role": "wizard"}]})
    assert bad.status_code == 400 and "messages.0.role" in bad.json()["error"]["message"]


def test_messages_keep_the_time_they_were_said_and_recollections_show_it(memory_proxy):
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Small talk number {i}.",
              "created_at": 1_700_000_000 + 60 * i} for i in range(300)]
    turns[10] = {"role": "user", "content": "I adopted a greyhound called Pepper today.",
                 "created_at": "2023-03-14T12:00:00Z"}
    assert httpx.post(f"{memory_proxy}/sessions/dated/messages", json={"messages": turns}).status_code == 200
    rows = httpx.get(f"{memory_proxy}/sessions/dated/messages").json()["data"]
    assert rows[0]["created_at"] == 1_700_000_000 and rows[10]["created_at"] == 1_678_795_200
    deadline = time.monotonic() + 60
    while httpx.get(f"{memory_proxy}/sessions/dated").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "When did I adopt Pepper?"}]}
    shown = httpx.post(f"{memory_proxy}/chat/completions/preview", json=body, timeout=30,
                       headers={"X-Session-Id": "dated", "X-Context-Budget": "2048"}).json()
    (memory,) = [m for m in shown["memories"] if "Pepper" in m["text"]]
    assert "2023-03-14" in str(shown["messages"])
    bad = httpx.post(f"{memory_proxy}/sessions/dated/messages",
                     json={"messages": [{"role": "user", "content": "x", "created_at": "next week"}]})
    assert bad.status_code == 400 and "messages[0].created_at" in bad.json()["error"]["message"]
    assert len(httpx.get(f"{memory_proxy}/sessions/dated/messages", params={"limit": 1000}).json()["data"]) == 300


def test_memory_routes_say_when_memory_is_off(proxy):
    response = httpx.get(f"{proxy}/sessions")
    assert response.status_code == 404 and response.json()["error"]["code"] == "memory_disabled"
