"""OpenAI chat requests as Gemini calls, and Gemini's answers as our events: pure functions, no I/O.

Request (`request_payload`): the OpenAI body becomes `contents` and a `GenerateContentConfig`, both as
plain dicts in google-genai's field names (the SDK validates them and writes the wire format):

    system, developer messages  -> config.system_instruction
    user / assistant            -> role "user" / "model"; text parts, data: URLs as inline_data
    assistant tool_calls        -> function_call parts (with the thought signature Gemini gave, if known)
    tool results                -> function_response parts, named through tool_call_id, in one user turn
    sampling, limits, JSON mode, tools, tool_choice -> generation config fields

Response (`StreamMapper`): each streamed `GenerateContentResponse` becomes `Delta` events; usage is
sent once, at the end, from the last `usage_metadata` (Gemini repeats the running totals on every chunk).

A prompt that Gemini blocks (`prompt_feedback.block_reason`, no candidates) becomes a 400
`invalid_request_error` with code `content_filter`, not an empty reply with finish_reason
`content_filter`: the block is known before anything was streamed, OpenAI-compatible services already
answer a filtered prompt this way (Azure OpenAI: 400, code `content_filter`), clients then show the
reason instead of an empty message, nothing is retried or failed over to a less strict model, and no
empty turn is stored as memory. A reply blocked while streaming ends with finish_reason `content_filter`.

    contents, config = request_payload(UpstreamRequest("gemini-2.5-flash", messages))
    mapper = StreamMapper()
    events = [e for chunk in chunks for e in mapper.events(chunk)] + mapper.finish()
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.errors import InvalidRequest, UpstreamHTTPError, UpstreamStreamError
from app.providers.base import Delta, Event, ToolCallDelta, UpstreamRequest, Usage

# Google's documented placeholder for a function call whose thought signature is unknown (history from
# another model, or from before a restart); Gemini 3 rejects a function call turn without any signature.
# The SDK writes bytes as URL-safe base64, so these bytes go on the wire as that very text.
UNKNOWN_SIGNATURE = base64.urlsafe_b64decode("skip_thought_signature_validator")

# ---------------------------------------------------------------- request


def request_payload(request: UpstreamRequest, *, safety: Iterable[dict[str, str]] = (),
                    signatures: Mapping[str, bytes] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(contents, config) for `generate_content_stream`; raises InvalidRequest for what Gemini cannot take."""
    system, contents = split_messages(request.messages, signatures or {})
    if not contents:
        raise InvalidRequest("Gemini needs at least one user, assistant or tool message", param="messages")
    return contents, generation_config(request.params, system, list(safety))


def split_messages(messages: list[dict[str, Any]], signatures: Mapping[str, bytes]
                   ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The system instruction and the turns; adjacent turns of one role are merged, as Gemini expects."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> function name, for the tool results that follow
    for message in messages:
        if message.get("role") in ("system", "developer"):
            system += _parts(message.get("content"))
            continue
        turn = _turn(message, names, signatures)
        if not turn["parts"]:
            continue
        if contents and contents[-1]["role"] == turn["role"]:
            contents[-1]["parts"] += turn["parts"]
        else:
            contents.append(turn)
    return ({"parts": system} if system else None), contents


def _turn(message: dict[str, Any], names: dict[str, str], signatures: Mapping[str, bytes]) -> dict[str, Any]:
    role = message.get("role")
    if role == "assistant":
        return {"role": "model", "parts": _parts(message.get("content")) + _calls(message, names, signatures)}
    if role in ("tool", "function"):
        return {"role": "user", "parts": [_tool_result(message, names)]}
    return {"role": "user", "parts": _parts(message.get("content"))}


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    return [part for part in map(_part, content) if part]


def _part(part: dict[str, Any]) -> dict[str, Any] | None:
    kind = part.get("type")
    if kind == "text":
        return {"text": part["text"]} if part.get("text") else None
    if kind == "image_url":
        image = part.get("image_url")
        return _inline(image.get("url", "") if isinstance(image, dict) else str(image or ""))
    if kind == "input_audio":
        audio = part.get("input_audio") or {}
        return {"inline_data": {"mime_type": f"audio/{audio.get('format') or 'wav'}",
                                "data": _b64(audio.get("data") or "")}}
    if kind == "file" and str((part.get("file") or {}).get("file_data", "")).startswith("data:"):
        return _inline(part["file"]["file_data"])
    if kind != "refusal":
        raise InvalidRequest(f"Gemini cannot take content parts of type {kind!r}", param="messages")
    return None


DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)", re.S)


def _inline(url: str) -> dict[str, Any]:
    """A `data:` URL as inline bytes; Gemini cannot fetch arbitrary web URLs itself."""
    match = DATA_URL.match(url)
    if not match:
        raise InvalidRequest("Gemini takes images as base64 data: URLs (data:image/png;base64,...); "
                             f"got {url[:60]!r}", param="messages")
    return {"inline_data": {"mime_type": match["mime"] or "application/octet-stream", "data": _b64(match["data"])}}


