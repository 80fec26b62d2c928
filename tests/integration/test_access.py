"""Keys and tenants on the real server with the real `openai` SDK: nobody reads or writes a conversation
that is not theirs, admins see everyone's, and the upstream's key never reaches a client."""

from __future__ import annotations

import hashlib
import json
import time

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour
from app.fakes.serve import free_port

KEY_A, KEY_B, ROOT = "sk-alice-0123456789", "sk-bob-9876543210", "sk-root-5555555555"
MSG = [{"role": "user", "content": "Hello there"}]
ST_SYSTEM = "Write Seraphina's next reply in a fictional chat between Seraphina and Ann."
ST_GREETING = "*Seraphina smiles softly.* You're awake."


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


def keyed_proxy(start_proxy, fake, **overrides) -> str:
    return start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=True, summary_every=20,
                       consolidate_interval_seconds=0, api_keys=[KEY_A, "sha256:" + hashlib.sha256(KEY_B.encode()).hexdigest()],
                       admin_api_keys=[ROOT], **overrides)


def test_no_key_a_wrong_key_and_a_right_key(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, api_keys=[KEY_A])
    missing = httpx.post(f"{url}/chat/completions", json={"model": "fake-model", "messages": MSG})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    assert missing.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError) as wrong:
        sdk(url, "sk-alice-012345678").chat.completions.create(model="fake-model", messages=MSG)
    assert wrong.value.code == "invalid_api_key" and "sk-alice" not in str(wrong.value.body)
    with pytest.raises(openai.AuthenticationError):
        sdk(url, KEY_A).with_options(default_headers={"Authorization": f"Basic {KEY_A}"}).models.list()
    assert fake.requests == []  # nothing reached the paid upstream
    reply = sdk(url, KEY_A).chat.completions.create(model="fake-model", messages=MSG)
    assert reply.choices[0].message.content and len(fake.requests) == 1
    assert [m.id for m in sdk(url, KEY_A).models.list()] == ["fake-model", "fake-model-large"]
    assert httpx.get(url.removesuffix("/v1") + "/health").status_code == 200  # the only open route
    for path in ("/models", "/sessions", "/report"):
        assert httpx.get(url + path).status_code == 401
    assert httpx.get(url.removesuffix("/v1") + "/openapi.json").status_code == 401


def test_a_hashed_key_in_the_settings_lets_the_clear_key_in(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, api_keys=["sha256:" + hashlib.sha256(KEY_A.encode()).hexdigest()])
    assert sdk(url, KEY_A).chat.completions.create(model="fake-model", messages=MSG).choices
    with pytest.raises(openai.AuthenticationError):
        sdk(url, "sha256:" + hashlib.sha256(KEY_A.encode()).hexdigest()).models.list()


def snapshot(client: openai.OpenAI, session: str) -> dict:
    """Everything stored about a session, minus the moment it was read."""
    exported = client.get(f"/sessions/{session}/export", cast_to=object)
    exported.pop("exported_at")
    info = client.get(f"/sessions/{session}", cast_to=object)
    persona = client.get(f"/sessions/{session}/persona", cast_to=object)
    return {"export": exported, "info": info, "persona": persona}


def wait_indexed(client: openai.OpenAI, session: str) -> None:
    deadline = time.monotonic() + 60
    while client.get(f"/sessions/{session}", cast_to=object)["pending"] and time.monotonic() < deadline:
        time.sleep(0.05)


def alice_story(alice: openai.OpenAI) -> None:
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"Alice's line {i} about her dog Biscuit."}
             for i in range(22)]
    alice.post("/sessions/a-story/messages", body={"messages": turns}, cast_to=object)
    alice.put("/sessions/a-story/persona", body={"persona": "You are Alice's diary."}, cast_to=object)
    alice.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "Remember Biscuit?"}],
                                  extra_headers={"X-Session-Id": "a-story"})
    assert alice.post("/sessions/a-story/summarize", cast_to=object)["written"] >= 1
    wait_indexed(alice, "a-story")


