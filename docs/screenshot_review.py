"""Take docs/review.png: the app's Review tab, in headless chromium, after two texts were labelled with
the keyboard shortcuts (docs/teach_your_domain.md shows it).

The texts are invented product tweets (no real user's words in the docs): they are scored by
`sentimentkit predict` with the prediction log on and its texts kept, exactly as a user's would be, and the
app runs with that log and a feedback store in a temporary folder.

python docs/screenshot_review.py [OUT_DIR]      (default: docs/)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from screenshot import REPO, Shot, app_in_chromium  # noqa: E402 - the sibling script, run as a script

sys.path.insert(0, str(REPO))  # this checkout's package, also without PYTHONPATH
from sentimentkit.ui import REVIEW_KEYS  # noqa: E402 - the app's own keys: 1/2/3 and s

# Invented product tweets and the label a person gives each (the analyst's answers).
ANSWERS = {
    "the 4.2 firmware update finally fixed the wifi drops, nice": "positive",
    "battery went from 100 to 40 before lunch since the update": "negative",
    "support chat closed my ticket without answering": "negative",
    "ordered the blue case, arrives thursday": "neutral",
    "camera night mode is unreal on this thing": "positive",
    "is the 128GB model worth it over the 64?": "neutral",
    "screen cracked after one drop, not impressed": "negative",
    "store had it in stock today": "neutral",
    "honestly the setup took 2 minutes, smooth": "positive",
    "app keeps logging me out every morning": "negative",
    "price drop on the older model this weekend": "neutral",
    "they replaced my charger for free, respect": "positive",
    "the fan is so loud I can hear it from the kitchen": "negative",
    "new colour options announced at the event": "neutral",
    "signal is fine at home but dead on the train": "negative",
    "refund still not processed after 3 weeks": "negative",
    "the keyboard feels cheap but works": "neutral",
    "love that it finally has usb-c": "positive",
    "delivery guy left it in the rain. box soaked": "negative",
    "speaker sounds tinny compared to my old one": "negative",
    "update 4.3 rolling out to everyone next week": "neutral",
    "can't decide between this and the pro": "neutral",
    "touch id works even with wet fingers now": "positive",
    "well that's one way to spend 900 dollars": "negative",
}
LABELLED = 2  # texts labelled with the keys before the picture (it shows the next one)


def logged_texts(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """Score the ANSWERS' texts with `sentimentkit predict` into a prediction log that keeps texts; the
    app's settings for that log and an empty feedback store."""
    settings = {"SENTIMENTKIT_PREDICTION_LOG": str(folder / "log"), "SENTIMENTKIT_PREDICTION_LOG_TEXT": "true",
                "SENTIMENTKIT_FEEDBACK": str(folder / "feedback")}  # fmt: skip
    sample = folder / "product-tweets.csv"
    sample.write_text("text\n" + "".join(f'"{t}"\n' for t in ANSWERS), encoding="utf-8")
    subprocess.run([sys.executable, "-m", "sentimentkit", "predict", "--input", str(sample), "--output",
                    str(folder / "scored.csv"), "--jobs", "1"], cwd=REPO, check=True, capture_output=True,
                   env={**os.environ, **env, **settings})  # fmt: skip
    return settings


def take_review_screenshot(out_dir: Path, env: dict[str, str] | None = None) -> Shot:
    """docs/review.png into `out_dir`: the Review tab after the keys labelled LABELLED texts (as ANSWERS
    says); what it showed, and the corrections the key presses stored (`stored`)."""
    from playwright.sync_api import expect

    out_dir.mkdir(parents=True, exist_ok=True)
    env = {"SENTIMENTKIT_API_URL": "", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="sentimentkit-review-shot-") as tmp:
        app_env = {**env, **logged_texts(Path(tmp), env)}
        with app_in_chromium(app_env) as (url, browser):
            page = browser.new_page(viewport={"width": 1280, "height": 560})
            page.set_default_timeout(120_000)
            page.goto(url)
            page.get_by_role("tab", name="Review").click()
            page.get_by_text(f"0 labelled, {len(ANSWERS)} to go").wait_for()
            page.get_by_text("Text 1 of").wait_for()
            page.wait_for_function(
                "window.__sentimentkitReviewKeys === true"
            )  # the keys' listener is in place
            text = page.locator('[data-testid="stText"]').last
            for done in range(1, LABELLED + 1):
                shown = text.inner_text()
                page.keyboard.press(REVIEW_KEYS[ANSWERS[shown]])
                page.get_by_text(f"{done} labelled, {len(ANSWERS) - done} to go").wait_for()
                page.get_by_text(f"Text {done + 1} of").wait_for()
                expect(text).not_to_have_text(shown)  # the next text, not the one the rerun is replacing
            page.wait_for_timeout(1000)
            path = out_dir / "review.png"
            page.screenshot(path=str(path))
            shot = Shot(path, [t.strip() for t in page.get_by_role("tab").all_inner_texts()],
                        page.locator('[data-testid="stSidebar"]').inner_text(), page.locator("body").inner_text())  # fmt: skip
        from sentimentkit.feedback.store import read_feedback  # what the key presses stored

        shot.stored = read_feedback(app_env["SENTIMENTKIT_FEEDBACK"])[["text", "label", "source"]]
    return shot


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"
    shot = take_review_screenshot(out)
    print(f"{shot.path}: {len(shot.stored)} labels stored through the keys")


if __name__ == "__main__":
    main()
