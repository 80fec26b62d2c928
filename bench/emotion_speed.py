"""Scoring speed: emotion + importance for 1,000 messages, with embeddings precomputed and without.

    python bench/emotion_speed.py

In the product the embedding is computed once for retrieval and reused, so the scoring cost is
the first figure; the second adds batch embedding (ONNX) for reference. Target: under a second.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.emotion import EmotionScorer  # noqa: E402
from app.importance import score_importance  # noqa: E402
from app.memory.embedding.embedder import load_backend  # noqa: E402

SAMPLES = ["I can't believe she said that to me, I'm so hurt.", "ok", "Let's meet at 5pm near the old bridge?",
           "*laughs and hugs you tightly* I missed you so much!", "The report is due on Friday.",
           "Honestly I'm scared about the surgery next week.", "lol that's gross", "Wow, really?!"]


def main() -> None:
    texts = [f"{SAMPLES[i % len(SAMPLES)]} ({i})" for i in range(1000)]
    backend = load_backend("all-MiniLM-L6-v2", "auto", ROOT / "data" / "models", 2)
    scorer = EmotionScorer.load()
    t0 = time.perf_counter()
    vectors = backend.encode(texts)
    t1 = time.perf_counter()
    for text, vector in zip(texts, vectors):
        emotion = scorer.score(text, vector)
        score_importance(text, "user", emotion)
    t2 = time.perf_counter()
    print(f"scoring 1,000 messages (embeddings given): {t2 - t1:.3f} s")
    print(f"embedding 1,000 messages ({backend.name}):     {t1 - t0:.3f} s")
    print(f"both:                                      {t2 - t0:.3f} s")


if __name__ == "__main__":
    main()