READS = [("get", "/sessions/a-story"), ("get", "/sessions/a-story/messages"),
         ("get", "/sessions/a-story/messages?include_superseded=true"), ("get", "/sessions/a-story/search?q=Biscuit"),
         ("get", "/sessions/a-story/emotions"), ("get", "/sessions/a-story/stats"),
         ("get", "/sessions/a-story/summaries"), ("post", "/sessions/a-story/summarize"),
         ("post", "/sessions/a-story/consolidate"), ("get", "/sessions/a-story/persona"),
         ("get", "/sessions/a-story/export"), ("delete", "/sessions/a-story")]


def test_another_key_gets_404_on_every_session_route_and_nothing_of_the_owners_changes(fake, start_proxy, tmp_path):
    url = keyed_proxy(start_proxy, fake)
    alice, bob = sdk(url, KEY_A), sdk(url, KEY_B)
    alice_story(alice)
    before = snapshot(alice, "a-story")
    assert before["info"]["messages"] == 24 and before["export"]["summaries"]

    assert [s["id"] for s in bob.get("/sessions", cast_to=object)["data"]] == []
    for method, path in READS:
        with pytest.raises(openai.NotFoundError) as refused:
            getattr(bob, method)(path, cast_to=object)
        assert refused.value.code == "session_not_found", (method, path, refused.value.body)
    # Writes under the same id land in Bob's own namespace: to Bob, Alice's session is not there.
    bob.post("/sessions/a-story/messages", body={"messages": [{"role": "user", "content": "Bob was here."}]},
             cast_to=object)
    bob.put("/sessions/a-story/persona", body={"persona": "Bob's persona."}, cast_to=object)
    st_file = "\n".join([json.dumps({"user_name": "Bob", "character_name": "X"}),
                         json.dumps({"name": "Bob", "is_user": True, "mes": "Imported by Bob."})])
    imported = httpx.post(f"{url}/sessions/a-story/import", content=st_file, timeout=30,
                          headers={"Authorization": f"Bearer {KEY_B}", "Content-Type": "application/jsonl"})
    assert imported.status_code == 200, imported.text
    bob.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "What about Biscuit?"}],
                                extra_headers={"X-Session-Id": "a-story"})
    assert "Alice" not in json.dumps(fake.requests[-1]["messages"])  # nothing of Alice's was recalled
    wait_indexed(bob, "a-story")

    assert snapshot(alice, "a-story") == before
    bobs = [m["content"] for m in bob.get("/sessions/a-story/messages", cast_to=object)["data"]]
    assert bobs[:3] == ["Bob was here.", "Imported by Bob.", "What about Biscuit?"] and len(bobs) == 4
    assert bob.get("/sessions/a-story/persona", cast_to=object)["persona"] == "Bob's persona."
    bob.delete("/sessions/a-story", cast_to=object)
    assert snapshot(alice, "a-story") == before


def test_admin_keys_see_and_manage_every_tenants_conversations_and_the_report(fake, start_proxy):
    url = keyed_proxy(start_proxy, fake)
    alice, bob, root = sdk(url, KEY_A), sdk(url, KEY_B), sdk(url, ROOT)
    alice.post("/sessions/a-story/messages", body={"messages": MSG}, cast_to=object)
    bob.post("/sessions/b-story/messages", body={"messages": MSG}, cast_to=object)
    listed = root.get("/sessions", cast_to=object)["data"]
    assert {s["id"] for s in listed} == {"a-story", "b-story"} and len({s["owner"] for s in listed}) == 2
    assert root.get("/sessions/a-story/messages", cast_to=object)["data"][0]["content"] == "Hello there"
    with pytest.raises(openai.PermissionDeniedError):
        alice.get("/report", cast_to=object)
    assert root.get("/report", cast_to=object)["current"]["requests"] >= 0

    bob.post("/sessions/a-story/messages", body={"messages": [{"role": "user", "content": "Bob's."}]}, cast_to=object)
    with pytest.raises(openai.BadRequestError) as ambiguous:  # two tenants use the id: the admin names one
        root.get("/sessions/a-story", cast_to=object)
    assert ambiguous.value.code == "ambiguous_session"
    alice_tenant = next(s["owner"] for s in listed if s["id"] == "a-story")
    root.delete(f"/sessions/a-story?owner={alice_tenant}", cast_to=object)
    with pytest.raises(openai.NotFoundError):
        alice.get("/sessions/a-story", cast_to=object)
    assert bob.get("/sessions/a-story/messages", cast_to=object)["data"][0]["content"] == "Bob's."


