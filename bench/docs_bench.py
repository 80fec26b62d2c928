"""The knowledge base measured: index throughput, retrieval recall@k, and what documents add before
the upstream call.

    python bench/docs_bench.py                 # all of it; results in bench/results/docs.json
    python bench/docs_bench.py --parts speed --requests 400

0. `parsers`: markitdown on the whole 200-page PDF against pypdf page by page, and whether
   markitdown reads a DOCX written by python-docx (the reason DOCX goes through mammoth here).
1. `index`: a generated 200-page PDF (fpdf2, one heading and ~250 words a page) through the
   real indexing path (pypdf page by page, heading-aware chunks, all-MiniLM-L6-v2 on the
   embedder's background lane, one SQLite transaction): pages per second, parse and embed split.
2. `recall`: 20 generated documents (Markdown, DOCX, PDF, HTML in turn), each about one town
   with the same ten kinds of fact (harbour, festival, mayor, ...) and filler paragraphs between
   them, so a question must find its town as well as its kind of fact; 200 questions worded
   apart from the facts. recall@k: the chunk holding the answer among the k best.
3. `speed`: the real proxy (a subprocess, as in use) with 10,000 chunks indexed against the
   same proxy with none, both answering the preview endpoint (everything before the upstream
   call, nothing sent upstream) for the same questions, interleaved. Chunk vectors for this part
   are random unit vectors written straight into the store: the search costs the same whatever
   they hold, and embedding 10,000 chunks first would only make the run long.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.config import Settings  # noqa: E402
from app.documents.chunk import Chunk  # noqa: E402
from app.documents.library import Library, LibrarySettings, read_document  # noqa: E402
from app.documents.store import Document, DocumentStore  # noqa: E402
from app.fakes.serve import free_port  # noqa: E402
from bench.proxy_bench import start  # noqa: E402
from tests import docfiles as make  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "docs.json"
TOWNS = ["Arkwell", "Brightmoor", "Caldera Bay", "Dunmere", "Elmstead", "Fallowmere", "Grimsby Vale", "Hollin",
         "Ivybridge", "Jarrow Point", "Kestwick", "Lowmarsh", "Merrowdale", "Northwyke", "Oakhaven", "Pellmoor",
         "Quarry End", "Rookhurst", "Saltcombe", "Thornbury"]
FACTS = [  # (section, fact about {town} with {v}, question, values)
    ("Harbour", "The harbour of {town} shelters {v} fishing boats through the winter.",
     "How many fishing boats winter in the harbour of {town}?", ["twelve", "forty", "ninety", "seven"]),
    ("Festival", "Every spring {town} holds a festival of {v} on the village green.",
     "What is celebrated at the spring festival in {town}?", ["lanterns", "kites", "cheese", "bees"]),
    ("Mayor", "The mayor of {town} is {v}, elected by a single vote.",
     "Who leads {town} as its mayor?", ["Edith Crane", "Tomas Vell", "Ruth Amsel", "Oskar Lind"]),
    ("Bakery", "The bakery in {town} is famous for its {v} loaves.",
     "Which bread is the baker of {town} known for?", ["rye", "saffron", "walnut", "onion"]),
    ("River", "The river through {town} floods in {v} nearly every year.",
     "In which month does the {town} river usually burst its banks?", ["March", "October", "June", "January"]),
    ("School", "The school of {town} teaches {v} pupils in a single room.",
     "How many children attend the one-room school in {town}?", ["eighteen", "thirty", "nine", "fifty"]),
    ("Bridge", "The old bridge of {town} was built from {v} stone in 1712.",
     "What stone was used to build the old bridge in {town}?", ["granite", "sandstone", "slate", "limestone"]),
    ("Market", "The market in {town} opens on {v} mornings only.",
     "On which day can you shop at the {town} market?", ["Tuesday", "Saturday", "Thursday", "Monday"]),
    ("Lighthouse", "The lighthouse keeper of {town} keeps {v} goats on the cliff.",
     "What animals does the {town} lighthouse keeper look after?", ["three", "eleven", "six", "two"]),
    ("Railway", "The railway reached {town} in {v}, bringing the first tourists.",
     "When did the train line first arrive in {town}?", ["1854", "1871", "1899", "1902"]),
]


# ---------------------------------------------------------------------- shared


async def open_library(data: Path, backend) -> tuple[Library, DocumentStore, object]:
    from app.memory.embedding.embedder import Embedder

    embedder = Embedder(backend, cache_size=8192, background_threads=1)
    await embedder.start()
    store = DocumentStore(data / "documents.sqlite")
    await store.open()
    library = Library(store, embedder, LibrarySettings(), data / "uploads")
    await library.start()
    return library, store, embedder


async def close(library, store, embedder) -> None:
    await library.stop()
    await store.aclose()
    await embedder.aclose()


def load_model():
    from app.memory.embedding.embedder import load_backend

    settings = Settings(_env_file=None)
    cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or settings.model_cache_dir)
    return load_backend(settings.embedding_model, "onnx", cache, threads=settings.embedding_threads,
                        query_int8=settings.embedding_query_int8)


# ---------------------------------------------------------------------- 1. index throughput


async def index_speed(work: Path, backend, pages: int) -> dict:
    pdf = make.make_pdf(work / "manual.pdf", [(f"Chapter {i + 1}", make.filler(250, i)) for i in range(pages)])
    library, store, embedder = await open_library(work / "index", backend)
    try:
        t0 = time.perf_counter()
        doc = await library.add_upload("manual.pdf", _copy(pdf, work / "upload.pdf"), owner=None, session_id=None)
        await library.idle()
        total = time.perf_counter() - t0
        done = await store.get(doc.id)
        t1 = time.perf_counter()
        await asyncio.to_thread(read_document, pdf, "manual.pdf", library.settings)
        parse = time.perf_counter() - t1
    finally:
        await close(library, store, embedder)
    return {"pages": done.pages, "chunks": done.chunk_count, "status": done.status, "seconds": round(total, 2),
            "pages_per_second": round(done.pages / total, 1), "parse_and_chunk_seconds": round(parse, 2),
            "parse_pages_per_second": round(done.pages / parse, 1), "pdf_bytes": pdf.stat().st_size}


def _copy(source: Path, target: Path) -> Path:
    target.write_bytes(source.read_bytes())
    return target


def parsers(work: Path, pages: int) -> dict:
    """The candidates on the same files: markitdown whole, against what the service uses per format."""
    import warnings

    from markitdown import MarkItDown

    from app.documents.parse import parse

    warnings.filterwarnings("ignore")
    pdf = make.make_pdf(work / "parsers.pdf", [(f"Chapter {i + 1}", make.filler(250, i)) for i in range(pages)])
    docx = make.make_docx(work / "parsers.docx", [("Overview", "The flux valve takes 42 Nm.")])
    out: dict = {}
    for label, fn in (("markitdown_pdf", lambda: MarkItDown(enable_plugins=False).convert(str(pdf)).text_content),
                      ("pypdf_per_page", lambda: parse(pdf, pdf.name, max_unpacked=1 << 30))):
        t0 = time.perf_counter()
        result = fn()
        out[label] = {"seconds": round(time.perf_counter() - t0, 3),
                      "pages_kept": len(result) if isinstance(result, list) else result.count("\x0c") + 1}
    try:
        MarkItDown(enable_plugins=False).convert(str(docx))
        out["markitdown_docx"] = "ok"
    except Exception as exc:  # noqa: BLE001 - what it says is the finding
        out["markitdown_docx"] = f"failed: {str(exc).strip().splitlines()[-1][:160]}"
    out["mammoth_then_markitdown_html"] = "table kept" if "| Flux valve | 42 | teal |" in \
        parse(docx, docx.name, max_unpacked=1 << 30)[0].text else "table lost"
    return out


# ---------------------------------------------------------------------- 2. recall@k


def corpus(seed: int = 7) -> tuple[list[tuple[str, list[tuple[str, str]]]], list[tuple[str, str, str]]]:
    """20 documents of (heading, body) sections, and (question, answer value, document name)."""
    rng = random.Random(seed)
    docs, questions = [], []
    for i, town in enumerate(TOWNS):
        ext = [".md", ".docx", ".pdf", ".html"][i % 4]
        name = f"{town.lower().replace(' ', '-')}{ext}"
        sections = [("About " + town, make.filler(120, i))]
        for section, fact, question, values in FACTS:
            value = rng.choice(values)
            sections.append((section, f"{make.filler(40, i + len(section))} {fact.format(town=town, v=value)} "
                                      f"{make.filler(40, i * 3)}"))
            questions.append((question.format(town=town), value, name))
        docs.append((name, sections))
    return docs, questions


def write(work: Path, name: str, sections: list[tuple[str, str]]) -> Path:
    path = work / name
    builders = {".md": make.make_markdown, ".docx": lambda p, s: make.make_docx(p, s, table=None),
                ".pdf": make.make_pdf, ".html": lambda p, s: make.make_html(p, s, table=None)}
    return builders[path.suffix](path, sections)


async def recall_at_k(work: Path, backend, ks: list[int]) -> dict:
    docs, questions = corpus()
    library, store, embedder = await open_library(work / "recall", backend)
    try:
        for name, sections in docs:
            await library.add_upload(name, write(work, name, sections), owner=None, session_id=None)
        await library.idle()
        failed = [d.name for d in await store.documents() if d.status != "indexed"]
        ranks = []
        for question, value, name in questions:
            vector = await embedder.embed_one(question)
            hits = library.hits(vector, owner=None, session_id=None, k=max(ks), min_score=-1.0)
            found = [i for i, h in enumerate(hits) if h.document.name == name and value in h.chunk.text]
            ranks.append(found[0] + 1 if found else None)
    finally:
        await close(library, store, embedder)
    return {"documents": len(docs), "chunks": len(library.index), "questions": len(questions), "failed": failed,
            **{f"recall@{k}": round(sum(1 for r in ranks if r and r <= k) / len(ranks), 3) for k in ks},
            "mrr@10": round(sum(1 / r for r in ranks if r and r <= 10) / len(ranks), 3)}


# ---------------------------------------------------------------------- 3. pre-upstream time


async def fill(data: Path, chunks: int, dim: int = 384, per_doc: int = 100) -> None:
    store = DocumentStore(data / "documents.sqlite")
    await store.open()
    rng = np.random.default_rng(1)
    try:
        for d in range(chunks // per_doc):
            doc = Document(id=f"doc-bench-{d:05d}", name=f"bench-{d}.md", source="upload", owner=None,
                           session_id=None, bytes=1, sha256="-")
            await store.insert(doc)
            vectors = rng.standard_normal((per_doc, dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            texts = [Chunk(f"Passage {d}.{i}: {make.filler(120, d + i)}", ("Bench",), None, 150)
                     for i in range(per_doc)]
            await store.indexed(doc.id, texts, vectors, 1)
    finally:
        await store.aclose()


def speed(work: Path, chunks: int, requests: int) -> dict:
    up_port = free_port()
    procs = [start([sys.executable, "-m", "app.fakes.openai_server", "--port", str(up_port)], {},
                   f"http://127.0.0.1:{up_port}/v1/models")]
    try:
        urls = {}
        for variant, count in (("none", 0), (f"{chunks}", chunks)):
            data = work / f"speed-{variant}"
            data.mkdir(parents=True)
            if count:
                asyncio.run(fill(data, count))
            port = free_port()
            env = {"UPSTREAM_BASE_URL": f"http://127.0.0.1:{up_port}/v1", "PORT": str(port), "DATA_DIR": str(data),
                   "MEMORY_ENABLED": "true", "SUMMARY_ENABLED": "false", "DOCS_DIR": str(data / "docs"),
                   "LOG_LEVEL": "WARNING", "REQUEST_LOG_ENABLED": "false"}
            procs.append(start([sys.executable, "-m", "app.cli", "serve"], env, f"http://127.0.0.1:{port}/health"))
            urls[variant] = f"http://127.0.0.1:{port}"
        return measure(urls, requests)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def measure(urls: dict[str, str], requests: int) -> dict:
    questions = [f"What did the bench passage number {i} say about the {w}?"
                 for i, w in enumerate("tide harbour gull storm sail anchor reef wave lighthouse island".split())]
    times: dict[str, list[float]] = {v: [] for v in urls}
    with httpx.Client(timeout=30) as client:
        for n in range(requests + 20):
            for variant, url in (urls.items() if n % 2 else reversed(urls.items())):
                body = {"model": "fake-model", "messages": [{"role": "user", "content": questions[n % 10]}]}
                t0 = time.perf_counter()
                response = client.post(f"{url}/v1/chat/completions/preview", json=body,
                                       headers={"X-Session-Id": f"bench-{n % 10}"})
                elapsed = time.perf_counter() - t0
                response.raise_for_status()
                if n >= 20:  # the first rounds warm the caches and the model
                    times[variant].append(elapsed * 1000)
    medians = {v: round(statistics.median(t), 3) for v, t in times.items()}
    p90 = {v: round(statistics.quantiles(t, n=10)[-1], 3) for v, t in times.items()}
    none, full = medians["none"], medians[[v for v in urls if v != "none"][0]]
    return {"requests": requests, "median_ms": medians, "p90_ms": p90, "added_median_ms": round(full - none, 3),
            "ratio": round(full / none, 3)}


def search_cost(chunks: int, dim: int = 384, repeats: int = 2000) -> dict:
    """The search alone (one product, the scope mask, the top-k): what a request adds, without HTTP."""
    from app.documents.index import DocumentIndex
    from app.documents.store import StoredChunk

    rng = np.random.default_rng(2)
    index = DocumentIndex(dim)
    for d in range(chunks // 100):
        vectors = rng.standard_normal((100, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        owner = None if d % 2 else f"t-{d % 7}"
        index.put(Document(f"d{d}", "x.md", "upload", owner, None, 1, "-", "indexed"),
                  [StoredChunk(i, f"d{d}", i, None, (), "x", 1, False, v) for i, v in enumerate(vectors)])
    query = rng.standard_normal(dim).astype(np.float32)
    index.search(query, owner="t-1", session_id="s", k=4)
    t0 = time.perf_counter()
    for _ in range(repeats):
        index.search(query, owner="t-1", session_id="s", k=4, min_score=0.35)
    return {"chunks": chunks, "search_ms": round((time.perf_counter() - t0) / repeats * 1000, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="parsers,index,recall,speed")
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--ks", default="1,4,10")
    args = parser.parse_args()
    parts = args.parts.split(",")
    result: dict = {"machine": f"{os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        backend = load_model() if {"index", "recall"} & set(parts) else None
        if "parsers" in parts:
            result["parsers"] = parsers(work, args.pages)
            print("parsers", result["parsers"], flush=True)
        if "index" in parts:
            result["index"] = asyncio.run(index_speed(work, backend, args.pages))
            print("index", result["index"], flush=True)
        if "recall" in parts:
            result["recall"] = asyncio.run(recall_at_k(work, backend, [int(k) for k in args.ks.split(",")]))
            print("recall", result["recall"], flush=True)
        if "speed" in parts:
            result["search"] = search_cost(args.chunks)
            result["speed"] = speed(work, args.chunks, args.requests)
            print("search", result["search"], "\nspeed", result["speed"], flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}  # a partial run keeps the other parts
    RESULTS.write_text(json.dumps({**earlier, **result}, indent=2) + "\n")


if __name__ == "__main__":
    main()
