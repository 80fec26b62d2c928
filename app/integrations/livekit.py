"""A LiveKit agent's LLM pointed at the memory proxy: the proxy holds the memory, the agent holds nothing.

Needs the optional extra: `pip install -e '.[livekit]'` (livekit-agents, livekit-plugins-openai).

    from app.integrations.livekit import memory_llm

    session = AgentSession(llm=memory_llm(session_id=ctx.room.name, voice=True), stt=..., tts=...)

The returned object is the plugin's own `openai.LLM`, so tool calling, streaming and
interruptions work exactly as with OpenAI; the session id and the memory switches travel as
extra headers (`X-Session-Id`, `X-Memory`, `X-Context-Budget`), which the proxy reads.
"""

from __future__ import annotations

import os
from typing import Any

VOICE_INSTRUCTIONS = ("You are speaking aloud. Answer in one to three short sentences of plain spoken "
                      "language: no lists, markdown, emoji or stage directions.")


def memory_headers(session_id: str, *, memory: str = "on", context_budget: int | None = None) -> dict[str, str]:
    """The proxy's per-request controls as HTTP headers (pure; no LiveKit import needed)."""
    if memory not in ("on", "off", "read-only"):
        raise ValueError("memory must be 'on', 'off' or 'read-only'")
    headers = {"X-Session-Id": session_id, "X-Memory": memory}
    if context_budget is not None:
        headers["X-Context-Budget"] = str(int(context_budget))
    return headers


def room_session_id(room_name: str, prefix: str = "livekit") -> str:
    """One conversation per room: `livekit-<room>` (the proxy hashes ids before using them as file names)."""
    return f"{prefix}-{room_name}" if room_name else prefix


def memory_llm(*, session_id: str, base_url: str | None = None, api_key: str | None = None,
               model: str | None = None, memory: str = "on", context_budget: int | None = None,
               voice: bool = False, max_completion_tokens: int | None = None, temperature: float | None = None,
               **kwargs: Any):
    """The LiveKit OpenAI plugin's LLM, talking to the proxy for conversation `session_id`.

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
        extra_headers=memory_headers(session_id, memory=memory, context_budget=context_budget),
        **options)
