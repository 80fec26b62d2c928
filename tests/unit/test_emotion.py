import time

import pytest

from app.emotion import EMOTIONS, EmotionScorer, emotional_similarity, is_latin, lexicon


@pytest.fixture(scope="module")
def scorer():
    return EmotionScorer.load()


@pytest.fixture(scope="module")
def embed():
    from pathlib import Path

    from app.memory.embedding.embedder import load_backend

    backend = load_backend("all-MiniLM-L6-v2", "auto", Path("data/models"), 2)
    return lambda text: backend.encode([text])[0]


@pytest.mark.parametrize("text, label", [
    ("I am so happy today, this is wonderful!", "joy"),
    ("My grandmother died last night and I can't stop crying.", "sadness"),
    ("This is outrageous, I'm furious with them!", "anger"),
    ("I'm terrified of what the test results will say.", "fear"),
    ("Wow, I did not expect that at all!", "surprise"),
    ("Eww, that is disgusting and gross.", "disgust"),
    ("The meeting is at three in room four.", "neutral"),
])
def test_clear_examples_with_embeddings(scorer, embed, text, label):
    assert scorer.score(text, embed(text)).label == label


def test_negation_flips_joy(scorer):
    assert scorer.score("I am happy").label == "joy"
    assert scorer.score("I am not happy at all").label != "joy"
    assert lexicon("not happy").scores[EMOTIONS.index("joy")] == 0


def test_intensifiers_raise_intensity(scorer):
    plain, strong = lexicon("I am sad"), lexicon("I am so very sad")
    assert strong.scores.sum() > plain.scores.sum()
    assert scorer.score("I am so very sad").intensity > scorer.score("I am sad").intensity


@pytest.mark.parametrize("text, label", [("😭😭", "sadness"), ("that's great 😂", "joy"), ("😡", "anger"),
                                         (":(", "sadness"), ("xD", "joy")])
def test_emoji_and_emoticons(scorer, text, label):
    assert scorer.score(text).label == label


def test_role_play_actions(scorer, embed):
    text = "*sobs quietly into her hands*"
    assert scorer.score(text, embed(text)).label == "sadness"
    assert scorer.score("*grins and laughs*").label == "joy"


def test_empty_and_very_long_messages(scorer, embed):
    assert scorer.score("").label == "neutral"
    assert scorer.score("   ").confidence == 1.0
    long = "I am so angry about this. " * 5000
    t0 = time.perf_counter()
    result = scorer.score(long, embed(long[:2000]))
    assert time.perf_counter() - t0 < 0.5 and result.label == "anger"


@pytest.mark.parametrize("text", ["今天天气很好，我们去公园散步吧。", "Сегодня я пошёл в магазин за хлебом.",
                                  "Mañana vamos a la playa con mis primos."])
def test_non_english_is_neutral_or_unsure(scorer, embed, text):
    result = scorer.score(text, embed(text))
    assert result.label == "neutral" or result.confidence < 0.5


def test_combination_beats_the_lexicon_when_words_are_not_enough(scorer, embed):
    text = "My dog passed away this morning."
    assert scorer.score(text, embed(text)).label == "sadness"


def test_probabilities_and_similarity(scorer):
    a, b = scorer.score("I love this so much!"), scorer.score("This makes me so happy!")
    c = scorer.score("I'm scared and shaking.")
    assert abs(sum(a.probs) - 1) < 1e-3 and len(a.probs) == 7
    assert emotional_similarity(a, b) > emotional_similarity(a, c)


def test_latin_detection():
    assert is_latin("hello there") and is_latin("12345") and not is_latin("привет как дела")
