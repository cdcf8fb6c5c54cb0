"""The app's feedback flows in a real browser (Streamlit + chromium): "Wrong? choose the right label"
after a single text, the batch tab's editable `correct label` column, and the Review tab driven by
its keyboard shortcuts, each checked in the feedback store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sentimentkit.feedback.store import read_feedback

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BATCH = "text\nI love this, what a wonderful day!\nthe train leaves at noon\nworst service ever, awful\n"


def open_app(page, server) -> None:
    page.goto(server.url)
    page.get_by_text("sentimentkit: tweet sentiment").wait_for()


def wait_for_rows(store: Path, n: int, page) -> None:
    for _ in range(100):
        if len(read_feedback(store, all_rows=True)) >= n:
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the store holds {len(read_feedback(store, all_rows=True))} rows, expected {n}")


def test_corrections_from_a_text_the_batch_table_and_the_review_keys(
    page, start_streamlit, tmp_path: Path
) -> None:
    store, log = tmp_path / "store", tmp_path / "log"
    server = start_streamlit({"SENTIMENTKIT_FEEDBACK": str(store), "SENTIMENTKIT_PREDICTION_LOG": str(log),
                              "SENTIMENTKIT_PREDICTION_LOG_TEXT": "true"})  # fmt: skip
    open_app(page, server)
    page.get_by_label("Your name (saved with corrections)").fill("ann")
    page.get_by_label("Your name (saved with corrections)").press("Enter")

    # 1. a single text: "Wrong? choose the right label"
    box = page.get_by_label("Text to analyse")
    box.fill("the update is out, great, another bug")
    box.press("Control+Enter")
    page.get_by_role("button", name="Analyze").click()
    page.get_by_text("Wrong? choose the right label").wait_for()
    page.get_by_role("button", name="negative", exact=True).click()
    page.get_by_text("Saved 1 correction").wait_for()
    first = read_feedback(store)
    assert first[["text", "label", "source", "user"]].values.tolist() == [
        ["the update is out, great, another bug", "negative", "app", "ann"]
    ]
    assert first["predicted"][0] in ("negative", "neutral", "positive") and first["model_version"][0]

    # 2. the batch tab: choose a correct label in the table, save
    page.get_by_role("tab", name="Batch (CSV)").click()
    source = tmp_path / "three.csv"
    source.write_text(BATCH)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(source))
    page.get_by_role("button", name="Score 3 rows").click()
    page.get_by_role("button", name="Save corrections").wait_for()
    editor = page.locator(".st-key-corrections_editor")
    editor.scroll_into_view_if_needed()
    box = editor.bounding_box()
    assert box is not None
    # The grid is a canvas: double-click the `correct label` cell of the second row, pick "positive".
    page.mouse.dblclick(box["x"] + box["width"] * 0.9, box["y"] + 35 * 2 + 17)
    page.get_by_role("option", name="positive").click()
    page.keyboard.press("Escape")
    page.wait_for_timeout(1500)  # the grid sends the edit to the server first
    page.get_by_role("button", name="Save corrections").click()
    page.get_by_text("Saved 1 correction").wait_for()
    corrected = read_feedback(store).set_index("text")
    assert corrected.loc["the train leaves at noon", "label"] == "positive"

    # 3. the Review tab: keys 1 (negative) and s (skip), with the progress line
    page.get_by_role("tab", name="Review").click()
    progress = page.get_by_text(re.compile(r"^\d+ labelled, \d+ to go$"))
    progress.wait_for()
    before = progress.inner_text()
    shown = page.locator('[data-testid="stText"]').last.inner_text()
    page.keyboard.press("1")
    wait_for_rows(store, 3, page)
    page.get_by_text(re.compile(r"^\d+ labelled")).filter(has_not_text=before).wait_for()
    latest = read_feedback(store).set_index("text")
    assert latest.loc[shown, "label"] == "negative" and latest.loc[shown, "source"] == "app"
    page.keyboard.press("s")  # skip: nothing saved
    page.wait_for_timeout(1000)
    assert len(read_feedback(store, all_rows=True)) == 3
