"""Insights: exact batch contributions, statistics against scipy, date reading, report, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats.contingency import association

from sentimentkit.insights.build import build_insights, ensure_scored
from sentimentkit.insights.dates import detect_date_column, parse_dates
from sentimentkit.insights.drivers import distinctive_terms, log_odds_dirichlet, term_matrix
from sentimentkit.insights.groups import by_group
from sentimentkit.insights.render import render_html, summary
from sentimentkit.insights.stats import chi_square, net_sentiment, two_proportion_z
from sentimentkit.insights.timeline import choose_granularity, over_time

from .test_cli import run

TEXTS = [
    "I don't love this phone, the battery is not good at all",
    "what a GREAT day :) sooo happy #blessed http://t.co/x",
    "worst worst worst service ever @united",
    "the meeting is on tuesday at 7pm",
    "good good bad bad good",
    "",  # no tokens: only the bias remains
    "Café crème 😀 and Müller",
]


# --- exact contributions ------------------------------------------------------------------------
def test_batch_contributions_equal_explain_per_token_and_add_up_to_the_logits(predictor) -> None:
    result = predictor.explain_batch(TEXTS)
    clf = predictor.pipeline.named_steps["clf"]
    logits = predictor._vectorizer.transform(TEXTS) @ clf.coef_.T + clf.intercept_
    centred = logits - logits.mean(axis=1, keepdims=True)
    totals = np.stack([np.asarray(w.sum(axis=1)).ravel() for w in result.weights], axis=1) + result.bias
    np.testing.assert_allclose(totals, centred, atol=1e-5)
    for i, text in enumerate(TEXTS):
        if not text:
            continue
        for k, label in enumerate(predictor.labels):
            expected: dict[str, float] = {}
            for token in predictor.explain(text, label)["tokens"]:
                expected[token["token"]] = expected.get(token["token"], 0.0) + token["weight"]
            row = result.weights[k][i]
            got = {str(result.terms[j]): v for j, v in zip(row.indices, row.data)}
            assert got.keys() == expected.keys()
            for term, weight in expected.items():
                assert got[term] == pytest.approx(weight, abs=1e-5)


# --- statistics against scipy --------------------------------------------------------------------
def test_net_sentiment_interval_is_the_multinomial_wald_interval() -> None:
    net, low, high = net_sentiment(np.array([40]), np.array([25]), np.array([100]))
    p, q = 0.40, 0.25
    half = stats.norm.ppf(0.975) * np.sqrt((p + q - (p - q) ** 2) / 100)
    assert net[0] == pytest.approx(0.15)
    assert (low[0], high[0]) == pytest.approx((0.15 - half, 0.15 + half))
    assert np.isnan(net_sentiment(np.array([0]), np.array([0]), np.array([0]))[0][0])


def test_net_sentiment_interval_covers_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    draws = rng.multinomial(300, [0.3, 0.3, 0.4], size=4000)
    _, low, high = net_sentiment(draws[:, 2], draws[:, 0], np.full(4000, 300))
    coverage = np.mean((low <= 0.1) & (high >= 0.1))
    assert 0.93 <= coverage <= 0.97


def test_chi_square_and_cramers_v_match_scipy() -> None:
    table = pd.DataFrame([[120, 60, 20], [40, 50, 110], [30, 30, 40]])
    result = chi_square(table)
    expected = stats.chi2_contingency(table.to_numpy(), correction=False)
    assert result.chi2 == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.dof == expected.dof == 4
    assert result.cramers_v == pytest.approx(association(table.to_numpy(), method="cramer"))
    # V = 0.33: Cohen's w thresholds / sqrt(min(3, 3) - 1) are 0.07, 0.21, 0.35: moderate.
    assert result.strength() == "moderate"
    assert "Sentiment differs between" in result.in_words("airlines")
    assert chi_square(pd.DataFrame([[5, 0, 0], [0, 0, 0]])) is None


def test_two_proportion_z_squared_is_the_2x2_chi_square() -> None:
    z = two_proportion_z(np.array([60]), np.array([100]), np.array([200]), np.array([700]))[0]
    table = np.array([[60, 40], [200, 500]])
    assert z**2 == pytest.approx(stats.chi2_contingency(table, correction=False).statistic)
    assert z > 0


def test_log_odds_with_informative_dirichlet_prior_known_values() -> None:
    y_a, y_b, background = np.array([10.0, 2.0, 8.0]), np.array([3.0, 9.0, 8.0]), np.array([20.0, 15.0, 25.0])
    delta, z = log_odds_dirichlet(y_a, y_b, background, prior_strength=30.0)
    alpha = 30.0 * background / 60.0  # 10, 7.5, 12.5
    for w in range(3):
        om_a = (y_a[w] + alpha[w]) / (20 + 30 - y_a[w] - alpha[w])
        om_b = (y_b[w] + alpha[w]) / (20 + 30 - y_b[w] - alpha[w])
        assert delta[w] == pytest.approx(np.log(om_a) - np.log(om_b))
        assert z[w] == pytest.approx(delta[w] / np.sqrt(1 / (y_a[w] + alpha[w]) + 1 / (y_b[w] + alpha[w])))
    assert delta[0] == pytest.approx(0.6405034, rel=1e-6)  # log(20/30) - log(13/37), by hand


def test_distinctive_terms_fold_negation_and_count_texts_once() -> None:
    texts = ["bad bad service", "not bad at all", "awful service", "great service", "great crew", "lovely"]
    labels = pd.Series(["negative", "negative", "negative", "positive", "positive", "positive"])
    found = distinctive_terms(term_matrix(texts), labels)
    negative = {t["term"]: t for t in found["negative"]}
    assert negative["bad"]["n_texts"] == 2  # "bad bad" once, "not bad" folded in
    assert found["positive"][0]["term"] == "great"


# --- dates ---------------------------------------------------------------------------------------
def test_day_first_with_dotted_times_is_read_and_said() -> None:
    parsed = parse_dates(
        pd.Series(["24-02-2015 11.35", "03-04-2015 09.05", "01-03-2015 23.59"]), column="created"
    )
    assert parsed.values.tolist() == [pd.Timestamp("2015-02-24 11:35"), pd.Timestamp("2015-04-03 09:05"),
                                      pd.Timestamp("2015-03-01 23:59")]  # fmt: skip
    assert parsed.order == "DMY" and "day first" in parsed.notes[0] and not parsed.problems


def test_ambiguous_dates_are_reported_in_words_not_guessed() -> None:
    parsed = parse_dates(pd.Series(["03/04/2015", "05/06/2015"]), column="d")
    assert parsed.values.isna().all()
    assert (
        "could be day-first or month-first" in parsed.problems[0]
        and "3 April or 4 March" in parsed.problems[0]
    )
    chosen = parse_dates(pd.Series(["03/04/2015", "05/06/2015"]), order="MDY")
    assert chosen.values.tolist() == [pd.Timestamp("2015-03-04"), pd.Timestamp("2015-05-06")]


def test_mixed_orders_and_unreadable_values_are_counted_and_quoted() -> None:
    mixed = parse_dates(pd.Series(["24-02-2015", "02-24-2015"]))
    assert mixed.values.isna().all() and "mixes day-first and month-first" in mixed.problems[0]
    bad = parse_dates(pd.Series(["24-02-2015", "31-02-2015", "yesterday", ""]), column="d")
    assert bad.n_read == 1
    assert any(
        "2 rows have a value in 'd' that is not a readable date" in p and "'yesterday'" in p
        for p in bad.problems
    )
    assert "1 rows have no value in 'd'." in bad.notes


def test_iso_twitter_and_month_names_with_offsets_in_utc() -> None:
    values = [
        "2015-02-24T13:35:00+02:00",
        "Tue Feb 24 11:35:52 +0000 2015",
        "24 Feb 2015",
        "02/24/2015 12:05 AM",
    ]
    parsed = parse_dates(pd.Series(values))
    assert parsed.values.tolist() == [pd.Timestamp("2015-02-24 11:35"), pd.Timestamp("2015-02-24 11:35:52"),
                                      pd.Timestamp("2015-02-24"), pd.Timestamp("2015-02-24 00:05")]  # fmt: skip


def test_date_column_detection_ignores_ids_and_text() -> None:
    frame = pd.DataFrame(
        {"id": ["1", "2", "3"], "text": ["a", "b", "c"], "when": ["24-02-2015", "25-02-2015", ""]}
    )
    assert detect_date_column(frame) == "when"
    assert detect_date_column(frame[["id", "text"]]) is None


# --- over time and groups ------------------------------------------------------------------------
def test_granularity_follows_the_span() -> None:
    start = pd.Timestamp("2015-01-01")
    spans = {"hour": pd.Timedelta(days=2), "day": pd.Timedelta(days=60), "week": pd.Timedelta(days=400),
             "month": pd.Timedelta(days=2000)}  # fmt: skip
    for expected, span in spans.items():
        assert choose_granularity(start, start + span) == expected


def test_a_negative_spike_is_found_and_empty_days_kept() -> None:
    days, labels = [], []
    for day in range(10):
        negative = 40 if day == 8 else 10
        days += [pd.Timestamp("2015-02-01") + pd.Timedelta(days=day)] * 50
        labels += ["negative"] * negative + ["positive"] * (50 - negative)
    dates = pd.Series(days)
    dates[dates == pd.Timestamp("2015-02-04")] = pd.Timestamp("2015-02-05")  # 4 February: no texts
    timeline = over_time(dates, pd.Series(labels))
    assert timeline.granularity == "day" and len(timeline.table) == 10
    assert timeline.table.loc["2015-02-04", "n"] == 0
    assert [s.period for s in timeline.spikes] == [pd.Timestamp("2015-02-09")]
    assert timeline.spikes[0].negative_share == pytest.approx(0.8)


def test_groups_keep_the_top_ones_and_merge_the_rest() -> None:
    raw = pd.Series(["a"] * 30 + ["b"] * 20 + ["c"] * 5 + ["d"] * 5 + [""] * 2)
    labels = pd.Series((["positive", "negative"] * 31)[: len(raw)])
    result = by_group(raw, labels, "brand", top=2)
    assert set(result.table.index) == {"a", "b", "other"} and result.other_label == "other"
    assert result.table["n"].sum() == len(raw) and result.n_groups == 5


# --- report --------------------------------------------------------------------------------------
def scored_frame(tiny_predictor) -> pd.DataFrame:
    texts = [
        "I love this, it is great",
        "worst day ever, so sad",
        "the meeting is on tuesday",
        "",
        "great and happy",
    ]
    frame = pd.DataFrame({"text": texts * 8, "brand": ["x", "y"] * 20,
                          "date": [f"{10 + i % 5:02d}-03-2016 1{i % 10}.00" for i in range(40)]})  # fmt: skip
    return ensure_scored(frame, "text", tiny_predictor)[0]


def test_summary_has_the_documented_fields_and_counts_unscored_rows(tiny_predictor) -> None:
    ins = build_insights(scored_frame(tiny_predictor), "text", tiny_predictor)
    data = json.loads(json.dumps(summary(ins)))
    assert data["n_rows"] == 40 and data["n_scored"] == 32
    assert {"n_rows", "shares", "by_group", "over_time", "drivers", "warnings"} <= set(data)
    assert set(data["by_group"][0]) == {"group", "n", "shares", "net_sentiment", "ci_low", "ci_high"}
    assert data["over_time"]["granularity"] == "day" and data["date_column"] == "date"
    assert set(data["over_time"]["points"][0]) >= {"period", "n", "shares", "net_sentiment"}
    assert data["drivers"]["positive"][0]["term"] in {"love", "great", "happy"}
    assert any("8 rows have no label" in w for w in data["warnings"])


def test_already_scored_files_are_reused_and_wrong_labels_refused(tiny_predictor) -> None:
    scored = scored_frame(tiny_predictor).astype(str).replace({"None": "", "nan": ""})
    scored.loc[0, "sentiment"] = "neutral"  # a value only the file knows: proves the file's labels are used
    reused, source = ensure_scored(scored, "text", None)
    assert source == "the file's own 'sentiment' column" and reused.loc[0, "sentiment"] == "neutral"
    assert reused["error"].notna().sum() == 8
    scored.loc[1, "sentiment"] = "pos"
    with pytest.raises(ValueError, match="values other than negative, neutral, positive"):
        ensure_scored(scored, "text", None)


def test_html_is_self_contained_and_escapes_texts(tiny_predictor) -> None:
    scored = scored_frame(tiny_predictor)
    scored.loc[0, "text"] = "</script><b>great</b> love"
    page = render_html(build_insights(scored, "text", tiny_predictor))
    assert "<b>great</b>" not in page and "&lt;/script&gt;&lt;b&gt;great" in page
    assert "vegaEmbed(" in page and 'src="http' not in page and "cdn.jsdelivr" not in page


def test_cli_report_writes_html_and_json_and_errors_are_one_line(tiny_model_path, tmp_path) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["I love it", "I hate it", "it is tuesday"] * 10,
                  "created": ["24-02-2015 11.35", "25-02-2015 09.00", "26-02-2015 10.10"] * 10}).to_csv(source, index=False)  # fmt: skip
    html, summary_path = tmp_path / "r.html", tmp_path / "s.json"
    result = run("report", "--model", str(tiny_model_path), "--input", str(source), "--output", str(html),
                 "--json", str(summary_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(summary_path.read_text())
    assert (
        data["n_rows"] == 30
        and data["date_column"] == "created"
        and html.read_text().startswith("<!DOCTYPE html>")
    )
    result = run("report", "--model", str(tiny_model_path), "--input", str(source), "--output", str(html),
                 "--date-column", "nope")  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "date column 'nope' not found" in result.stderr


def test_spikes_name_the_terms_that_drove_them(predictor) -> None:
    rows = []
    for day in range(10):
        spike = day == 8
        texts = ["my flight is delayed again, awful"] * (35 if spike else 8) + ["great flight, thanks"] * (
            5 if spike else 32
        )
        rows += [{"text": f"{t} {i}", "date": f"{day + 10}-03-2016 12.00"} for i, t in enumerate(texts)]
    scored, _ = ensure_scored(pd.DataFrame(rows), "text", predictor)
    ins = build_insights(scored, "text", predictor, group_column=None)
    (spike,) = ins.timeline.spikes
    assert spike.period == pd.Timestamp("2016-03-18")
    assert {"delayed", "awful"} & {t["term"] for t in spike.terms}
    assert summary(ins)["over_time"]["spikes"][0]["period"] == "2016-03-18"
