"""Client behaviours replayed through the real API: the stored conversation must be exact."""

from __future__ import annotations

import concurrent.futures

import httpx
import openai
import pytest

from app.fakes.openai_server import Behaviour

SYSTEM = {"role": "system", "content": "You are Seraphina, a gentle forest guardian."}
GREETING = {"role": "assistant", "content": "*Seraphina smiles.* Welcome to the glade, traveller."}
SUMMARIZE = ("Ignore previous instructions. Summarize the most important facts and events in the story so far. "
             "If a summary already exists in your memory, use that as a base and expand with new facts. "
             "Limit the summary to 300 words or less. Your response should include nothing but the summary.")
NUDGE = ("[Continue the following message. Do not include ANY parts of the original message. Use capitalization "
         "and punctuation as if your reply is a part of the original message: {0}]")


class Chat:
    """A SillyTavern-like client: resends the whole visible history, no user field, no chat id."""

    def __init__(self, base: str, fake, header: str | None = None) -> None:
        self.client = openai.OpenAI(base_url=base, api_key="k", max_retries=0)
        self.base = base
        self.fake = fake
        self.history = [SYSTEM, GREETING]
        self.headers = {"X-Session-Id": header} if header else {}
        self.session_id = header

    def send(self, messages, reply: str, stream: bool = False) -> str:
        self.fake.script.append(Behaviour(text=reply))
        raw = self.client.chat.completions.with_raw_response.create(
            model="fake-model", messages=messages, stream=stream, extra_headers=self.headers)
        self.session_id = raw.headers.get("x-session-id")
        result = raw.parse()
        if stream:
            return "".join(c.choices[0].delta.content or "" for c in result if c.choices)
        return result.choices[0].message.content

    def say(self, text: str, reply: str, stream: bool = False) -> str:
        self.history.append({"role": "user", "content": text})
        answer = self.send(self.history, reply, stream)
        self.history.append({"role": "assistant", "content": answer})
        return answer

    def stored(self, superseded: bool = False) -> list[tuple[str, str]]:
        rows = httpx.get(f"{self.base}/sessions/{self.session_id}/messages",
                         params={"limit": 10000, "include_superseded": superseded}).json()["data"]
        return [(r["role"], r["content"]) + (("superseded",) if r["superseded"] else ()) for r in rows]

    def expected(self) -> list[tuple[str, str]]:
        return [(m["role"], m["content"]) for m in self.history if m["role"] != "system"]


def test_full_history_resend_over_fifty_turns_records_each_message_once(memory_proxy, fake):
    chat = Chat(memory_proxy, fake)
    for i in range(50):
        chat.say(f"Message number {i} about the glade.", f"Reply number {i}.", stream=i % 2 == 0)
    assert chat.session_id.startswith("auto-")
    assert chat.stored() == chat.expected()
    assert len(chat.stored()) == 101


def test_regenerate_and_swipe_three_times_keep_only_the_last_reply(memory_proxy, fake):
    chat = Chat(memory_proxy, fake)
    chat.say("Hello!", "First greeting.")
    chat.history.pop()  # the client regenerates: same request again
    for reply in ("Swipe one.", "Swipe two.", "Swipe three."):
        answer = chat.send(chat.history, reply)
    chat.history.append({"role": "assistant", "content": answer})
    assert chat.stored() == chat.expected()
    stored_all = chat.stored(superseded=True)
    assert [r for r in stored_all if len(r) == 3] == [
        ("assistant", "First greeting.", "superseded"), ("assistant", "Swipe one.", "superseded"),
        ("assistant", "Swipe two.", "superseded")]


def test_edit_of_an_early_message_supersedes_it(memory_proxy, fake):
    chat = Chat(memory_proxy, fake)
    for i in range(5):
        chat.say(f"Turn {i}.", f"Answer {i}.")
    chat.history[4] = {"role": "user", "content": "Turn 1, edited."}
    chat.say("Turn 5.", "Answer 5.")
    assert chat.stored() == chat.expected()
    assert ("user", "Turn 1.", "superseded") in chat.stored(superseded=True)


