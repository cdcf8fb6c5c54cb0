"""Behavioural tests of the committed model, the way a user would probe it (CheckList-style)."""

import pytest

POSITIVE = [
    "I love this phone, it is amazing",
    "What a great game, so happy we won",
    "This is the best coffee in town",
]


@pytest.mark.parametrize("text", POSITIVE)
def test_clear_positive_is_positive(predictor, text):
    assert predictor.predict(text) == "positive"


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("I love this phone, it is amazing", "I do not love this phone, it is not amazing"),
        ("This is the best coffee in town", "This is not the best coffee in town, not good at all"),
        ("I am happy with the service", "I am not happy with the service"),
    ],
)
def test_negation_flips_positive_to_negative(predictor, text, negated):
    assert predictor.predict(text) == "positive"
    assert predictor.predict(negated) == "negative"


CLEAR = [
    ("I love this phone, it is amazing", "positive"),
    ("I hate this phone, it is awful and broken", "negative"),
    ("Worst customer service ever, I am so angry", "negative"),
    ("What a great game, so happy we won", "positive"),
]


@pytest.mark.parametrize(("text", "label"), CLEAR)
@pytest.mark.parametrize(
    "edit",
    [
        lambda t: t + " http://t.co/abc123",
        lambda t: "@user " + t,
        lambda t: t + ". I am at the airport",
        lambda t: t + " on Tuesday",
    ],
)
def test_irrelevant_additions_do_not_flip_a_clear_label(predictor, text, label, edit):
    assert predictor.predict(text) == label
    assert predictor.predict(edit(text)) == label


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("{} made my day, thank you so much!", ["John", "Maria", "Ahmed", "Mei"]),
        ("{} ruined everything, I am furious", ["John", "Maria", "Ahmed", "Mei"]),
    ],
)
def test_changing_a_name_does_not_change_the_label(predictor, template, names):
    labels = {predictor.predict(template.format(n)) for n in names}
    assert len(labels) == 1


def test_emoticons_and_emoji_carry_sentiment(predictor):
    base = "just got home from the meeting"
    p_base = predictor.predict_proba(base)
    pos_idx, neg_idx = predictor.labels.index("positive"), predictor.labels.index("negative")
    assert predictor.predict_proba(base + " :)")[pos_idx] > p_base[pos_idx] + 0.1
    assert predictor.predict_proba(base + " :(")[neg_idx] > p_base[neg_idx] + 0.1
    assert predictor.predict_proba(base + " \U0001f60d")[pos_idx] > p_base[pos_idx] + 0.1
    assert predictor.predict_proba(base + " \U0001f621")[neg_idx] > p_base[neg_idx] + 0.05
