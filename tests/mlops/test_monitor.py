"""Monitoring: the statistics against known values (scipy and by hand), the signals and their
reasons, the reference profile (training stores it; the committed model gets it computed), the CLI
(JSON, self-contained HTML, exit codes) and the two replays (in-distribution OK, shifted ALERT)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sentimentkit.config import REPO_ROOT
from sentimentkit.mlops import monitor, monitor_report
from sentimentkit.mlops.monitor import ALERT, OK, WARN, Thresholds, compare, label_test, psi
from sentimentkit.mlops.predlog import PredictionLog, read_log
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training.profile import reference_profile, shares
from tests.conftest import write_tiny_splits

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


# --- statistics -----------------------------------------------------------------------------------
def test_psi_matches_the_hand_computed_value() -> None:
    expected = 0.25 * math.log(2) + 0.25 * math.log(1.5)  # (0.25-0.5)ln(0.5) + (0.75-0.5)ln(1.5)
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(expected)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0


def test_label_test_matches_scipy_and_the_textbook_values() -> None:
    chi2, p, js = label_test([50, 30, 20], [0.4, 0.4, 0.2])
    assert chi2 == pytest.approx(5.0)  # (10^2 + 10^2) / 40
    assert p == pytest.approx(math.exp(-2.5))  # chi-square survival with 2 degrees of freedom
    m = (np.array([0.5, 0.3, 0.2]) + np.array([0.4, 0.4, 0.2])) / 2
    kl = lambda a, b: float(np.sum(a * np.log2(a / b)))  # noqa: E731
    assert js == pytest.approx(
        math.sqrt((kl(np.array([0.5, 0.3, 0.2]), m) + kl(np.array([0.4, 0.4, 0.2]), m)) / 2)
    )


def test_ks_against_stored_quantiles_equals_scipy_against_the_true_cdf() -> None:
    values = np.random.default_rng(0).uniform(0.2, 0.9, 500)
    quantiles = np.linspace(0, 1, 101).tolist()  # the quantiles of U(0, 1): its CDF, interpolated exactly
    statistic, p = monitor.ks_test(values, quantiles)
    expected = stats.kstest(values, "uniform")
    assert statistic == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue)


def test_shares_bins_half_open_last_closed_and_clips_outside_values() -> None:
    assert shares([0.1, 0.4, 0.45, 1.0, 2.0], [0.0, 0.4, 0.5, 1.0]) == [0.2, 0.4, 0.4]
    assert shares([5, 500], [0.0, 10.0, float("inf")]) == [0.5, 0.5]


def test_levels_and_thresholds_file(tmp_path: Path) -> None:
    assert [monitor.level(v, 0.1, 0.2) for v in (0.05, 0.1, 0.2)] == [OK, WARN, ALERT]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"length_psi_alert": 0.5}))
    assert Thresholds.load(path).length_psi_alert == 0.5
    path.write_text(json.dumps({"lenght_psi": 1}))
    with pytest.raises(ValueError, match="unknown threshold"):
        Thresholds.load(path)


# --- signals on synthetic logs -------------------------------------------------------------------
REFERENCE = {
    "source": "synthetic", "n": 1000, "label_shares": {"negative": 0.3, "neutral": 0.4, "positive": 0.3},
    "confidence_edges": [0.0, 0.5, 0.75, 1.0], "confidence_shares": [0.2, 0.5, 0.3],
    "confidence_quantiles": np.linspace(0.4, 1.0, 101).tolist(), "confidence_mean": 0.7, "uncertain_share": 0.2,
    "length_edges": [0.0, 50.0, 100.0, None], "length_shares": [0.2, 0.6, 0.2], "length_mean": 75.0,
    "unknown_share_mean": 0.05, "unknown_edges": [0.0, 0.1, 1.0], "unknown_shares": [0.9, 0.1],
    "frequent_unknown_tokens": 0,
}  # fmt: skip


def synthetic_log(n: int, negative: float = 0.3, length: float = 75, unknown: float = 0.05, seed: int = 0,
                  start: datetime = NOW - timedelta(hours=20)) -> pd.DataFrame:  # fmt: skip
    rng = np.random.default_rng(seed)
    rest = (1 - negative) / 2
    confidence = rng.uniform(0.4, 1.0, n)
    return pd.DataFrame({
        "ts": pd.date_range(start, periods=n, freq="s", tz="UTC"),
        "model_name": "m", "model_version": "1",
        "label": rng.choice(["negative", "neutral", "positive"], n, p=[negative, rest, rest]),
        "confidence": confidence, "uncertain": confidence < 0.52,
        "n_chars": np.clip(rng.normal(length, 30, n), 1, None), "unknown_share": np.full(n, unknown),
        "unknown_tokens": [[] for _ in range(n)], "text": None,
    })  # fmt: skip


def run_compare(frame: pd.DataFrame, **kw: object) -> dict:
    return compare(frame, REFERENCE, timedelta(days=1), timedelta(days=7), now=NOW, **kw)


def test_traffic_like_the_reference_is_ok() -> None:
    report = run_compare(synthetic_log(2000))
    assert report["status"] == OK, report["summary"]
    assert {"labels", "confidence", "text_length", "unknown_tokens", "new_tokens", "volume",
            "non_english", "performance"} == set(report["signals"])  # fmt: skip
    assert report["n"] == 2000


def test_a_rising_share_of_other_languages_warns_then_alerts() -> None:
    """Issue 24: the monitor says when traffic moves to languages the model cannot read."""
    frame = synthetic_log(2000)
    frame["language"] = "en"
    assert run_compare(frame)["signals"]["non_english"]["status"] == OK
    frame.loc[frame.index[-200:], "language"] = "de"  # 10% German
    warn = run_compare(frame)["signals"]["non_english"]
    assert warn["status"] == WARN and "0.0% -> 10.0%" in warn["reason"] and "de 200" in warn["reason"]
    frame.loc[frame.index[-400:-200], "language"] = "zh"
    assert run_compare(frame)["signals"]["non_english"]["status"] == ALERT
    old_log = synthetic_log(2000)  # written before the guard: no language column
    assert "not measured" in run_compare(old_log)["signals"]["non_english"]["reason"]


def test_shifted_labels_length_and_unknown_words_alert_with_reasons_in_words() -> None:
    report = run_compare(synthetic_log(2000, negative=0.7, length=150, unknown=0.2))
    s = report["signals"]
    assert (s["labels"]["status"], s["text_length"]["status"], s["unknown_tokens"]["status"]) == (ALERT,) * 3
    assert "negative 30% -> " in s["labels"]["reason"] and "ALERT at 0.2" in s["labels"]["reason"]
    assert "PSI" in s["text_length"]["reason"] and "75 -> 1" in s["text_length"]["reason"]
    assert s["confidence"]["status"] == OK  # confidence did not move: only the right signals fire
    assert report["status"] == ALERT and "labels (ALERT)" in report["summary"]


def test_too_few_predictions_warn_instead_of_judging() -> None:
    report = run_compare(synthetic_log(50, negative=0.9))
    assert report["signals"]["labels"]["status"] == WARN
    assert "only 50 predictions" in report["signals"]["labels"]["reason"]


def test_volume_drop_and_silence() -> None:
    earlier = pd.concat(
        [synthetic_log(1000, seed=k, start=NOW - timedelta(days=k, hours=20)) for k in (1, 2, 3)]
    )
    quiet = pd.concat([earlier, synthetic_log(50, seed=9)])
    assert run_compare(quiet)["signals"]["volume"]["status"] == ALERT  # 0.05x the usual day
    silent = run_compare(earlier)["signals"]["volume"]
    assert silent["status"] == ALERT and "no predictions" in silent["reason"]
    trend = run_compare(quiet)["trend"]
    assert [row["n"] for row in trend][-4:] == [1000, 1000, 1000, 50]


# --- reference profile -----------------------------------------------------------------------------
def test_training_stores_the_reference_profile_in_the_card(tmp_path: Path) -> None:
    from sentimentkit.training.train import train

    card = train(
        write_tiny_splits(tmp_path / "data"), tmp_path / "model.pkl", params={"C": 10.0}, log=lambda *a: None
    )
    reference = card["reference"]  # every trained card carries it, as written to disk
    assert json.loads((tmp_path / "model.json").read_text())["reference"] == reference
    assert reference["source"] == "validation.csv" and reference["n"] == 27
    assert sum(reference["label_shares"].values()) == pytest.approx(1.0)
    assert len(reference["confidence_quantiles"]) == 101 and sum(reference["length_shares"]) == pytest.approx(
        1.0
    )
    assert reference["unknown_share_mean"] == 0.0  # validation == train in the tiny data


@pytest.mark.slow
def test_disjoint_halves_of_validation_are_ok_and_hate_speech_alerts(predictor: Predictor, shared_data: Path,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    """No false alarm on unseen in-distribution tweets; the right alarms on a shifted stream."""
    texts = pd.read_csv(shared_data / "validation.csv")["text"].tolist()
    reference = reference_profile(predictor, texts[:1000], "validation.csv, first half")
    tweets = pd.read_csv(shared_data.parent / "unlabeled" / "tweets.csv")
    hate = (
        tweets[tweets["source"].str.contains("/hate/|/offensive/")]["text"]
        .sample(1000, random_state=1)
        .tolist()
    )
    reports = {}
    for name, stream in (("half", texts[1000:]), ("hate", hate)):
        with PredictionLog(tmp_path / name) as log:
            for i in range(0, len(stream), 50):
                log.submit(
                    predictor, stream[i : i + 50], predictor.score(stream[i : i + 50]), source="replay"
                )
        reports[name] = compare(read_log(tmp_path / name), reference, timedelta(days=1), timedelta(days=1))
    assert reports["half"]["status"] == OK, reports["half"]["summary"]
    hate_signals = reports["hate"]["signals"]
    assert reports["hate"]["status"] == ALERT
    for name in ("labels", "text_length", "unknown_tokens"):
        assert hate_signals[name]["status"] == ALERT, hate_signals[name]["reason"]


# --- the command line ----------------------------------------------------------------------------------
def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "sentimentkit", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, env={**os.environ, **(env or {})}, timeout=300)  # fmt: skip


def test_cli_json_html_and_exit_codes(tiny_log: Path, tiny_model_path: Path, tmp_path: Path) -> None:
    data = write_tiny_splits(tmp_path / "data")
    env = {"SENTIMENTKIT_DATA_DIR": str(data)}
    html = tmp_path / "report.html"
    result = _cli("monitor", "--log", str(tiny_log), "--model", str(tiny_model_path), "--json", "--html", str(html),
                  env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"status", "signals", "n"} <= set(report) and report["n"] == 300
    assert "computed now from validation.csv" in report["reference"]["note"]  # the tiny card has no reference
    page = html.read_text()
    assert (
        page.count("<svg") >= 4  # distributions; one window: no trend lines
        and "<script" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )  # self-contained: opens offline
    text = _cli(
        "monitor", "--log", str(tiny_log), "--model", str(tiny_model_path), "--fail-on", "warn", env=env
    )
    assert text.returncode in (0, 3) and "labels" in text.stdout
    assert (text.returncode == 3) == (report["status"] != OK)


def test_cli_missing_log_is_one_clear_line(tmp_path: Path) -> None:
    result = _cli("monitor", "--log", str(tmp_path / "nothing"))
    assert result.returncode == 2 and "no prediction log files" in result.stderr
    assert "Traceback" not in result.stderr
    result = _cli("monitor", "--log", str(tmp_path), "--since", "seven")
    assert result.returncode == 2 and "is not a duration" in result.stderr


def test_live_monitor_gauges_follow_written_rows(tiny_predictor: Predictor, tmp_path: Path) -> None:
    from sentimentkit.api.metrics import Metrics
    from sentimentkit.mlops.monitor import LiveMonitor

    texts = ["I love this, it is great", "worst day ever :(", "the train leaves at noon"] * 100
    live = LiveMonitor(lambda: reference_profile(tiny_predictor, texts, "inline"), every_s=0)
    metrics = Metrics()
    metrics.add_live_monitor(live)
    assert live.gauges() == {}  # nothing written yet: no gauges rather than made-up ones
    with PredictionLog(tmp_path, on_written=live.update) as log:
        log.submit(tiny_predictor, texts, tiny_predictor.score(texts), source="api")
    gauges = live.gauges()
    assert gauges[("overall", "n")] == 300 and gauges[("labels", "js")] == pytest.approx(0.0, abs=1e-6)
    assert gauges[("labels", "status")] == 0
    body = metrics.render()[0].decode()
    assert 'sentimentkit_monitor{signal="text_length",statistic="psi"}' in body


def test_app_monitoring_tab_shows_status_signals_and_trends(
    tiny_log: Path, tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest

    env = {"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_ACCURATE_MODEL": str(tmp_path / "none"),
           "SENTIMENTKIT_API_URL": "", "SENTIMENTKIT_PREDICTION_LOG": str(tiny_log),
           "SENTIMENTKIT_DATA_DIR": str(write_tiny_splits(tmp_path / "data"))}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    assert any(h.value.startswith("Status: ") for h in at.subheader)
    signals = at.table[-1].value
    assert list(signals.index) == [
        "Share of each predicted label",
        "How sure the model is",
        "Length of the texts",
        "Words the model never saw",
        "New frequent words",
        "Share of texts not in English",
        "Estimated accuracy (AvgRec)",
        "Number of predictions",
    ]  # signal names in words, not keys like unknown_tokens
    captions = " ".join(c.value for c in at.caption)
    assert "300 predictions in the latest window" in captions
    assert "Status: OK" not in [h.value for h in at.subheader] and "(ALERT)" in captions  # names what moved
    assert not [key for key in monitor_report.SIGNAL_NAMES if key in captions]  # ... in words, not keys
    assert any("Only one window holds predictions" in c.value for c in at.caption)  # no empty trend charts
    assert not at.get("arrow_vega_lite_chart")
    reasons = " ".join(signals["reason"])
    assert "no earlier window to compare with" in reasons  # the whole reason, in a wrapping table
    monkeypatch.setenv("SENTIMENTKIT_PREDICTION_LOG", "")
    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run()
    assert any("No prediction log" in i.value for i in at.info)


def test_html_report_names_each_change_of_serving_version() -> None:
    from sentimentkit.mlops.monitor_report import render_html

    frame = pd.concat([synthetic_log(300, start=NOW - timedelta(days=2, hours=20)),
                       synthetic_log(300, start=NOW - timedelta(hours=20)).assign(model_version="2")])  # fmt: skip
    page = render_html(run_compare(frame), REFERENCE)
    assert "from 2026-11-24 12:00: 1; from 2026-11-26 12:00: 2" in page


def test_html_report_names_signals_in_words_and_draws_no_trend_for_one_window(
    tiny_log: Path, tiny_model_path: Path, tmp_path: Path
) -> None:
    from sentimentkit.mlops.monitor_report import ONE_WINDOW_NOTE, render_html, signal_name

    report, reference = monitor.run(
        str(tiny_log), timedelta(days=7), timedelta(days=1), str(tiny_model_path),
        str(write_tiny_splits(tmp_path / "data")),
    )  # fmt: skip
    page = render_html(report, reference)
    assert "<td>Words the model never saw</td>" in page and "<td>unknown_tokens</td>" not in page
    summary = page.split('class="status">', 1)[1].split("</p><p>", 1)[1].split("</p>", 1)[0]
    assert report["status"] != "OK" and f"({report['status']})" in summary  # the line names what moved
    assert not [key for key in monitor_report.SIGNAL_NAMES if key in summary]  # ... in words, not keys
    assert signal_name("unknown_tokens") == "Words the model never saw"
    assert ONE_WINDOW_NOTE in page and "Predictions per window</text>" not in page


def test_new_words_are_named_when_the_log_holds_text_and_codes_explained_when_not() -> None:
    from sentimentkit.training.profile import token_hash

    rows = 200
    frame = pd.DataFrame(
        {"unknown_tokens": [[token_hash("covfefe")]] * rows, "text": ["so covfefe today"] * rows}
    )
    ref = {"frequent_unknown_tokens": 0}
    named = monitor.new_token_signal(frame, ref, Thresholds())
    assert "covfefe (100%)" in named["reason"] and "SENTIMENTKIT_PREDICTION_LOG_TEXT" not in named["reason"]
    hashed = monitor.new_token_signal(frame.assign(text=None), ref, Thresholds())
    assert (
        token_hash("covfefe") in hashed["reason"] and "SENTIMENTKIT_PREDICTION_LOG_TEXT=1" in hashed["reason"]
    )


def test_app_trend_charts_name_series_in_words_and_paint_labels_in_their_colours() -> None:
    """The defect: the app's "Label shares and confidence" chart named its lines share_negative,
    confidence_mean... and drew negative light blue and neutral red (Streamlit's default colours)."""
    from sentimentkit import palette

    row = {"n": 300, "share_negative": 0.2, "share_neutral": 0.5, "share_positive": 0.3,
           "confidence_mean": 0.7, "uncertain_share": 0.1, "estimated_avg_recall": 0.7}  # fmt: skip
    report = {
        "trend": [
            {"start": "2026-11-20T00:00:00+00:00", **row},
            {"start": "2026-11-21T00:00:00+00:00", **row},
        ]
    }
    found = {title: (frame, colours) for title, frame, colours in monitor_report.trend_charts(report)}
    frame, colours = found["Label shares per window"]
    assert list(frame.columns) == ["negative", "neutral", "positive"]
    assert colours == [palette.NEGATIVE, palette.NEUTRAL, palette.POSITIVE]
    assert list(found["Confidence per window"][0].columns) == ["mean confidence", "uncertain share"]
    assert list(found["Estimated and realized AvgRec per window"][0].columns) == ["estimated AvgRec"]
    names = [c for frame, _ in found.values() for c in frame.columns]
    assert not [n for n in names if "_" in n]  # words, not keys
