"""What padding costs the model: texts in one inference run against one run each, CPU time.

    python -m bench.padding_bench                 # float and int8 models, one thread each

For a few sets of texts (of one length, of different lengths), the process CPU time of encoding
them as one padded batch (`_run` on all of them) and one at a time, median of `--repeat` calls,
each call with fresh texts so no cache helps. Writes bench/results/padding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTION = "By the way, what did I say about the sea back then? (asked {})"
SETS = {
    "one question": [QUESTION],
    "a question, and it read after a short reply": [QUESTION, "I hear you. Tell me more.\n" + QUESTION],
    "three short texts of different lengths": [QUESTION, "I hear you. Tell me more.\n" + QUESTION,
                                               "How is the sea? {}\nI hear you. Tell me more."],
    "eight texts of one length": [QUESTION] * 8,
    "a long sentence and a short one": [
        "The harbour was quiet that morning, and the gulls circled the lighthouse while the tide came in over "
        "the reef, carrying shells and seaweed onto the sand where we used to walk {}.", QUESTION],
}


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cost(backend, texts: list[str], together: bool, repeat: int) -> float:
    """Median CPU ms of encoding `texts` (made fresh each call) together or one run each."""
    samples = []
    for i in range(repeat + 3):
        fresh = [t.format(i) for t in texts]
        encodings = backend.tokenizer.encode_batch(fresh)
        t0 = cpu()
        if together:
            backend._run(encodings)
        else:
            for encoding in encodings:
                backend._run([encoding])
        if i >= 3:  # the first calls warm the session up
            samples.append((cpu() - t0) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "padding.json")
    args = parser.parse_args(argv)
    from app.memory.embedding.backends import load_backend

    cache = Path(os.environ.get("EMBEDDING_CACHE_DIR") or ROOT / "data" / "models")
    int8 = load_backend("all-MiniLM-L6-v2", "onnx", cache, 1, query_int8=True)
    models = {"float": int8.with_threads(1), "int8": int8}
    out = {}
    for model, backend in models.items():
        for name, texts in SETS.items():
            row = {"one run": cost(backend, texts, True, args.repeat),
                   "a run each": cost(backend, texts, False, args.repeat)}
            out[f"{model}: {name}"] = {k: round(v, 2) for k, v in row.items()}
            print(f"{model:5} {name:58} one run {row['one run']:6.2f} ms   a run each {row['a run each']:6.2f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