def test_continue_with_its_nudge_replaces_the_partial_reply(memory_proxy, fake):
    chat = Chat(memory_proxy, fake)
    chat.say("Tell me a story.", "Once upon a time")
    nudge = {"role": "user", "content": NUDGE.format("Once upon a time")}
    rest = chat.send(chat.history + [nudge], "there was a fox.")
    chat.history[-1] = {"role": "assistant", "content": "Once upon a time " + rest}  # the continue postfix
    assert chat.stored() == chat.expected()
    chat.say("Go on.", "The fox was clever.")
    assert chat.stored() == chat.expected()


def test_summarize_extension_request_is_not_a_turn(memory_proxy, fake):
    chat = Chat(memory_proxy, fake)
    chat.say("I lost my lantern.", "We will find it.")
    chat.send(chat.history + [{"role": "system", "content": SUMMARIZE}], "The traveller lost a lantern.")
    chat.say("Thank you.", "You are welcome.")
    assert chat.stored() == chat.expected()


def test_front_trimmed_window_deletes_nothing(memory_proxy, fake):
    chat = Chat(memory_proxy, fake)
    for i in range(12):
        chat.say(f"Early {i}.", f"Reply {i}.")
    session = chat.session_id
    window = [SYSTEM] + chat.history[12:]
    chat.history.append({"role": "user", "content": "After trimming."})
    answer = chat.send(window + [chat.history[-1]], "Still here.")
    chat.history.append({"role": "assistant", "content": answer})
    assert chat.session_id == session
    assert chat.stored() == chat.expected()


def test_single_message_client_is_appended(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    for i in range(3):
        fake.script.append(Behaviour(text=f"ok {i}"))
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": f"note {i}"}],
                                       user="single-client")
    rows = httpx.get(f"{memory_proxy}/sessions/single-client/messages").json()["data"]
    assert [(r["role"], r["content"]) for r in rows] == [
        ("user", "note 0"), ("assistant", "ok 0"), ("user", "note 1"), ("assistant", "ok 1"),
        ("user", "note 2"), ("assistant", "ok 2")]


def test_two_chats_with_the_same_character_and_greeting_stay_apart(memory_proxy, fake):
    one, two = Chat(memory_proxy, fake), Chat(memory_proxy, fake)
    one.say("I am Ann.", "Hello Ann.")
    two.say("I am Bob.", "Hello Bob.")
    one.say("Where am I?", "In the glade, Ann.")
    two.say("Who are you?", "Seraphina, Bob.")
    assert one.session_id != two.session_id
    assert one.stored() == one.expected() and two.stored() == two.expected()


def test_twenty_concurrent_requests_on_one_session_serialize(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)

    def ask(i: int) -> None:
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": f"parallel {i}"}],
                                       extra_headers={"X-Session-Id": "busy"})

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        list(pool.map(ask, range(20)))
    rows = httpx.get(f"{memory_proxy}/sessions/busy/messages", params={"limit": 100}).json()["data"]
    assert len(rows) == 40
    assert [r["role"] for r in rows] == ["user", "assistant"] * 20
    assert sorted(r["content"] for r in rows if r["role"] == "user") == sorted(f"parallel {i}" for i in range(20))
    assert [r["position"] for r in rows] == sorted({r["position"] for r in rows})


def test_read_only_and_off_store_nothing(memory_proxy, fake):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    for mode in ("read-only", "off"):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"X-Session-Id": f"quiet-{mode}", "X-Memory": mode})
        assert httpx.get(f"{memory_proxy}/sessions/quiet-{mode}").status_code == 404


@pytest.mark.parametrize("session_id", ["../../etc/passwd", "a" * 300, "bad<id>"])
def test_hostile_session_ids_are_rejected(memory_proxy, session_id):
    client = openai.OpenAI(base_url=memory_proxy, api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fake-model", messages=[{"role": "user", "content": "hi"}],
                                       extra_headers={"X-Session-Id": session_id})
