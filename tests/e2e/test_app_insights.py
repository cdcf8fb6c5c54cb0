"""The app's Insights section in a real browser: charts, pickers, clickable terms, report download."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

POSITIVE = [
    "I love this airline, great crew",
    "best flight ever, thank you",
    "great service and a happy landing",
]
NEGATIVE = [
    "worst delay ever, I hate this",
    "lost my bag again, awful service",
    "cancelled flight, terrible and rude",
]


def insights_csv(path: Path) -> Path:
    """60 tweets over three days (day-first dates with dots in the time), two airlines: one loved,
    one hated, so the chi-square test finds a clear difference."""
    rows = []
    for i in range(60):
        airline = "Delta" if i % 2 else "United"
        texts = POSITIVE if airline == "Delta" else NEGATIVE
        rows.append({"id": i, "text": f"{texts[i % 3]} #{i}", "airline": airline,
                     "tweet_created": f"{24 + i // 20:02d}-02-2015 {i % 20:02d}.35"})  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_insights_section_charts_terms_and_report(page, start_streamlit, browser, tmp_path: Path) -> None:
    page.goto(start_streamlit().url)
    page.get_by_text("sentimentkit: tweet sentiment").wait_for()
    page.get_by_role("tab", name="Batch (CSV)").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        str(insights_csv(tmp_path / "a.csv"))
    )
    page.get_by_role("button", name="Score 60 rows").click()
    page.get_by_role("heading", name="Insights").wait_for()
    # The detected columns are pre-selected and the charts are drawn.
    page.get_by_text("'tweet_created' was read day first (DD-MM-YYYY)").wait_for()
    page.get_by_text("Sentiment differs between the groups of 'airline'").wait_for()
    page.get_by_role("heading", name="Over time (per hour)").wait_for()
    charts = page.locator('[data-testid="stVegaLiteChart"]')
    charts.first.wait_for()
    assert charts.count() >= 4  # time, groups, drivers, distinctive
    # A click on a term filters the preview to the texts that contain it.
    page.get_by_role("radio", name="love", exact=True).click()
    page.get_by_text("10 texts contain “love”").wait_for()
    # The report downloads and renders its charts with the network off.
    with page.expect_download() as info:
        page.get_by_role("button", name="Download report").click()
    report = tmp_path / "report.html"
    info.value.save_as(report)
    assert info.value.suggested_filename == "a-report.html"
    offline = browser.new_context(offline=True)
    try:
        view = offline.new_page()
        requests: list[str] = []
        view.on("request", lambda r: requests.append(r.url))
        view.goto(report.as_uri())
        view.locator("#chart-groups svg").first.wait_for()
        assert view.locator("svg.marks").count() == 4
        assert [r for r in requests if not r.startswith("file:")] == []
    finally:
        offline.close()
