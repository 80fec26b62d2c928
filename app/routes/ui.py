"""`GET /ui`: the memory inspector, a static page shipped in the package (`app/ui/static`).

    GET /ui                    the page
    GET /ui/static/{name}      its scripts and style sheet

The files hold no data and are served without a key (app.routes.guard); the page asks for a key,
keeps it in the tab's session storage and sends it as `Authorization: Bearer` with each call
to the JSON API, like any client. Only the listed files are served (no paths are read from the
request), with a policy that lets the page run its own scripts and talk only to this server,
and never be framed by another site.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from app.errors import NotFound

router = APIRouter()

SCRIPTS = ("app.js", "api.js", "dom.js", "charts.js", "sessions.js", "conversation.js", "preview.js", "report.js")
FILES = {**{name: "text/javascript" for name in SCRIPTS}, "app.css": "text/css"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _read(name: str) -> bytes:
    return resources.files("app.ui").joinpath("static", name).read_bytes()


@router.get("/ui", include_in_schema=False)
async def page() -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/ui/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    kind = FILES.get(name)
    if kind is None:
        raise NotFound(f"no file `{name}` in the inspector", code="not_found")
    return Response(_read(name), media_type=f"{kind}; charset=utf-8", headers=SECURITY_HEADERS)
