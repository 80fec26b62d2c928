"""Moving every conversation from the SQLite data directory into PostgreSQL (`memory-proxy migrate-store`).

Each conversation is copied whole, in one transaction, as it is: ids, positions, superseded
messages, scores, embeddings and piece vectors (`PgStore.import_session`). A conversation the
database already holds at least as many messages of is skipped, so running it again is harmless
and an interrupted run resumes where it stopped.

    report = await migrate_store(Path("data"), "postgresql://user:pass@host/memory")
    report.copied, report.skipped, report.messages
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from app.memory.store.postgres.store import PgStore
from app.memory.store.sqlite.store import Store


@dataclass(slots=True)
class MigrationReport:
    copied: int = 0  # conversations copied now
    skipped: int = 0  # already in the database
    messages: int = 0  # messages copied now (superseded ones included)


def _held(stats) -> int:
    return stats.messages + stats.superseded


async def migrate_store(data_dir: Path, url: str, *, limit: int | None = None, progress: bool = True,
                        pool_size: int = 4) -> MigrationReport:
    """Copy the conversations of `data_dir` into the database at `url` (at most `limit` copied now)."""
    if not (Path(data_dir) / "registry.sqlite").exists():
        raise FileNotFoundError(f"no conversations in {data_dir} (registry.sqlite is missing)")
    report = MigrationReport()
    async with Store(Path(data_dir), max_open=8) as source, PgStore(url, pool_size=pool_size) as target:
        keys = sorted(await source.all_keys())
        sizes = {key: _held(await source.stats(key)) for key in keys}
        with tqdm(total=len(keys), unit="conv", desc="conversations", disable=not progress) as conversations, \
                tqdm(total=sum(sizes.values()), unit="msg", desc="messages", disable=not progress) as messages:
            for key in keys:
                if limit is not None and report.copied >= limit:
                    break
                copied = await _copy_one(source, target, key, sizes[key])
                report.copied += copied
                report.skipped += not copied
                report.messages += sizes[key] if copied else 0
                conversations.update(1)
                messages.update(sizes[key])
    return report


async def _copy_one(source: Store, target: PgStore, key: str, size: int) -> bool:
    """Copy one conversation unless the database already holds as many of its messages."""
    if await target.get_session(key) is not None and _held(await target.stats(key)) >= size:
        return False
    info = await source.get_session(key)
    if info is None:
        return False
    return await target.import_session(info, await source.meta(key), await source.messages(key, include_superseded=True),
                                       await source.summaries(key, include_superseded=True),
                                       await source.persona_chunks(key))
