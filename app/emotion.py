"""How the user feels: a label among seven, a confidence and an intensity, for every message.

Two cheap parts, combined in log space: lexicons (a hand-written one of words, emoji,
emoticons and role-play `*actions*`, with negation and intensifiers; and per-word weights
learned from GoEmotions) and a small classifier (one hidden layer) on the message embedding
that memory computes anyway (all-MiniLM-L6-v2). `bench/build_emotion_model.py` trains both on
GoEmotions' Ekman train split and chooses the combination weights and class offsets on dev.
The shipped `app/data/emotion_model.npz` holds only weights and a word list, never examples.

    scorer = EmotionScorer.load()
    scorer.score("I'm not happy at all :(", embedding)   # Emotion(label="sadness", ...)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.emotion_lexicon import EMOJI, EMOTICONS, INTENSIFIERS, NEGATED_TO, NEGATORS, WORDS

EMOTIONS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
INDEX = {e: i for i, e in enumerate(EMOTIONS)}
NEUTRAL = INDEX["neutral"]
MODEL_PATH = Path(__file__).parent / "data" / "emotion_model.npz"
MAX_CHARS = 4000  # longer messages are scored on their first and last parts
TOKEN = re.compile(r"[a-z']+|[^\sa-z0-9]+", re.IGNORECASE)
ACTION = re.compile(r"\*([^*\n]{1,200})\*")
LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True, slots=True)
class Emotion:
    label: str
    confidence: float
    intensity: float
    probs: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class LexiconReading:
    scores: np.ndarray  # evidence per emotion (neutral unused)
    intensity: float
    cues: int


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS // 2] + " " + text[-MAX_CHARS // 2:]


def lexicon(text: str) -> LexiconReading:
    """Evidence per emotion from cues; negators flip joy to sadness and damp the rest."""
    text = _clip(text)
    scores = np.zeros(len(EMOTIONS), dtype=np.float32)
    cues, boost = 0, 1.0
    negated = 0
    for token in TOKEN.findall(text):
        low = token.lower()
        if low in NEGATORS or low.endswith("n't"):
            negated = 3
            continue
        if low in INTENSIFIERS:
            boost *= INTENSIFIERS[low]
            continue
        emotion = _cue(token, low)
        if emotion is not None:
            target, weight = (NEGATED_TO[emotion], 0.7) if negated else (emotion, 1.0)
            scores[INDEX[target]] += weight * boost * _shout(token)
            cues += 1
            boost = 1.0
        negated = max(0, negated - 1)
    for action in ACTION.findall(text):  # role-play actions are strong, explicit cues
        sub = lexicon(action) if "*" not in action else None
        if sub is not None:
            scores += sub.scores * 0.5
    exclaim = min(text.count("!"), 5) * 0.1
    intensity = float(min(1.0, (scores.sum() * 0.35 + exclaim) if cues else exclaim * 0.5))
    return LexiconReading(scores, intensity, cues)


def _cue(token: str, low: str) -> str | None:
    if token in EMOTICONS:
        return EMOTICONS[token]
    for ch in token:
        if ch in EMOJI:
            return EMOJI[ch]
    return _word_emotion(low)


def _word_emotion(low: str) -> str | None:
    for emotion, stems in WORDS.items():
        for stem in stems:
            if low.startswith(stem) and (len(stem) >= 4 or low == stem):
                return emotion
    return None


def _shout(token: str) -> float:
    return 1.5 if len(token) > 2 and token.isupper() else 1.0


def lexicon_probs(reading: LexiconReading, neutral_prior: float = 1.0) -> np.ndarray:
    """Evidence as a distribution: no cues means neutral; each cue pulls away from it."""
    scores = reading.scores.copy()
    scores[NEUTRAL] += neutral_prior
    scores += 0.05
    return scores / scores.sum()


def is_latin(text: str) -> bool:
    """Mostly Latin letters: the lexicon and the English embedding model can be trusted."""
    letters = [ch for ch in text[:500] if ch.isalpha()]
    return not letters or sum(bool(LATIN.match(ch)) for ch in letters) / len(letters) >= 0.6


WORD = re.compile(r"[a-z']+")


@dataclass(frozen=True, slots=True)
class Weights:
    """The generated model: embedding classifier layers, learned word weights, combination."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    vocab: dict[str, int]
    word_log: np.ndarray  # (7, vocab) log-likelihood of a word under each emotion, centred
    alpha: float  # hand lexicon weight
    beta: float  # learned word weight
    offsets: np.ndarray  # per-emotion offsets chosen on dev
    neutral_prior: float


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max()
    exp = np.exp(logits)
    return exp / exp.sum()


