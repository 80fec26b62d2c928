"""A complete LiveKit voice agent whose LLM is the memory proxy.

    pip install -e '.[livekit]' livekit-plugins-deepgram livekit-plugins-cartesia livekit-plugins-silero
    MEMORY_PROXY_URL=http://127.0.0.1:8000/v1 MEMORY_PROXY_MODEL=llama3.1 \
    LIVEKIT_URL=... LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... python examples/livekit_agent.py dev

The load-once pattern: heavy things (the embedding model, every conversation's memory) live in
the proxy, loaded once for all calls; `prewarm` loads only the small VAD model once per worker
process; each call's `entrypoint` builds light objects and points the LLM at the proxy with the
room as the conversation and the caller's identity as the person, so a caller who rings again
tomorrow, in a new room, is remembered.
"""

from __future__ import annotations

import os

from livekit.agents import Agent, AgentSession, JobContext, JobProcess, WorkerOptions, cli, function_tool

from app.integrations.livekit import VOICE_INSTRUCTIONS, memory_llm, room_session_id

INSTRUCTIONS = "You are Juniper, a warm, curious companion who remembers what the caller told you before. "


@function_tool
async def get_local_time(city: str) -> str:
    """The current local time in a city (an example tool: the model may call it)."""
    import datetime

    return f"It is {datetime.datetime.now():%H:%M} in {city}."


class Companion(Agent):
    def __init__(self) -> None:
        super().__init__(instructions=INSTRUCTIONS + VOICE_INSTRUCTIONS, tools=[get_local_time])


def prewarm(proc: JobProcess) -> None:
    """Once per worker process: only what every call needs and the proxy cannot hold."""
    try:
        from livekit.plugins import silero

        proc.userdata["vad"] = silero.VAD.load()
    except ImportError:
        proc.userdata["vad"] = None


def build_session(room_name: str, caller: str | None = None, vad=None, stt=None, tts=None) -> AgentSession:
    """The per-call pieces: light objects only; the LLM is the proxy, keyed by the room and the caller."""
    llm = memory_llm(user_id=caller, session_id=room_session_id(room_name), voice=True)
    return AgentSession(llm=llm, vad=vad, stt=stt, tts=tts)


async def entrypoint(ctx: JobContext) -> None:
    await ctx.connect()
    caller = await ctx.wait_for_participant()
    stt = tts = None
    if os.environ.get("DEEPGRAM_API_KEY"):
        from livekit.plugins import deepgram

        stt = deepgram.STT()
    if os.environ.get("CARTESIA_API_KEY"):
        from livekit.plugins import cartesia

        tts = cartesia.TTS()
    session = build_session(ctx.room.name, caller.identity, ctx.proc.userdata.get("vad"), stt, tts)
    await session.start(agent=Companion(), room=ctx.room)
    await session.generate_reply(instructions="Greet the caller briefly.")


if __name__ == "__main__":
    cli.run_app(WorkerOptions(entrypoint_fnc=entrypoint, prewarm_fnc=prewarm))
