"""Server-sent events: the only place SSE text is written or read.

OpenAI streams are `data: <json>\\n\\n` frames ending with `data: [DONE]\\n\\n`
(https://platform.openai.com/docs/api-reference/chat/streaming). A failure after the stream
began is sent as one frame holding the error envelope, then `[DONE]`, so clients end cleanly.

    >>> encode({"a": 1})
    b'data: {"a":1}\\n\\n'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


async def data_lines(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The payloads of `data:` fields in an SSE line stream; comments and other fields skipped.

    Multi-line data fields are joined with newlines, as the SSE spec says
    (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
    """
    buffer: list[str] = []
    async for line in lines:
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        yield "\n".join(buffer)
