"""What the browser rules allow: hosts, origins and body types."""

from __future__ import annotations

import pytest

from app.browser import BrowserPolicy, body_refused, host_name, media_type, same_origin


@pytest.mark.parametrize("header, name", [
    ("127.0.0.1:8000", "127.0.0.1"), ("LOCALHOST", "localhost"), ("[::1]:8000", "::1"), ("[::1]", "::1"),
    ("api.example.com:443", "api.example.com"), ("", ""),
])
def test_host_names(header, name):
    assert host_name(header) == name


@pytest.mark.parametrize("bind, host, allowed", [
    ("127.0.0.1", "127.0.0.1:8000", True), ("127.0.0.1", "localhost:8000", True), ("127.0.0.1", "[::1]:8000", True),
    ("127.0.0.1", "evil.example", False), ("127.0.0.1", "evil.example:8000", False), ("127.0.0.1", None, False),
    ("localhost", "localhost", True), ("::1", "127.0.0.1", True),
    ("0.0.0.0", "evil.example", True), ("0.0.0.0", None, True),
])
def test_default_hosts_are_the_loopback_names_only_when_bound_to_loopback(bind, host, allowed):
    assert BrowserPolicy.build(origins=[], hosts=[], bind_host=bind).host_allowed(host) is allowed


@pytest.mark.parametrize("host, allowed", [
    ("proxy.example.com", True), ("PROXY.example.com:8443", True), ("example.com", True), ("a.example.com", True),
    ("localhost", False), ("example.com.evil.test", False), ("notexample.com", False),
])
def test_allowed_hosts_as_set(host, allowed):
    policy = BrowserPolicy.build(origins=[], hosts=["proxy.example.com", ".example.com"], bind_host="127.0.0.1")
    assert policy.host_allowed(host) is allowed


@pytest.mark.parametrize("origins, origin, allowed", [
    ([], "http://localhost:3000", False), ([], "null", False),
    (["http://localhost:3000"], "http://localhost:3000", True), (["http://localhost:3000/"], "http://LOCALHOST:3000", True),
    (["http://localhost:3000"], "http://localhost:3001", False), (["http://localhost:3000"], "https://evil.example", False),
    (["*"], "https://anything.example", True),
])
def test_origins(origins, origin, allowed):
    assert BrowserPolicy.build(origins=origins, hosts=[], bind_host="127.0.0.1").origin_allowed(origin) is allowed


@pytest.mark.parametrize("method, content_type, refused", [
    ("POST", "application/json", False), ("POST", "application/json; charset=utf-8", False),
    ("POST", "Application/JSON", False), ("POST", "application/vnd.api+json", False),
    ("POST", "application/jsonl", False), ("POST", "application/x-ndjson", False), ("POST", None, False),
    ("POST", "text/plain", True), ("POST", "text/plain;charset=UTF-8", True),
    ("POST", "application/x-www-form-urlencoded", True), ("POST", "multipart/form-data; boundary=x", True),
    ("PUT", "text/plain", True), ("PATCH", "application/xml", True), ("POST", "", True),
    ("GET", "text/plain", False), ("DELETE", "text/plain", False), ("OPTIONS", "text/plain", False),
])
def test_bodies_must_declare_json(method, content_type, refused):
    assert (body_refused(method, content_type) is not None) is refused


@pytest.mark.parametrize("path, content_type, refused", [
    ("/v1/documents", "multipart/form-data; boundary=x", False), ("/v1/documents", "text/plain", True),
    ("/v1/documents/x", "multipart/form-data; boundary=x", True), ("/v1/chat/completions", "multipart/form-data", True),
])
def test_only_the_documents_upload_takes_a_multipart_body(path, content_type, refused):
    assert (body_refused("POST", content_type, path) is not None) is refused


def test_media_type():
    assert media_type("Text/Plain; charset=utf-8") == "text/plain" and media_type(None) == ""


@pytest.mark.parametrize("origin, host, same", [
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True), ("HTTP://LOCALHOST:8000", "localhost:8000", True),
    ("https://proxy.example.com", "proxy.example.com", True), ("http://[::1]:8000", "[::1]:8000", True),
    ("http://127.0.0.1:3000", "127.0.0.1:8000", False), ("http://localhost:8000", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", None, False), ("null", "127.0.0.1:8000", False),
    ("ftp://127.0.0.1:8000", "127.0.0.1:8000", False), ("http://127.0.0.1:8000/x", "127.0.0.1:8000", False),
    ("http://evil.example", "127.0.0.1", False),
])
def test_same_origin_is_the_request_own_host(origin, host, same):
    assert same_origin(origin, host) is same


@pytest.mark.parametrize("bind, hosts, host, listed", [
    ("127.0.0.1", [], "127.0.0.1:8000", True), ("127.0.0.1", [], "localhost:8000", True),
    ("0.0.0.0", [], "192.168.1.5:8000", False),  # allowed through `*`, but not named
    ("0.0.0.0", ["192.168.1.5"], "192.168.1.5:8000", True), ("0.0.0.0", [".example.com"], "a.example.com", True),
    ("0.0.0.0", ["*"], "anything.example", False),
])
def test_a_listed_host_is_named_not_matched_by_the_wildcard(bind, hosts, host, listed):
    assert BrowserPolicy.build(origins=[], hosts=hosts, bind_host=bind).host_listed(host) is listed
