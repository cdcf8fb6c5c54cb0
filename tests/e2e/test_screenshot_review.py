"""docs/screenshot.py (`take_review_screenshot`) takes docs/review.png from the real app (Streamlit + headless chromium) fed
by a real prediction log, and the picture shows what a person does there: two texts labelled with the
keyboard shortcuts (stored in the feedback store, as the app's), the progress line, the next text."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimentkit.config import REPO_ROOT
from tests.e2e.conftest import screenshot_script
from tests.e2e.test_screenshots import png_size


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)
def test_review_screenshot_labels_with_the_keys_and_shows_progress(tmp_path: Path) -> None:
    script = screenshot_script()
    shot = script.take_review_screenshot(tmp_path, {"SENTIMENTKIT_PREDICTION_LOG": ""})
    width, height = png_size(shot.path)
    assert shot.path.name == "review.png" and width >= 1000 and height >= 500
    assert "Review" in shot.tabs
    total = len(script.ANSWERS)
    assert f"{script.LABELLED} labelled, {total - script.LABELLED} to go" in shot.text
    assert f"Text {script.LABELLED + 1} of" in shot.text
    stored = shot.stored
    assert len(stored) == script.LABELLED and set(stored["source"]) == {"app"}
    assert all(script.ANSWERS[t] == label for t, label in zip(stored["text"], stored["label"]))


def test_committed_review_screenshot_is_a_sensible_png() -> None:
    width, height = png_size(REPO_ROOT / "docs" / "review.png")
    assert width >= 1000 and height >= 500
