"""The command line: `python -m app.cli serve|prepare|import|report` (also `memory-proxy ...`).

    memory-proxy serve                      # start the service (HOST, PORT from the environment/.env)
    memory-proxy serve --workers 4          # four processes (with DATABASE_URL: PostgreSQL only)
    memory-proxy prepare                    # export the embedding model to ONNX once, ahead of time
    memory-proxy import chat.jsonl --session my-story   # a SillyTavern chat into a running proxy
    memory-proxy import chat.jsonl --session my-story --user alex   # ... as one of alex's chats
    memory-proxy docs add manual.pdf lore/*.md          # documents into a running proxy's knowledge base
    memory-proxy report --days 7            # the performance report, from the request log
    memory-proxy migrate-store --to postgresql://user:pass@host/memory   # SQLite conversations into PostgreSQL
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from app.config import Settings


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Serve in this process, or in `--workers N` processes (PostgreSQL only: `app.workers`)."""
    import uvicorn

    from app.workers import refusal

    workers = args.workers or settings.workers
    refused = refusal(settings, workers)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    options = dict(host=settings.host, port=settings.port, log_level=settings.log_level.lower(), access_log=False)
    if workers == 1:
        from app.main import create_app

        uvicorn.run(create_app(settings), **options)
        return 0
    os.environ["WORKERS"] = str(workers)  # each worker reads its settings from the same environment
    uvicorn.run("app.main:app_from_env", factory=True, workers=workers, **options)
    return 0


def prepare(settings: Settings, _: argparse.Namespace) -> int:
    """Ready the embedding model offline, so the first start does not pay for it."""
    from app.memory.embedding.embedder import prepare as prepare_model
    from app.memory.embedding.embedder import prepare_int8

    path = prepare_model(settings.embedding_model, settings.model_cache_dir)
    print(f"embedding model ready: {path}")
    if settings.embedding_query_int8 or settings.embedding_stored_int8:
        print(f"int8 model ready: {prepare_int8(settings.embedding_model, settings.model_cache_dir)}")
    return 0


def import_chat(settings: Settings, args: argparse.Namespace) -> int:
    """Load a SillyTavern chat into the running proxy in batches, with a progress bar."""
    import httpx
    from tqdm import tqdm

    from app.memory.importer import parse_sillytavern

    chat = parse_sillytavern(open(args.file, encoding="utf-8").read())
    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    target = f"{url}/v1/sessions/{args.session}/messages"
    key = args.api_key or os.environ.get("MEMORY_PROXY_API_KEY") or _clear_key(settings)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if args.user:
        headers["X-User-Id"] = args.user
    with httpx.Client(timeout=120, headers=headers) as client, tqdm(total=len(chat.messages), unit="msg", desc="importing") as bar:
        for start in range(0, len(chat.messages), args.batch):
            batch = chat.messages[start:start + args.batch]
            response = client.post(target, json={"messages": [_wire(m) for m in batch]})
            if response.status_code >= 400:
                print(f"import failed: {response.status_code} {response.text}", file=sys.stderr)
                return 1
            bar.update(len(batch))
    print(f"imported {len(chat.messages)} messages into session {args.session} ({chat.skipped} skipped)")
    return 0


def _clear_key(settings: Settings) -> str | None:
    """The first key the local settings hold in clear, if any (hashed ones cannot be sent)."""
    keys = [*settings.admin_api_keys, *settings.api_keys]
    return next((k for k in keys if not k.lower().startswith("sha256:")), None)


def _wire(message: dict) -> dict:
    return {k: v for k, v in message.items() if k in ("role", "content", "name")}


def report(settings: Settings, args: argparse.Namespace) -> int:
    """Print the performance report for the last N days, read straight from the request log."""
    import asyncio
    import json
    import time

    from app.observability.report import build_report

    async def run() -> dict:
        async with _request_log(settings) as log:
            now, span = time.time(), args.days * 86400
            return build_report(await log.rows(now - span, now + 1), await log.rows(now - 2 * span, now - span),
                                args.days)

    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