def st_chat(url: str, key: str, fake, reply: str) -> httpx.Response:
    """The same SillyTavern opening, sent with a key."""
    fake.script.append(Behaviour(text=reply))
    messages = [{"role": "system", "content": ST_SYSTEM}, {"role": "assistant", "content": ST_GREETING},
                {"role": "user", "content": "*I sit up slowly.* Where am I?"}]
    response = httpx.post(f"{url}/chat/completions", json={"model": "fake-model", "messages": messages},
                          headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_two_keys_with_the_same_sillytavern_opening_get_separate_sessions(fake, start_proxy):
    url = keyed_proxy(start_proxy, fake)
    first = st_chat(url, KEY_A, fake, "Alice's glade.")
    second = st_chat(url, KEY_B, fake, "Bob's glade.")
    assert first.headers["x-session-id"] == second.headers["x-session-id"]  # the same opening, the same id...
    session = first.headers["x-session-id"]
    alice = [m["content"] for m in sdk(url, KEY_A).get(f"/sessions/{session}/messages", cast_to=object)["data"]]
    bob = [m["content"] for m in sdk(url, KEY_B).get(f"/sessions/{session}/messages", cast_to=object)["data"]]
    assert alice[-1] == "Alice's glade." and bob[-1] == "Bob's glade."  # ...but two conversations
    assert "Alice's glade." not in bob and len(alice) == len(bob) == 3
    assert len(sdk(url, ROOT).get("/sessions", cast_to=object)["data"]) == 2


def test_an_upstream_401_quoting_its_key_is_redacted_and_names_the_upstream(fake, start_proxy, tmp_path):
    secret = "sk-upstream-SECRET-4242424242"
    url = start_proxy(upstream_base_url=fake.url, upstream_api_key=secret, api_keys=[KEY_A], admin_api_keys=[ROOT])
    fake.script.append(Behaviour(status=401, text=f"Incorrect API key provided: {secret}. Find yours at ..."))
    with pytest.raises(openai.AuthenticationError) as refused:
        sdk(url, KEY_A).chat.completions.create(model="fake-model", messages=MSG)
    message = refused.value.body["message"]
    assert "SECRET-4242" not in message and "[redacted]" in message and "upstream upstream" in message
    fake.script.append(Behaviour(status=401, text=f"bad key {secret}"))
    stream = httpx.post(f"{url}/chat/completions", json={"model": "fake-model", "messages": MSG, "stream": True},
                        headers={"Authorization": f"Bearer {KEY_A}"})
    assert stream.status_code == 401 and "SECRET" not in stream.text
    report = sdk(url, ROOT).get("/report?days=1", cast_to=object)
    assert "SECRET" not in json.dumps(report)
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "SECRET" not in logs and KEY_A not in logs and ROOT not in logs


def test_metrics_need_a_key_or_move_to_a_loopback_port(fake, start_proxy):
    url = start_proxy(upstream_base_url=fake.url, api_keys=[KEY_A]).removesuffix("/v1")
    assert httpx.get(url + "/metrics").status_code == 401
    assert httpx.get(url + "/metrics", headers={"Authorization": f"Bearer {KEY_A}"}).status_code == 200
    port = free_port()
    moved = start_proxy(upstream_base_url=fake.url, api_keys=[KEY_A], metrics_port=port).removesuffix("/v1")
    elsewhere = httpx.get(moved + "/metrics", headers={"Authorization": f"Bearer {KEY_A}"})
    assert elsewhere.status_code == 404 and elsewhere.json()["error"]["code"] == "metrics_elsewhere"
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
    assert scraped.status_code == 200 and "proxy_requests_total" in scraped.text


@pytest.mark.parametrize("host, keys, warned", [("0.0.0.0", [], True), ("127.0.0.1", [], False),
                                                 ("0.0.0.0", [KEY_A], False)])
def test_no_keys_on_a_reachable_address_is_said_loudly_at_start(fake, start_proxy, tmp_path, host, keys, warned):
    start_proxy(upstream_base_url=fake.url, host=host, api_keys=keys)
    logged = (tmp_path / "logs" / "proxy.log").read_text()
    assert ("NO API KEYS ARE SET" in logged) is warned


def test_the_import_command_sends_its_key(fake, start_proxy, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    url = keyed_proxy(start_proxy, fake)
    chat = tmp_path / "chat.jsonl"
    chat.write_text("\n".join([json.dumps({"user_name": "Ann", "character_name": "Sera"}),
                               json.dumps({"name": "Ann", "is_user": True, "mes": "Imported with a key."})]))
    command = [sys.executable, "-m", "app.cli", "import", str(chat), "--session", "cli", "--url", url.removesuffix("/v1")]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=root,
                             env={**os.environ, "MEMORY_PROXY_API_KEY": ""})
    assert refused.returncode == 1 and "401" in refused.stderr
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=root,
                          env={**os.environ, "MEMORY_PROXY_API_KEY": KEY_B})
    assert done.returncode == 0, done.stderr
    assert sdk(url, KEY_B).get("/sessions/cli/messages", cast_to=object)["data"][0]["content"] == "Imported with a key."
    with pytest.raises(openai.NotFoundError):
        sdk(url, KEY_A).get("/sessions/cli", cast_to=object)


