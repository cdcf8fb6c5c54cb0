"""Insights a person can read: no stop words or punctuation among the drivers, no net-sentiment point
drawn from a handful of texts, bars wide enough to see, and the plain-language finding first."""

from __future__ import annotations

import pandas as pd

from sentimentkit.insights import charts
from sentimentkit.insights.build import build_insights, ensure_scored, finding
from sentimentkit.insights.drivers import driver_terms, is_word, term_matrix
from sentimentkit.insights.render import render_html
from sentimentkit.insights.timeline import MIN_POINT_N, over_time


def test_stopwords_and_punctuation_are_not_terms() -> None:
    for token in ("to", "at", "do", "from", "the_NEG", "“", "”", "’", "—", "…", "!!", ","):
        assert not is_word(token), token
    for token in ("love", "not", "never", "good_NEG", "#blessed", "😀", "café"):
        assert is_word(token), token


def test_drivers_hold_no_stopwords(tiny_predictor) -> None:
    texts = ["I went to the shop at noon “great” from here", "do not go to that awful place at all"] * 10
    frame = pd.DataFrame({"text": texts})
    scored = ensure_scored(frame, "text", tiny_predictor)[0]
    matrix = term_matrix(scored["text"].tolist(), tiny_predictor.explain_batch(scored["text"].tolist()))
    drivers = driver_terms(matrix, scored["sentiment"])
    shown = {t["term"] for terms in drivers.values() for t in terms}
    assert shown and not shown & {"to", "at", "do", "from", "the", "“", "”"}


def test_a_day_with_a_handful_of_texts_has_no_net_point_and_a_note() -> None:
    dates = pd.Series([pd.Timestamp("2015-02-01")] * 30 + [pd.Timestamp("2015-02-02")])  # day 2: one tweet
    labels = pd.Series(["negative", "positive"] * 15 + ["positive"])
    timeline = over_time(dates, labels, granularity="day")
    assert timeline.table.loc["2015-02-02", "net_sentiment"] == 1.0  # the raw number is "net +1.0"
    spec = charts.timeline_chart(timeline).to_dict()
    # the net-sentiment layer's data: one row per period (the volume bars have one per period and label)
    net_rows = [
        rows for rows in spec["datasets"].values() if rows and {r["label"] for r in rows} == {"negative"}
    ]
    assert len(net_rows) == 1
    assert [r["period_label"] for r in net_rows[0]] == ["2015-02-01"]  # 2 February (one tweet): no point
    assert timeline.thin_periods() == 1 and f"fewer than {MIN_POINT_N} texts" in timeline.thin_note()
    volume = spec["vconcat"][0]["mark"]
    assert volume["size"] > 100  # two daily bars on a 640-pixel axis: wide, not 1-pixel lines


def test_finding_comes_first_in_words(tiny_predictor) -> None:
    texts = ["I love this, it is great", "worst day ever, so sad", "great and happy", "love love"] * 10
    frame = pd.DataFrame({"text": texts, "brand": ["x", "y"] * 20})
    scored = ensure_scored(frame, "text", tiny_predictor)[0]
    ins = build_insights(scored, "text", tiny_predictor, group_column="brand")
    words = finding(ins)
    assert words.startswith("Most of the 40 texts are ")
    assert "most positive" in words and "most negative" in words
    page = render_html(ins)
    assert page.index("class='finding'") < page.index("rows, ")


def test_a_group_with_a_handful_of_texts_is_not_drawn_and_a_note_names_it(tiny_predictor) -> None:
    texts = ["I love this, it is great", "worst day ever, so sad"] * 20 + ["love love"] * 3
    frame = pd.DataFrame({"text": texts, "brand": ["big", "large"] * 20 + ["tiny"] * 3})
    scored = ensure_scored(frame, "text", tiny_predictor)[0]
    ins = build_insights(scored, "text", tiny_predictor, group_column="brand")
    assert ins.groups.table.loc["tiny", "n"] == 3  # counted (the test and the table keep it)
    spec = charts.group_chart(ins.groups).to_dict()
    drawn = {row["group"] for rows in spec["datasets"].values() for row in rows}
    assert drawn == {"big", "large"}  # three texts draw no point at net +1.0
    note = ins.groups.thin_note()
    assert note is not None and "“tiny”" in note and f"fewer than {MIN_POINT_N} texts" in note
    assert note in render_html(ins).replace("&#x27;", "'")  # the report says what was left out
    assert "tiny" not in finding(ins)


def test_no_group_chart_when_every_group_is_a_handful(tiny_predictor) -> None:
    frame = pd.DataFrame({"text": ["I love this", "so sad", "great", "awful"] * 2, "brand": list("aabbccdd")})
    scored = ensure_scored(frame, "text", tiny_predictor)[0]
    ins = build_insights(scored, "text", tiny_predictor, group_column="brand")
    page = render_html(ins)
    assert "chart-groups" not in page and "4 groups of" in ins.groups.thin_note()
