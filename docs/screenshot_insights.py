"""Take docs/insights.png: the app's Insights section for a scored CSV, in headless chromium.

The CSV is 3,000 SemEval-2017 test tweets (read from ../shared/data beside the checkout) with a
synthetic day-first `created` column over four weeks and an `airline` column.

python docs/screenshot_insights.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot import REPO, app_in_chromium  # noqa: E402 - the sibling script, run as a script

TEST = REPO.parent / "shared" / "data" / "semeval2017" / "test.csv"


def sample_csv(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    texts = pd.read_csv(TEST)["text"].head(3000)
    minutes = np.sort(rng.integers(0, 28 * 24 * 60, len(texts)))
    created = pd.Timestamp("2015-02-01") + pd.to_timedelta(minutes, unit="m")
    frame = pd.DataFrame({"text": texts, "airline": rng.choice(["United", "Delta", "American", "Virgin"], len(texts)),
                          "created": created.strftime("%d-%m-%Y %H.%M")})  # fmt: skip
    path = folder / "airline-tweets.csv"
    frame.to_csv(path, index=False)
    return path


def main() -> None:
    with app_in_chromium() as (url, browser), tempfile.TemporaryDirectory() as tmp:
        page = browser.new_page(viewport={"width": 1280, "height": 5200})
        page.set_default_timeout(120_000)
        page.goto(url)
        page.get_by_role("tab", name="Batch (CSV)").click()
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            str(sample_csv(Path(tmp)))
        )
        page.get_by_role("button", name="Score 3,000 rows").click()
        page.get_by_role("button", name="Download report").wait_for()
        page.get_by_role("radio", name="love", exact=True).click()
        page.get_by_text("texts contain “love”").wait_for()
        page.wait_for_timeout(2500)  # let the charts finish drawing
        top = page.get_by_role("heading", name="Insights").bounding_box()["y"] - 10
        bottom = page.get_by_role("button", name="Download report").bounding_box()["y"] + 50
        page.screenshot(path=str(REPO / "docs" / "insights.png"),
                        clip={"x": 280, "y": top, "width": 1000, "height": bottom - top})  # fmt: skip


if __name__ == "__main__":
    main()
