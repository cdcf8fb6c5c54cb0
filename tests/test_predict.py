import numpy as np
import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.serving.base import OUTPUT_COLUMNS, text_error


def test_same_shape_in_and_out(tiny_predictor):
    one = tiny_predictor.predict_proba("I love it")
    many = tiny_predictor.predict_proba(["I love it", "I hate it"])
    assert one.shape == (3,) and many.shape == (2, 3)
    np.testing.assert_allclose(many.sum(axis=1), 1.0, rtol=1e-6)
    assert tiny_predictor.predict("I love it") in LABELS
    assert len(tiny_predictor.predict(["a", "b", "c"])) == 3
    assert tiny_predictor.predict([]) == []


def test_fast_path_matches_sklearn_pipeline(tiny_predictor):
    texts = ["I love it", "terrible day :(", "the train leaves at noon"]
    np.testing.assert_allclose(
        tiny_predictor.predict_proba(texts),
        tiny_predictor.pipeline.predict_proba(texts),
        rtol=1e-5,
        atol=1e-7,
    )


def test_score_flags_bad_items_and_keeps_order(tiny_predictor):
    items = ["I love it", "", None, float("nan"), 42, "x" * 6000, "I hate it"]
    results = tiny_predictor.score(items)
    assert len(results) == len(items)
    assert [r["error"] is None for r in results] == [True, False, False, False, False, False, True]
    assert results[1]["error"] == "empty text"
    assert "not text" in results[4]["error"]
    assert "limit is 5120" in results[5]["error"]
    assert results[0]["sentiment"] == "positive" and results[6]["sentiment"] == "negative"


def test_threshold_marks_uncertain(tiny_predictor):
    assert tiny_predictor.score(["I love it"], threshold=1.0)[0]["uncertain"] is True
    assert tiny_predictor.score(["I love it"], threshold=0.0)[0]["uncertain"] is False


def test_score_frame_appends_columns_and_keeps_rows(tiny_predictor):
    frame = pd.DataFrame({"id": [3, 1, 2], "text": ["I love it", "", "I hate it"]})
    out = tiny_predictor.score_frame(frame, "text")
    assert list(out.columns) == ["id", "text", *OUTPUT_COLUMNS]
    assert out["id"].tolist() == [3, 1, 2]
    assert out["error"].tolist()[1] == "empty text"
    with pytest.raises(KeyError):
        tiny_predictor.score_frame(frame, "tweet")


def test_explanation_is_exact_decomposition_of_the_logit(tiny_predictor):
    text = "I do not love this, it is awful :("
    exp = tiny_predictor.explain(text)
    scores = tiny_predictor.pipeline.decision_function([text])[0]
    k = LABELS.index(exp["label"])
    assert exp["logit"] == pytest.approx(scores[k] - scores.mean(), abs=1e-4)
    assert sum(t["weight"] for t in exp["tokens"]) + exp["bias"] == pytest.approx(exp["logit"], abs=1e-6)
    for tok in exp["tokens"]:
        assert text[tok["start"] : tok["end"]].strip()


def test_explain_rejects_empty_text(tiny_predictor):
    with pytest.raises(ValueError, match="empty"):
        tiny_predictor.explain("   ")


def test_text_error():
    assert text_error("ok", 10) is None
    assert text_error(" ", 10) == "empty text"
    assert text_error(None, 10) == "empty text"
    assert "too long" in text_error("x" * 11, 10)


def test_single_text_path_matches_sklearn_pipeline(tiny_predictor):
    for text in ["I love it", "terrible day :(", "never seen words", "", "not bad"]:
        np.testing.assert_allclose(
            tiny_predictor.predict_proba(text),
            tiny_predictor.pipeline.predict_proba([text])[0],
            rtol=1e-5,
            atol=1e-7,
        )


def test_text_error_refuses_lone_surrogates_and_is_the_apps_rule():
    from sentimentkit import ui

    assert "not valid Unicode" in text_error("\ud83d love", 100)
    assert text_error("\U0001f600 love", 100) is None
    assert ui.input_problem("   ", 10) == ui.EMPTY_PROMPT
    assert ui.input_problem("x" * 11, 10).startswith("Text too long: 11 characters, the limit is 10.")


def test_texts_that_show_nothing_are_empty(tiny_predictor):
    # Zero-width joiners/spaces, direction marks and BOMs alone were scored as if they were words.
    invisible = ["\u200d", "\u200f\u202e", " \ufeff\u200b ", "\u2028"]
    assert [r["error"] for r in tiny_predictor.score(invisible)] == ["empty text"] * 4
    visible = ["\u200f\u05e9\u05dc\u05d5\u05dd", "\U0001f468\u200d\U0001f469", "\ufeffhi"]
    assert [r["error"] for r in tiny_predictor.score(visible)] == [None] * 3
