"""How much a message is worth remembering, 0..1, from signals anyone can read off the text.

A confession at turn 50 matters more than "ok" at turn 51. Signals: emotional intensity, length
and detail, questions, first-person disclosures, names and numbers, and explicit "remember
this". Each has a weight (a setting); the weighted sum is squashed into 0..1.

    score_importance("I never told anyone, but my brother Tom died in 2019.", "user", emotion)  # ~0.9
    score_importance("ok", "user", None)                                                          # ~0.1
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

REMEMBER = re.compile(r"\b(remember|don'?t forget|never forget|keep in mind|note that|important)\b", re.I)
DISCLOSURE = re.compile(r"\b(i am|i'm|i was|i have|i've|i feel|i felt|i never|i always|i love|i hate|i want|"
                        r"i need|i told|my (?:mom|mother|dad|father|sister|brother|wife|husband|son|daughter|"
                        r"friend|partner|boyfriend|girlfriend|family|name|birthday|job|dog|cat|home))\b", re.I)
SECRET = re.compile(r"\b(never told|secret|confess|honestly|the truth is|between us|promise)\b", re.I)
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]{2,}\b")
NUMBER = re.compile(r"\b\d[\d:/.,-]*\b|\b(?:january|february|march|april|may|june|july|august|september|"
                    r"october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b", re.I)
FILLER = frozenset({"ok", "okay", "k", "lol", "lmao", "haha", "yes", "no", "yeah", "yep", "nope", "sure", "hmm",
                    "thanks", "thank you", "cool", "nice", "right", "mhm", "uh", "oh"})


@dataclass(frozen=True, slots=True)
class ImportanceWeights:
    emotion: float = 1.2
    length: float = 0.8
    question: float = 0.3
    disclosure: float = 1.0
    entities: float = 0.9
    remember: float = 1.5
    bias: float = -1.6


def signals(text: str, emotion: Any = None) -> dict[str, float]:
    """Each signal in 0..1 (pure, table-tested)."""
    words = len(text.split())
    return {
        "emotion": float(getattr(emotion, "intensity", 0.0) or 0.0) if getattr(emotion, "label", "neutral") != "neutral"
        else 0.0,
        "length": min(1.0, math.log1p(words) / math.log1p(60)),
        "question": 1.0 if "?" in text else 0.0,
        "disclosure": min(1.0, 0.5 * len(DISCLOSURE.findall(text)) + (1.0 if SECRET.search(text) else 0.0)),
        "entities": min(1.0, 0.35 * (len(set(NAME.findall(text))) + len(NUMBER.findall(text)))),
        "remember": 1.0 if REMEMBER.search(text) else 0.0,
    }


def score_importance(text: str, role: str, emotion: Any = None,
                     weights: ImportanceWeights = ImportanceWeights()) -> float:
    stripped = text.strip().lower().strip(".!?")
    if not stripped or stripped in FILLER:
        return 0.05
    values = signals(text, emotion)
    z = weights.bias + sum(getattr(weights, name) * value for name, value in values.items())
    if role == "assistant":
        z -= 0.3  # the user's own words are what a companion must not forget
    return round(1.0 / (1.0 + math.exp(-2.0 * z)), 4)