class EmotionScorer:
    """Lexicons + embedding classifier, from the shipped generated file."""

    def __init__(self, weights: Weights) -> None:
        self.w = weights

    @classmethod
    def load(cls, path: Path | None = None) -> EmotionScorer:
        data = np.load(path or MODEL_PATH)
        vocab = {word: i for i, word in enumerate(str(data["vocab"]).split("\n"))}
        f32 = {k: data[k].astype(np.float32) for k in ("w1", "b1", "w2", "b2", "word_log", "offsets")}
        return cls(Weights(vocab=vocab, alpha=float(data["alpha"]), beta=float(data["beta"]),
                           neutral_prior=float(data["neutral_prior"]), **f32))

    def embedding_logits(self, embedding: np.ndarray) -> np.ndarray:
        hidden = np.maximum(0.0, np.asarray(embedding, dtype=np.float32) @ self.w.w1 + self.w.b1)
        return hidden @ self.w.w2 + self.w.b2

    def embedding_probs(self, embedding: np.ndarray) -> np.ndarray:
        return softmax(self.embedding_logits(embedding))

    def word_scores(self, text: str) -> np.ndarray:
        ids = [self.w.vocab[t] for t in set(WORD.findall(_clip(text).lower())) if t in self.w.vocab]
        return self.w.word_log[:, ids].sum(axis=1) if ids else np.zeros(len(EMOTIONS), np.float32)

    def log_scores(self, text: str, embedding: np.ndarray | None, reading: LexiconReading) -> np.ndarray:
        """The combination: embedding log-probs + alpha * hand lexicon + beta * learned words + offsets."""
        lex = np.log(lexicon_probs(reading, self.w.neutral_prior) + 1e-9)
        words = self.w.beta * self.word_scores(text)
        if embedding is None:
            return lex + words + self.w.offsets
        emb = np.log(self.embedding_probs(embedding) + 1e-9)
        return emb + self.w.alpha * lex + words + self.w.offsets

    def score(self, text: str, embedding: np.ndarray | None = None) -> Emotion:
        if not text.strip():
            return _neutral(1.0)
        reading = lexicon(text)
        probs = softmax(self.log_scores(text, embedding, reading))
        if not is_latin(text) and reading.cues == 0:
            probs = 0.5 * probs + 0.5 * np.eye(len(EMOTIONS), dtype=np.float32)[NEUTRAL]
            probs = np.minimum(probs, 0.45) if probs.argmax() != NEUTRAL else probs
            probs = probs / probs.sum()
        best = int(probs.argmax())
        intensity = 0.0 if best == NEUTRAL else max(reading.intensity, float(probs[best]) * 0.5)
        return Emotion(EMOTIONS[best], float(probs[best]), round(min(1.0, intensity), 3),
                       tuple(round(float(p), 4) for p in probs))


def _neutral(confidence: float) -> Emotion:
    probs = tuple(1.0 if e == "neutral" else 0.0 for e in EMOTIONS)
    return Emotion("neutral", confidence, 0.0, probs)


def emotional_similarity(a: Emotion, b: Emotion) -> float:
    """Cosine of the two distributions, 0..1."""
    x, y = np.asarray(a.probs), np.asarray(b.probs)
    denom = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y / denom) if denom else 0.0
