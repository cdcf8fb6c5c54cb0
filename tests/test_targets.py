"""Targets for analysts (issue 24, item 3): automatic targets, net sentiment's interval, trend, and the
texts behind each target in the JSON and the HTML report (sentimentkit/insights/targets.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sentimentkit.insights.build import AUTO, build_insights, ensure_scored
from sentimentkit.insights.render import render_html, summary
from sentimentkit.insights.stats import Z95
from sentimentkit.insights.targets import auto_targets, net_interval, target_frame, target_sentiment
from sentimentkit.insights.timeline import MIN_POINT_N

POSITIVE_FOOD, NEGATIVE_FOOD = "I love the food", "the food was terrible"


def test_auto_targets_are_frequent_mentions_hashtags_and_content_words() -> None:
    texts = (
        ["@Delta lost my luggage at the gate #travel"] * 12
        + ["@user the luggage carousel at the gate, thanks"] * 11
        + ["@rare thing"] * 3
        + [None] * 5  # rows that do not count
    )
    chosen, how = auto_targets(texts)
    assert chosen == ["gate", "luggage", "#travel", "@delta", "travel", "carousel"]  # by texts, then name
    assert "@user" not in chosen  # the anonymised mention
    assert not {"the", "at", "my"} & set(chosen)  # stop words
    assert not {"lost", "thanks"} & set(chosen)  # feeling words (sentiment lexicon) are no targets
    assert "@rare" not in chosen and "thing" not in chosen  # under MIN_POINT_N texts
    assert "chosen automatically" in how and f"at least {MIN_POINT_N} texts" in how
    assert auto_targets(texts, top=2)[0] == ["gate", "luggage"]
    assert auto_targets(["one @text"] * 3)[0] == []
    assert "no target was chosen" in auto_targets(["one @text"] * 3)[1]


def test_net_interval_hand_computed() -> None:
    # 8 texts, one mentioning part each: 5 positive, 1 negative, 2 neutral. With a positive and a
    # negative pseudo-text: P* = 6, N* = 2, n* = 10, centre 0.4; sum of squared residuals
    # 6 * 0.6^2 + 2 * 1.4^2 + 2 * 0.4^2 = 6.4 -> half width 1.96 * sqrt(6.4) / 10 = 0.4958.
    low, high = net_interval([1] * 5 + [-1] + [0, 0], [1] * 8)
    assert (low, high) == pytest.approx((0.4 - Z95 * np.sqrt(6.4) / 10, 0.4 + Z95 * np.sqrt(6.4) / 10))
    assert (low, high) == pytest.approx((-0.0958, 0.8958), abs=1e-4)
    # ... which is Bonett & Price's adjusted Wald interval: p+* = 0.6, p-* = 0.2
    assert high - 0.4 == pytest.approx(Z95 * np.sqrt((0.6 + 0.2 - 0.4**2) / 10))
    # one text with two positive parts (a cluster): centre 2/4; residuals 1, 0.5, -1.5
    low, high = net_interval([2], [2])
    assert low == pytest.approx(0.5 - Z95 * np.sqrt(3.5) / 4) and high == 1.0  # clipped
    assert net_interval([], []) == (None, None)
    # all positive: Wald would give a width of 0, this one does not
    low, high = net_interval([1] * 5, [1] * 5)
    assert low < 0.6 and high == 1.0


def test_net_interval_covers_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    n, p = 25, np.array([0.5, 0.3, 0.2])  # positive, neutral, negative: true net 0.3
    hits = 0
    for _ in range(2000):
        d = rng.choice([1, 0, -1], size=n, p=p)
        low, high = net_interval(d, np.ones(n))
        hits += low <= 0.3 <= high
    assert 0.93 <= hits / 2000 <= 0.975


def test_a_target_is_judged_by_its_part_not_the_whole_text(predictor) -> None:
    texts = ["The food was great but the service was painfully slow"] * 3
    found = {t["target"]: t for t in target_sentiment(texts, ["food", "service"], predictor)}
    assert found["food"]["net"] == 1.0 and found["service"]["net"] == -1.0
    example = found["service"]["examples"][0]
    assert example["sentiment"] == "negative" and example["row"] == 1
    assert example["text"][example["start"] : example["end"]] == "but the service was painfully slow"


def test_parts_cost_only_texts_that_mention_a_target(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [POSITIVE_FOOD] * 40 + ["nothing to see here"] * 60
    probas = predictor.predict_proba(texts)
    scored: list[int] = []
    original = predictor.predict_proba

    def counting(batch):
        scored.append(len(batch))
        return original(batch)

    monkeypatch.setattr(predictor, "predict_proba", counting)
    target_sentiment(texts, ["food"], predictor, probas)
    assert sum(scored) <= 16  # the table's own probabilities are checked on a sample and reused
    scored.clear()
    target_sentiment(texts, ["food"], predictor)
    assert sum(scored) == 40  # without them: only the 40 texts that mention it


def _dated(predictor, days: list[tuple[str, list[str]]]) -> pd.DataFrame:
    rows = [(text, day) for day, texts in days for text in texts]
    frame = pd.DataFrame(rows, columns=["text", "date"])
    return ensure_scored(frame, "text", predictor)[0]


def test_trend_per_period_with_the_timelines_minimum(predictor) -> None:
    scored = _dated(predictor, [
        ("2015-02-16", [POSITIVE_FOOD] * 12),
        ("2015-02-20", [NEGATIVE_FOOD] * 10 + [POSITIVE_FOOD] * 2),
        ("2015-02-24", [NEGATIVE_FOOD] * 3),  # too few parts for a point
    ])  # fmt: skip
    ins = build_insights(scored, "text", predictor, "date", None, targets=["food"])
    trend = ins.targets[0]["trend"]
    assert [p["period"] for p in trend] == ["2015-02-16", "2015-02-20", "2015-02-24"]
    assert [p["mentions"] for p in trend] == [12, 12, 3]
    assert trend[0]["net"] == 1.0 and trend[1]["net"] == pytest.approx(-8 / 12) and trend[2]["net"] is None
    assert trend[1]["ci_low"] < trend[1]["net"] < trend[1]["ci_high"]
    table = target_frame(ins.targets)
    assert table.loc[0, "trend"] == "+1.00 (2015-02-16) to -0.67 (2015-02-20), 2 periods"
    data = json.loads(json.dumps(summary(ins)))
    assert data["targets"][0]["trend"] == json.loads(json.dumps(trend))
    assert data["targets_how"] == "Targets as given: food."
    no_dates = build_insights(scored, "text", predictor, None, None, targets=["food"])
    assert no_dates.targets[0]["trend"] is None


def test_auto_targets_leave_out_other_languages_and_show_in_the_report(predictor) -> None:
    scored = _dated(predictor, [("2015-02-16", ["@united lost my bag, terrible service"] * 12)])
    scored = pd.concat(
        [scored, scored.assign(text="@united der Service war eine Katastrophe")], ignore_index=True
    )
    scored["language"] = ["en"] * 12 + ["de"] * 12
    ins = build_insights(scored, "text", predictor, None, None, targets=AUTO)
    united = next(t for t in ins.targets if t["target"] == "@united")
    assert united["texts"] == 12 and set(ins.target_rows["@united"]) == set(range(12))  # German rows out
    assert "chosen automatically" in ins.targets_how
    page = render_html(ins)
    assert "<h2>Targets</h2>" in page and "chosen automatically" in page and "95% interval" in page
    few = build_insights(scored.head(3), "text", predictor, None, None, targets=AUTO)
    assert few.targets == [] and "no target was chosen" in render_html(few)  # said, not silently empty


def test_texts_behind_targets_are_escaped_in_the_html(predictor) -> None:
    hostile = "<script>alert(1)</script> the food is great but the service was awful"
    scored = ensure_scored(pd.DataFrame({"text": [hostile, POSITIVE_FOOD]}), "text", predictor)[0]
    ins = build_insights(scored, "text", predictor, None, None, targets=["service", "<b>food</b>"])
    page = render_html(ins)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>food</b>" not in page and "&lt;b&gt;food&lt;/b&gt;" in page
    assert "but the service was awful</mark>" in page and "class='sk-negative'" in page
    assert "<summary>service: 1 texts</summary>" in page


def test_report_targets_option() -> None:
    from sentimentkit.cli import _report_targets

    assert _report_targets("") == AUTO and _report_targets("  ") == AUTO
    assert _report_targets("none") == [] and _report_targets("@united, food") == ["@united", "food"]
