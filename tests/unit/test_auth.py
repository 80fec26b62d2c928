"""API keys: parsing (clear and `sha256:`), constant-time matching, tenants and admin keys."""

from __future__ import annotations

import hashlib

import pytest

from app.auth import ANONYMOUS, KeyRing, bearer_token, is_loopback, key_digest, tenant_of

HASHED = "sha256:" + hashlib.sha256(b"sk-alice").hexdigest()


@pytest.mark.parametrize("entry, digest", [
    ("sk-alice", hashlib.sha256(b"sk-alice").digest()),
    ("  sk-alice ", hashlib.sha256(b"sk-alice").digest()),
    (HASHED, hashlib.sha256(b"sk-alice").digest()),
    (HASHED.upper().replace("SHA256:", "sha256:"), hashlib.sha256(b"sk-alice").digest()),
    ("SHA256:" + "ab" * 32, bytes.fromhex("ab" * 32)),
])
def test_a_key_stands_for_its_digest(entry, digest):
    assert key_digest(entry) == digest


@pytest.mark.parametrize("entry", ["", "   ", "sha256:abc", "sha256:" + "zz" * 32, "sha256:" + "ab" * 33])
def test_malformed_keys_are_refused(entry):
    with pytest.raises(ValueError):
        key_digest(entry)


@pytest.mark.parametrize("header, token", [
    ("Bearer sk-1", "sk-1"), ("bearer sk-1", "sk-1"), ("BEARER   sk-1  ", "sk-1"), (None, None), ("", None),
    ("Bearer", None), ("Bearer   ", None), ("Basic dXNlcjpwYXNz", None), ("sk-1", None),
])
def test_the_bearer_token_is_read_from_the_header(header, token):
    assert bearer_token(header) == token


def test_the_right_key_is_its_tenant_and_a_wrong_or_missing_one_is_nobody():
    ring = KeyRing(["sk-alice", "sk-bob"])
    alice, bob = ring.authenticate("Bearer sk-alice"), ring.authenticate("Bearer sk-bob")
    assert alice is not None and bob is not None and alice.tenant != bob.tenant
    assert not alice.admin and alice.keyed
    assert ring.authenticate("Bearer sk-alicE") is None
    assert ring.authenticate("Bearer sk-alice-and-more") is None
    assert ring.authenticate(None) is None and ring.authenticate("Basic x") is None


def test_the_clear_and_the_hashed_form_of_a_key_are_one_tenant():
    clear = KeyRing(["sk-alice"]).authenticate("Bearer sk-alice")
    hashed = KeyRing([HASHED]).authenticate("Bearer sk-alice")
    assert clear == hashed
    assert KeyRing([HASHED]).authenticate("Bearer " + HASHED) is None  # the digest is not a key


def test_the_tenant_id_never_holds_the_key_or_its_digest():
    digest = key_digest("sk-alice")
    tenant = tenant_of(digest)
    assert tenant.startswith("t-") and len(tenant) == 18
    assert "alice" not in tenant and tenant[2:] not in digest.hex()


def test_admin_keys_are_keys_with_the_admin_flag():
    ring = KeyRing(["sk-alice", "sk-both"], admin_keys=["sk-root", "sk-both"])
    assert ring.authenticate("Bearer sk-root").admin
    assert ring.authenticate("Bearer sk-both").admin
    assert not ring.authenticate("Bearer sk-alice").admin
    assert KeyRing([], admin_keys=["sk-root"]).enabled


def test_with_no_keys_everyone_is_anonymous():
    ring = KeyRing()
    assert not ring.enabled
    assert ring.authenticate(None) is ANONYMOUS and ring.authenticate("Bearer anything") is ANONYMOUS
    assert ANONYMOUS.tenant is None and not ANONYMOUS.admin and not ANONYMOUS.keyed


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("app.localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.5", False),
    ("example.com", False), ("", False),
])
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback
