"""Where conversations are kept: one interface (`protocol.ConversationStore`), two implementations.

    store = open_store(settings)   # PostgreSQL when DATABASE_URL is set, else SQLite files in DATA_DIR
    await store.open()
"""

from __future__ import annotations

from typing import Any

from app.memory.store.protocol import ConversationStore


def open_store(settings: Any) -> ConversationStore:
    """The store the settings ask for (not yet opened)."""
    from app.memory.store.postgres.pool import is_postgres_url

    if is_postgres_url(settings.database_url):
        from app.memory.store.postgres.store import PgStore

        return PgStore(settings.database_url, pool_size=settings.database_pool_size)
    from app.memory.store.sqlite.store import Store

    return Store(settings.data_dir, max_open=settings.store_max_open)
