"""Take every screenshot of the docs from the real Streamlit app in headless chromium.

python docs/screenshot.py [OUT_DIR]      (default: docs/)

- app.png: the "Analyze a text" tab with one text of mixed feelings analysed by the fast and the
  accurate model: label, the mixed-feelings note, the parts shaded in their labels' colours, the
  probability chart and the start of the explanation;
- insights.png: the Insights section of the Batch tab for 3,000 SemEval-2017 test tweets with a
  synthetic day-first `created` column over four weeks and an `airline` column, one term clicked, down
  to that term's texts;
- monitoring_example.png: the Monitoring tab over the prediction log that `scripts/monitoring_demo.py`
  replays (six days of validation tweets, then a day of tweets about Hillary Clinton and climate
  change), texts logged.

- review.png (`take_review_screenshot`, its own app run): the Review tab after two invented product
  tweets were labelled with the keys 1/2/3, from a prediction log that keeps texts.

The registry's screenshot (docs/registry.png) needs a running MLflow server: `registry_screenshot` takes
it, and tests/mlops/test_mlflow_server.py calls it against `scripts/mlflow-server.sh`.

`take_screenshots` also reads what the page says in each picture (its tabs, the sidebar's model lines,
the headings and the text inside the picture), so a test can check that each picture shows what the
app shows today. Needs the SemEval data and unlabeled tweets under ../shared/data beside the checkout.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"
TEST = SHARED / "semeval2017" / "test.csv"
TEXT = "The flight crew were lovely and helpful. But we sat on the tarmac for three hours, worst delay ever."
# what app.png must show wholly, for each model: the label, the parts (each shaded positive or negative)
# and the probability chart
APP_PARTS = ('[data-testid="stMetric"]', ".sk-parts", ".sk-parts .sk-positive", ".sk-parts .sk-negative",
             '[data-testid="stVegaLiteChart"]')  # fmt: skip
INSIGHTS_TERM = "love"  # the term clicked in the Insights picture
WIDTH = 1280
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
REPLAY_MARGIN = 900.0  # seconds: the replayed days sit this far inside their windows (the app starts late)


@contextmanager
def app_in_chromium(env: dict[str, str] | None = None) -> Iterator[tuple[str, Any]]:
    """(url, browser): the real Streamlit app on a free loopback port and headless chromium."""
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless=true",
            f"--server.port={port}", "--server.address=127.0.0.1", "--server.fileWatcherType=none",
            "--browser.gatherUsageStats=false"]  # fmt: skip
    process = subprocess.Popen(args, cwd=REPO, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(400):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)  # noqa: S310 - loopback
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
            )
            yield url, browser
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Shot:
    """One screenshot and what the page said inside it when it was taken."""

    path: Path
    tabs: list[str]  # the tab names, left to right
    sidebar: str  # the sidebar's text (the model lines)
    headings: list[str]  # the headings inside the picture, top to bottom
    text: str  # the visible text of what the picture shows
    inside: dict[str, int] = field(default_factory=dict)  # selector -> how many lie wholly in the picture


def _open(browser: Any, url: str, height: int) -> Any:
    page = browser.new_page(viewport={"width": WIDTH, "height": height})
    page.set_default_timeout(180_000)
    page.goto(url)
    page.get_by_role("tab").first.wait_for()
    return page


def _headings(page: Any, top: float, bottom: float) -> list[str]:
    """The h1-h3 headings whose box lies between `top` and `bottom` (page pixels), top to bottom."""
    found = []
    for heading in page.locator("h1, h2, h3").all():
        box = heading.bounding_box()
        text = heading.inner_text().strip()
        if box and text and box["height"] > 0 and top <= box["y"] and box["y"] + box["height"] <= bottom:
            found.append(((round(box["y"]), box["x"]), text))  # top to bottom, then left to right
    return [text for _, text in sorted(found)]


def _inside(page: Any, selector: str, top: float, bottom: float) -> list[Any]:
    """The elements matching `selector` whose box lies between `top` and `bottom` (page pixels)."""
    found = []
    for element in page.locator(selector).all():
        box = element.bounding_box()
        if box and box["height"] > 0 and top <= box["y"] and box["y"] + box["height"] <= bottom:
            found.append(element)
    return found


def _shot(
    page: Any, path: Path, text: str | None, clip: dict[str, float] | None = None, count: tuple[str, ...] = ()
) -> Shot:
    """Take the picture; `text` None: the text of the app's elements wholly inside it; `count`: the
    selectors to count inside it."""
    top, bottom = (clip["y"], clip["y"] + clip["height"]) if clip else (0, page.viewport_size["height"])
    page.screenshot(path=str(path), clip=clip, animations="disabled")
    tabs = [t.strip() for t in page.get_by_role("tab").all_inner_texts()]
    sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
    if text is None:
        elements = _inside(page, '[data-testid="stElementContainer"]', top, bottom)
        text = "\n".join(element.inner_text() for element in elements)
    inside = {selector: len(_inside(page, selector, top, bottom)) for selector in count}
    return Shot(path, tabs, sidebar, _headings(page, top, bottom), text, inside)


def app_screenshot(browser: Any, url: str, out_dir: Path) -> Shot:
    """app.png: the "Analyze a text" tab with TEXT analysed (the window as a newcomer sees it): down to
    the start of the explanation, so the label, the mixed-feelings note, the parts and the probability
    chart are in the picture. Its `inside` counts the APP_PARTS shown wholly in the picture."""
    page = _open(browser, url, 1250)
    box = page.get_by_label("Text to analyse")
    box.fill(TEXT)
    box.press("Control+Enter")
    page.get_by_role("button", name="Analyze").click()
    panel = page.get_by_role("tabpanel", name="Analyze a text")
    panel.locator(".sk-parts").nth(1).wait_for()  # both models' parts
    panel.locator(".sk-explanation").first.wait_for()
    panel.locator('[data-testid="stVegaLiteChart"]').nth(1).wait_for()  # both models' charts
    page.wait_for_timeout(1500)  # let the charts finish drawing
    shot = _shot(page, out_dir / "app.png", None, count=APP_PARTS)
    page.close()
    return shot


def sample_csv(folder: Path) -> Path:
    """3,000 test tweets with a day-first `created` column over four weeks and an `airline` column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    texts = pd.read_csv(TEST)["text"].head(3000)
    minutes = np.sort(rng.integers(0, 28 * 24 * 60, len(texts)))
    created = pd.Timestamp("2015-02-01") + pd.to_timedelta(minutes, unit="m")
    frame = pd.DataFrame({"text": texts, "airline": rng.choice(["United", "Delta", "American", "Virgin"], len(texts)),
                          "created": created.strftime("%d-%m-%Y %H.%M")})  # fmt: skip
    path = folder / "airline-tweets.csv"
    frame.to_csv(path, index=False)
    return path


