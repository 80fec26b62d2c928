"""Build app/data/emotion_model.npz from GoEmotions (Ekman grouping): train on train, choose on dev.

    python bench/build_emotion_model.py [--data-dir ../shared/data/goemotions-ekman]

Embeds both splits with the product's own embedder (all-MiniLM-L6-v2 on ONNX; cached in
data/cache/), trains a class-balanced one-hidden-layer classifier on the embeddings and a word
lexicon (per-word log-likelihoods) on train, in numpy, then picks the combination weights, the
hand lexicon's neutral prior and per-emotion offsets by macro-F1 on dev. A row with several
labels is a training example for each of them; on dev a prediction counts as right when it is
one of the row's labels. Only weights and the word list are written (a few hundred KB).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.emotion import EMOTIONS, MODEL_PATH, WORD, EmotionScorer, Weights, lexicon, lexicon_probs  # noqa: E402

LABELS_FILE_ORDER = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def read_split(path: Path) -> tuple[list[str], list[set[int]]]:
    texts, golds = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        texts.append(parts[0])
        golds.append({EMOTIONS.index(LABELS_FILE_ORDER[int(i)]) for i in parts[1].split(",")})
    return texts, golds


def embed(texts: list[str], name: str) -> np.ndarray:
    cache = ROOT / "data" / "cache" / f"goemotions-{name}-{len(texts)}.npy"
    if cache.exists():
        return np.load(cache)
    from app.memory.embedding.embedder import load_backend

    backend = load_backend("all-MiniLM-L6-v2", "auto", ROOT / "data" / "models", 2)
    vectors = np.concatenate([backend.encode(texts[i:i + 256]) for i in range(0, len(texts), 256)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def train_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 256, epochs: int = 40, lr: float = 0.1,
              batch: int = 256, seed: int = 0) -> tuple[np.ndarray, ...]:
    """One hidden ReLU layer, class-balanced cross-entropy, plain minibatch SGD (seeded)."""
    rng = np.random.default_rng(seed)
    k = len(EMOTIONS)
    w1 = rng.normal(0, 0.05, (x.shape[1], hidden)).astype(np.float32)
    b1, w2, b2 = np.zeros(hidden, np.float32), rng.normal(0, 0.05, (hidden, k)).astype(np.float32), np.zeros(k, np.float32)
    class_w = (len(y) / (k * np.bincount(y, minlength=k))).astype(np.float32)
    onehot = np.eye(k, dtype=np.float32)
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            j = order[start:start + batch]
            h = np.maximum(0, x[j] @ w1 + b1)
            logits = h @ w2 + b2
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot[y[j]]) * class_w[y[j]][:, None] / len(j)
            gh = g @ w2.T
            gh[h <= 0] = 0
            w2 -= lr * h.T @ g
            b2 -= lr * g.sum(axis=0)
            w1 -= lr * x[j].T @ gh
            b1 -= lr * gh.sum(axis=0)
    return w1, b1, w2, b2


def word_lexicon(texts: list[str], golds: list[set[int]], min_count: int = 3) -> tuple[list[str], np.ndarray]:
    """Per-word log-likelihood under each emotion (Laplace-smoothed, centred across emotions)."""
    docs = [set(WORD.findall(t.lower())) for t in texts]
    totals: dict[str, int] = {}
    for words in docs:
        for w in words:
            totals[w] = totals.get(w, 0) + 1
    vocab = sorted(w for w, n in totals.items() if n >= min_count)
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.ones((len(EMOTIONS), len(vocab)), np.float32)
    for words, gold in zip(docs, golds):
        ids = [index[w] for w in words if w in index]
        for g in gold:
            counts[g, ids] += 1
    log = np.log(counts / counts.sum(axis=1, keepdims=True))
    return vocab, log - log.mean(axis=0, keepdims=True)


def macro_f1(pred: np.ndarray, golds: list[set[int]]) -> tuple[float, float]:
    k = len(EMOTIONS)
    tp, fp, fn = np.zeros(k), np.zeros(k), np.zeros(k)
    for p, gold in zip(pred, golds):
        if p in gold:
            tp[p] += 1
        else:
            fp[p] += 1
        for g in gold - {p}:
            fn[g] += 1
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    accuracy = float(np.mean([p in g for p, g in zip(pred, golds)]))
    return accuracy, float(f1.mean())


def tune_offsets(logp: np.ndarray, golds: list[set[int]], rounds: int = 2) -> np.ndarray:
    """Per-emotion offsets by coordinate ascent on macro-F1 (the classes are very unbalanced)."""
    offsets = np.zeros(len(EMOTIONS), np.float32)
    best = macro_f1((logp + offsets).argmax(axis=1), golds)[1]
    for _ in range(rounds):
        for c in range(len(EMOTIONS)):
            for value in np.linspace(-1.5, 1.5, 13):
                trial = offsets.copy()
                trial[c] = value
                f1 = macro_f1((logp + trial).argmax(axis=1), golds)[1]
                if f1 > best:
                    best, offsets = f1, trial
    return offsets


def parts(scorer: EmotionScorer, texts: list[str], x: np.ndarray, prior: float) -> tuple[np.ndarray, ...]:
    emb = np.log(np.stack([scorer.embedding_probs(v) for v in x]) + 1e-9)
    lex = np.log(np.stack([lexicon_probs(lexicon(t), prior) for t in texts]) + 1e-9)
    words = np.stack([scorer.word_scores(t) for t in texts])
    return emb, lex, words


def choose(scorer: EmotionScorer, x_dev: np.ndarray, texts: list[str], golds: list[set[int]]) -> dict:
    best: dict = {"f1": -1.0}
    for prior in (0.5, 1.0):
        emb, lex, words = parts(scorer, texts, x_dev, prior)
        for alpha in (0.25, 0.5, 0.75):
            for beta in (0.1, 0.2, 0.3):
                f1 = macro_f1((emb + alpha * lex + beta * words).argmax(axis=1), golds)[1]
                if f1 > best["f1"]:
                    best = {"f1": f1, "alpha": alpha, "beta": beta, "prior": prior}
    emb, lex, words = parts(scorer, texts, x_dev, best["prior"])
    best["offsets"] = tune_offsets(emb + best["alpha"] * lex + best["beta"] * words, golds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "goemotions-ekman")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    args = parser.parse_args()
    train_texts, train_golds = read_split(args.data_dir / "train.tsv")
    dev_texts, dev_golds = read_split(args.data_dir / "dev.tsv")
    x_train, x_dev = embed(train_texts, "train"), embed(dev_texts, "dev")
    rows = [(i, g) for i, gold in enumerate(train_golds) for g in sorted(gold)]
    w1, b1, w2, b2 = train_mlp(x_train[[i for i, _ in rows]], np.array([g for _, g in rows]))
    vocab, word_log = word_lexicon(train_texts, train_golds)
    weights = Weights(w1, b1, w2, b2, {w: i for i, w in enumerate(vocab)}, word_log, 0.0, 0.0,
                      np.zeros(len(EMOTIONS), np.float32), 1.0)
    best = choose(EmotionScorer(weights), x_dev, dev_texts, dev_golds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, w1=w1.astype(np.float16), b1=b1, w2=w2, b2=b2, vocab=np.array("\n".join(vocab)),
                        word_log=word_log.astype(np.float16), alpha=np.float32(best["alpha"]),
                        beta=np.float32(best["beta"]), offsets=best["offsets"],
                        neutral_prior=np.float32(best["prior"]))
    print(f"wrote {args.out}: alpha={best['alpha']} beta={best['beta']} prior={best['prior']} "
          f"offsets={np.round(best['offsets'], 2).tolist()}")


if __name__ == "__main__":
    main()