@contextlib.asynccontextmanager
async def _request_log(settings: Settings):
    """The request log the server writes: DATA_DIR/requests.sqlite, or PostgreSQL's with DATABASE_URL."""
    from app.memory.store.postgres.pool import is_postgres_url, open_pool
    from app.observability.requestlog import RequestLog

    if is_postgres_url(settings.database_url):
        from app.observability.requestlog_postgres import PgRequestLog

        pool = await open_pool(settings.database_url, max_size=2)
        log = PgRequestLog(pool)
    else:
        pool, log = None, RequestLog(settings.data_dir / "requests.sqlite")
    await log.start()
    try:
        yield log
    finally:
        await log.stop()
        if pool is not None:
            await pool.close()


def docs(settings: Settings, args: argparse.Namespace) -> int:
    """Upload documents to the running proxy, then follow their indexing with a progress bar."""
    from app.documents.client import add_documents

    url = (args.url or f"http://{settings.host}:{settings.port}").rstrip("/")
    key = args.api_key or os.environ.get("MEMORY_PROXY_API_KEY") or _clear_key(settings)
    return add_documents(url, key, args.files, scope=args.scope, timeout=args.timeout)


def migrate_store(settings: Settings, args: argparse.Namespace) -> int:
    """Copy every conversation of DATA_DIR into PostgreSQL; safe to run again, resumes after a stop."""
    import asyncio

    from app.memory.store.migrate import migrate_store as run
    from app.memory.store.postgres.pool import is_postgres_url

    if not is_postgres_url(args.to):
        print("--to must be a postgresql:// URL", file=sys.stderr)
        return 2
    done = asyncio.run(run(settings.data_dir, args.to, limit=args.limit))
    print(f"copied {done.copied} conversations ({done.messages} messages), {done.skipped} already there")
    return 0


COMMANDS = {"serve": serve, "prepare": prepare, "import": import_chat, "report": report, "docs": docs,
            "migrate-store": migrate_store}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="memory-proxy", description=__doc__.splitlines()[0])
    sub = root.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="start the service")
    srv.add_argument("--workers", type=int, help="worker processes (default WORKERS; more than one needs "
                                                 "DATABASE_URL)")
    sub.add_parser("prepare", help="export the embedding model ahead of time")
    imp = sub.add_parser("import", help="load a SillyTavern chat (.jsonl) into a running proxy")
    imp.add_argument("file")
    imp.add_argument("--session", required=True, help="the session id to load it into")
    imp.add_argument("--user", help="the person whose conversation it is (X-User-Id): their other chats recall it")
    imp.add_argument("--url", help="the proxy's address (default http://HOST:PORT)")
    imp.add_argument("--batch", type=int, default=200)
    imp.add_argument("--api-key", help="the key to send (default MEMORY_PROXY_API_KEY, else the first key "
                                       "in clear in ADMIN_API_KEYS / API_KEYS)")
    doc = sub.add_parser("docs", help="the knowledge base of documents").add_subparsers(dest="action", required=True)
    add = doc.add_parser("add", help="upload documents to a running proxy and wait until they are indexed")
    add.add_argument("files", nargs="+")
    add.add_argument("--scope", help="global, tenant or session:<id> (default: the key's tenant, or global)")
    add.add_argument("--url", help="the proxy's address (default http://HOST:PORT)")
    add.add_argument("--api-key", help="the key to send (default as for import)")
    add.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for indexing")
    rep = sub.add_parser("report", help="the performance report from the request log")
    rep.add_argument("--days", type=float, default=7.0)
    mig = sub.add_parser("migrate-store", help="copy the conversations of DATA_DIR into PostgreSQL")
    mig.add_argument("--to", required=True, metavar="DATABASE_URL", help="postgresql://user:pass@host:port/db")
    mig.add_argument("--limit", type=int, help="copy at most this many conversations now")
    return root


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parser().parse_args(argv)
    return COMMANDS[args.command](Settings(), args)


if __name__ == "__main__":
    sys.exit(main())