def _b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest("invalid base64 in a media content part", param="messages") from None


def _calls(message: dict[str, Any], names: dict[str, str], signatures: Mapping[str, bytes]) -> list[dict[str, Any]]:
    calls = message.get("tool_calls") or ([{"function": message["function_call"]}]
                                          if message.get("function_call") else [])
    parts = []
    for i, call in enumerate(calls):
        function = call.get("function") or {}
        name = function.get("name") or ""
        names[call.get("id") or name] = name
        part: dict[str, Any] = {"function_call": {"name": name, "args": _arguments(function.get("arguments"))}}
        signature = signatures.get(call.get("id") or "") or (UNKNOWN_SIGNATURE if i == 0 else None)
        if signature:
            part["thought_signature"] = signature
        parts.append(part)
    return parts


def _arguments(text: str | None) -> dict[str, Any]:
    """OpenAI sends arguments as JSON text, Gemini wants an object; anything else is kept as text."""
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {"arguments": text}
    return value if isinstance(value, dict) else {"arguments": value}


def _tool_result(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = names.get(call_id or "") or message.get("name")
    if not name:
        raise InvalidRequest(f"tool message refers to tool_call_id {call_id!r}, which no earlier assistant "
                             "message called", param="messages")
    return {"function_response": {"name": name, "response": _result(_text(message.get("content")))}}


def _result(text: str) -> dict[str, Any]:
    """Gemini's response is an object: JSON objects pass as they are, anything else as {"output": ...}."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {"output": text}
    return value if isinstance(value, dict) else {"output": value}


def _text(content: Any) -> str:
    return "".join(p.get("text", "") for p in content) if isinstance(content, list) else str(content or "")


_SAME = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed", "n": "candidate_count",
         "presence_penalty": "presence_penalty", "frequency_penalty": "frequency_penalty"}


def generation_config(params: dict[str, Any], system: dict[str, Any] | None,
                      safety: list[dict[str, str]]) -> dict[str, Any]:
    """OpenAI sampling, limit, format and tool fields as a GenerateContentConfig dict.

    Fields Gemini has no counterpart for (logit_bias, logprobs, user, parallel_tool_calls, ...) are
    dropped. Our retries govern, so the SDK's own function calling loop is off.
    """
    config: dict[str, Any] = {"automatic_function_calling": {"disable": True}}
    if system:
        config["system_instruction"] = system
    config.update({theirs: params[ours] for ours, theirs in _SAME.items() if params.get(ours) is not None})
    limit = params.get("max_completion_tokens") or params.get("max_tokens")
    if limit:
        config["max_output_tokens"] = limit
    stop = params.get("stop")
    if stop:
        config["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    config.update(response_format(params.get("response_format")))
    config.update(tool_config(params))
    if safety:
        config["safety_settings"] = safety
    return config


def response_format(fmt: dict[str, Any] | None) -> dict[str, Any]:
    kind = (fmt or {}).get("type")
    if kind == "json_object":
        return {"response_mime_type": "application/json"}
    if kind == "json_schema":
        schema = ((fmt or {}).get("json_schema") or {}).get("schema")
        return {"response_mime_type": "application/json", **({"response_json_schema": schema} if schema else {})}
    return {}


def tool_config(params: dict[str, Any]) -> dict[str, Any]:
    """`tools` (or legacy `functions`) as function declarations, `tool_choice` as the calling mode."""
    declarations = [_declaration(tool) for tool in params.get("tools") or ()]
    declarations += [_function(f) for f in params.get("functions") or ()]
    if not declarations:
        return {}
    out: dict[str, Any] = {"tools": [{"function_declarations": declarations}]}
    choice = params.get("tool_choice", params.get("function_call"))
    if choice is not None:
        out["tool_config"] = {"function_calling_config": calling_mode(choice)}
    return out


def _declaration(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type", "function") != "function":
        raise InvalidRequest(f"Gemini supports function tools only, not {tool.get('type')!r}", param="tools")
    return _function(tool.get("function") or {})


def _function(function: dict[str, Any]) -> dict[str, Any]:
    """Parameters go as full JSON Schema (`parameters_json_schema`), not Gemini's smaller OpenAPI subset."""
    out: dict[str, Any] = {"name": function.get("name") or ""}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parameters_json_schema"] = function["parameters"]
    return out


_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def calling_mode(choice: str | dict[str, Any]) -> dict[str, Any]:
    """auto/none/required/{"function": {"name"}}/allowed_tools as a FunctionCallingConfig dict."""
    if isinstance(choice, str) and choice in _MODES:
        return {"mode": _MODES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = [(t.get("function") or {}).get("name") for t in allowed.get("tools") or ()]
        return {"mode": _MODES.get(allowed.get("mode", "auto"), "AUTO"), "allowed_function_names": names}
    name = ((choice.get("function") or {}).get("name") or choice.get("name")) if isinstance(choice, dict) else None
    if name:
        return {"mode": "ANY", "allowed_function_names": [name]}
    raise InvalidRequest(f"unsupported tool_choice {choice!r}", param="tool_choice")


def safety_settings(mapping: Mapping[str, str], categories: Iterable[str],
                    thresholds: Iterable[str]) -> list[dict[str, str]]:
    """GEMINI_SAFETY_SETTINGS ({"harassment": "block_none", ...}) as the API's list; unknown names raise.

    Names may be given short or in full ("dangerous_content" or "HARM_CATEGORY_DANGEROUS_CONTENT";
    "only_high" or "BLOCK_ONLY_HIGH"). `categories` and `thresholds` are the SDK's enum values.
    """
    categories, thresholds = set(categories), set(thresholds)
    return [{"category": _full_name(k, "HARM_CATEGORY_", categories, "category"),
             "threshold": _full_name(v, "BLOCK_", thresholds, "threshold")} for k, v in mapping.items()]


def _full_name(value: str, prefix: str, known: set[str], what: str) -> str:
    name = str(value).strip().upper().replace("-", "_")
    for candidate in (name, prefix + name):
        if candidate in known:
            return candidate
    raise ValueError(f"GEMINI_SAFETY_SETTINGS: unknown {what} {value!r}; use one of {', '.join(sorted(known))}")


# ---------------------------------------------------------------- response

FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                      "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR"})
NOT_FINISHED = frozenset({"", "FINISH_REASON_UNSPECIFIED", "CONTINUATION"})


