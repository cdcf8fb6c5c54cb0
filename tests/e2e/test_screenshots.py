"""docs/screenshot.py regenerates every screenshot of the docs from a real Streamlit server in headless
chromium, and each picture shows what the app shows today: its tabs (as the app itself lists them),
the models it serves, the section headings the app gives that data, and the words it uses."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from sentimentkit.config import REPO_ROOT
from sentimentkit.insights.build import build_insights, ensure_scored, finding
from sentimentkit.mlops.monitor_report import ONE_WINDOW_NOTE, SIGNAL_NAMES
from sentimentkit.serving.loader import load_predictor
from tests.e2e.conftest import CHROMIUM, screenshot_script

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DOCS = REPO_ROOT / "docs"
MAX_BYTES = 300_000  # a screenshot in the repository stays small
APP_SHOTS = ["monitoring_example.png", "app.png", "insights.png"]  # every docs picture but the registry's


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def pictures_in_the_docs() -> set[str]:
    """The PNG files the README and docs pages show or link to."""
    pages = [REPO_ROOT / "README.md", *DOCS.glob("*.md")]
    return {
        Path(m).name for page in pages for m in re.findall(r"\]\(([^()\[\]\s]+\.png)\)", page.read_text())
    }


def card_line(path: Path) -> str:
    card = json.loads(path.read_text())
    return f"{card['name']} {card['version']}"


def test_the_script_takes_every_picture_the_docs_show() -> None:
    # registry.png: test_mlflow_server.py; review.png (its own app and log): test_screenshot_review.py
    assert pictures_in_the_docs() == {*APP_SHOTS, "registry.png", "review.png"}
    assert not list(DOCS.glob("screenshot_*.py"))  # one script, not one per picture


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_screenshots_show_the_apps_tabs_models_and_sections(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (shared_data.parent / "unlabeled" / "tweets.csv").is_file():
        pytest.skip("the monitoring picture replays ../shared/data/unlabeled/tweets.csv, absent here")
    env = {"SENTIMENTKIT_API_URL": "", "SENTIMENTKIT_PREDICTION_LOG": ""}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app_tabs = [t.label for t in AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=120).run().tabs]
    script = screenshot_script()
    shots = {shot.path.name: shot for shot in script.take_screenshots(tmp_path, env)}
    assert list(shots) == APP_SHOTS
    for shot in shots.values():
        width, height = png_size(shot.path)
        assert width >= 1000 and height >= 800 and 50_000 < shot.path.stat().st_size < MAX_BYTES
        assert shot.tabs == app_tabs  # the picture's tabs are the app's tabs today
        assert card_line(REPO_ROOT / "model.json") in shot.sidebar  # the models it names are those it serves
        assert card_line(REPO_ROOT / "models" / "accurate" / "card.json") in shot.sidebar

    # the app picture: a text of mixed feelings, as both models show it (label, the mixed note, the parts
    # shaded each way and the probability chart, wholly inside the picture), and the explanation begun
    predictor = load_predictor(REPO_ROOT / "model.pkl")
    assert predictor.score([script.TEXT], parts=True)[0]["mixed"]  # the example is mixed for the model
    app = shots["app.png"]
    assert {"Fast model", "Accurate model"} <= set(app.headings) and "Why negative?" in app.text
    assert app.text.count("Mixed feelings: one part of this text is positive and another negative.") == 2
    assert app.text.count("Parts, each scored on its own:") == 2 and script.TEXT in app.text
    assert app.inside == dict.fromkeys(script.APP_PARTS, 2), app.inside  # one of each per model

    # the Insights picture: the headings and the finding the app gives these rows today
    frame = pd.read_csv(script.sample_csv(tmp_path))
    ins = build_insights(ensure_scored(frame, "text", predictor)[0], "text", predictor)
    insights = shots["insights.png"]
    assert insights.headings == [
        "Insights", f"Over time (per {ins.timeline.granularity})", f"By {ins.groups.column}",
        "What drives each label",
    ]  # fmt: skip
    assert finding(ins) in insights.text and f"texts contain “{script.INSIGHTS_TERM}”" in insights.text

    # the Monitoring picture: a status, every signal in words, trends over several windows, words not codes
    monitoring = shots["monitoring_example.png"]
    assert monitoring.headings == ["Status: ALERT"]
    for key, words in SIGNAL_NAMES.items():
        assert words in monitoring.text and f"{key} (" not in monitoring.text
    assert "Label shares per window" in monitoring.text and ONE_WINDOW_NOTE not in monitoring.text
    new_words = re.search(r"New frequent words\s+(?:OK|WARN|ALERT)\s+([^\n]*)", monitoring.text)
    assert new_words and "most frequent: " in new_words[1], monitoring.text
    assert not re.search(r"\b[0-9a-f]{12}\b", new_words[1])  # the words, not their codes


def test_committed_screenshots_are_small_sensible_pngs() -> None:
    for name in pictures_in_the_docs():
        width, height = png_size(DOCS / name)
        # the Review tab is one text and four buttons: a short picture (test_screenshot_review.py)
        assert width >= 1000 and height >= (500 if name == "review.png" else 800), name
        assert (DOCS / name).stat().st_size < MAX_BYTES, f"{name} is over {MAX_BYTES:,} bytes"
