"""Pure: who may see a document, from the `scope` an upload asks for and the caller's key.

    owner, session_id = scope_for("session:my-story", Principal("t-1"))   # ("t-1", "my-story")
    safe_name("../../etc/passwd")                                          # ValueError

Scopes: `global` (every conversation; with keys in use only an admin key may give it),
`tenant` (every conversation of the uploading key) and `session:<id>` (one conversation of the
uploading key). Without a scope, an upload is the caller's tenant's when keys are in use, else
global. A tenant's documents are never shown to another tenant (app.documents.index.visible).
"""

from __future__ import annotations

import unicodedata

from app.auth import Principal
from app.sessions import validate_session_id

MAX_NAME = 255


class ScopeRefused(ValueError):
    """The caller may not give that scope (only admin keys make documents global)."""


def scope_for(scope: str | None, principal: Principal) -> tuple[str | None, str | None]:
    """(owner, session id) for an upload; ValueError for a malformed scope, ScopeRefused if not allowed.

        >>> scope_for(None, Principal(None)), scope_for(None, Principal("t-1")), scope_for("tenant", Principal("t-1"))
        ((None, None), ('t-1', None), ('t-1', None))
        >>> scope_for("global", Principal("t-9", admin=True)), scope_for("session:s1", Principal("t-1"))
        ((None, None), ('t-1', 's1'))
    """
    scope = (scope or "").strip()
    if scope in ("", "tenant"):
        return principal.tenant, None
    if scope == "global":
        if principal.keyed and not principal.admin:
            raise ScopeRefused("only an admin key may add a global document; use scope 'tenant' or 'session:<id>'")
        return None, None
    if scope.startswith("session:"):
        return principal.tenant, validate_session_id(scope[len("session:"):])
    raise ValueError(f"scope must be 'global', 'tenant' or 'session:<id>', not {scope[:80]!r}")


def may_read(doc_owner: str | None, principal: Principal) -> bool:
    return principal.admin or doc_owner is None or doc_owner == principal.tenant


def may_change(doc_owner: str | None, principal: Principal) -> bool:
    return principal.admin or doc_owner == principal.tenant


def safe_name(name: str | None) -> str:
    """An upload's file name, refused (ValueError) when it names a path or hides characters.

        >>> safe_name("manual v2.pdf")
        'manual v2.pdf'
        >>> safe_name("../../etc/passwd")
        Traceback (most recent call last):
        ...
        ValueError: the file name may not contain a path ('/', '\\\\' or '..'): '../../etc/passwd'
    """
    name = (name or "").strip()
    if not name:
        raise ValueError("the upload has no file name")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name.split("."):
        raise ValueError(f"the file name may not contain a path ('/', '\\\\' or '..'): {name[:120]!r}")
    if len(name) > MAX_NAME or any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise ValueError(f"the file name must be at most {MAX_NAME} printable characters")
    return name
