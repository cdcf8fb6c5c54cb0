import numpy as np
import pytest

from sentimentkit.training.evaluate import (
    confident_mistakes,
    expected_calibration_error,
    format_report,
    metrics,
    reliability_table,
    slice_accuracy,
)


def test_metrics_match_hand_computed_values():
    y = ["negative", "negative", "neutral", "positive", "positive", "positive"]
    p = ["negative", "neutral", "neutral", "positive", "positive", "negative"]
    m = metrics(y, p)
    assert m["avg_recall"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    # F1 negative: P=1/2, R=1/2 -> 0.5; F1 positive: P=1, R=2/3 -> 0.8
    assert m["f1_pn"] == pytest.approx((0.5 + 0.8) / 2)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["n"] == 6 and m["labels"] == ["negative", "neutral", "positive"]
    assert "AvgRec" in format_report(m)


def test_ece_zero_for_perfectly_calibrated_and_positive_when_overconfident():
    proba = np.array([[0.0, 0.0, 1.0]] * 4)
    assert expected_calibration_error(proba, ["positive"] * 4) == 0.0
    assert expected_calibration_error(proba, ["positive", "negative"] * 2) == pytest.approx(0.5)
    table = reliability_table(proba, ["positive"] * 4)
    assert table["count"].sum() == 4


def test_slices_and_confident_mistakes():
    texts = ["not good", "great :)", "see http://x.co #tag", "\U0001f602 lol"]
    y = ["negative", "positive", "neutral", "positive"]
    p = ["positive", "positive", "neutral", "positive"]
    table = slice_accuracy(texts, y, p)
    row = table.set_index("slice").loc["negation=yes"]
    assert row["n"] == 1 and row["accuracy"] == 0
    assert table.set_index("slice").loc["url=yes", "n"] == 1
    assert table.set_index("slice").loc["emoji=yes", "n"] == 1
    proba = np.array([[0.1, 0.1, 0.8], [0, 0, 1], [0, 1, 0], [0, 0, 1]])
    worst = confident_mistakes(texts, y, proba)
    assert worst["text"].tolist() == ["not good"]


def test_metrics_over_a_subset_of_labels_without_a_polar_one() -> None:
    """Held-out corrections may hold one label only (retrain judges on the labels present): F1^PN is
    then the F1 of the polar labels present, not a KeyError."""
    from sentimentkit.training.evaluate import metrics

    result = metrics(
        ["positive", "positive", "positive"], ["positive", "neutral", "positive"], labels=["positive"]
    )
    assert result["avg_recall"] == pytest.approx(2 / 3) and result["f1_pn"] == pytest.approx(0.8)
    assert metrics(["neutral"], ["neutral"], labels=["neutral"])["f1_pn"] == 0.0
