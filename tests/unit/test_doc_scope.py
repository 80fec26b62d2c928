"""Who may see an upload: scopes by key, and file names that cannot name a path."""

from __future__ import annotations

import pytest

from app.auth import Principal
from app.documents.scope import ScopeRefused, may_change, may_read, safe_name, scope_for

ANON, ALICE, ROOT = Principal(None), Principal("t-a"), Principal("t-r", admin=True)


@pytest.mark.parametrize("scope, principal, expected", [
    (None, ANON, (None, None)), ("global", ANON, (None, None)), ("tenant", ANON, (None, None)),
    (None, ALICE, ("t-a", None)), ("tenant", ALICE, ("t-a", None)), ("session:s1", ALICE, ("t-a", "s1")),
    (" global ", ROOT, (None, None)), ("session:my story", ANON, (None, "my story")),
])
def test_scope_for(scope, principal, expected):
    assert scope_for(scope, principal) == expected


@pytest.mark.parametrize("scope, principal, error", [
    ("global", ALICE, ScopeRefused), ("everyone", ANON, ValueError), ("session:", ALICE, ValueError),
    ("session:a/b", ALICE, ValueError),
])
def test_scope_refused(scope, principal, error):
    with pytest.raises(error):
        scope_for(scope, principal)


@pytest.mark.parametrize("owner, principal, read, change", [
    (None, ALICE, True, False), ("t-a", ALICE, True, True), ("t-b", ALICE, False, False),
    ("t-b", ROOT, True, True), (None, ANON, True, True),
])
def test_who_may_read_and_change(owner, principal, read, change):
    assert (may_read(owner, principal), may_change(owner, principal)) == (read, change)


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf", "..\\x.pdf", "..", "", "  ", "a\x00.txt", "a\u202e.txt",
                                  "x" * 300 + ".md"])
def test_unsafe_names(name):
    with pytest.raises(ValueError):
        safe_name(name)


@pytest.mark.parametrize("name", ["manual.pdf", "Lore book (v2).md", "résumé.docx", "a..b.txt"])
def test_safe_names(name):
    assert safe_name(name) == name
