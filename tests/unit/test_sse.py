import asyncio

import orjson
import pytest

from app import sse
from app.errors import UpstreamStreamError
from app.providers.base import Delta, Usage
from app.providers.openai_compat import _events, chunk_events, retry_after_seconds


async def _lines(text: str):
    for line in text.split("\n"):
        yield line


def collect(text: str) -> list[str]:
    async def run():
        return [p async for p in sse.data_lines(_lines(text))]
    return asyncio.run(run())


@pytest.mark.parametrize("text, payloads", [
    ('data: {"a":1}\n\ndata: [DONE]\n\n', ['{"a":1}', "[DONE]"]),
    ('data:{"a":1}\n\n', ['{"a":1}']),
    (': keep-alive\n\ndata: x\n\n', ["x"]),
    ("event: message\ndata: line1\ndata: line2\n\n", ["line1\nline2"]),
    ('data: {"a":1}', ['{"a":1}']),  # no final blank line: still delivered
    ("", []),
])
def test_data_lines(text, payloads):
    assert collect(text) == payloads


def test_encode_is_one_frame():
    assert sse.encode({"a": "é"}) == 'data: {"a":"é"}\n\n'.encode()
    assert sse.DONE == b"data: [DONE]\n\n"


def test_chunk_events_maps_deltas_usage_and_extras():
    chunk = {"choices": [{"index": 0, "delta": {"content": "hi", "reasoning_content": "r"}, "finish_reason": None}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
                       "prompt_tokens_details": {"cached_tokens": 2}}}
    delta, usage = chunk_events(chunk)
    assert delta == Delta(content="hi", extra={"reasoning_content": "r"})
    assert usage == Usage(3, 1, {"prompt_tokens_details": {"cached_tokens": 2}})


def events(payloads: list[str]):
    async def source():
        for p in payloads:
            yield p

    async def run():
        return [e async for e in _events(source())]
    return asyncio.run(run())


def test_stream_cut_before_finish_is_an_error_but_missing_done_after_finish_is_not():
    ok = orjson.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).decode()
    part = orjson.dumps({"choices": [{"index": 0, "delta": {"content": "a"}}]}).decode()
    assert events([part, ok])[-1].finish_reason == "stop"
    with pytest.raises(UpstreamStreamError):
        events([part])
    with pytest.raises(UpstreamStreamError, match="quota"):
        events(['{"error": {"message": "quota exceeded"}}'])
    with pytest.raises(UpstreamStreamError, match="invalid JSON"):
        events(["{not json"])


@pytest.mark.parametrize("value, seconds", [("3", 3.0), ("0.5", 0.5), (None, None), ("Wed, 21 Oct 2015", None),
                                            ("-1", 0.0)])
def test_retry_after(value, seconds):
    assert retry_after_seconds(value) == seconds
