"""POST /v1/feedback on the real server (uvicorn, real HTTP): by text and by request id (through the
prediction log), behind the API key, per-item errors, off without a store, and without logged texts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sentimentkit.feedback.store import read_feedback
from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEY = "feedback-test-key-0123456789"


def post_until_stored(http: httpx.Client, body: dict, timeout: float = 20.0) -> dict:
    """The log is written a few seconds after the answer: retry while the id is not there yet."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.post("/v1/feedback", json=body)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        if result["stored"] or time.monotonic() > deadline:
            return result
        assert "not in the prediction log" in result["results"][0]["error"]
        time.sleep(0.5)


def test_feedback_by_text_and_by_request_id_behind_the_key(
    start_api: Callable[..., Server], tiny_model_path: Path, tmp_path: Path
) -> None:
    store, log = tmp_path / "incoming", tmp_path / "log"
    api = start_api({"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_API_KEY": KEY,
                     "SENTIMENTKIT_FEEDBACK": str(store), "SENTIMENTKIT_PREDICTION_LOG": str(log),
                     "SENTIMENTKIT_PREDICTION_LOG_TEXT": "true"})  # fmt: skip
    with httpx.Client(base_url=api.url, timeout=10) as http:
        refused = http.post("/v1/feedback", json={"items": [{"text": "x", "label": "neutral"}]})
        assert refused.status_code == 401 and not store.exists()
        http.headers["X-API-Key"] = KEY
        first = http.post("/v1/feedback", json={"items": [
            {"text": "the gig, sadly, was \"fine\"\r\n=HYPERLINK()", "label": "negative", "user": "ann", "note": "sarcasm"},
            {"text": "   ", "label": "neutral"}, {"label": "positive"}, {"text": "ok", "label": "great"},
        ]}).json()  # fmt: skip
        assert [r["stored"] for r in first["results"]] == [True, False, False, False]
        assert "text is empty" in first["results"][1]["error"]
        assert "either text or request_id" in first["results"][2]["error"]
        assert "label" in first["results"][3]["error"] and first["stored"] == 1
        scored = http.post("/v1/predict", json={"text": "what a fantastic happy day"},
                           headers={"X-Request-ID": "req-42"})  # fmt: skip
        assert scored.status_code == 200
        second = post_until_stored(
            http, {"items": [{"request_id": "req-42", "label": "neutral", "user": "bob"}]}
        )
        assert second["stored"] == 1 and second["results"][0]["text_source"] == "request_id"
        unknown = http.post(
            "/v1/feedback", json={"items": [{"request_id": "nope", "label": "neutral"}]}
        ).json()
        assert "not in the prediction log" in unknown["results"][0]["error"]
        too_many = http.post("/v1/feedback", json={"items": "not a list"})
        assert too_many.status_code == 422 and too_many.json()["error"] == "invalid_request"
    frame = read_feedback(store).set_index("text")
    assert frame.loc['the gig, sadly, was "fine"\r\n=HYPERLINK()', "label"] == "negative"  # byte-identical
    row = frame.loc["what a fantastic happy day"]
    assert (row["label"], row["request_id"], row["predicted"], row["source"], row["user"]) == (
        "neutral", "req-42", "positive", "api", "bob")  # fmt: skip
    assert row["model_version"] == "tiny-test" and float(row["confidence"]) > 0.3


def test_feedback_is_off_without_a_store_and_request_ids_need_logged_texts(
    start_api: Callable[..., Server], tiny_model_path: Path, tmp_path: Path
) -> None:
    off = start_api({"SENTIMENTKIT_MODEL": str(tiny_model_path)})
    with httpx.Client(base_url=off.url, timeout=10) as http:
        answer = http.post("/v1/feedback", json={"items": [{"text": "x", "label": "neutral"}]})
        assert answer.status_code == 503 and "SENTIMENTKIT_FEEDBACK" in answer.json()["message"]
    no_text = start_api({"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_FEEDBACK": str(tmp_path / "s"),
                         "SENTIMENTKIT_PREDICTION_LOG": str(tmp_path / "log")})  # fmt: skip
    with httpx.Client(base_url=no_text.url, timeout=10) as http:
        result = http.post("/v1/feedback", json={"items": [{"request_id": "r1", "label": "neutral"},
                                                           {"text": "fine", "label": "neutral"}]}).json()  # fmt: skip
        assert "SENTIMENTKIT_PREDICTION_LOG_TEXT=true" in result["results"][0]["error"]
        assert result["results"][1]["stored"] and result["stored"] == 1
