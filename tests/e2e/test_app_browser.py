"""The real Streamlit server driven by Debian's chromium through Playwright."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.serving.base import OUTPUT_COLUMNS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Latin-1 bytes (é, ü), an empty cell, quoted newlines, a formula, a quoted comma and a blank text.
TRICKY_CSV = (
    "id,text,extra\n"
    '1,"I love this, what a wonderful day!",x\n'
    "2,,empty cell\n"
    '3,"first line\nsecond line: I hate this, awful",y\n'
    "4,=1+1,formula\n"
    "5,Café crème and Müller this morning,latin-1\n"
    '6,"   ",blank\n'
    '7,"@user worst service ever ""really""",quoted\n'
).encode("latin-1")


def open_app(page, server) -> None:
    page.goto(server.url)
    page.get_by_text("sentimentkit: tweet sentiment").wait_for()


def test_type_a_text_and_see_a_label(page, start_streamlit) -> None:
    open_app(page, start_streamlit())
    box = page.get_by_label("Text to analyse")
    box.fill("I love this, what a wonderful day!")
    box.press("Control+Enter")  # commits the text area before the click
    page.get_by_role("button", name="Analyze").click()
    value = page.locator('[data-testid="stMetricValue"]').first
    value.wait_for()
    assert value.inner_text().strip() == "positive"
    page.locator(".sk-explanation").wait_for()  # highlighted explanation rendered


def test_csv_upload_download_keeps_every_row_in_order(page, start_streamlit, tmp_path: Path) -> None:
    open_app(page, start_streamlit())
    page.get_by_role("tab", name="Batch (CSV)").click()
    source = tmp_path / "tricky.csv"
    source.write_bytes(TRICKY_CSV)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(source))
    page.get_by_role("button", name="Score 7 rows").click()
    button = page.get_by_role("button", name="Download all 7 rows (CSV)")
    button.wait_for()
    with page.expect_download() as info:
        button.click()
    target = tmp_path / "out.csv"
    info.value.save_as(target)
    assert info.value.suggested_filename == "tricky-sentiment.csv"

    out = pd.read_csv(target, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    original = pd.read_csv(io.BytesIO(TRICKY_CSV), encoding="latin-1", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "text", "extra", *OUTPUT_COLUMNS]
    assert out["id"].tolist() == [str(i) for i in range(1, 8)]  # every row, in order
    assert out["extra"].tolist() == original["extra"].tolist()
    assert out["text"][2] == "first line\nsecond line: I hate this, awful"
    assert out["text"][3] == "'=1+1"  # neutralised for spreadsheets
    assert out["text"][4] == "Café crème and Müller this morning"  # Latin-1 decoded
    assert out["error"].tolist() == ["", "empty text", "", "", "", "empty text", ""]
    scored = out["error"] == ""
    assert (out.loc[scored, "sentiment"].isin(["negative", "neutral", "positive"])).all()
    assert (out.loc[~scored, "sentiment"] == "").all() and (out.loc[~scored, "confidence"] == "").all()
    assert out["sentiment"][0] == "positive" and out["sentiment"][2] == "negative"
    probabilities = out.loc[scored, ["p_negative", "p_neutral", "p_positive"]].astype(float).sum(axis=1)
    assert probabilities.round(6).eq(1.0).all()


def test_wrong_file_type_shows_what_to_do(page, start_streamlit, tmp_path: Path) -> None:
    open_app(page, start_streamlit())
    page.get_by_role("tab", name="Batch (CSV)").click()
    source = tmp_path / "notes.pdf"
    source.write_bytes(b"%PDF-1.4 not a table")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(source))
    page.get_by_text("is not a CSV, TSV or Excel (.xlsx) file. Export your table as CSV").wait_for()


def test_file_over_the_upload_limit_is_refused_with_the_cli_hint(
    page, start_streamlit, tmp_path: Path
) -> None:
    open_app(page, start_streamlit({"SENTIMENTKIT_MAX_UPLOAD_MB": "1"}))
    page.get_by_role("tab", name="Batch (CSV)").click()
    source = tmp_path / "big.csv"
    source.write_bytes(b"text\n" + b"hello world\n" * 150_000)  # 1.7 MiB
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(source))
    page.get_by_text("MB; the app accepts at most 1 MB.").wait_for()
    error = page.locator('[data-testid="stAlertContentError"]')
    assert "python -m sentimentkit predict --input FILE.csv --output OUT.csv" in error.inner_text()
    assert page.get_by_role("button", name="Score 150,000 rows").count() == 0
