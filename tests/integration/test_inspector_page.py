"""The inspector's files at /ui: served without a key, under a strict policy, and the page's own
requests are same-origin while every other web page is still refused (see test_browser_guard)."""

from __future__ import annotations

import httpx
import pytest

KEY = "sk-page-test"


@pytest.fixture
def keyed(fake, start_proxy) -> str:
    """The proxy's root URL, keys in use."""
    return start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0, api_keys=[KEY]).removesuffix("/v1")


def test_the_page_and_its_files_need_no_key_and_carry_a_strict_policy(keyed):
    page = httpx.get(f"{keyed}/ui")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Memory inspector" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "connect-src 'self'" in policy
    assert page.headers["x-frame-options"] == "DENY"
    for name in ("app.js", "api.js", "conversation.js", "app.css"):
        file = httpx.get(f"{keyed}/ui/static/{name}")
        assert file.status_code == 200, name
    assert httpx.get(f"{keyed}/ui/static/app.js").headers["content-type"].startswith("text/javascript")


@pytest.mark.parametrize("path", ["/ui/static/nothing.js", "/ui/static/..%2f..%2fmain.py", "/ui/static/index.html.bak"])
def test_only_the_listed_files_are_served(keyed, path):
    answer = httpx.get(keyed + path)
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_the_data_still_needs_the_key(keyed):
    assert httpx.get(f"{keyed}/v1/sessions").status_code == 401
    assert httpx.post(f"{keyed}/ui").status_code in (401, 405)  # only GET is open
    assert httpx.get(f"{keyed}/ui/other").status_code == 401


def test_the_page_own_requests_are_same_origin(keyed):
    host = keyed.removeprefix("http://")
    auth = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.put(f"{keyed}/v1/sessions/own/persona", json={"persona": "A lighthouse keeper."},
                       headers={**auth, "Origin": keyed})
    assert answer.status_code == 200
    assert "access-control-allow-origin" not in answer.headers  # no CORS: the page is ours
    assert httpx.get(f"{keyed}/ui/static/app.js", headers={"Origin": keyed}).status_code == 200
    refused = httpx.put(f"{keyed}/v1/sessions/own/persona", content='{"persona": "x"}',
                        headers={**auth, "Origin": keyed, "Content-Type": "text/plain"})
    assert refused.status_code == 415  # the body rule still holds for the page's own requests
    port = host.rsplit(":", 1)[1]
    for origin in (f"http://127.0.0.1:{int(port) + 1}", "http://evil.example", f"http://localhost:{port}"):
        other = httpx.put(f"{keyed}/v1/sessions/own/persona", json={"persona": "x"},
                          headers={**auth, "Origin": origin})
        assert other.status_code == 403, origin
    rebound = httpx.get(f"{keyed}/ui", headers={"Host": f"evil.example:{port}",
                                                "Origin": f"http://evil.example:{port}"})
    assert rebound.status_code == 400  # a rebound name is refused before its origin could match


def test_on_every_address_only_a_named_host_makes_requests_same_origin(fake, start_proxy):
    """Bound to 0.0.0.0 with no ALLOWED_HOSTS every Host is served, so a rebound name's page would
    match its own origin: the page's requests count as its own only for a host that is named."""
    open_to_all = start_proxy(upstream_base_url=fake.url, host="0.0.0.0").removesuffix("/v1")
    origin = open_to_all  # http://127.0.0.1:<port>, the page's own origin
    assert httpx.get(f"{open_to_all}/ui/static/app.js", headers={"Origin": origin}).status_code == 403
    named = start_proxy(upstream_base_url=fake.url, host="0.0.0.0", allowed_hosts=["127.0.0.1"]).removesuffix("/v1")
    assert httpx.get(f"{named}/ui/static/app.js", headers={"Origin": named}).status_code == 200
    assert httpx.get(f"{named}/v1/models", headers={"Origin": named}).status_code == 200
