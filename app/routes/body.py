"""Reading request bodies: the size limit, JSON parsing and schema errors as OpenAI-style 400s."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.errors import InvalidRequest, RequestTooLarge

Model = TypeVar("Model", bound=BaseModel)


async def read_json(request: Request, limit: int) -> Any:
    """The body as JSON; 413 past `limit` bytes (checked before and while reading), 400 if malformed."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None


async def read_model(request: Request, model: type[Model], limit: int) -> Model:
    data = await read_json(request, limit)
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc) from None


def validation_error(exc: ValidationError) -> InvalidRequest:
    """The first schema violation, naming the field the way OpenAI does (`messages.0.role`)."""
    first = exc.errors()[0]
    param = ".".join(str(p) for p in first["loc"] if not str(p).startswith("function-"))
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return InvalidRequest(f"Invalid value for '{param}': {first['msg']}{suffix}", param=param or None,
                          code="invalid_value")


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the request body is larger than the limit of {limit} bytes (MAX_REQUEST_BYTES)")
