"""A LiveKit agent's LLM pointed at the memory proxy: the proxy holds the memory, the agent holds nothing.

Needs the optional extra: `pip install -e '.[livekit]'` (livekit-agents, livekit-plugins-openai).

    from app.integrations.livekit import memory_llm

    caller = await ctx.wait_for_participant()
    llm = memory_llm(user_id=caller.identity, session_id=room_session_id(ctx.room.name), voice=True)
    session = AgentSession(llm=llm, stt=..., tts=...)

The returned object is the plugin's own `openai.LLM`, so tool calling, streaming and
interruptions work exactly as with OpenAI; the caller, the session id and the memory switches
travel as extra headers (`X-User-Id`, `X-Session-Id`, `X-Memory`, `X-Context-Budget`,
`X-Memory-Scope`), which the proxy reads. Each room is its own conversation; the caller's
identity makes them one person's, so a second call recalls the first.
"""

from __future__ import annotations

import os
from typing import Any

VOICE_INSTRUCTIONS = ("You are speaking aloud. Answer in one to three short sentences of plain spoken "
                      "language: no lists, markdown, emoji or stage directions.")


def memory_headers(session_id: str, *, memory: str = "on", context_budget: int | None = None,
                   user_id: str | None = None, scope: str | None = None) -> dict[str, str]:
    """The proxy's per-request controls as HTTP headers (pure; no LiveKit import needed)."""
    if memory not in ("on", "off", "read-only"):
        raise ValueError("memory must be 'on', 'off' or 'read-only'")
    if scope not in (None, "session", "character", "person"):
        raise ValueError("scope must be 'session', 'character' or 'person'")
    headers = {"X-Session-Id": session_id, "X-Memory": memory}
    if user_id:
        headers["X-User-Id"] = user_id
    if scope:
        headers["X-Memory-Scope"] = scope
    if context_budget is not None:
        headers["X-Context-Budget"] = str(int(context_budget))
    return headers


def room_session_id(room_name: str, prefix: str = "livekit") -> str:
    """One conversation per room: `livekit-<room>` (the proxy hashes ids before using them as file names)."""
    return f"{prefix}-{room_name}" if room_name else prefix


def memory_llm(*, session_id: str, user_id: str | None = None, base_url: str | None = None,
               api_key: str | None = None, model: str | None = None, memory: str = "on",
               context_budget: int | None = None, scope: str | None = None, voice: bool = False,
               max_completion_tokens: int | None = None, temperature: float | None = None, **kwargs: Any):
    """The LiveKit OpenAI plugin's LLM, talking to the proxy for conversation `session_id` of the
    person `user_id` (the caller's participant identity: their other calls are recalled too).

    `voice=True` picks voice-friendly defaults: short replies (160 tokens) and a slightly lower
    temperature; pair it with `VOICE_INSTRUCTIONS` in the agent's instructions.
    Defaults come from MEMORY_PROXY_URL, MEMORY_PROXY_API_KEY and MEMORY_PROXY_MODEL.
    """
    from livekit.plugins import openai as lk_openai

    options: dict[str, Any] = dict(kwargs)
    if voice:
        max_completion_tokens = max_completion_tokens or 160
        temperature = 0.6 if temperature is None else temperature
    if max_completion_tokens is not None:
        options["max_completion_tokens"] = max_completion_tokens
    if temperature is not None:
        options["temperature"] = temperature
    return lk_openai.LLM(
        model=model or os.environ.get("MEMORY_PROXY_MODEL", "default"),
        base_url=base_url or os.environ.get("MEMORY_PROXY_URL", "http://127.0.0.1:8000/v1"),
        api_key=api_key or os.environ.get("MEMORY_PROXY_API_KEY", "unused"),
        extra_headers=memory_headers(session_id, memory=memory, context_budget=context_budget, user_id=user_id,
                                     scope=scope),
        **options)
