"""Reading request bodies: the size limit, JSON parsing and schema errors as OpenAI-style 400s."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError

from app.errors import InvalidRequest, RequestTooLarge
from app.limits import MessageLimits, check_messages

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
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    check_nesting(data)
    return data


MAX_DEPTH = 64  # objects and arrays inside one another; JSON schemas of tools stay far below it


def check_nesting(data: Any, limit: int = MAX_DEPTH) -> None:
    """400 naming the field where objects and arrays nest deeper than `limit`.

        >>> check_nesting({"tools": [{"a": [[[1]]]}]}, limit=4)
        Traceback (most recent call last):
        ...
        app.errors.InvalidRequest: 'tools.0.a.0' nests deeper than 4 levels of objects and arrays
    """
    path = too_deep(data, limit)
    if path is not None:
        field = ".".join(str(p) for p in path[:6]) + (".…" if len(path) > 6 else "")
        raise InvalidRequest(f"'{field}' nests deeper than {limit} levels of objects and arrays",
                             param=field, code="nesting_too_deep")


def too_deep(data: Any, limit: int) -> tuple | None:
    """The path to the first container nested `limit` deep, or None (iterative: any depth is safe)."""
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= limit and isinstance(value, (dict, list)):
            return path
        if isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value) if isinstance(v, (dict, list)))
    return None


async def read_model(request: Request, model: type[Model], limit: int, *,
                     messages: MessageLimits | None = None) -> Model:
    """The body as `model`; with `messages`, its `messages` list is held to those limits first
    (before the schema, so a 100,000-message body is refused without being validated)."""
    data = await read_json(request, limit)
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if messages is not None and isinstance(data.get("messages"), list):
        check_messages(data["messages"], messages)
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


DOCUMENTED: dict[str, type[BaseModel]] = {}  # body models named in the OpenAPI document's components


def request_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads its body itself: the model's schema, published.

    The body is read by `read_model` (size limit first, then JSON, then the schema), so FastAPI
    cannot see it; this names it in the document, and `app.main` adds the model's schema to the
    document's components.
    """
    DOCUMENTED[model.__name__] = model
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def component_schemas() -> dict[str, Any]:
    """The JSON schemas of every documented body model and the models they refer to."""
    out: dict[str, Any] = {}
    for name, model in DOCUMENTED.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[name] = schema
    return out


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"the request body is larger than the limit of {limit} bytes (MAX_REQUEST_BYTES)")
