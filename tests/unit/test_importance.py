import pytest

from app.emotion import Emotion
from app.importance import ImportanceWeights, score_importance, signals

SAD = Emotion("sadness", 0.9, 0.9, (0, 0, 0, 0, 0.1, 0.9, 0))


@pytest.mark.parametrize("text, emotion, low, high", [
    ("ok", None, 0.0, 0.1),
    ("lol", None, 0.0, 0.1),
    ("The weather is fine.", None, 0.0, 0.4),
    ("I never told anyone, but my brother Tom died in 2019 and I still miss him.", SAD, 0.8, 1.0),
    ("Please remember: my birthday is on March 3rd.", None, 0.7, 1.0),
    ("What time is it?", None, 0.0, 0.5),
])
def test_importance_ranges(text, emotion, low, high):
    assert low <= score_importance(text, "user", emotion) <= high


def test_confession_outranks_small_talk_and_user_outranks_assistant():
    confession = "I have a secret: I was adopted, and my real mother lives in Lyon."
    assert score_importance(confession, "user") > score_importance("Nice weather today.", "user")
    assert score_importance(confession, "user") > score_importance(confession, "assistant")


def test_weights_are_settings():
    text = "Remember that my locker code is 4417."
    assert score_importance(text, "user", weights=ImportanceWeights(remember=0.0, entities=0.0)) < \
        score_importance(text, "user")


def test_signals_are_bounded():
    values = signals("Anna, Ben, Carl and Dora met on 1/2/2020 at 5:00 in Paris! " * 20)
    assert all(0.0 <= v <= 1.0 for v in values.values())
    assert values["entities"] == 1.0
