"""The command line: `python -m app.cli serve|prepare|import|report` (also `memory-proxy ...`).

    memory-proxy serve                      # start the service (HOST, PORT from the environment/.env)
    memory-proxy prepare                    # export the embedding model to ONNX once, ahead of time
"""

from __future__ import annotations

import argparse
import os
import sys

from app.config import Settings


def serve(settings: Settings, _: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                log_level=settings.log_level.lower(), access_log=False)
    return 0


def prepare(settings: Settings, _: argparse.Namespace) -> int:
    """Ready the embedding model offline, so the first start does not pay for it."""
    from app.memory.embedder import prepare as prepare_model

    path = prepare_model(settings.embedding_model, settings.model_cache_dir)
    print(f"embedding model ready: {path}")
    return 0


COMMANDS = {"serve": serve, "prepare": prepare}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="memory-proxy", description=__doc__.splitlines()[0])
    sub = root.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="start the service")
    sub.add_parser("prepare", help="export the embedding model ahead of time")
    return root


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = parser().parse_args(argv)
    return COMMANDS[args.command](Settings(), args)


if __name__ == "__main__":
    sys.exit(main())
