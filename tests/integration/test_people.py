"""Memory that follows the person: recall across a user's conversations, scopes, the people routes.

Real servers on 127.0.0.1, the `openai` SDK as the client, the real embedding model and SQLite.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour

JUNIPER = "You are Juniper, a warm companion.\nKeep it short."
ORION = "You are Orion, a gruff ship's captain."
FACT = "My sister Mara moved to Lisbon to study octopuses."
QUESTION = "Where does my sister live now?"


def sdk(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=30)


def wait_indexed(base: str, session: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{base}/sessions/{session}").json()["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)


def say(client: openai.OpenAI, fake, text: str, *, session: str, user: str | None, system: str = JUNIPER,
        **headers: str) -> str:
    """One turn; returns what the upstream was sent, as one text."""
    fake.script.append(Behaviour(text="Noted."))
    extra = {"X-Session-Id": session, **({"X-User-Id": user} if user else {}), **headers}
    client.chat.completions.create(model="fake-model", extra_headers=extra,
                                   messages=[{"role": "system", "content": system}, {"role": "user", "content": text}])
    return "\n".join(str(m.get("content")) for m in fake.requests[-1]["messages"])


@pytest.fixture
def told(memory_proxy, fake):
    """Ann told Juniper a fact in conversation `call-a`; it is indexed."""
    client = sdk(memory_proxy)
    say(client, fake, FACT, session="call-a", user="ann")
    wait_indexed(memory_proxy, "call-a")
    return client


def test_a_new_conversation_of_the_same_person_recalls_the_fact_with_where_and_when(memory_proxy, fake, told):
    sent = say(told, fake, QUESTION, session="call-b", user="ann")
    assert "Lisbon" in sent
    assert "From the user's earlier conversations" in sent
    assert "in an earlier conversation (call-a), just now" in sent


def test_another_person_and_no_person_recall_nothing(memory_proxy, fake, told):
    assert "Lisbon" not in say(told, fake, QUESTION, session="call-c", user="bob")
    assert "Lisbon" not in say(told, fake, QUESTION, session="call-d", user=None)


def test_scope_session_per_request_and_per_conversation_turns_it_off(memory_proxy, fake, told):
    assert "Lisbon" not in say(told, fake, QUESTION, session="call-b", user="ann", **{"X-Memory-Scope": "session"})
    assert "Lisbon" in say(told, fake, QUESTION, session="call-b", user="ann")
    put = httpx.put(f"{memory_proxy}/sessions/call-b/scope", json={"scope": "session"})
    assert put.status_code == 200 and put.json()["scope"] == "session" and put.json()["user"] == "ann"
    assert "Lisbon" not in say(told, fake, QUESTION, session="call-b", user="ann")
    bad = httpx.post(f"{memory_proxy}/chat/completions", headers={"X-Memory-Scope": "galaxy"},
                     json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-Memory-Scope"


def test_characters_do_not_bleed_unless_the_scope_is_the_person(memory_proxy, fake, told):
    assert "Lisbon" not in say(told, fake, QUESTION, session="ship-1", user="ann", system=ORION)
    wide = say(told, fake, QUESTION, session="ship-2", user="ann", system=ORION, **{"X-Memory-Scope": "person"})
    assert "Lisbon" in wide


def test_openai_user_field_names_the_person_and_keeps_naming_the_conversation(memory_proxy, fake):
    client = sdk(memory_proxy)
    fake.script.append(Behaviour(text="Noted."))
    messages = [{"role": "system", "content": JUNIPER}, {"role": "user", "content": FACT}]
    client.chat.completions.create(model="fake-model", messages=messages, user="cara")
    assert httpx.get(f"{memory_proxy}/sessions/cara").json()["user"] == "cara"  # as before: `user` is the session
    wait_indexed(memory_proxy, "cara")
    assert "Lisbon" in say(client, fake, QUESTION, session="cara-2", user=None, **{"X-User-Id": "cara"})
    fake.script.append(Behaviour(text="Noted."))
    client.chat.completions.create(model="fake-model", extra_headers={"X-Session-Id": "cara-3"},
                                   metadata={"user_id": "cara"},
                                   messages=[{"role": "system", "content": JUNIPER},
                                             {"role": "user", "content": QUESTION}])
    assert "Lisbon" in str(fake.requests[-1]["messages"])  # metadata.user_id names the person too


def test_append_with_a_user_id_gives_the_person_the_conversation(memory_proxy, fake):
    turns = [{"role": "user", "content": FACT, "created_at": time.time() - 3 * 86400},
             {"role": "assistant", "content": "Octopuses! Lovely."}]
    loaded = httpx.post(f"{memory_proxy}/sessions/loaded/messages", json={"messages": turns},
                        headers={"X-User-Id": "dee"})
    assert loaded.status_code == 200
    wait_indexed(memory_proxy, "loaded")
    sent = say(sdk(memory_proxy), fake, QUESTION, session="fresh", user="dee", system="")
    assert "Lisbon" in sent and "in an earlier conversation (loaded), 3 days ago" in sent
    chat = "\n".join(json.dumps(line) for line in [
        {"user_name": "Dee", "character_name": "Seraphina"},
        {"name": "Dee", "is_user": True, "mes": "I keep bees on my roof.", "send_date": "May 1, 2024 10:00am"}])
    imported = httpx.post(f"{memory_proxy}/sessions/st-import/import", content=chat, headers={"X-User-Id": "dee"})
    assert imported.status_code == 200 and imported.json()["imported"] == 1
    mine = httpx.get(f"{memory_proxy}/users/dee").json()["data"]
    assert sorted(c["id"] for c in mine) == ["fresh", "loaded", "st-import"]
    bad = httpx.post(f"{memory_proxy}/sessions/x/messages", json={"messages": turns}, headers={"X-User-Id": "a/b"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "X-User-Id"
    assert httpx.get(f"{memory_proxy}/sessions/x").status_code == 404


def test_the_user_routes_list_search_and_forget_leaving_nothing(memory_proxy, fake, told, tmp_path):
    say(told, fake, "I also keep bees on my roof.", session="call-b", user="ann")
    say(told, fake, "My name is Bob.", session="bob-1", user="bob")
    wait_indexed(memory_proxy, "call-b")
    person = httpx.get(f"{memory_proxy}/users/ann").json()
    assert sorted(s["id"] for s in person["data"]) == ["call-a", "call-b"] and person["message_count"] == 4
    hits = httpx.get(f"{memory_proxy}/users/ann/search", params={"q": "octopus sister"}).json()["data"]
    assert hits[0]["session_id"] == "call-a" and "Lisbon" in hits[0]["content"]
    data = tmp_path / "data"
    keys = [k for (k,) in sqlite3.connect(data / "registry.sqlite").execute(
        "SELECT key FROM sessions WHERE person = 'ann'")]
    assert len(keys) == 2 and all((data / "sessions" / f"{k}.sqlite").exists() for k in keys)

    gone = httpx.delete(f"{memory_proxy}/users/ann").json()
    assert gone["deleted"] and sorted(gone["sessions"]) == ["call-a", "call-b"] and gone["request_log_rows"] == 2
    assert_forgotten(data, keys, ["call-a", "call-b"])
    assert httpx.get(f"{memory_proxy}/users/ann").status_code == 404
    assert httpx.get(f"{memory_proxy}/users/ann/search", params={"q": "octopus"}).status_code == 404
    assert "Lisbon" not in say(told, fake, QUESTION, session="call-e", user="ann")  # no vector left in RAM
    assert httpx.get(f"{memory_proxy}/users/bob").json()["data"][0]["id"] == "bob-1"


def assert_forgotten(data: Path, keys: list[str], sessions: list[str]) -> None:
    registry = sqlite3.connect(data / "registry.sqlite")
    marks = ",".join("?" * len(keys))
    assert registry.execute(f"SELECT COUNT(*) FROM sessions WHERE key IN ({marks})", keys).fetchone() == (0,)
    assert registry.execute(f"SELECT COUNT(*) FROM window_hashes WHERE key IN ({marks})", keys).fetchone() == (0,)
    assert not [p for k in keys for p in (data / "sessions").glob(f"{k}*")]
    log = sqlite3.connect(data / "requests.sqlite")
    marks = ",".join("?" * len(sessions))
    assert log.execute(f"SELECT COUNT(*) FROM requests WHERE session_id IN ({marks})", sessions).fetchone() == (0,)
    everything = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert b"octopuses" not in everything and b"bees on my roof" not in everything
