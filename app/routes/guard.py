"""The door every request passes: Host, Origin (and CORS preflights), the body's type, the API key.

    app.add_middleware(Guard, policy=BrowserPolicy.build(...), keys=KeyRing(...))

In that order, so a page in a browser is turned away before anything else is looked at, and a
preflight (which never carries a key) is answered before the key is asked for. The caller's
`Principal` is left in the request's state for the routes (`app.routes.deps.PrincipalDep`);
`GET /health` and the inspector page's files (`GET /ui`, `/ui/static/...`: they hold no data; the
page asks for a key and sends it with each API call) are served without a key. A request whose
`Origin` is the proxy's own host, one that ALLOWED_HOSTS names, comes from that page. Refusals are
OpenAI-style errors: 400 `host_not_allowed`, 403 `origin_not_allowed`, 415
`unsupported_media_type`, 401 `invalid_api_key`.

A pure ASGI middleware (no request object, one pass over the headers): it costs a few
microseconds per request.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import KeyRing
from app.browser import BrowserPolicy, body_refused, cors_headers, preflight_headers, same_origin
from app.errors import Forbidden, InvalidRequest, ProxyError, Unauthorized, UnsupportedMediaType

OPEN = frozenset({("GET", "/health"), ("HEAD", "/health"), ("GET", "/ui")})
OPEN_PREFIX = "/ui/static/"
WANTED = frozenset({b"host", b"origin", b"content-type", b"authorization", b"access-control-request-method",
                    b"access-control-request-headers"})
NO_KEY = ("You didn't provide an API key. Send it in the Authorization header as a Bearer token "
          "(Authorization: Bearer YOUR_KEY); OpenAI clients do this with their api_key setting.")
WRONG_KEY = "Incorrect API key provided. Use one of the keys in API_KEYS or ADMIN_API_KEYS."


class Guard:
    def __init__(self, app: ASGIApp, *, policy: BrowserPolicy, keys: KeyRing) -> None:
        self.app = app
        self.policy = policy
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        origin = headers.get("origin")
        if origin is not None and self._own_page(origin, headers.get("host")):
            origin = None  # the proxy's own page (/ui): no CORS involved
        if origin is not None and self.policy.origin_allowed(origin):
            send = _with_cors(send, origin)
        answer = self._check(scope, headers, origin)
        if answer is not None:
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _own_page(self, origin: str, host: str | None) -> bool:
        """A request from the page this proxy served, at a host ALLOWED_HOSTS names."""
        return same_origin(origin, host) and self.policy.host_listed(host)

    def _check(self, scope: Scope, headers: dict[str, str], origin: str | None) -> Response | None:
        """A response that ends the request here, or None to let it through."""
        method = scope["method"]
        if not self.policy.host_allowed(headers.get("host")):
            return _refuse(InvalidRequest(f"this service does not answer to the host name "
                                          f"{headers.get('host', '')!r} (ALLOWED_HOSTS)", code="host_not_allowed"))
        if origin is not None:
            if not self.policy.origin_allowed(origin):
                return _refuse(Forbidden(f"requests from web pages at {origin} are refused; add the origin to "
                                         "CORS_ORIGINS to allow it", code="origin_not_allowed"))
            if method == "OPTIONS" and "access-control-request-method" in headers:
                return Response(status_code=204,
                                headers=preflight_headers(headers.get("access-control-request-headers")))
        refused = body_refused(method, headers.get("content-type"), scope["path"])
        if refused is not None:
            return _refuse(UnsupportedMediaType(refused))
        if is_open(method, scope["path"]):
            return None
        return self._authenticate(scope, headers.get("authorization"))

    def _authenticate(self, scope: Scope, authorization: str | None) -> Response | None:
        principal = self.keys.authenticate(authorization)
        if principal is None:
            message = NO_KEY if not authorization else WRONG_KEY
            return _refuse(Unauthorized(message), {"WWW-Authenticate": "Bearer"})
        scope.setdefault("state", {})["principal"] = principal
        return None


def is_open(method: str, path: str) -> bool:
    """The routes served without a key: health, and the inspector page's own files."""
    return (method, path) in OPEN or (method == "GET" and path.startswith(OPEN_PREFIX))


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers this middleware reads (first of each), decoded."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in WANTED and name.decode() not in found:
            found[name.decode()] = value.decode("latin-1")
    return found


def _refuse(error: ProxyError, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _with_cors(send: Send, origin: str) -> Send:
    """`send` adding the CORS headers for an allowed origin to the response's start."""
    extra = cors_headers(origin)

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped
