"""The Streamlit app as the API's front end (SENTIMENTKIT_API_URL set), driven in chromium."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Server, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def analyze(page, text: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_label("Text to analyse")
    box.fill(text)
    box.press("Control+Enter")  # commit the value before the click (Streamlit sends it on blur/submit)
    page.get_by_role("button", name="Analyze", exact=True).click()


def test_app_answers_through_the_api(
    start_api: Callable[..., Server],
    start_streamlit: Callable[..., Server],
    page,
    tiny_model_path: Path,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    api = start_api({"SENTIMENTKIT_MODEL": str(tiny_model_path)})
    # The app gets no usable local model, so any answer it shows must come from the API.
    app = start_streamlit({
        "SENTIMENTKIT_API_URL": api.url, "SENTIMENTKIT_MODEL": str(tmp_path / "no-local-model.pkl"),
        "SENTIMENTKIT_ACCURATE_MODEL": str(tmp_path / "no-accurate-model"),
    })  # fmt: skip
    page.goto(app.url)
    page.get_by_text("tiny-test").first.wait_for()  # the sidebar names the API's model
    analyze(page, "I hate this, it is terrible and awful")
    metric = page.locator('[data-testid="stMetricValue"]').first
    metric.wait_for()
    assert metric.inner_text().strip() in {"negative", "uncertain"}
    page.get_by_text("Why negative?").wait_for()  # the explanation came through ?explain=true
    routes = [json.loads(line).get("route") for line in api.log().splitlines() if line.startswith('{"ts"')]
    assert "/v1/predict/batch" in routes and "/v1/predict" in routes and "/v1/model" in routes


def test_app_says_clearly_when_the_api_is_unreachable(
    start_streamlit: Callable[..., Server], page, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    dead = f"http://127.0.0.1:{free_port()}"
    app = start_streamlit(
        {"SENTIMENTKIT_API_URL": dead, "SENTIMENTKIT_ACCURATE_MODEL": str(tmp_path / "none")}
    )
    page.goto(app.url)
    alert = page.get_by_text("cannot reach the sentiment API")  # RemotePredictor's words, shown by the app
    alert.wait_for()
    text = alert.inner_text()
    assert dead in text and "is it running" in text and "not available" in text
    assert page.locator('[data-testid="stException"]').count() == 0