def finish_reason(reason: str, called: bool) -> str:
    """Gemini's FinishReason as OpenAI's: stop, length, content_filter or tool_calls."""
    if reason in FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if called else "stop"


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class _Choice:
    started: bool = False
    calls: int = 0
    finished: bool = False


class StreamMapper:
    """Folds one Gemini stream into events; `signatures` collects the thought signature of each call id."""

    def __init__(self, new_id: Callable[[], str] = new_call_id) -> None:
        self.new_id = new_id
        self.choices: dict[int, _Choice] = {}
        self.usage: Any = None
        self.signatures: dict[str, bytes] = {}

    def events(self, response: Any) -> list[Event]:
        """The events of one `GenerateContentResponse` chunk; raises for a blocked prompt."""
        if response.usage_metadata is not None:
            self.usage = response.usage_metadata
        if not response.candidates:
            _raise_if_blocked(response.prompt_feedback)
            return []
        out: list[Event] = []
        for candidate in response.candidates:
            out += self._candidate(candidate)
        return out

    def finish(self) -> list[Event]:
        """After the last chunk: usage, or an error when a choice never finished (the stream was cut)."""
        if not self.choices or not all(choice.finished for choice in self.choices.values()):
            raise UpstreamStreamError("Gemini stream ended before the reply was complete")
        return [usage_of(self.usage)] if self.usage is not None else []

    def _candidate(self, candidate: Any) -> list[Event]:
        index = candidate.index or 0
        choice = self.choices.setdefault(index, _Choice())
        parts = candidate.content.parts if candidate.content is not None else None
        out = [delta for delta in (self._part(index, choice, part) for part in parts or ()) if delta]
        reason = _name(candidate.finish_reason)
        if reason not in NOT_FINISHED:
            choice.finished = True
            out.append(Delta(choice=index, finish_reason=finish_reason(reason, choice.calls > 0)))
        if out and not choice.started:
            out[0].role = "assistant"
            choice.started = True
        return out

    def _part(self, index: int, choice: _Choice, part: Any) -> Delta | None:
        if part.thought:  # thought summaries are not part of the reply
            return None
        call = part.function_call
        if call is not None:
            call_id = call.id or self.new_id()
            if part.thought_signature:
                self.signatures[call_id] = part.thought_signature
            arguments = orjson.dumps(call.args or {}).decode()
            choice.calls += 1
            return Delta(choice=index, tool_calls=[ToolCallDelta(choice.calls - 1, call_id, call.name, arguments)])
        return Delta(choice=index, content=part.text) if part.text else None


def _raise_if_blocked(feedback: Any) -> None:
    reason = _name(getattr(feedback, "block_reason", None))
    if reason and reason != "BLOCKED_REASON_UNSPECIFIED":
        detail = getattr(feedback, "block_reason_message", None) or "the prompt was blocked"
        raise UpstreamHTTPError(400, f"Gemini blocked the prompt (block_reason {reason}): {detail}",
                                type="invalid_request_error", code="content_filter")


def usage_of(meta: Any) -> Usage:
    """Gemini's usage as OpenAI's: thinking tokens are completion tokens, shown as reasoning_tokens."""
    thoughts = meta.thoughts_token_count or 0
    details: dict[str, Any] = {}
    if thoughts:
        details["completion_tokens_details"] = {"reasoning_tokens": thoughts}
    if meta.cached_content_token_count:
        details["prompt_tokens_details"] = {"cached_tokens": meta.cached_content_token_count}
    prompt = (meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0)
    return Usage(prompt, (meta.candidates_token_count or 0) + thoughts, details or None)


def _name(value: Any) -> str:
    """An SDK enum member, or the raw string the SDK keeps for values it does not know yet."""
    return "" if value is None else str(getattr(value, "value", value))
