"""The int8 query model against the float one: speed, and how close its vectors stay.

    python bench/query_int8_bench.py                  # writes bench/results/query_int8.json
    python bench/query_int8_bench.py --calls 100
    python bench/query_int8_bench.py --variants     # also the quantizations not kept

Reports one-sentence latency of the float and the int8 ONNX models (alternating blocks, and
through `Embedder.embed_one` with the cache off), the cosine between a text's two vectors over
LoCoMo's development turns and questions (`../shared`) and generated sentences, and, for each
LoCoMo question, how many of its top-10 turns by cosine (stored turns always float) stay the
same when the question is embedded by the int8 model instead of the float one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from app.memory.embedding.embedder import load_backend  # noqa: E402
from bench.embed_bench import latency, ms, sentences, service_latency  # noqa: E402
from bench.recall.locomo import conversations  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "query_int8.json"
# Other ways to quantize, for comparison (`--variants`): onnxruntime `quantize_dynamic` arguments.
VARIANTS = {
    "per-tensor weights": {"per_channel": False, "op_types_to_quantize": ["MatMul", "Attention"]},
    "MatMul only (attention float)": {"per_channel": True, "op_types_to_quantize": ["MatMul"]},
    "every op, embedding lookups too": {"per_channel": True},
    "uint8 weights": {"per_channel": True, "op_types_to_quantize": ["MatMul", "Attention"], "uint8": True},
}


def spread(cosines: np.ndarray) -> dict[str, float]:
    return {"n": int(len(cosines)), "min": round(float(cosines.min()), 4),
            "p1": round(float(np.percentile(cosines, 1)), 4), "median": round(float(np.median(cosines)), 4),
            "mean": round(float(cosines.mean()), 4)}


def cosines(exact, quick, texts: list[str]) -> np.ndarray:
    return np.sum(exact.encode(texts) * quick.encode(texts), axis=1)


def top10_overlap(exact, quick) -> dict[str, float]:
    """Per LoCoMo question: the share of its top-10 turns (float vectors) found by both query vectors."""
    overlaps = []
    for conv in conversations():
        stored = exact.encode([t["text"] for t in conv["turns"]])
        questions = [q["question"] for q in conv["questions"]]
        a = np.argsort(-(exact.encode(questions) @ stored.T), axis=1)[:, :10]
        b = np.argsort(-(quick.encode(questions) @ stored.T), axis=1)[:, :10]
        overlaps += [len(set(x) & set(y)) / 10 for x, y in zip(a, b)]
    return {"questions": len(overlaps), "mean_overlap": round(float(np.mean(overlaps)), 4),
            "same_set": round(float(np.mean([o == 1.0 for o in overlaps])), 4),
            "at_least_9": round(float(np.mean([o >= 0.9 for o in overlaps])), 4)}


def speed(backends: dict, calls: int) -> dict[str, dict[str, float]]:
    texts = sentences(calls, seed=1)
    out = {}
    for name, spent in latency(backends, texts, blocks=4).items():
        out[name] = dict(zip(("median_ms", "p95_ms"), (round(x, 2) for x in ms(spent))))
    for name, backend in backends.items():
        med, p95 = ms(service_latency(backend, texts))
        out[f"Embedder.embed_one, {name}"] = {"median_ms": round(med, 2), "p95_ms": round(p95, 2)}
    return out


def variants(exact, calls: int) -> dict[str, dict]:
    """Latency (beside the float model, alternating) and cosine on LoCoMo's questions per variant."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from app.memory.embedding.backends import OnnxBackend

    questions = [q["question"] for c in conversations() for q in c["questions"]]
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, options in VARIANTS.items():
            options = dict(options)
            weights = QuantType.QUInt8 if options.pop("uint8", False) else QuantType.QInt8
            target = Path(scratch) / "variant.onnx"
            quantize_dynamic(str(exact.onnx_file), str(target), weight_type=weights,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT}, **options)
            variant = OnnxBackend(target, exact.model_dir, threads=exact.threads)
            spent = latency({"float32": exact, name: variant}, sentences(calls, seed=1), blocks=4)
            out[name] = {"median_ms": round(ms(spent[name])[0], 2),
                         "float32_median_ms": round(ms(spent["float32"])[0], 2),
                         "cosine, locomo questions": spread(cosines(exact, variant, questions))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200, help="one-sentence calls per model")
    parser.add_argument("--variants", action="store_true", help="also measure the quantizations not kept")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    exact = load_backend("all-MiniLM-L6-v2", "onnx", args.cache_dir, args.threads)
    quick = load_backend("all-MiniLM-L6-v2", "onnx", args.cache_dir, args.threads, query_int8=True)
    report = {"latency": speed({"float32": exact, "int8": quick}, args.calls)}
    convs = conversations()
    report["cosine"] = {
        "locomo turns": spread(cosines(exact, quick, [t["text"] for c in convs for t in c["turns"]])),
        "locomo questions": spread(cosines(exact, quick, [q["question"] for c in convs for q in c["questions"]])),
        "generated sentences": spread(cosines(exact, quick, sentences(500, seed=2)))}
    report["locomo top-10, int8 question vs float question"] = top10_overlap(exact, quick)
    if args.variants:
        report["variants"] = variants(exact, args.calls)
    print(json.dumps(report, indent=1))
    args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