def insights_screenshot(browser: Any, url: str, out_dir: Path, csv: Path) -> Shot:
    """insights.png: the Insights section for `csv`, from its heading to the texts of the clicked term
    (the Targets below it are left out: with them the picture would pass 300 KB)."""
    page = _open(browser, url, 5200)
    page.get_by_role("tab", name="Batch (CSV)").click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(csv))
    page.get_by_role("button", name="Score 3,000 rows").click()
    page.get_by_role("button", name="Download report").wait_for()
    page.get_by_role("radio", name=INSIGHTS_TERM, exact=True).click()  # a pill: its texts appear below
    page.get_by_text(f"texts contain “{INSIGHTS_TERM}”").wait_for()
    targets = page.get_by_role("heading", name="Targets")
    targets.wait_for()
    page.wait_for_timeout(2500)  # let the charts finish drawing
    top = page.get_by_role("heading", name="Insights").bounding_box()["y"] - 10
    bottom = targets.bounding_box()["y"] - 10
    clip = {"x": 280, "y": top, "width": WIDTH - 280, "height": bottom - top}
    text = page.get_by_role("tabpanel", name="Batch (CSV)").inner_text()
    text = text.split("Insights", 1)[-1].rsplit("\nTargets\n", 1)[0]  # up to the Targets heading
    shot = _shot(page, out_dir / "insights.png", text, clip)
    page.close()
    return shot


