"""What a web page in the user's browser may make the proxy do: nothing, unless its origin is allowed.

A page on any site can make the browser send requests to `http://127.0.0.1:8000`. Three rules
stop it (pure functions here; `app.routes.guard` applies them to every request):

- `Origin`: browsers name the page's origin on every cross-site request (and on every POST);
  non-browser clients send none. A request whose origin is not in CORS_ORIGINS is refused, and
  CORS preflights are answered for the allowed origins only. A page the proxy serves itself
  (`/ui`) is same-origin: its `Origin` names the host it sent the request to. That is trusted
  only for a host ALLOWED_HOSTS names (the loopback names by default), never through its `*`:
  a rebound name would match its own origin too.
- Content type: the "simple" types a page may send without a preflight (`text/plain`, form
  encodings) are refused, and so is any other body that does not declare JSON (415). The one
  exception is a multipart upload to UPLOAD_PATHS (a document): a page elsewhere still cannot
  send one, because its request carries its `Origin`, refused above unless allowed.
- `Host`: DNS rebinding points a hostile name at 127.0.0.1; the browser then sends that name in
  `Host`. Only ALLOWED_HOSTS are served: by default the loopback names when the proxy is bound
  to a loopback address, else any.

    >>> policy = BrowserPolicy.build(origins=["http://localhost:3000"], hosts=[], bind_host="127.0.0.1")
    >>> policy.host_allowed("localhost:8000"), policy.host_allowed("evil.example")
    (True, False)
    >>> policy.origin_allowed("http://localhost:3000"), policy.origin_allowed("https://evil.example")
    (True, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from app.auth import is_loopback

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
ANY = "*"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# What a page may send cross-site without a preflight (https://fetch.spec.whatwg.org/#cors-safelisted-request-header)
SIMPLE_TYPES = frozenset({"text/plain", "application/x-www-form-urlencoded", "multipart/form-data"})
# JSON, and JSON lines for chat-file imports
JSON_TYPES = frozenset({"application/json", "application/jsonl", "application/x-ndjson", "application/x-jsonlines",
                        "application/ndjson", "application/jsonlines"})
ALLOWED_METHODS = "GET, POST, PUT, DELETE, OPTIONS"
EXPOSED_HEADERS = ("x-session-id, x-provider, x-request-id, retry-after, retry-after-ms, x-ratelimit-limit-requests, "
                   "x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, "
                   "x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens")
PREFLIGHT_MAX_AGE = "600"
UPLOAD_PATHS = frozenset({"/v1/documents"})  # where a multipart/form-data body is the API


@dataclass(frozen=True, slots=True)
class BrowserPolicy:
    origins: frozenset[str]
    hosts: frozenset[str]

    @classmethod
    def build(cls, *, origins: Iterable[str], hosts: Iterable[str], bind_host: str) -> BrowserPolicy:
        chosen = [h.strip().lower() for h in hosts if h.strip()]
        if not chosen:
            chosen = list(LOOPBACK_NAMES) if is_loopback(bind_host) else [ANY]
        return cls(origins=frozenset(o.strip().rstrip("/").lower() for o in origins if o.strip()),
                   hosts=frozenset(h.strip("[]") for h in chosen))

    def host_allowed(self, host: str | None) -> bool:
        return ANY in self.hosts or self.host_listed(host)

    def host_listed(self, host: str | None) -> bool:
        """Whether ALLOWED_HOSTS names this host itself (its `*` does not count)."""
        name = host_name(host or "")
        return bool(name) and (name in self.hosts or any(_subdomain(name, h) for h in self.hosts))

    def origin_allowed(self, origin: str) -> bool:
        return ANY in self.origins or origin.strip().rstrip("/").lower() in self.origins


def same_origin(origin: str, host: str | None) -> bool:
    """Whether a page's origin is this server itself: its host and port are the request's `Host`.

        >>> same_origin("http://127.0.0.1:8000", "127.0.0.1:8000")
        True
        >>> same_origin("http://127.0.0.1:3000", "127.0.0.1:8000")
        False
    """
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or not host or "/" in rest:
        return False
    return rest == host.strip().lower()


def host_name(host: str) -> str:
    """The name in a `Host` header, without port or IPv6 brackets, lower-cased.

        >>> host_name("LocalHost:8000"), host_name("[::1]:8000"), host_name("127.0.0.1")
        ('localhost', '::1', '127.0.0.1')
    """
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _subdomain(name: str, allowed: str) -> bool:
    """`.example.com` in ALLOWED_HOSTS allows example.com and every name under it."""
    return allowed.startswith(".") and (name == allowed[1:] or name.endswith(allowed))


def media_type(content_type: str | None) -> str:
    """`application/json; charset=utf-8` -> `application/json`."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def body_refused(method: str, content_type: str | None, path: str = "") -> str | None:
    """Why a request's body is refused (415), or None. A body without a content type is let through
    (only scripts can send one, and the browser names their origin); the JSON parser judges it."""
    if method not in BODY_METHODS or content_type is None:
        return None
    kind = media_type(content_type)
    if kind == "multipart/form-data" and path in UPLOAD_PATHS:
        return None
    if kind in JSON_TYPES or (kind.startswith("application/") and kind.endswith("+json")):
        return None
    if kind in SIMPLE_TYPES:
        return f"a {kind} body is not accepted: send JSON with Content-Type: application/json"
    return f"the body must be JSON (Content-Type: application/json), not {kind or 'an empty type'}"


def preflight_headers(requested_headers: str | None) -> dict[str, str]:
    """The answer to an allowed origin's CORS preflight (with `cors_headers`): any of our methods,
    the headers it asked for."""
    headers = {"access-control-allow-methods": ALLOWED_METHODS, "access-control-max-age": PREFLIGHT_MAX_AGE}
    if requested_headers:
        headers["access-control-allow-headers"] = requested_headers
    return headers


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    """What every response to an allowed origin carries, so its page can read the answer and our headers."""
    return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
            (b"access-control-expose-headers", EXPOSED_HEADERS.encode())]
