"""Gemini's error answers as our error types: pure functions, no I/O.

Google answers errors as `{"error": {"code", "message", "status", "details"}}`; `upstream_error`
turns one into the `UpstreamHTTPError` the router retries, fails over or shows the client in the
OpenAI envelope: a rejected key is 401 `invalid_api_key`, quota is 429 with Google's own retry
delay (`retry_delay`), anything else keeps its status.
"""

from __future__ import annotations

from typing import Any

from app.errors import UpstreamError, UpstreamHTTPError


def upstream_error(code: int, body: Any, retry_after: float | None = None) -> UpstreamError:
    """A Gemini error answer (https://ai.google.dev/gemini-api/docs/troubleshooting) as our error type.

    A rejected key becomes 401 authentication_error (Google answers 400 API_KEY_INVALID, or 403 for a
    missing, leaked or restricted key); quota becomes 429 with the RetryInfo delay; 5xx stay retryable.
    """
    error = body.get("error", body) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {"message": str(error)}
    message = str(error.get("message") or f"Gemini answered HTTP {code}")
    status = str(error.get("status") or "")
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    if _key_rejected(code, message, details):
        return UpstreamHTTPError(401, f"Gemini rejected GEMINI_API_KEY: {message}",
                                 type="authentication_error", code="invalid_api_key")
    if code == 429:
        return UpstreamHTTPError(429, f"Gemini quota or rate limit exceeded ({status or 429}): {message}",
                                 code="rate_limit_exceeded", retry_after=retry_delay(details) or retry_after)
    return UpstreamHTTPError(code or 502, f"Gemini error {code} {status}: {message}".replace("  ", " "),
                             code=status.lower() or None, retry_after=retry_after)


def _key_rejected(code: int, message: str, details: list[dict[str, Any]]) -> bool:
    if any(str(d.get("reason", "")).startswith("API_KEY_") for d in details):  # API_KEY_INVALID, ..._BLOCKED
        return True
    lowered = message.lower()
    return code in (400, 401, 403) and ("api key" in lowered or "unregistered callers" in lowered)


def retry_delay(details: list[dict[str, Any]]) -> float | None:
    """`google.rpc.RetryInfo.retryDelay` ("23s", "0.250s") in seconds."""
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = str(detail.get("retryDelay", "")).removesuffix("s")
            try:
                return max(0.0, float(delay))
            except ValueError:
                return None
    return None
