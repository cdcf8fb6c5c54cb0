"""The explanation in plain words (sentimentkit.ui): merged repeats, no punctuation tokens, strength in
words instead of raw weights, and a note when the two models disagree."""

from __future__ import annotations

from sentimentkit import ui

TEXT = 'good food, "good" service!! but slow'
# tokens as the model's explain() gives them: punctuation maps onto the neighbouring word's span
EXPLANATION = {
    "label": "positive",
    "tokens": [
        {"start": 0, "end": 4, "weight": 0.6},  # good
        {"start": 5, "end": 10, "weight": 0.05},  # food,
        {"start": 11, "end": 17, "weight": 0.3},  # "good"
        {"start": 18, "end": 27, "weight": 0.2},  # service!!
        {"start": 28, "end": 31, "weight": -0.02},  # but
        {"start": 32, "end": 36, "weight": -0.7},  # slow
        {"start": 26, "end": 27, "weight": 0.01},  # a lone "!" span (overlaps service!!)
    ],
}


def test_strength_words_follow_the_documented_thresholds() -> None:
    assert ui.strength_words(1.29, "negative") == "strongly toward negative"
    assert ui.strength_words(ui.STRONG_WEIGHT, "negative") == "strongly toward negative"
    assert ui.strength_words(0.2, "negative") == "slightly toward negative"
    assert ui.strength_words(-0.2, "positive") == "slightly away from positive"
    assert ui.strength_words(-0.8, "positive") == "strongly away from positive"
    assert ui.strength_words(0.05, "neutral") == "barely matters"


def test_repeated_words_are_merged_and_punctuation_dropped() -> None:
    toward, against = ui.top_words(TEXT, EXPLANATION)
    assert toward["word"].tolist() == ["good", "service"]  # "food" barely matters: left out
    assert toward["times"].tolist() == [2, 1]
    assert toward["push"].tolist() == ["strongly", "slightly"]
    assert against["word"].tolist() == ["slow"] and against["push"].tolist() == ["strongly"]
    assert list(toward.columns) == ["word", "times", "push"]  # no raw weight like 1.2905
    effects = ui.word_effects(TEXT, EXPLANATION).set_index("word")["effect"]
    assert effects["good"] == "strongly toward positive" and effects["slow"] == "strongly away from positive"


def test_punctuation_only_tokens_are_not_words() -> None:
    explanation = {"label": "negative", "tokens": [{"start": 0, "end": 2, "weight": 0.9},
                                                   {"start": 3, "end": 6, "weight": 0.4}]}  # fmt: skip
    toward, _ = ui.top_words("!! bad", explanation)
    assert toward["word"].tolist() == ["bad"]
    frame = ui.word_effects(
        "“ ” bad", {"label": "positive", "tokens": [{"start": 0, "end": 1, "weight": 1.0}]}
    )
    assert frame.empty


def test_summary_sentence() -> None:
    summary = ui.explanation_summary(TEXT, EXPLANATION)
    assert (
        summary == "“good” (×2) and “service” pushed it toward positive; “slow” pushed it away from positive."
    )
    assert "No single word" in ui.explanation_summary("hm", {"label": "neutral", "tokens": []})


def test_disagreement_note() -> None:
    fast = {"sentiment": "positive", "confidence": 0.55, "error": None}
    accurate = {"sentiment": "negative", "confidence": 0.8, "error": None}
    note = ui.disagreement_note(fast, accurate)
    assert note is not None and "disagree" in note and "positive (55%)" in note and "negative (80%)" in note
    assert ui.disagreement_note(fast, dict(fast)) is None
    assert ui.disagreement_note(fast, {**accurate, "error": "empty text"}) is None
