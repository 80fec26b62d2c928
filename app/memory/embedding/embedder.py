"""The embedding service every request shares: batched, cached, off the event loop.

Callers await `embed()`; texts already seen come from an LRU cache, the rest join one queue. A
single worker task takes everything waiting (up to `max_batch` texts), runs the backend once in
one dedicated thread (the event loop never blocks on the model) and resolves each caller's
future. Twenty requests arriving together cost one model call, not twenty; a text asked for
twice while in flight is encoded once.

Background texts (the memory writer's) take a second lane when `background_threads` > 0 and the
backend can make a copy of itself (`with_threads`, the ONNX backend): their own copy of the model
on their own thread, run at a lower CPU priority, so a request's query never waits behind them
and the scheduler hands the cores to requests first. Without a second lane they share the model
and small batches keep a query's wait short. The lifespan owns it:

    embedder = Embedder(load_backend(model, "auto", cache_dir, threads=1), cache_size=8192,
                        background_threads=1)
    await embedder.start()
    vectors = await embedder.embed(["hello", "goodbye"])   # float32 (2, 384), unit rows
    query = await embedder.embed_one("what did I say about the sea?")
    await embedder.aclose()                                # serves what is queued, then stops

A query-only backend (the int8 copy, `load_backend(..., query_int8=True)`) encodes requests'
queries; background texts, the ones stored and searched, go to its float copy (`with_threads`):
on the second lane, or without one on a copy the shared worker keeps. Queries and stored texts
then have their own cache keys, so a stored vector never comes from the int8 model. A text whose
vector only nudges stored ones (a short message read after the turn before it) may ask for the
queries' model at background priority (`query_model=True`): the lane loads its own copy.

Scripts without an event loop use `embedder.embed_blocking(texts)` (same cache, no worker).
Export the ONNX model ahead of time with `python -m app.memory.embedding.embedder --prepare --cache-dir DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.memory.embedding.backends import (
    EmbeddingBackend,
    OnnxBackend,
    TorchBackend,
    load_backend,
    prepare,
    prepare_int8,
    resolve_model_path,
)

__all__ = ["Embedder", "EmbeddingBackend", "OnnxBackend", "TorchBackend", "load_backend", "prepare",
           "prepare_int8", "resolve_model_path", "text_key"]
QUERY_KEY = b"q"  # prefixes a query's cache key when queries have their own (int8) model

log = logging.getLogger("app.memory.embedding.embedder")
_STOP = object()  # queued by aclose(): everything before it is still served
_WAKE = object()  # background work is waiting
# How much lower the background lane runs (nice 0-19): high enough that a request's threads get the
# cores first, while the lane still uses every idle cycle.
BACKGROUND_NICE = 10
# Texts per background-lane batch: no query waits for it, so larger than the shared lane's, but
# small enough that the copy's activations stay modest (8 texts of 256 tokens: ~40 MB at peak;
# texts/s on one thread is the same at 8 as at 32).
LANE_BATCH = 8


def text_key(text: str) -> bytes:
    """The cache key of a text: a 128-bit digest, so the cache never holds the texts themselves."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class VectorCache:
    """A thread-safe LRU map from text key to a read-only vector; size 0 disables it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        with self._lock:
            found = {k: self._items[k] for k in keys if k in self._items}
            for key in found:
                self._items.move_to_end(key)
        return found

    def put(self, key: bytes, vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        vector = vector.copy()  # a row view would pin its whole batch's array in memory
        vector.setflags(write=False)
        with self._lock:
            self._items[key] = vector
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Embedder:
    """Batches concurrent callers into single backend calls; see the module docstring."""

    def __init__(self, backend: EmbeddingBackend, *, cache_size: int = 8192, max_batch: int = 32,
                 background_batch: int = 2, background_threads: int = 0,
                 background_nice: int = BACKGROUND_NICE) -> None:
        self.backend = backend
        self.max_batch = max(1, max_batch)
        self.background_batch = max(1, background_batch)
        self.background_threads = background_threads
        self.background_nice = background_nice
        self.background_backend: EmbeddingBackend | None = None  # the second lane's model, once started
        self.query_only = bool(getattr(backend, "query_only", False))  # stored texts need another model
        self._stored: EmbeddingBackend | None = None  # that model, without a second lane
        self._background: collections.deque = collections.deque()
        self.cache = VectorCache(cache_size)
        self.cache_hits = 0
        self.cache_misses = 0
        self._queue: asyncio.Queue | None = None
        self._inflight: dict[bytes, asyncio.Future] = {}
        self._worker: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._lane: BackgroundLane | None = None

    @property
    def dim(self) -> int:
        return self.backend.dim

    @property
    def backend_name(self) -> str:
        return self.backend.name

    @property
    def queue_depth(self) -> int:
        """Texts waiting for the model (not counting the batch being encoded)."""
        return (self._queue.qsize() if self._queue is not None else 0) + len(self._background)

    async def start(self) -> None:
        """Start the worker task and its thread on the running loop (and the background lane, if any)."""
        if self._worker is not None:
            raise RuntimeError("Embedder already started")
        self._queue = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._worker = asyncio.create_task(self._work(), name="embedder")
        if self.background_threads > 0 and hasattr(self.backend, "with_threads"):
            self._lane = await BackgroundLane.open(self, self.background_threads, self.background_nice)
            self.background_backend = self._lane.backend if self._lane else None
        if self.query_only and self._lane is None:
            await self._open_stored()

    async def _open_stored(self) -> None:
        """Load the float copy for stored texts; failing that, the query model embeds them too."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._stored_backend)
        except Exception as exc:  # requests still work; stored and query vectors then agree
            log.warning("no float model for stored texts (%s: %s); the query model embeds them",
                        type(exc).__name__, exc)
            self.query_only = False

    async def aclose(self) -> None:
        """Serve the texts already queued, then stop the worker and its thread (cancelled: at once)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        while self._background:  # background work stays pending in the store; no need to finish it
            key, _, future, _ = self._background.popleft()
            self._settle(key, future, EmbedderClosed("Embedder closed"))
        if self._lane is not None:
            await self._lane.aclose()
        self._queue.put_nowait(_STOP)
        try:
            await asyncio.wait([worker])
        except asyncio.CancelledError:
            worker.cancel()  # its callers are failed, not left waiting
            raise
        finally:
            self._thread.shutdown(wait=False, cancel_futures=True)

    async def embed(self, texts: Sequence[str], *, background: bool = False, query_model: bool = False) -> np.ndarray:
        """One unit vector per text, in order: float32 (len(texts), dim).

        `background=True` (the memory writer) yields to requests: with a second lane its texts go
        there and a query never waits for them; without one, queries on the time-to-first-token
        path are encoded first and background batches are kept small, so a query waits little.
        `query_model=True` with `background`: encoded by the queries' model (the int8 copy, when
        queries have one) at background priority, for texts whose vectors only nudge stored ones.
        """
        if self._worker is None or self._worker.done():
            raise RuntimeError("Embedder is not running: await start() first (or it was closed)")
        keys = self._keys(texts, background and not query_model)
        found = self._lookup(keys)
        waiting = {k: self._request(k, t, background, query_model) for k, t in zip(keys, texts) if k not in found}
        if waiting:
            await asyncio.wait(waiting.values())  # unlike gather, a cancelled caller cancels no one else
            found.update((k, f.result()) for k, f in waiting.items())
        return self._stack(keys, found)

    async def embed_one(self, text: str) -> np.ndarray:
        """One text's unit vector, shape (dim,)."""
        return (await self.embed([text]))[0]

    def embed_blocking(self, texts: Sequence[str], *, background: bool = False,
                       query_model: bool = False) -> np.ndarray:
        """Like `embed`, in the calling thread, for scripts with no event loop."""
        stored = background and not query_model
        keys = self._keys(texts, stored)
        found = self._lookup(keys)
        missing = {k: t for k, t in zip(keys, texts) if k not in found}
        if missing:
            backend = self._stored_backend() if stored else self.backend
            for key, vector in zip(missing, self._encode(list(missing.values()), backend)):
                self.cache.put(key, vector)
                found[key] = vector
        return self._stack(keys, found)

    def _keys(self, texts: Sequence[str], stored: bool) -> list[bytes]:
        if self.query_only and not stored:
            return [QUERY_KEY + text_key(t) for t in texts]
        return [text_key(t) for t in texts]

    def _stored_backend(self) -> EmbeddingBackend:
        """The model for texts to be stored: the lane's, else the backend (or its float copy)."""
        if self.background_backend is not None:
            return self.background_backend
        if self.query_only and self._stored is None:
            self._stored = self.backend.with_threads(getattr(self.backend, "threads", 0))
        return self._stored or self.backend

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found = self.cache.get_many(keys)
        self.cache_hits += sum(k in found for k in keys)
        self.cache_misses += sum(k not in found for k in keys)
        return found

    def _request(self, key: bytes, text: str, background: bool = False, query_model: bool = False) -> asyncio.Future:
        future = self._inflight.get(key)
        if future is not None:
            if not background:
                self._promote(key)
            return future
        future = self._inflight[key] = asyncio.get_running_loop().create_future()
        if not background:
            self._queue.put_nowait((key, text, future))
            return future
        self._background.append((key, text, future, query_model and self.query_only))
        if self._lane is not None:
            self._lane.wake()
        else:
            self._queue.put_nowait(_WAKE)
        return future

    def _promote(self, key: bytes) -> None:
        """A query wants a text still waiting as background work (the writer may queue the new
        message just before the request asks for it as its query): move it to the query queue, so
        the query never waits at background priority."""
        for item in self._background:
            if item[0] == key:
                self._background.remove(item)
                self._queue.put_nowait(item[:3])
                return

    def _stack(self, keys: list[bytes], found: dict[bytes, np.ndarray]) -> np.ndarray:
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def _encode(self, texts: list[str], backend: EmbeddingBackend | None = None) -> np.ndarray:
        backend = backend or self.backend
        vectors = np.asarray(backend.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise RuntimeError(f"{backend.name} returned shape {vectors.shape} for {len(texts)} texts")
        return vectors

    async def _work(self) -> None:
        try:
            stop = False
            while not stop:
                batch, stop, stored = await self._next_batch()
                if batch:
                    backend = self._stored_backend() if stored else self.backend
                    await self._serve(batch, self._thread, backend)
        finally:
            self._fail_pending(EmbedderClosed("Embedder closed"))

    async def _next_batch(self) -> tuple[list[tuple], bool, bool]:
        """Urgent texts first (up to max_batch); else a small background batch (shared lane only).

        Returns the batch, whether to stop after it, and whether it is texts for the stored model.
        """
        batch: list[tuple] = []
        stop = background = False
        item = await self._queue.get()
        while True:
            if item is _STOP:
                stop = True
            elif item is not _WAKE:
                batch.append(item)
            if len(batch) >= self.max_batch or self._queue.empty():
                break
            item = self._queue.get_nowait()
        if self._background and self._lane is None:
            if not batch:
                batch, on_query_model = self._take_background(self.background_batch)
                background = not on_query_model
            if self._background:  # more (the wake-up may have been drained with urgent texts): come back
                self._queue.put_nowait(_WAKE)
        if stop and (not self._queue.empty() or (self._background and self._lane is None)):
            self._queue.put_nowait(_STOP)  # serve what is queued before stopping
            stop = False
        return batch, stop, background

    def _take_background(self, limit: int) -> tuple[list[tuple], bool]:
        """Up to `limit` waiting background texts for one model, and whether it is the queries' model."""
        query_model = self._background[0][3]
        batch = []
        while self._background and len(batch) < limit and self._background[0][3] == query_model:
            batch.append(self._background.popleft()[:3])
        return batch, query_model

    async def _serve(self, batch: list[tuple], thread: ThreadPoolExecutor, backend: EmbeddingBackend) -> None:
        loop = asyncio.get_running_loop()
        try:
            texts = [text for _, text, _ in batch]
            vectors = await loop.run_in_executor(thread, self._encode, texts, backend)
        except Exception as exc:  # every caller in the batch hears about it; the worker carries on
            log.warning("embedding %d texts failed: %s: %s", len(batch), type(exc).__name__, exc)
            vectors = [exc] * len(batch)
        for (key, _, future), vector in zip(batch, vectors):
            self._settle(key, future, vector)

    def _settle(self, key: bytes, future: asyncio.Future, outcome: np.ndarray | BaseException) -> None:
        self._inflight.pop(key, None)
        if future.done():
            return
        if isinstance(outcome, EmbedderClosed):
            future.set_exception(outcome)
            future.exception()  # a waiter still gets it; no one waiting is no error at shutdown
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            self.cache.put(key, outcome)
            future.set_result(outcome)

    def _fail_pending(self, error: Exception) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _STOP and item is not _WAKE:
                self._settle(item[0], item[2], error)
        while self._background:
            key, _, future, _ = self._background.popleft()
            self._settle(key, future, error)
        for key, future in list(self._inflight.items()):
            self._settle(key, future, error)


class EmbedderClosed(RuntimeError):
    """The embedder stopped before this text's turn: work left pending in the store, not lost."""


class BackgroundLane:
    """The background texts' own model copy and thread, at a lower CPU priority than requests.

    A query never waits for its batches: it runs at once on the embedder's own lane, and the
    scheduler gives the lane's thread whatever CPU the requests leave. The copy costs about 100 MB.
    """

    def __init__(self, embedder: Embedder, backend: EmbeddingBackend, thread: ThreadPoolExecutor) -> None:
        self.embedder = embedder
        self.backend = backend
        self.thread = thread
        self.threads = getattr(backend, "threads", 1)
        self.query_backend: EmbeddingBackend | None = None  # a copy of the queries' model, loaded when needed
        self._ready = asyncio.Event()
        self._ready.set()  # texts may have queued while the copy was loading
        self._task = asyncio.create_task(self._work(), name="embedder-background")

    @classmethod
    async def open(cls, embedder: Embedder, threads: int, nice: int) -> BackgroundLane | None:
        """Load the copy on the lane's own (lowered) thread, so ONNX Runtime's pool inherits its
        priority; None, with a warning, if it cannot be made."""
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder-background",
                                    initializer=lower_priority, initargs=(nice,))
        try:
            backend = await asyncio.get_running_loop().run_in_executor(
                thread, embedder.backend.with_threads, threads)
        except Exception as exc:  # the shared lane still works
            log.warning("no background embedding lane (%s: %s); background texts share the model",
                        type(exc).__name__, exc)
            thread.shutdown(wait=False)
            return None
        return cls(embedder, backend, thread)

    def wake(self) -> None:
        self._ready.set()

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])
        self.thread.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        embedder = self.embedder
        while True:
            await self._ready.wait()
            self._ready.clear()
            while embedder._background:
                batch, query_model = embedder._take_background(LANE_BATCH)
                backend = await self._query_model() if query_model else self.backend
                await embedder._serve(batch, self.thread, backend)

    async def _query_model(self) -> EmbeddingBackend:
        """The lane's copy of the queries' model (the int8 one), loaded on the lane's thread on first use."""
        if self.query_backend is None:
            copy = getattr(self.embedder.backend, "query_copy", None)
            if copy is None:
                return self.embedder.backend
            self.query_backend = await asyncio.get_running_loop().run_in_executor(self.thread, copy, self.threads)
        return self.query_backend


def lower_priority(nice: int) -> None:
    """Raise the calling thread's nice value by `nice` (at most 19): threads it starts later inherit
    it. Linux only, where the value is per thread; elsewhere it would lower the whole process."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
    except OSError as exc:  # a sandbox may forbid it; the lane still works at normal priority
        log.debug("could not lower the background embedding thread's priority: %s", exc)


def main(argv: list[str] | None = None) -> int:
    """`python -m app.memory.embedding.embedder --prepare --cache-dir DIR [--model NAME_OR_DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m app.memory.embedding.embedder", description=main.__doc__)
    parser.add_argument("--prepare", action="store_true", help="export the model to ONNX ahead of time")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/models"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--int8", action="store_true", help="also write the int8 copy for queries")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.error("nothing to do: pass --prepare")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare(args.model, args.cache_dir))
    if args.int8:
        print(prepare_int8(args.model, args.cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
