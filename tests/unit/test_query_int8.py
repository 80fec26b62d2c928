"""The int8 query model: made offline from the shipped float model, close to it, and used for
queries only (stored texts keep the float model's vectors, with or without a second lane)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from app.memory.embedding.embedder import Embedder, load_backend, prepare, prepare_int8, resolve_model_path
from app.memory.embedding.backends import OnnxBackend, export_path, int8_path
from tests.conftest import model_cache_dir

MODEL = "all-MiniLM-L6-v2"
# Lowest cosine between a text's int8 and float vectors. Measured over 300 generated sentences:
# min 0.9865, mean 0.9930; the lowest are the shortest texts ("", "ok": 0.976-0.978). Per-tensor
# weights gave min 0.934 on the same sentences, which this refuses.
MIN_COSINE = 0.97

SENTENCES = [
    "I adopted a grey kitten from the shelter last week.", "The croissants at the corner bakery are flaky.",
    "I'm nervous about my job interview on Monday.", "We booked flights to Lisbon for our summer holiday.",
    "My sister is getting married in June.", "I can't stop worrying about the future.",
    "My laptop crashed and I lost a week of work.", "The garden tomatoes are finally turning red.",
    "My doctor says my blood pressure is too high.", "The rent went up again this year.",
    "what did I say about the sea?", "", "ok", "Melanie painted a sunrise over the lake in 2022 and "
    "gave it to her friend Caroline, who hung it in the hallway of her new flat near the station.",
]


@pytest.fixture(scope="module")
def int8_backend():
    return load_backend(MODEL, "onnx", model_cache_dir(), threads=1, query_int8=True)


def run(embedder: Embedder, body):
    async def main():
        await embedder.start()
        try:
            return await body(embedder)
        finally:
            await embedder.aclose()

    return asyncio.run(main())


def test_prepare_quantizes_the_exported_model_once_beside_it(tmp_path):
    shipped = prepare(MODEL, model_cache_dir())
    exported = export_path(resolve_model_path(MODEL), tmp_path, label=MODEL)
    exported.symlink_to(shipped)  # as if `prepare` had exported it here
    made = prepare_int8(MODEL, tmp_path)
    ops = {node.op_type for node in onnx.load(str(made)).graph.node}
    assert made == int8_path(exported) and made.parent == tmp_path
    assert {"MatMulInteger", "QAttention"} <= ops and "MatMul" not in ops
    assert made.stat().st_size < shipped.stat().st_size
    stamp = made.stat().st_mtime_ns
    assert prepare_int8(MODEL, tmp_path) == made and made.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([exported.name, made.name])  # no temp left


def test_processes_quantizing_at_once_all_end_with_a_whole_model(tmp_path):
    """Workers starting together on a fresh cache each quantize; none may lose its intermediate
    file to another (the quantizer writes `<input>-inferred.onnx` beside its input)."""
    from concurrent.futures import ThreadPoolExecutor

    from app.memory.embedding.backends import quantize_int8

    source = tmp_path / "model.onnx"
    source.symlink_to(prepare(MODEL, model_cache_dir()))
    targets = [tmp_path / f"int8-{i}.onnx" for i in range(3)]
    with ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda target: quantize_int8(source, target), targets))
    for target in targets:
        assert "QAttention" in {node.op_type for node in onnx.load(str(target)).graph.node}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.onnx", *(t.name for t in targets)])


def test_int8_vectors_stay_close_to_the_float_model(onnx_backend, int8_backend):
    exact, quick = onnx_backend.encode(SENTENCES), int8_backend.encode(SENTENCES)
    cosines = (exact * quick).sum(axis=1)
    assert cosines.min() >= MIN_COSINE, cosines
    assert not np.array_equal(exact, quick)  # the int8 model really ran
    assert np.allclose(np.linalg.norm(quick, axis=1), 1.0, atol=1e-5)


def test_int8_keeps_each_query_nearest_neighbours(onnx_backend, int8_backend):
    stored = onnx_backend.encode(SENTENCES[:10])
    queries = ["a new cat at home", "baking pastries", "getting a job", "travel plans", "a family wedding",
               "fear of what is coming", "computer trouble", "vegetables", "a visit to the doctor", "housing costs"]
    exact = np.argmax(onnx_backend.encode(queries) @ stored.T, axis=1)
    quick = np.argmax(int8_backend.encode(queries) @ stored.T, axis=1)
    assert np.array_equal(exact, np.arange(10)) and np.array_equal(quick, exact)  # lower ranks among
    # unrelated sentences may swap (their cosines differ by less than the int8 error)


def test_a_stored_int8_vector_does_not_depend_on_the_texts_it_ran_with(int8_backend):
    copy = int8_backend.query_copy(1)  # the background lane's, for vectors that are stored
    together = copy.encode(SENTENCES[:6])
    alone = np.stack([copy.encode([t])[0] for t in SENTENCES[:6]])
    assert np.array_equal(together, alone) and copy.name == "onnx-int8"


def test_the_setting_picks_the_query_model(onnx_backend, int8_backend):
    assert (onnx_backend.name, onnx_backend.query_only) == ("onnx", False)
    assert (int8_backend.name, int8_backend.query_only) == ("onnx-int8", True)
    assert int8_backend.stored_file == onnx_backend.onnx_file
    copy = int8_backend.with_threads(1)
    assert (copy.onnx_file, copy.query_only) == (onnx_backend.onnx_file, False)


@pytest.mark.parametrize("lane_threads", [0, 1])
def test_stored_texts_keep_float_vectors_while_queries_use_int8(onnx_backend, int8_backend, lane_threads):
    text = "I lost my passport at the airport in Madrid."

    async def body(embedder):
        stored = await embedder.embed([text], background=True)
        query = await embedder.embed_one(text)  # the same text: not served from the stored one's cache
        return stored[0], query, await embedder.embed([text], background=True)

    stored, query, again = run(Embedder(int8_backend, background_threads=lane_threads), body)
    assert np.allclose(stored, onnx_backend.encode([text])[0], atol=1e-6)
    assert np.allclose(query, int8_backend.encode([text])[0], atol=1e-6)
    assert not np.allclose(stored, query, atol=1e-4) and np.array_equal(again[0], stored)


@pytest.mark.parametrize("lane_threads", [0, 1])
def test_background_texts_may_ask_for_the_query_model(onnx_backend, int8_backend, lane_threads):
    """Background texts for both models waiting at once: each runs on its own model. (One text
    each: int8 activations are quantized per run, so a text's int8 vector depends on its batch.)"""
    nudge, stored = SENTENCES[0], SENTENCES[3]

    async def body(embedder):
        return await asyncio.gather(embedder.embed([nudge], background=True, query_model=True),
                                    embedder.embed([stored], background=True),
                                    embedder.embed([nudge], background=True))

    quick, exact, float_again = run(Embedder(int8_backend, background_threads=lane_threads), body)
    assert np.allclose(quick[0], int8_backend.encode([nudge])[0], atol=1e-6)
    assert np.allclose(exact[0], onnx_backend.encode([stored])[0], atol=1e-6)
    assert np.allclose(float_again[0], onnx_backend.encode([nudge])[0], atol=1e-6)  # not the int8 one's cache
    blocking = Embedder(int8_backend).embed_blocking([nudge], background=True, query_model=True)
    assert np.allclose(blocking, quick, atol=1e-6)


def test_blocking_embed_stores_float_vectors(onnx_backend, int8_backend):
    embedder = Embedder(int8_backend)
    stored = embedder.embed_blocking(SENTENCES[:3], background=True)
    queries = embedder.embed_blocking(SENTENCES[:3])
    assert np.allclose(stored, onnx_backend.encode(SENTENCES[:3]), atol=1e-6)
    assert np.allclose(queries, int8_backend.encode(SENTENCES[:3]), atol=1e-6)


@pytest.mark.parametrize("lane_threads", [0, 1])
def test_with_stored_int8_one_int8_model_embeds_queries_and_stored_texts(int8_backend, lane_threads):
    both = load_backend(MODEL, "onnx", model_cache_dir(), threads=1, query_int8=True, stored_int8=True)
    assert (both.name, both.query_only, both.onnx_file) == ("onnx-int8", False, int8_backend.onnx_file)
    assert both.with_threads(1).onnx_file == int8_backend.onnx_file  # the writer's lane: int8 too
    text = "I lost my passport at the airport in Madrid."

    async def body(embedder):
        return await embedder.embed([text], background=True), await embedder.embed_one(text), embedder.cache_hits

    stored, query, hits = run(Embedder(both, background_threads=lane_threads), body)
    assert np.allclose(stored[0], int8_backend.encode([text])[0], atol=1e-6)
    assert np.array_equal(stored[0], query) and hits == 1  # one model: one vector, one cache entry


def test_a_float_model_serves_both_from_one_cache(onnx_backend):
    embedder = Embedder(onnx_backend)
    stored = embedder.embed_blocking(["one text"], background=True)
    assert np.array_equal(embedder.embed_blocking(["one text"]), stored) and embedder.cache_hits == 1


class QueryOnly:
    """A query-only fake: 'int8' vectors of 1s; its copy (the stored-text model) cannot be loaded."""

    dim, name, query_only, threads = 4, "fake-int8", True, 1

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim), dtype=np.float32) / 2

    def with_threads(self, threads: int):
        raise MemoryError("no room for the float model")


@pytest.mark.parametrize("lane_threads", [0, 1])
def test_without_a_float_copy_the_query_model_embeds_everything(caplog, lane_threads):
    async def body(embedder):
        stored = await embedder.embed(["a"], background=True)
        return stored, await embedder.embed_one("a"), embedder.cache_hits

    with caplog.at_level(logging.WARNING, logger="app.memory.embedding.embedder"):
        stored, query, hits = run(Embedder(QueryOnly(), background_threads=lane_threads), body)
    assert np.array_equal(stored[0], query) and hits == 1  # one vector, shared as without int8
    assert "query model embeds them" in caplog.text
