"""The error tree, and the one place that renders the OpenAI error envelope.

    ProxyError                       base: status, type, code, message, param
    ├── InvalidRequest         400   malformed JSON, schema violations, bad headers
    ├── Unauthorized           401   missing or unknown API key
    ├── Forbidden              403   a browser origin not in CORS_ORIGINS; an admin-only route
    ├── NotFound               404   unknown route, session or model (code model_not_found)
    ├── RequestTooLarge        413   body over MAX_REQUEST_BYTES
    ├── UnsupportedMediaType   415   a body that is not JSON (text/plain, form encodings)
    ├── RateLimited            429   RATE_LIMIT_RPM / RATE_LIMIT_TPM reached: Retry-After and x-ratelimit-*
    ├── NotConfigured          503   no upstream configured: says which setting to fill in
    └── UpstreamError                anything the model server did
        ├── UpstreamHTTPError        the upstream answered an error: its status and message relayed
        ├── UpstreamUnavailable 502  connection refused, DNS, reset before an answer
        ├── UpstreamTimeout     504  no answer in time
        └── UpstreamStreamError 502  the stream broke after it began (sent as an SSE error frame)

The envelope is always `{"error": {"message", "type", "param", "code"}}`
(https://platform.openai.com/docs/guides/error-codes).
"""

from __future__ import annotations

from typing import Any


class ProxyError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 status: int | None = None, type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param)


class InvalidRequest(ProxyError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(ProxyError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class Forbidden(ProxyError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(ProxyError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class RequestTooLarge(ProxyError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(ProxyError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class RateLimited(ProxyError):
    """A key's own limit; `headers` carries Retry-After and OpenAI's x-ratelimit-* (type as OpenAI
    names it: "requests" or "tokens")."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, type: str, retry_after: float, headers: dict[str, str]) -> None:
        super().__init__(message, type=type)
        self.retry_after = retry_after
        self.headers = headers


class NotConfigured(ProxyError):
    status = 503
    type = "server_error"
    code = "upstream_not_configured"


class StoreUnavailable(ProxyError):
    """The database is out of reach for now; nothing of the request was stored, so a retry is safe."""
    status = 503
    type = "server_error"
    code = "store_unavailable"
    retry_after = 1.0


class UpstreamError(ProxyError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retry_after: float | None = None
    retryable = False
    provider: str = ""


class UpstreamHTTPError(UpstreamError):
    """The upstream answered with an error status; relayed as it is."""

    def __init__(self, status: int, message: str, *, type: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, status=status, type=type or _type_for(status), code=code)
        self.retry_after = retry_after
        self.retryable = status == 429 or status >= 500


class UpstreamUnavailable(UpstreamError):
    status = 502
    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    retryable = True


class UpstreamStreamError(UpstreamError):
    code = "upstream_stream_error"


def _type_for(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status < 500:
        return "invalid_request_error"
    return "server_error"


def error_body(message: str, type: str = "server_error", code: str | None = None,
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def from_exception(exc: BaseException) -> ProxyError:
    """Any exception as a ProxyError, without leaking internals for unexpected ones."""
    if isinstance(exc, ProxyError):
        return exc
    return ProxyError(f"internal error: {type(exc).__name__}", code="internal_error")