def replay_monitoring_log(log_dir: Path) -> None:
    """The shifted log of scripts/monitoring_demo.py (texts logged), its days ending now."""
    spec = importlib.util.spec_from_file_location("monitoring_demo", REPO / "scripts" / "monitoring_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.replay(log_dir, demo.demo_days()[1], datetime.now(UTC), margin=REPLAY_MARGIN)


def monitoring_screenshot(browser: Any, url: str, out_dir: Path) -> Shot:
    """monitoring_example.png: the Monitoring tab (status, signals, trends) over the replayed log."""
    page = _open(browser, url, 2400)
    page.get_by_role("tab", name="Monitoring").click()
    panel = page.get_by_role("tabpanel", name="Monitoring")
    download = page.get_by_role("button", name="Download the HTML report")
    download.wait_for()
    page.wait_for_timeout(2500)  # let the charts finish drawing
    top = page.get_by_role("tab", name="Monitoring").bounding_box()["y"] - 10
    bottom = download.bounding_box()["y"] + 50
    clip = {"x": 280, "y": top, "width": WIDTH - 280, "height": bottom - top}
    shot = _shot(page, out_dir / "monitoring_example.png", panel.inner_text(), clip)
    page.close()
    return shot


def registry_screenshot(page: Any, url: str, model: str, path: Path) -> str:
    """docs/registry.png: the registered model's page in the MLflow UI at `url`; returns its text."""
    page.goto(f"{url}/#/models/{model}", timeout=120_000)
    page.get_by_text("Version 2", exact=False).first.wait_for(timeout=120_000)
    page.get_by_text("@ champion").first.wait_for()
    close = page.get_by_role("button", name="Close")  # the UI's assistant panel, if it opened
    if close.count():
        close.first.click()
    page.screenshot(path=str(path), full_page=True)
    return page.inner_text("body")


def take_screenshots(out_dir: Path, env: dict[str, str] | None = None) -> list[Shot]:
    """app.png, insights.png and monitoring_example.png into `out_dir`, from one app server whose
    prediction log is the monitoring demo's (the Monitoring picture is taken first, before the other
    pictures' own predictions reach the log)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "predictions"
        replay_monitoring_log(log)
        env = {"SENTIMENTKIT_API_URL": "", **(env or {}), "SENTIMENTKIT_PREDICTION_LOG": str(log),
               "SENTIMENTKIT_PREDICTION_LOG_TEXT": "1"}  # fmt: skip
        with app_in_chromium(env) as (url, browser):
            return [
                monitoring_screenshot(browser, url, out_dir),
                app_screenshot(browser, url, out_dir),
                insights_screenshot(browser, url, out_dir, sample_csv(Path(tmp))),
            ]


def review_keys() -> dict[str, str]:
    """The app's own Review keys (1/2/3 and s), from this checkout's package."""
    sys.path.insert(0, str(REPO))
    from sentimentkit.ui import REVIEW_KEYS

    return REVIEW_KEYS


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
                page.keyboard.press(review_keys()[ANSWERS[shown]])
                page.get_by_text(f"{done} labelled, {len(ANSWERS) - done} to go").wait_for()
                page.get_by_text(f"Text {done + 1} of").wait_for()
                expect(text).not_to_have_text(shown)  # the next text, not the one the rerun is replacing
            page.wait_for_timeout(1000)
            path = out_dir / "review.png"
            page.screenshot(path=str(path))
            shot = Shot(path, [t.strip() for t in page.get_by_role("tab").all_inner_texts()],
                        page.locator('[data-testid="stSidebar"]').inner_text(), [],
                        page.locator("body").inner_text())  # fmt: skip
        from sentimentkit.feedback.store import read_feedback  # what the key presses stored (the package)

        shot.stored = read_feedback(app_env["SENTIMENTKIT_FEEDBACK"])[["text", "label", "source"]]
    return shot


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs"
    for shot in take_screenshots(out):
        print(f"{shot.path} ({shot.path.stat().st_size // 1024} KB): {' / '.join(shot.headings)}")
    review = take_review_screenshot(out)  # its own app: a log of invented texts and an empty store
    print(f"{review.path}: {len(review.stored)} labels stored through the keys")


if __name__ == "__main__":
    main()
