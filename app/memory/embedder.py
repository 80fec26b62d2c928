"""The embedding service every request shares: batched, cached, off the event loop.

Callers await `embed()`; texts already seen come from an LRU cache, the rest join one queue. A
single worker task takes everything waiting (up to `max_batch` texts), runs the backend once in
one dedicated thread (the event loop never blocks on the model) and resolves each caller's
future. Twenty requests arriving together cost one model call, not twenty; a text asked for
twice while in flight is encoded once. The lifespan owns it:

    embedder = Embedder(load_backend(model, "auto", cache_dir, threads=1), cache_size=8192)
    await embedder.start()
    vectors = await embedder.embed(["hello", "goodbye"])   # float32 (2, 384), unit rows
    query = await embedder.embed_one("what did I say about the sea?")
    await embedder.aclose()                                # serves what is queued, then stops

Scripts without an event loop use `embedder.embed_blocking(texts)` (same cache, no worker).
Export the ONNX model ahead of time with `python -m app.memory.embedder --prepare --cache-dir DIR`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.memory.embedding_backends import (
    EmbeddingBackend,
    OnnxBackend,
    TorchBackend,
    load_backend,
    prepare,
    resolve_model_path,
)

__all__ = ["Embedder", "EmbeddingBackend", "OnnxBackend", "TorchBackend", "load_backend", "prepare",
           "resolve_model_path", "text_key"]

log = logging.getLogger("app.memory.embedder")
_STOP = object()  # queued by aclose(): everything before it is still served
_WAKE = object()  # background work is waiting


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
                 background_batch: int = 2) -> None:
        self.backend = backend
        self.max_batch = max(1, max_batch)
        self.background_batch = max(1, background_batch)
        self._background: collections.deque = collections.deque()
        self.cache = VectorCache(cache_size)
        self.cache_hits = 0
        self.cache_misses = 0
        self._queue: asyncio.Queue | None = None
        self._inflight: dict[bytes, asyncio.Future] = {}
        self._worker: asyncio.Task | None = None
        self._thread: ThreadPoolExecutor | None = None

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
        """Start the worker task and its thread on the running loop."""
        if self._worker is not None:
            raise RuntimeError("Embedder already started")
        self._queue = asyncio.Queue()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._worker = asyncio.create_task(self._work(), name="embedder")

    async def aclose(self) -> None:
        """Serve the texts already queued, then stop the worker and its thread (cancelled: at once)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        while self._background:  # background work stays pending in the store; no need to finish it
            key, _, future = self._background.popleft()
            self._settle(key, future, RuntimeError("Embedder closed"))
        self._queue.put_nowait(_STOP)
        try:
            await asyncio.wait([worker])
        except asyncio.CancelledError:
            worker.cancel()  # its callers are failed, not left waiting
            raise
        finally:
            self._thread.shutdown(wait=False, cancel_futures=True)

    async def embed(self, texts: Sequence[str], *, background: bool = False) -> np.ndarray:
        """One unit vector per text, in order: float32 (len(texts), dim).

        `background=True` (the memory writer) yields to requests: queries on the time-to-first-token
        path are always encoded first, and background batches are kept small so a query that
        arrives meanwhile waits little.
        """
        if self._worker is None or self._worker.done():
            raise RuntimeError("Embedder is not running: await start() first (or it was closed)")
        keys = [text_key(t) for t in texts]
        found = self._lookup(keys)
        waiting = {k: self._request(k, t, background) for k, t in zip(keys, texts) if k not in found}
        if waiting:
            await asyncio.wait(waiting.values())  # unlike gather, a cancelled caller cancels no one else
            found.update((k, f.result()) for k, f in waiting.items())
        return self._stack(keys, found)

    async def embed_one(self, text: str) -> np.ndarray:
        """One text's unit vector, shape (dim,)."""
        return (await self.embed([text]))[0]

    def embed_blocking(self, texts: Sequence[str]) -> np.ndarray:
        """Like `embed`, in the calling thread, for scripts with no event loop."""
        keys = [text_key(t) for t in texts]
        found = self._lookup(keys)
        missing = {k: t for k, t in zip(keys, texts) if k not in found}
        if missing:
            for key, vector in zip(missing, self._encode(list(missing.values()))):
                self.cache.put(key, vector)
                found[key] = vector
        return self._stack(keys, found)

    def _lookup(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        found = self.cache.get_many(keys)
        self.cache_hits += sum(k in found for k in keys)
        self.cache_misses += sum(k not in found for k in keys)
        return found

    def _request(self, key: bytes, text: str, background: bool = False) -> asyncio.Future:
        future = self._inflight.get(key)
        if future is None:
            future = self._inflight[key] = asyncio.get_running_loop().create_future()
            if background:
                self._background.append((key, text, future))
                self._queue.put_nowait(_WAKE)
            else:
                self._queue.put_nowait((key, text, future))
        return future

    def _stack(self, keys: list[bytes], found: dict[bytes, np.ndarray]) -> np.ndarray:
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self.backend.encode(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.dim):
            raise RuntimeError(f"{self.backend_name} returned shape {vectors.shape} for {len(texts)} texts")
        return vectors

    async def _work(self) -> None:
        try:
            stop = False
            while not stop:
                batch, stop = await self._next_batch()
                if batch:
                    await self._serve(batch)
        finally:
            self._fail_pending(RuntimeError("Embedder closed"))

    async def _next_batch(self) -> tuple[list[tuple], bool]:
        """Urgent texts first (up to max_batch); else a small background batch."""
        batch: list[tuple] = []
        stop = False
        item = await self._queue.get()
        while True:
            if item is _STOP:
                stop = True
            elif item is not _WAKE:
                batch.append(item)
            if len(batch) >= self.max_batch or self._queue.empty():
                break
            item = self._queue.get_nowait()
        if not batch and self._background:
            batch = [self._background.popleft() for _ in range(min(self.background_batch, len(self._background)))]
            if self._background:
                self._queue.put_nowait(_WAKE)  # more background work: come back after any urgent texts
        if stop and (self._background or not self._queue.empty()):
            self._queue.put_nowait(_STOP)  # serve what is queued before stopping
            stop = False
        return batch, stop

    async def _serve(self, batch: list[tuple]) -> None:
        loop = asyncio.get_running_loop()
        try:
            vectors = await loop.run_in_executor(self._thread, self._encode, [text for _, text, _ in batch])
        except Exception as exc:  # every caller in the batch hears about it; the worker carries on
            log.warning("embedding %d texts failed: %s: %s", len(batch), type(exc).__name__, exc)
            vectors = [exc] * len(batch)
        for (key, _, future), vector in zip(batch, vectors):
            self._settle(key, future, vector)

    def _settle(self, key: bytes, future: asyncio.Future, outcome: np.ndarray | BaseException) -> None:
        self._inflight.pop(key, None)
        if future.done():
            return
        if isinstance(outcome, BaseException):
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
            key, _, future = self._background.popleft()
            self._settle(key, future, error)
        for key, future in list(self._inflight.items()):
            self._settle(key, future, error)


def main(argv: list[str] | None = None) -> int:
    """`python -m app.memory.embedder --prepare --cache-dir DIR [--model NAME_OR_DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m app.memory.embedder", description=main.__doc__)
    parser.add_argument("--prepare", action="store_true", help="export the model to ONNX ahead of time")
    parser.add_argument("--cache-dir", type=Path, default=Path("data/models"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args(argv)
    if not args.prepare:
        parser.error("nothing to do: pass --prepare")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare(args.model, args.cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
