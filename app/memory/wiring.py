"""Memory's components built from settings, opened in order and closed in reverse by the lifespan.

store -> embedder -> recall -> job queue (`background.jobs`: local, or PostgreSQL's shared table)
with its workers: background writer, summarizer, consolidation -> janitor (idle eviction) ->
documents (app.documents.wiring: the knowledge base shares the embedder).
Closing drains the writer and the queue first, so nothing is left half-written, then closes the
embedder and the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

from app.config import Settings
from app.memory.background.consolidation import Consolidator
from app.memory.background.job_metrics import JobCollector, queue_health
from app.memory.background.jobs import open_jobs
from app.memory.ram import give_back, over_budget
from app.memory.background.tiers import TierPolicy
from app.tasks import cancel

log = logging.getLogger("app.memory")


async def start_memory(state: Any, settings: Settings, stack: AsyncExitStack, router: Any):
    from app.emotion import EmotionScorer
    from app.importance import score_importance
    from app.memory.api import MemoryAPI
    from app.memory.embedding.embedder import Embedder, load_backend
    from app.memory.people import People
    from app.memory.persona import PersonaMemory, PersonaSettings
    from app.memory.search.recall import Recall, RecallSettings
    from app.memory.service import MemoryService
    from app.memory.store import open_store
    from app.memory.working import WorkingMemory
    from app.memory.background.writer import Writer

    store = open_store(settings)
    await store.open()
    stack.push_async_callback(store.aclose)
    backend = await asyncio.to_thread(load_backend, settings.embedding_model, settings.embedding_backend,
                                      settings.model_cache_dir, settings.embedding_threads,
                                      query_int8=settings.embedding_query_int8,
                                      stored_int8=settings.embedding_stored_int8)
    embedder = Embedder(backend, cache_size=settings.embedding_cache_size,
                        background_threads=settings.embedding_background_threads,
                        background_nice=settings.embedding_background_nice)
    await embedder.start()
    stack.push_async_callback(embedder.aclose)
    scorer = EmotionScorer.load()
    working = WorkingMemory(settings.working_memory_messages, settings.session_idle_seconds)
    persona_memory = PersonaMemory(store, embedder, PersonaSettings.from_settings(settings))
    people = People(store)
    recall = Recall(store, embedder, scorer, RecallSettings.from_settings(settings), persona_memory=persona_memory,
                    people=people)
    jobs = open_jobs(settings)
    writer = Writer(store, embedder, scorer, jobs=jobs, importance=score_importance, on_scored=recall.scored,
                    sweep_every=settings.jobs_sweep_seconds, context_on_query_model=settings.embedding_context_int8)
    summarizer = _summarizer(settings, store, embedder, jobs, router, recall)
    policy = TierPolicy(working_messages=settings.working_memory_messages,
                        drop_embedding_days=settings.short_term_embedding_days)
    consolidator = Consolidator(store, working.keys, policy, settings.consolidate_interval_seconds, jobs=jobs)
    await jobs.start()
    stack.push_async_callback(jobs.stop)
    await writer.start()  # submits what a previous run left pending
    stack.push_async_callback(writer.stop)
    await consolidator.start()
    stack.push_async_callback(consolidator.stop)
    _start_janitor(stack, working, recall, settings.session_idle_seconds, settings.memory_ram_mb * 2**20)
    documents = await _start_documents(state, settings, embedder, stack)
    memory = MemoryService(store=store, working=working, recall=recall, writer=writer, settings=settings,
                           summarizer=summarizer, persona_memory=persona_memory, documents=documents,
                           people=people)
    state.memory_api = MemoryAPI(store=store, working=working, recall=recall, writer=writer,
                                 summarizer=summarizer, policy=policy, invalidate=memory.forget_key,
                                 persona_memory=persona_memory, people=people, catch_up=memory.catch_up)
    state.memory = memory
    _register_health(state, store, embedder, jobs)
    _register_gauges(state, working, recall, writer, embedder, jobs)
    _register_cache_counters(state, memory.cache)
    _register_pool_gauges(state, store)
    return memory


def _summarizer(settings: Settings, store, embedder, jobs, router, recall):
    if not settings.summary_enabled:
        return None
    from app.memory.background.summarizer import Summarizer, router_completion

    complete = router_completion(router) if router.providers else None
    return Summarizer(store, embedder, jobs=jobs, complete=complete, every=settings.summary_every,
                      model=settings.summary_model, on_written=recall.summaries_changed)


async def _start_documents(state, settings: Settings, embedder, stack: AsyncExitStack):
    state.documents = None
    if not settings.docs_enabled:
        return None
    from app.documents.wiring import start_documents

    state.documents = await start_documents(settings, embedder, stack, getattr(state, "metrics", None),
                                            getattr(state, "pools", None))
    return state.documents


def _start_janitor(stack: AsyncExitStack, working, recall, idle_seconds: float, ram_bytes: int) -> None:
    """Idle conversations leave RAM after `idle_seconds`; past `ram_bytes`, the least recently used."""
    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(RAM_SWEEP_SECONDS, max(1.0, idle_seconds / 4)))
            idle = working.evict_idle(time.monotonic())
            for key in idle:
                recall.forget_session(key)
            if recall.people is not None:
                recall.people.evict_idle(idle_seconds)
            if idle + (evict_over_budget(working, recall, ram_bytes) if ram_bytes else []):
                give_back()

    stack.push_async_callback(cancel, asyncio.create_task(sweep(), name="memory-janitor"))


RAM_SWEEP_SECONDS = 5.0


def evict_over_budget(working, recall, ram_bytes: int) -> list[str]:
    """Drop the least recently used conversations' caches until the rest fit `ram_bytes`."""
    sizes = recall.ram_sizes()
    for key, chars in working.content_bytes().items():
        sizes[key] = sizes.get(key, 0) + chars
    people = recall.people
    sizes.update(people.ram_sizes() if people is not None else {})  # not in the LRU order: they leave first
    dropped = over_budget(working.keys(), sizes, ram_bytes)
    for key in dropped:
        if people is not None and people.drop_named(key):
            continue
        working.forget(key)
        recall.forget_session(key)
    if dropped:
        log.info("caches of %d conversations left RAM (MEMORY_RAM_MB)", len(dropped))
    return dropped


