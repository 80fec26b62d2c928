"""The upstream's secrets are masked in any message, whole or quoted in part."""

from __future__ import annotations

import pytest

from app.redaction import MASK, redact, secrets_of

KEY = "sk-live-1234567890abcdefXYZ"


@pytest.mark.parametrize("text, expected", [
    (f"Incorrect API key provided: {KEY}.", f"Incorrect API key provided: {MASK}."),
    (f"bad key '{KEY}' and again {KEY}", f"bad key '{MASK}' and again {MASK}"),
    (f"Incorrect API key provided: {KEY[:12]}...", f"Incorrect API key provided: {MASK}..."),
    (f"key ending {KEY[-10:]}", f"key ending {MASK}"),
    ("Incorrect API key provided: sk-l***XYZ.", "Incorrect API key provided: sk-l***XYZ."),  # a mask, no quote
    ("nothing to hide here", "nothing to hide here"),
])
def test_the_key_and_long_runs_of_it_are_masked(text, expected):
    assert redact(text, secrets_of(KEY)) == expected


def test_user_info_in_a_base_url_is_a_secret():
    secrets = secrets_of("", "https://bob:hunter2-long-password@llm.internal/v1")
    assert "hunter2-long-password" in secrets and "bob:hunter2-long-password" in secrets
    text = "connect to https://bob:hunter2-long-password@llm.internal/v1 failed"
    assert "hunter2" not in redact(text, secrets)


def test_a_short_secret_is_masked_whole():
    assert redact("key abc1 rejected", ("abc1",)) == f"key {MASK} rejected"


def test_no_secrets_no_change():
    assert secrets_of("", "http://127.0.0.1:8001/v1") == ()
    assert redact("anything", ()) == "anything"
