"""The performance estimate (CBPE): hand-computed values, NannyML's formula, the calibrators, the
interval's coverage by simulation, realized scores from matched labels, the thresholds, and the
estimate in `monitor --json` / `--labels`, the HTML report, the Prometheus gauges and the app."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from sentimentkit.mlops import estimate as est
from sentimentkit.mlops.monitor import ALERT, OK, WARN, Thresholds, compare
from sentimentkit.mlops.predlog import PredictionLog
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training import calibrate
from sentimentkit.training.performance import performance_reference
from tests.conftest import COMMITTED_MODEL, TINY_LABELS, TINY_TEXTS

# Four texts: predicted negative, neutral, positive, negative (the argmax of each row).
P = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.2, 0.3, 0.5], [0.5, 0.4, 0.1]])


# --- the arithmetic ------------------------------------------------------------------------------------
def test_expected_confusion_and_scores_by_hand() -> None:
    confusion = est.expected_confusion(P, P.argmax(axis=1))
    # column j = sum of the probability rows predicted j: negative = rows 0 + 3, neutral = row 1, positive = row 2
    expected = np.array([[1.2, 0.1, 0.2], [0.6, 0.6, 0.3], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(confusion, expected)
    result = est.estimate(P, draws=0)
    # recall: negative 1.2 / 1.5, neutral 0.6 / 1.5, positive 0.5 / 1.0; accuracy (1.2 + 0.6 + 0.5) / 4
    assert result["recall"] == pytest.approx({"negative": 0.8, "neutral": 0.4, "positive": 0.5})
    assert result["avg_recall"] == pytest.approx((0.8 + 0.4 + 0.5) / 3)
    assert result["accuracy"] == pytest.approx(0.575)


def test_recall_is_nannymls_one_vs_rest_formula() -> None:
    """NannyML (estimate_recall, multiclass): per class, TP = sum of p_c over rows predicted c, FN = sum
    of p_c over the other rows; recall = TP / (TP + FN); macro average. The same number as E[C]."""
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1, 1, 1], 500)
    predicted = rng.integers(0, 3, 500)  # not the argmax: the formula must not depend on it
    recalls = []
    for c in range(3):
        tp = proba[predicted == c, c].sum()
        fn = proba[predicted != c, c].sum()
        recalls.append(tp / (tp + fn))
    result = est.estimate(proba, predicted, draws=0)
    assert result["avg_recall"] == pytest.approx(np.mean(recalls))
    assert result["accuracy"] == pytest.approx(proba[np.arange(500), predicted].mean())


def test_certain_probabilities_give_the_realized_scores_and_a_point_interval() -> None:
    truth = np.array([0, 0, 1, 2, 2, 1, 0])
    predicted = np.array([0, 1, 1, 2, 0, 1, 0])
    result = est.estimate(np.eye(3)[truth], predicted, draws=50)
    real = est.realized([LABELS[t] for t in truth], [LABELS[p] for p in predicted])
    assert result["avg_recall"] == pytest.approx(real["avg_recall"]) and real["n"] == 7
    assert result["interval"]["avg_recall"] == pytest.approx([real["avg_recall"]] * 2)
    assert real["recall"]["negative"] == pytest.approx(2 / 3)


def test_labels_where_they_exist_and_probabilities_for_the_rest_by_hand() -> None:
    # P's rows 1 and 3 are labelled positive and neutral: they count as (0, 0, 1) and (0, 1, 0).
    # Predicted: negative, neutral, positive, negative. Columns: negative = row 0 + row 3 = (0.7, 1.2, 0.1),
    # neutral = (0, 0, 1), positive = row 2 = (0.2, 0.3, 0.5). E[C] = [[0.7, 0, 0.2], [1.2, 0, 0.3],
    # [0.1, 1, 0.5]]: recall negative 0.7 / 0.9, neutral 0 / 1.5, positive 0.5 / 1.6; accuracy 1.2 / 4.
    result = est.estimate(P, truth=[-1, 2, -1, 1], draws=200)
    np.testing.assert_allclose(
        est.expected_confusion(np.array([P[0], [0, 0, 1], P[2], [0, 1, 0]]), P.argmax(axis=1)),
        [[0.7, 0, 0.2], [1.2, 0, 0.3], [0.1, 1, 0.5]],
    )
    assert result["recall"] == pytest.approx({"negative": 0.7 / 0.9, "neutral": 0.0, "positive": 0.5 / 1.6})
    assert result["avg_recall"] == pytest.approx((0.7 / 0.9 + 0 + 0.5 / 1.6) / 3)
    assert result["accuracy"] == pytest.approx(0.3) and result["n_labelled"] == 2
    assert est.estimate(P, draws=0)["n_labelled"] == 0
    # every row labelled: the estimate is the realized score and the interval a point
    truth = [0, 2, 1, 1]
    every = est.estimate(P, truth=truth, draws=50)
    real = est.realized([LABELS[t] for t in truth], [LABELS[p] for p in P.argmax(axis=1)])
    assert every["avg_recall"] == pytest.approx(real["avg_recall"])
    assert every["interval"]["avg_recall"] == pytest.approx([real["avg_recall"]] * 2)
    with pytest.raises(ValueError, match="class indices"):
        est.estimate(P, truth=[0, 1])


def test_labelled_rows_stay_fixed_in_the_interval_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([2, 2, 2], size=400)
    truth = np.where(np.arange(400) < 300, proba.argmax(axis=1), -1)  # 300 labelled (all right), 100 not
    for exact_rows in (est.EXACT_ROWS, 10):  # the exact draw, and the normal approximation
        monkeypatch.setattr(est, "EXACT_ROWS", exact_rows)
        alone, labelled = est.estimate(proba, draws=400), est.estimate(proba, truth=truth, draws=400)
        width = {
            name: np.diff(r["interval"]["avg_recall"])[0]
            for name, r in (("alone", alone), ("labelled", labelled))
        }
        assert 0 < width["labelled"] < 0.75 * width["alone"]  # only the 100 unlabelled rows still vary
        low, high = labelled["interval"]["avg_recall"]
        assert low <= labelled["avg_recall"] <= high


def test_the_90_percent_interval_covers_the_realized_score_about_90_percent_of_the_time() -> None:
    """Labels drawn from calibrated probabilities: the realized AvgRec falls inside the interval in
    about 90% of 300 simulated windows (binomial sd at 300 trials: 1.7 points)."""
    rng = np.random.default_rng(7)
    inside = 0
    trials = 300
    for trial in range(trials):
        proba = rng.dirichlet([2, 3, 2], 300)
        truth = (rng.random((300, 1)) > np.cumsum(proba, axis=1)).sum(axis=1)
        predicted = proba.argmax(axis=1)
        real = est.realized([LABELS[t] for t in truth], [LABELS[p] for p in predicted])["avg_recall"]
        low, high = est.estimate(proba, predicted, draws=400, seed=trial)["interval"]["avg_recall"]
        inside += low <= real <= high
    assert 0.85 <= inside / trials <= 0.95


def test_large_windows_use_a_normal_approximation_that_matches_the_exact_draw() -> None:
    rng = np.random.default_rng(3)
    proba = rng.dirichlet([2, 3, 2], 3000)
    predicted = proba.argmax(axis=1)
    exact = np.quantile(est._draw_realized(proba, predicted, 2000, 1), [0.05, 0.95], axis=0)
    normal = np.quantile(est._draw_realized_normal(proba, predicted, 2000, 1), [0.05, 0.95], axis=0)
    np.testing.assert_allclose(normal, exact, atol=0.004)
    assert len(proba) > est.EXACT_ROWS  # so `estimate` takes the fast path here
    low, high = est.estimate(proba, predicted)["interval"]["avg_recall"]
    assert low == pytest.approx(exact[0, 0], abs=0.004) and high == pytest.approx(exact[1, 0], abs=0.004)


# --- calibration ---------------------------------------------------------------------------------------
def test_apply_calibrator_by_hand_and_none_is_identity() -> None:
    assert calibrate.apply_calibrator(P, None) is not None
    np.testing.assert_allclose(calibrate.apply_calibrator(P, {"method": "none"}), P)
    cal = {"method": "vector", "scale": [2.0, 1.0, 1.0], "bias": [0.0, 0.0, np.log(2.0)]}
    row = np.array([0.5, 0.25, 0.25])
    # softmax(scale * log p + bias) = (0.25, 0.25, 0.5) / 1.0
    np.testing.assert_allclose(calibrate.apply_calibrator(row[None, :], cal)[0], [0.25, 0.25, 0.5])


def test_temperature_fit_recovers_a_known_overconfidence() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (4000, 3))
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = (rng.random((4000, 1)) > np.cumsum(true_p, axis=1)).sum(axis=1)
    model_p = np.exp(2 * logits) / np.exp(2 * logits).sum(axis=1, keepdims=True)  # twice the true logits
    cal = calibrate.fit_calibrator(model_p, y, "temperature", LABELS)
    assert cal["scale"] == pytest.approx([0.5] * 3, abs=0.05)
    chosen, cv = calibrate.choose_calibrator(model_p, y, LABELS)
    assert chosen["method"] != "none" and cv["none"] > cv[chosen["method"]]
    json.dumps(chosen)  # plain numbers: travels in the card as JSON
    before = calibrate.calibration_errors(model_p, y, LABELS)
    after = calibrate.calibration_errors(calibrate.apply_calibrator(model_p, chosen), y, LABELS)
    assert after["top_label"] < before["top_label"] / 2
    assert set(after["per_class"]) == set(LABELS)


def test_calibration_error_by_hand() -> None:
    # Two texts at confidence 0.5 (bin 0.5-0.6), one right: accuracy 0.5 = confidence: ECE 0.
    proba = np.array([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]])
    assert calibrate.calibration_errors(proba, [0, 1], LABELS)["top_label"] == pytest.approx(0.0)
    # Both right at confidence 0.9: |1 - 0.9| = 0.1.
    proba = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05]])
    assert calibrate.calibration_errors(proba, [0, 0], LABELS)["top_label"] == pytest.approx(0.1)


def test_performance_reference_stores_plain_numbers(tiny_predictor: Predictor) -> None:
    frame = pd.DataFrame({"text": TINY_TEXTS, "label": TINY_LABELS})
    block = performance_reference(tiny_predictor, frame, frame)
    assert json.loads(json.dumps(block)) == block
    assert block["measured"]["avg_recall"] == pytest.approx(1.0)  # the tiny model knows its texts
    assert block["calibration"]["method"] in calibrate.METHODS and block["n"] == len(frame)


def test_the_committed_card_carries_the_reference_and_its_calibrator(predictor: Predictor) -> None:
    block = predictor.card["reference"]["performance"]
    assert block["measured"]["avg_recall"] == pytest.approx(
        predictor.card["metrics"]["validation"]["avg_recall"]
    )
    assert block["calibration"]["method"] in calibrate.METHODS
    assert len(block["calibration"]["scale"]) == 3


# --- realized scores from labels ----------------------------------------------------------------------
def _log_rows(
    texts: list[str], labels: list[str], request_ids: list[str | None], with_text: bool
) -> pd.DataFrame:
    proba = np.full((len(texts), 3), 0.2)
    for i, label in enumerate(labels):
        proba[i, LABELS.index(label)] = 0.6
    return pd.DataFrame({
        "ts": pd.date_range("2026-12-01", periods=len(texts), freq="min", tz="UTC"),
        "request_id": request_ids, "label": labels,
        "p_negative": proba[:, 0], "p_neutral": proba[:, 1], "p_positive": proba[:, 2],
        "text_sha256": [est.text_sha256(t) for t in texts], "text": texts if with_text else [None] * len(texts),
    })  # fmt: skip


def test_match_labels_by_request_id_then_text_then_hash() -> None:
    texts = ["good day", "bad day", "a day", "good day"]
    log = _log_rows(texts, ["positive", "negative", "neutral", "positive"], ["r1", "r2", "r3", "r4"], True)
    by_id = pd.DataFrame({"request_id": ["r2", "r4"], "text": ["x", "y"], "label": ["negative", "neutral"]})
    matched, how = est.match_labels(log, by_id)  # one prediction per id: the id alone is enough
    assert how == "request_id" and matched["true_label"].tolist() == ["negative", "neutral"]
    batch = log.assign(request_id=["b1", "b1", "b1", "r4"])  # a batch request logs three texts under one id
    labelled = pd.DataFrame(
        {"request_id": ["b1", "b1"], "text": ["bad day", "missing"], "label": ["negative", "positive"]}
    )
    matched, how = est.match_labels(batch, labelled)
    assert matched["text"].tolist() == ["bad day"] and matched["true_label"].tolist() == ["negative"]
    by_text = pd.DataFrame({"text": ["good day", "a day"], "label": ["positive", "positive"]})
    matched, how = est.match_labels(log, by_text)
    assert how == "exact text" and len(matched) == 3  # "good day" was logged twice: both rows get the label
    hashed = log.assign(text=None)
    matched, how = est.match_labels(hashed, by_text)
    assert how == "text SHA-256" and sorted(matched["true_label"]) == ["positive"] * 3
    real = est.realized(matched["true_label"].tolist(), matched["label"].tolist())
    assert real["n"] == 3 and real["accuracy"] == pytest.approx(2 / 3)


def test_read_labels_reads_a_feedback_folder_and_skips_state(tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    (folder / "_sentimentkit").mkdir(parents=True)
    pd.DataFrame({"text": ["a", "b"], "label": ["Positive ", "spam"]}).to_csv(
        folder / "batch1.csv", index=False
    )
    pd.DataFrame({"text": ["c"], "label": ["neutral"], "request_id": ["r9"]}).to_parquet(
        folder / "batch2.parquet"
    )
    pd.DataFrame({"text": ["z"], "label": ["negative"]}).to_csv(
        folder / "_sentimentkit" / "state.csv", index=False
    )
    labels = est.read_labels(str(folder))
    assert labels["text"].tolist() == ["a", "c"] and labels["label"].tolist() == ["positive", "neutral"]
    assert labels.attrs == {"dropped": 1, "files": 2}
    (tmp_path / "bad.csv").write_text("tweet,sentiment\nhi,positive\n")
    with pytest.raises(ValueError, match="no text or label column"):
        est.read_labels(str(tmp_path / "bad.csv"))
    with pytest.raises(FileNotFoundError, match="not found"):
        est.read_labels(str(tmp_path / "missing.csv"))


# --- the signal and its thresholds ----------------------------------------------------------------------
def _reference(measured: float, estimated: float | None = None) -> dict:
    return {"performance": {"measured": {"avg_recall": measured, "accuracy": 0.7},
                            "estimated": {"avg_recall": estimated or measured, "accuracy": 0.7},
                            "calibration": {"method": "none"}}}  # fmt: skip


def test_performance_signal_levels_follow_the_thresholds() -> None:
    rows = _log_rows(["t"] * 300, ["negative", "neutral", "positive"] * 100, [None] * 300, False)
    value = est.estimate_frame(rows, draws=0)["avg_recall"]  # 0.6 on every class
    assert value == pytest.approx(0.6)
    t = Thresholds()
    for reference, status in ((0.62, OK), (0.635, WARN), (0.66, ALERT)):
        sig = est.performance_signal(rows, _reference(reference), t)
        assert sig["status"] == status, sig["reason"]
    sig = est.performance_signal(rows, _reference(0.66), Thresholds(estimate_drop_alert=0.07))
    assert sig["status"] == WARN and "ALERT at 7" in sig["reason"]
    sig = est.performance_signal(
        rows, _reference(0.70, estimated=0.61), Thresholds(estimate_baseline="estimated")
    )
    assert sig["status"] == OK and sig["values"]["reference_avg_recall"] == 0.61
    assert est.performance_signal(rows, {}, t)["status"] == OK  # no reference estimate: shown, not judged
    with pytest.raises(ValueError, match="estimate_baseline"):
        Thresholds(estimate_baseline="validation")


def test_thresholds_file_sets_the_estimate_thresholds(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"estimate_drop_warn": 0.02, "estimate_drop_alert": 0.04}))
    t = Thresholds.load(path)
    assert (t.estimate_drop_warn, t.estimate_drop_alert) == (0.02, 0.04)


def test_compare_reports_the_estimate_per_window() -> None:
    rows = _log_rows(["t"] * 600, ["negative", "neutral", "positive"] * 200, [None] * 600, False)
    rows = rows.assign(model_name="m", model_version="1", confidence=0.6, uncertain=False, n_chars=10,
                       unknown_share=0.0, unknown_tokens=[[] for _ in range(600)])  # fmt: skip
    ref = {**_reference(0.70), "label_shares": dict.fromkeys(LABELS, 1 / 3), "confidence_edges": [0, 0.5, 1],
           "confidence_shares": [0, 1], "confidence_quantiles": [0.6] * 101, "confidence_mean": 0.6,
           "uncertain_share": 0.0, "length_edges": [0, 5, None], "length_shares": [0, 1], "length_mean": 10,
           "unknown_share_mean": 0.0, "unknown_edges": [0, 1], "unknown_shares": [1.0]}  # fmt: skip
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    report = compare(rows, ref, timedelta(hours=5), timedelta(hours=10), now=now)
    perf = report["signals"]["performance"]
    # 0.6 on every class, up to the window's uneven class counts (299 rows)
    assert perf["status"] == ALERT and perf["values"]["estimated_avg_recall"] == pytest.approx(0.6, abs=1e-3)
    assert perf["values"]["avg_recall_low"] < 0.6 < perf["values"]["avg_recall_high"]
    assert [r.get("estimated_avg_recall") for r in report["trend"]] == [pytest.approx(0.6, abs=1e-3)] * 2


def test_labels_in_the_window_replace_the_probabilities_and_decide_the_status() -> None:
    # 600 rows, one a minute; the latest 5 hours hold 299 of them, 150 of which are one viral text the
    # model calls positive (p 0.6, 0.2 elsewhere) that is truly neutral: the probabilities cannot see it.
    # Latest window: 49 predicted negative, 50 neutral, 200 positive (150 viral). Probabilities alone:
    # recall_i = 0.6 n_i / (0.6 n_i + 0.2 (299 - n_i)). With the viral label: the positive column is
    # 50 x (0.2, 0.2, 0.6) + 150 x (0, 1, 0) = (10, 160, 30), so E[C] = [[29.4, 10, 10], [9.8, 30, 160],
    # [9.8, 10, 30]]: recall 29.4 / 49.4, 30 / 199.8, 30 / 49.8.
    texts = [f"t{i}" for i in range(600)]
    labels = ["negative", "neutral", "positive"] * 200
    for i in range(400, 550):
        texts[i], labels[i] = "viral", "positive"
    rows = _log_rows(texts, labels, [None] * 600, True)
    rows = rows.assign(model_name="m", model_version="1", confidence=0.6, uncertain=False, n_chars=10,
                       unknown_share=0.0, unknown_tokens=[[] for _ in range(600)])  # fmt: skip
    ref = {**_reference(0.55), "label_shares": dict.fromkeys(LABELS, 1 / 3), "confidence_edges": [0, 0.5, 1],
           "confidence_shares": [0, 1], "confidence_quantiles": [0.6] * 101, "confidence_mean": 0.6,
           "uncertain_share": 0.0, "length_edges": [0, 5, None], "length_shares": [0, 1], "length_mean": 10,
           "unknown_share_mean": 0.0, "unknown_edges": [0, 1], "unknown_shares": [1.0]}  # fmt: skip
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    window = timedelta(hours=5)
    report = compare(rows, ref, window, timedelta(hours=10), now=now)
    alone = report["signals"]["performance"]
    by_hand = np.mean([0.6 * n / (0.6 * n + 0.2 * (299 - n)) for n in (49, 50, 200)])
    assert alone["status"] == OK and alone["values"]["estimated_avg_recall"] == pytest.approx(
        by_hand, abs=1e-6
    )

    # the signal points at the repeated text: the one worth labelling
    assert alone["values"]["most_repeated"] == [{"text": "viral", "text_sha256": est.text_sha256("viral"),
        "predictions": 150, "share": round(150 / 299, 6), "predicted": "positive", "labelled": False}]  # fmt: skip
    assert "the 1 most repeated texts are 50% of the predictions (1 unlabelled)" in alone["reason"]
    assert "`review --strategy frequent` writes them to label" in alone["reason"]

    viral = pd.DataFrame({"text": ["viral"], "label": ["neutral"]})
    est.add_realized(report, rows, viral, window, ref, "viral.csv")
    perf = report["signals"]["performance"]
    expected = (29.4 / 49.4 + 30 / 199.8 + 30 / 49.8) / 3  # 0.449
    values = perf["values"]
    assert values["estimated_avg_recall"] == pytest.approx(expected, abs=1e-6)
    assert values["estimated_avg_recall_probabilities"] == pytest.approx(by_hand, abs=1e-6)
    assert (
        values["labels_used"] == 150 and values["n_labelled"] == 150 and values["realized_avg_recall"] == 0.0
    )
    assert perf["status"] == ALERT and "labels for 150 of the 299 predictions" in perf["reason"]
    assert values["most_repeated"][0]["labelled"] is True and "unlabelled" not in perf["reason"]
    assert values["avg_recall_low"] <= values["estimated_avg_recall"] <= values["avg_recall_high"]
    earlier, last = report["trend"]
    assert "estimated_avg_recall_probabilities" not in earlier and earlier["n_labelled"] == 0
    assert last["estimated_avg_recall"] == pytest.approx(expected, abs=1e-6)
    assert last["estimated_avg_recall_probabilities"] == pytest.approx(by_hand, abs=1e-6)


def test_most_repeated_lists_texts_logged_twice_or_more_by_hash_when_the_log_keeps_no_text() -> None:
    rows = _log_rows(["a", "b", "a", "c", "b", "a"], ["positive"] * 6, [None] * 6, False)
    repeated, share = est.most_repeated(rows)
    assert [(r["text"], r["text_sha256"], r["predictions"]) for r in repeated] == [
        (None, est.text_sha256("a"), 3),
        (None, est.text_sha256("b"), 2),
    ]  # "c" once: left out
    assert share == pytest.approx(5 / 6) and est.most_repeated(rows.iloc[:0]) == ([], 0.0)
    rows = _log_rows([f"t{i}" for i in range(200)] + ["x"] * 100, ["negative", "neutral", "positive"] * 100,
                     [None] * 300, False)  # fmt: skip
    sig = est.performance_signal(rows, _reference(0.6), Thresholds())
    assert "(1 unlabelled)" in sig["reason"] and "SENTIMENTKIT_PREDICTION_LOG_TEXT=true" in sig["reason"]


# --- monitor, report, gauges, app ------------------------------------------------------------------------
TEXTS = ["I love this phone, it is great", "worst service ever, so angry :(", "the store opens at nine",
         "happy birthday to my best friend!", "this update is terrible and slow", "meeting moved to friday"]  # fmt: skip
TRUTH = ["positive", "negative", "neutral", "positive", "negative", "neutral"]


@pytest.fixture
def committed_log(predictor: Predictor, tmp_path: Path) -> Path:
    texts = TEXTS * 50
    with PredictionLog(tmp_path / "log") as log:
        log.submit(predictor, texts, predictor.score(texts), source="api")
    return tmp_path / "log"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentimentkit", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300)  # fmt: skip


def test_cli_json_shows_the_estimate_and_labels_add_realized_scores(
    committed_log: Path, tmp_path: Path
) -> None:
    result = _cli("monitor", "--log", str(committed_log), "--model", str(COMMITTED_MODEL), "--json")
    assert result.returncode == 0, result.stderr
    perf = json.loads(result.stdout)["signals"]["performance"]
    assert perf["values"]["n"] == 300 and 0 < perf["values"]["estimated_avg_recall"] <= 1
    assert (
        perf["values"]["avg_recall_low"]
        <= perf["values"]["estimated_avg_recall"]
        <= perf["values"]["avg_recall_high"]
    )
    assert perf["values"]["calibrated"] is True and "estimated AvgRec" in perf["reason"]

    labels = tmp_path / "labels.csv"
    pd.DataFrame({"text": TEXTS, "label": TRUTH}).to_csv(labels, index=False)
    html = tmp_path / "report.html"
    result = _cli("monitor", "--log", str(committed_log), "--model", str(COMMITTED_MODEL), "--json",
                  "--labels", str(labels), "--html", str(html))  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    values = report["signals"]["performance"]["values"]
    predicted = [r["sentiment"] for r in Predictor.load(COMMITTED_MODEL).score(TEXTS)]
    expected = est.realized(TRUTH, predicted)
    assert values["n_labelled"] == 300 and values["realized_avg_recall"] == pytest.approx(
        expected["avg_recall"], abs=1e-6
    )
    assert report["labels"]["matched_by"] == "text SHA-256" and report["labels"]["matched_predictions"] == 300
    assert report["trend"][-1]["n_labelled"] == 300
    # every prediction labelled: the estimate is the realized score, and the status and summary follow it
    assert values["labels_used"] == 300
    assert values["estimated_avg_recall"] == pytest.approx(expected["avg_recall"], abs=1e-6)
    worst = max((s["status"] for s in report["signals"].values()), key=[OK, WARN, ALERT].index)
    assert report["status"] == worst and report["summary"].startswith(worst)
    page = html.read_text()
    assert "Performance per window" in page and "realized AvgRec" in page

    result = _cli("monitor", "--log", str(committed_log), "--labels", str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_live_monitor_exposes_the_estimate_as_gauges(predictor: Predictor, tmp_path: Path) -> None:
    from sentimentkit.api.metrics import Metrics
    from sentimentkit.mlops.monitor import LiveMonitor
    from sentimentkit.training.profile import model_reference

    live = LiveMonitor(lambda: model_reference(predictor)[0], every_s=0)
    metrics = Metrics()
    metrics.add_live_monitor(live)
    texts = TEXTS * 50
    with PredictionLog(tmp_path, on_written=live.update) as log:
        log.submit(predictor, texts, predictor.score(texts), source="api")
    gauges = live.gauges()
    assert 0 < gauges[("performance", "estimated_avg_recall")] <= 1
    assert ("performance", "reference_avg_recall") in gauges and ("performance", "status") in gauges
    body = metrics.render()[0].decode()
    assert 'sentimentkit_monitor{signal="performance",statistic="estimated_avg_recall"}' in body


def test_app_monitoring_tab_shows_the_estimate(committed_log: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from streamlit.testing.v1 import AppTest

    env = {"SENTIMENTKIT_MODEL": str(COMMITTED_MODEL), "SENTIMENTKIT_ACCURATE_MODEL": str(tmp_path / "none"),
           "SENTIMENTKIT_API_URL": "", "SENTIMENTKIT_PREDICTION_LOG": str(committed_log)}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert "Estimated AvgRec" in labels and "90% interval" in labels
    assert "points vs reference" in at.metric[labels.index("Estimated AvgRec")].delta


def test_store_performance_adds_the_block_to_an_existing_card(tiny_model_path: Path, tmp_path: Path) -> None:
    import shutil

    from sentimentkit.training.performance import main, store_performance
    from sentimentkit.training.profile import store_reference
    from tests.conftest import write_tiny_splits

    model = tmp_path / "model.pkl"
    shutil.copy(tiny_model_path, model)
    shutil.copy(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    data = write_tiny_splits(tmp_path / "data")
    with pytest.raises(ValueError, match="no reference profile"):
        store_performance(model, data)
    store_reference(model, data)
    before = model.read_bytes()
    card = store_performance(model, data)
    assert card["reference"]["performance"]["measured"]["avg_recall"] == pytest.approx(1.0)
    assert Predictor.load(model).card["reference"]["performance"] == card["reference"]["performance"]
    assert model.read_bytes() == before  # only the card changes
    assert main([str(tmp_path / "missing.pkl"), str(data)]) == 2


def test_training_stores_the_performance_reference(tmp_path: Path) -> None:
    from sentimentkit.training.train import train
    from tests.conftest import write_tiny_splits

    card = train(
        write_tiny_splits(tmp_path / "data"), tmp_path / "model.pkl", params={"C": 10.0}, log=lambda *a: None
    )
    block = card["reference"]["performance"]
    assert json.loads((tmp_path / "model.json").read_text())["reference"]["performance"] == block
    assert block["measured"]["avg_recall"] == pytest.approx(card["metrics"]["validation"]["avg_recall"])
    assert block["calibration"]["method"] in calibrate.METHODS