def _register_health(state, store, embedder, jobs) -> None:
    async def storage() -> str:
        return await store.health()

    async def embedding() -> str:
        return f"ok ({embedder.backend_name}, {embedder.dim} dims)"

    async def queue() -> str:
        return queue_health(jobs.backend, await jobs.state())

    state.health_checks = {"storage": storage, "embedder": embedding, "jobs": queue, **state.health_checks}


def _register_gauges(state, working, recall, writer, embedder, jobs) -> None:
    metrics = getattr(state, "metrics", None)
    if metrics is None:
        return
    metrics.gauge("proxy_active_sessions", "Sessions held in working memory", lambda: len(working))
    metrics.gauge("proxy_working_memory_messages", "Messages held in working memory", working.message_count)
    metrics.gauge("proxy_indexed_messages", "Messages in the in-RAM search indexes", recall.indexed_count)
    if recall.people is not None:
        metrics.gauge("proxy_people_indexed_messages", "Messages in the in-RAM indexes of people (across conversations)",
                      recall.people.indexed_count)
    metrics.gauge("proxy_embedding_queue_depth", "Texts waiting for the embedding model",
                  lambda: embedder.queue_depth)
    metrics.gauge("proxy_memory_writer_queue_depth", "Sessions waiting for background embedding and scoring",
                  lambda: writer.depth)
    metrics.gauge("proxy_background_failures", "Background memory jobs that failed (writer, summaries, tiers)",
                  lambda: writer.stats.failures + sum(s.failed for s in jobs.stats.values()))
    metrics.registry.register(JobCollector(jobs))


def _register_cache_counters(state, cache) -> None:
    """How often other replicas' writes had to be folded into this process's caches."""
    metrics = getattr(state, "metrics", None)
    if metrics is None:
        return
    metrics.counter("proxy_cache_refreshes_total", "Conversations whose caches were brought up to date "
                    "with other replicas' writes", lambda: cache.refreshes)
    metrics.counter("proxy_cache_rows_total", "Message rows folded into caches from other replicas' writes",
                    lambda: cache.rows)
    metrics.counter("proxy_sync_replans_total", "Sync plans made again because another replica wrote first",
                    lambda: cache.replans)


def _register_pool_gauges(state, store) -> None:
    """The conversation store's PostgreSQL pool: connections open and in use (none on SQLite)."""
    metrics = getattr(state, "metrics", None)
    pool_stats = getattr(store, "pool_stats", None)
    if metrics is None or pool_stats is None:
        return
    metrics.gauge("proxy_db_pool_connections", "Connections the store's PostgreSQL pool holds open",
                  lambda: pool_stats()["size"])
    metrics.gauge("proxy_db_pool_in_use", "Connections of the store's PostgreSQL pool in use",
                  lambda: pool_stats()["in_use"])
    metrics.gauge("proxy_db_pool_max", "Connections the store's PostgreSQL pool may open (DATABASE_POOL_SIZE)",
                  lambda: pool_stats()["max"])
