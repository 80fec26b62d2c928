"""The LiveKit plugin's LLM stream against the running proxy (needs the `livekit` extra)."""

from __future__ import annotations

import asyncio
import importlib
import json

import pytest

from app.fakes.openai_server import Behaviour
from app.integrations.livekit import memory_headers, room_session_id

llm_mod = pytest.importorskip("livekit.agents.llm", reason="optional extra: pip install -e '.[livekit]'")


async def collect(stream) -> tuple[str, list]:
    text, calls = [], []
    async with stream:
        async for chunk in stream:
            if chunk.delta is None:
                continue
            text.append(chunk.delta.content or "")
            calls.extend(chunk.delta.tool_calls or [])
    return "".join(text), calls


def test_memory_headers_and_room_ids():
    assert memory_headers("room-1") == {"X-Session-Id": "room-1", "X-Memory": "on"}
    assert memory_headers("room-1", user_id="+4412345", scope="person") == {
        "X-Session-Id": "room-1", "X-Memory": "on", "X-User-Id": "+4412345", "X-Memory-Scope": "person"}
    assert memory_headers("r", memory="read-only", context_budget=2048)["X-Context-Budget"] == "2048"
    assert room_session_id("kitchen") == "livekit-kitchen"
    with pytest.raises(ValueError):
        memory_headers("r", memory="maybe")
    with pytest.raises(ValueError):
        memory_headers("r", scope="galaxy")


def test_two_turns_and_a_tool_call_through_the_proxy(fake, start_proxy):
    """With a key set: the plugin's `api_key` is what the proxy checks."""
    from livekit.agents import llm

    from app.integrations.livekit import memory_llm

    url = start_proxy(upstream_base_url=fake.url, api_keys=["sk-livekit-0123456789"], rate_limit_rpm=100)

    @llm.function_tool
    async def get_weather(city: str) -> str:
        """Weather for a city."""
        return f"sunny in {city}"

    async def scenario():
        model = memory_llm(session_id="livekit-room-7", base_url=url, api_key="sk-livekit-0123456789",
                           model="fake-model", voice=True)
        ctx = llm.ChatContext()
        ctx.add_message(role="system", content="You are Juniper.")
        ctx.add_message(role="user", content="Hi, my name is Sam.")
        fake.script.append(Behaviour(text="Hello Sam, nice to meet you."))
        first, _ = await collect(model.chat(chat_ctx=ctx))
        ctx.add_message(role="assistant", content=first)
        ctx.add_message(role="user", content="What's the weather in Oslo?")
        fake.script.append(Behaviour(tool_call={"name": "get_weather", "arguments": json.dumps({"city": "Oslo"})}))
        _, calls = await collect(model.chat(chat_ctx=ctx, tools=[get_weather]))
        await model.aclose()
        wrong = memory_llm(session_id="livekit-room-7", base_url=url, api_key="sk-wrong", model="fake-model")
        with pytest.raises(Exception, match="401|API key"):
            await collect(wrong.chat(chat_ctx=ctx))
        await wrong.aclose()
        return first, calls

    first, calls = asyncio.run(scenario())
    assert first == "Hello Sam, nice to meet you."
    assert calls and calls[0].name == "get_weather" and json.loads(calls[0].arguments) == {"city": "Oslo"}
    second = fake.requests[-1]
    assert second["max_completion_tokens"] == 160
    assert second["tools"][0]["function"]["name"] == "get_weather"
    assert [m["role"] for m in second["messages"]][-3:] == ["user", "assistant", "user"]


def test_example_agent_imports_and_builds_its_pieces(monkeypatch):
    monkeypatch.setenv("MEMORY_PROXY_URL", "http://127.0.0.1:9/v1")
    example = importlib.import_module("examples.livekit_agent")

    async def build():
        return example.build_session("room-9", "caller-9"), example.Companion()

    session, agent = asyncio.run(build())
    assert session.llm.model == "default"
    assert session.llm._opts.extra_headers["X-Session-Id"] == "livekit-room-9"
    assert session.llm._opts.extra_headers["X-User-Id"] == "caller-9"
    assert agent.instructions.startswith("You are Juniper")
    assert callable(example.entrypoint) and callable(example.prewarm)


def test_a_caller_who_rings_again_from_another_room_is_remembered(fake, memory_proxy):
    """Real AgentSessions: call 1 in room A hears a fact, call 2 in room B (same caller) is given
    it; another caller's call is not."""
    from livekit.agents import Agent, AgentSession

    from app.integrations.livekit import memory_llm

    async def call(room: str, caller: str, said: str) -> list[dict]:
        llm = memory_llm(user_id=caller, session_id=room_session_id(room), base_url=memory_proxy,
                         model="fake-model", voice=True)
        fake.script.append(Behaviour(text="Mm-hm."))
        async with AgentSession(llm=llm) as session:
            await session.start(Agent(instructions="You are Juniper, a warm companion."))
            result = await session.run(user_input=said)
            await result
            assert result.events[-1].item.text_content == "Mm-hm."
        return fake.requests[-1]["messages"]

    async def wait_indexed(room: str) -> None:
        import httpx

        async with httpx.AsyncClient() as http:
            for _ in range(600):
                if not (await http.get(f"{memory_proxy}/sessions/{room_session_id(room)}")).json()["pending"]:
                    return
                await asyncio.sleep(0.05)

    async def scenario():
        await call("room-a", "sam", "My daughter Ines starts school in Porto on Monday.")
        await wait_indexed("room-a")
        again = await call("room-b", "sam", "Where does my daughter start school?")
        other = await call("room-c", "kim", "Where does my daughter start school?")
        return again, other

    again, other = asyncio.run(scenario())
    block = next(m["content"] for m in again if "<memory>" in str(m["content"]))
    assert "Porto" in block and "in an earlier conversation (livekit-room-a), just now" in block
    assert "Porto" not in str(other)
