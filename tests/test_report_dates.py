"""`report` with dates outside what a timestamp holds (9999-12-31 placeholders, year-1500 typos): those
rows are flagged in a warning and left out of the over-time chart only; the report is written."""

from __future__ import annotations

import json

import pandas as pd

from sentimentkit.insights.dates import parse_dates
from sentimentkit.insights.timeline import choose_granularity, over_time

from .test_cli import run

RAW = ["2015-03-04", "9999-12-31", "1500-01-01", "Sat Dec 31 10:00:00 +0000 9999", "31/12/9999", "4 March 1500",
       "05/03/2015", "", "not a date"]  # fmt: skip


def test_out_of_range_dates_are_flagged_not_fatal() -> None:
    parsed = parse_dates(pd.Series(RAW), column="created")
    assert sorted(parsed.out_of_range) == [1, 2, 3, 4, 5]
    assert parsed.values[[1, 2, 3, 4, 5]].isna().all()
    assert parsed.values[0] == pd.Timestamp("2015-03-04") and parsed.values[6] == pd.Timestamp("2015-03-05")
    far = next(p for p in parsed.problems if "outside the years 1678-2261" in p)
    assert far.startswith("5 rows have a date in 'created'") and "'9999-12-31'" in far
    unread = next(p for p in parsed.problems if "not a readable date" in p)
    assert unread.startswith("1 rows")  # 'not a date' only: the far ones are not counted twice


def test_the_widest_span_that_is_read_still_charts_by_month() -> None:
    parsed = parse_dates(pd.Series(["1678-01-01", "2261-12-31 23:00", "2015-03-04"]))
    assert parsed.values.notna().all() and not len(parsed.out_of_range)
    assert choose_granularity(parsed.values.min(), parsed.values.max()) == "month"  # 584 years
    labels = pd.Series(["positive", "negative", "neutral"])
    timeline = over_time(parsed.values, labels)
    assert timeline is not None and timeline.table["n"].sum() == 3


def test_cli_report_with_out_of_range_dates_writes_the_report(tiny_model_path, tmp_path) -> None:
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["I love it", "I hate it", "it is tuesday"] * 3, "created": RAW}).to_csv(
        source, index=False
    )
    html, summary_path = tmp_path / "r.html", tmp_path / "s.json"
    result = run("report", "--model", str(tiny_model_path), "--input", str(source), "--output", str(html),
                 "--json", str(summary_path), "--date-column", "created")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "5 rows have a date in 'created' outside the years 1678-2261" in result.stderr
    data = json.loads(summary_path.read_text())
    assert data["n_rows"] == 9 and any("outside the years" in w for w in data["warnings"])
    assert sum(p["n"] for p in data["over_time"]["points"]) == 2
    assert "outside the years 1678-2261" in html.read_text()
