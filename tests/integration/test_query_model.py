"""EMBEDDING_QUERY_INT8 switches the running proxy's query model (the health report names it)."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(("query_int8", "name"), [(True, "onnx-int8"), (False, "onnx")])
def test_the_setting_switches_the_query_model(fake, start_proxy, query_int8, name):
    url = start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                      consolidate_interval_seconds=0, embedding_backend="onnx", embedding_query_int8=query_int8)
    body = httpx.get(url.removesuffix("/v1") + "/health").json()
    assert body["components"]["embedder"] == f"ok ({name}, 384 dims)"