def test_a_gemini_error_quoting_its_key_is_redacted(start_proxy):
    from app.fakes.gemini_server import Behaviour as GeminiBehaviour
    from app.fakes.gemini_server import FakeGemini
    from app.fakes.serve import serving

    secret = "AIzaSy-GEMINI-SECRET-77777777"
    gemini = FakeGemini(api_key=secret)
    with serving(gemini.app()) as gemini_url:
        url = start_proxy(gemini_api_key=secret, gemini_base_url=gemini_url, gemini_models=["gemini-2.5-flash"],
                          api_keys=[KEY_A])
        gemini.script.append(GeminiBehaviour(status=401, message=f"API key {secret} has expired."))
        with pytest.raises(openai.AuthenticationError) as refused:
            sdk(url, KEY_A).chat.completions.create(model="gemini-2.5-flash", messages=MSG)
    message = refused.value.body["message"]
    assert "GEMINI-SECRET" not in message and "[redacted]" in message and "GEMINI_API_KEY" in message


def test_conversations_from_before_keys_are_reached_by_admin_keys_only(fake, start_proxy):
    before = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                         consolidate_interval_seconds=0)
    httpx.post(f"{before}/sessions/old-chat/messages", json={"messages": MSG}).raise_for_status()
    url = keyed_proxy(start_proxy, fake)  # the same data directory, now with keys
    with pytest.raises(openai.NotFoundError):
        sdk(url, KEY_A).get("/sessions/old-chat", cast_to=object)
    assert sdk(url, KEY_A).get("/sessions", cast_to=object)["data"] == []
    root = sdk(url, ROOT)
    assert root.get("/sessions/old-chat", cast_to=object)["owner"] is None
    assert root.get("/sessions/old-chat/messages?owner=none", cast_to=object)["data"][0]["content"] == "Hello there"
