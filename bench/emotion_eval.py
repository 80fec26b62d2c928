"""Emotion scoring on GoEmotions dev (Ekman labels): accuracy and macro-F1 per method.

    python bench/emotion_eval.py [--data-dir ../shared/data/goemotions-ekman]

Methods: the majority class; the lexicons alone (hand-written + learned word weights); the
embedding classifier alone; the combination the product uses (`EmotionScorer.score`). A
prediction is right when it is one of the row's labels. Also checks the combination on the two
halves of dev separately, since dev chose its weights. Writes bench/results/emotion.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from build_emotion_model import embed, macro_f1, read_split  # noqa: E402

from app.emotion import EMOTIONS, EmotionScorer, lexicon, lexicon_probs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "goemotions-ekman")
    args = parser.parse_args()
    texts, golds = read_split(args.data_dir / "dev.tsv")
    x = embed(texts, "dev")
    scorer = EmotionScorer.load()
    w = scorer.w
    train_texts, train_golds = read_split(args.data_dir / "train.tsv")
    majority = int(np.bincount([g for gold in train_golds for g in gold]).argmax())
    lex = np.stack([np.log(lexicon_probs(lexicon(t), w.neutral_prior) + 1e-9) + w.beta * scorer.word_scores(t)
                    for t in texts])
    emb = np.stack([scorer.embedding_probs(v) for v in x])
    combined = np.array([EMOTIONS.index(scorer.score(t, v).label) for t, v in zip(texts, x)])
    rows = {"majority class": np.full(len(texts), majority), "lexicon alone": lex.argmax(axis=1),
            "embedding classifier alone": emb.argmax(axis=1), "combination": combined}
    half = len(texts) // 2
    results = {name: dict(zip(("accuracy", "macro_f1"), macro_f1(pred, golds))) for name, pred in rows.items()}
    results["combination, first half of dev"] = dict(zip(("accuracy", "macro_f1"),
                                                          macro_f1(combined[:half], golds[:half])))
    results["combination, second half of dev"] = dict(zip(("accuracy", "macro_f1"),
                                                           macro_f1(combined[half:], golds[half:])))
    print(f"{'method':<34} {'accuracy':>8} {'macro-F1':>8}")
    for name, r in results.items():
        print(f"{name:<34} {r['accuracy']:8.3f} {r['macro_f1']:8.3f}")
    out = ROOT / "bench" / "results" / "emotion.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
