"""RemotePredictor, the API's HTTP client.

Most tests run the real app in-process: Starlette's TestClient *is* an httpx.Client, so the client
code, the HTTP layer and the app are all real; only the socket is skipped. The tests against a
real uvicorn process on 127.0.0.1 are in tests/e2e/test_api_server.py.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sentimentkit.api import create_app
from sentimentkit.config import Settings
from sentimentkit.serving.base import BackendError
from sentimentkit.serving.loader import open_backend
from sentimentkit.serving.predictor import Predictor
from sentimentkit.serving.remote import RemotePredictor
from tests.e2e.conftest import free_port


def remote_for(
    predictor: Predictor, headers: dict[str, str] | None = None, **settings: object
) -> RemotePredictor:
    client = TestClient(create_app(Settings(**settings), predictor=predictor), headers=headers)  # type: ignore[arg-type]
    return RemotePredictor("http://testserver", client=client)


@pytest.fixture
def remote(tiny_predictor: Predictor) -> Iterator[RemotePredictor]:
    with remote_for(tiny_predictor) as r:
        yield r


def closed_port() -> int:
    """A loopback port nothing listens on (claimed, so no parallel test worker starts a server there)."""
    return free_port()


def test_same_answers_as_the_local_predictor(remote: RemotePredictor, tiny_predictor: Predictor) -> None:
    texts = ["I love it", "I hate it", "the train at noon"]
    assert remote.predict(texts) == tiny_predictor.predict(texts)
    assert remote.predict("I love it") == "positive"
    assert np.allclose(remote.predict_proba(texts), tiny_predictor.predict_proba(texts))
    assert remote.predict_proba("I love it").shape == (3,)
    assert remote.predict_proba([]).shape == (0, 3)


def test_card_labels_threshold_version_limits(remote: RemotePredictor) -> None:
    assert remote.version == "tiny-test"
    assert remote.card["version"] == "tiny-test"
    assert remote.labels == ("negative", "neutral", "positive")
    assert remote.threshold == 0.5 and remote.max_chars == 5120 and remote.can_explain
    assert remote.ready()["status"] == "ready"


def test_score_keeps_order_flags_bad_items_and_uses_the_callers_threshold(
    remote: RemotePredictor, tiny_predictor: Predictor
) -> None:
    texts = ["I love it", "", None, float("nan"), 42, "x" * 6000, "I hate it"]
    results = remote.score(texts)
    assert [r["sentiment"] for r in results] == ["positive", None, None, None, None, None, "negative"]
    assert [r["error"] for r in results][1:5] == [
        "empty text",
        "empty text",
        "empty text",
        "not text (got int)",
    ]
    assert "limit is 5120" in results[5]["error"]
    strict = remote.score(["I love it"], threshold=1.0)[0]
    assert strict["uncertain"] is True
    assert strict["confidence"] == pytest.approx(tiny_predictor.score(["I love it"])[0]["confidence"])


def test_large_inputs_are_chunked_by_batch_and_body_limits(tiny_predictor: Predictor) -> None:
    texts = [f"{i} I {'love' if i % 2 else 'hate'} it " + "padding " * (i % 50) for i in range(120)]
    with remote_for(tiny_predictor, max_batch=7, max_body_bytes=3000) as remote:
        results = remote.score(texts)
    assert [r["sentiment"] for r in results] == [r["sentiment"] for r in tiny_predictor.score(texts)]


def test_score_frame_works_through_the_api(remote: RemotePredictor) -> None:
    import pandas as pd

    frame = pd.DataFrame({"id": [1, 2, 3], "text": ["I love it", "", "I hate it"]})
    scored = remote.score_frame(frame, "text")
    assert scored["sentiment"].tolist()[0] == "positive" and scored["error"].tolist()[1] == "empty text"


def test_explain_through_the_api(remote: RemotePredictor, tiny_predictor: Predictor) -> None:
    remote_explanation = remote.explain("I hate this awful day")
    local = tiny_predictor.explain("I hate this awful day")
    assert remote_explanation["label"] == local["label"]
    assert [t["token"] for t in remote_explanation["tokens"]] == [t["token"] for t in local["tokens"]]
    assert remote.explain("I hate it", label="positive")["label"] == "positive"
    with pytest.raises(ValueError, match="empty"):
        remote.explain("  ")


def test_unreachable_api_is_a_clear_backend_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(BackendError, match="cannot reach the sentiment API at .* is it running"):
        RemotePredictor(url, timeout=2)
    lazy = RemotePredictor(url, timeout=2, connect=False)
    with pytest.raises(BackendError, match=url):
        lazy.score(["hello"])


def test_open_backend_uses_the_api_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("SENTIMENTKIT_API_URL", url)
    with pytest.raises(BackendError, match="cannot reach the sentiment API"):
        open_backend()


def test_wrong_key_and_missing_model_are_explained(
    tiny_predictor: Predictor, tiny_model_path, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BackendError, match="SENTIMENTKIT_API_KEY"):
        remote_for(tiny_predictor, headers={"X-API-Key": "wrong"}, api_key="right")
    with remote_for(tiny_predictor, headers={"X-API-Key": "right"}, api_key="right") as ok:
        assert ok.predict("I love it") == "positive"
    broken = TestClient(create_app(Settings(model_path=tmp_path / "missing.pkl")))
    with broken as client, pytest.raises(BackendError, match="no model loaded.*missing.pkl"):
        RemotePredictor("http://testserver", client=client)


class NotTheApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_not_the_api_is_an_unexpected_answer() -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), NotTheApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(BackendError, match="unexpected answer .* sentimentkit API"):
            RemotePredictor(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
    finally:
        server.shutdown()
        server.server_close()


def test_texts_are_checked_by_the_one_rule_before_anything_is_sent(tiny_predictor: Predictor) -> None:
    from sentimentkit.serving.base import text_error

    sent: list[bytes] = []
    with remote_for(tiny_predictor, max_chars=20) as remote:
        remote._client.event_hooks["request"].append(lambda request: sent.append(request.read()))
        texts: list[object] = ["I love it", "x" * 30, "   ", 7]
        results = remote.score(texts)
    assert [r["error"] for r in results] == [None, *(text_error(t, 20) for t in texts[1:])]
    assert (
        len(sent) == 1 and b"I love it" in sent[0] and b"xxx" not in sent[0]
    )  # only the valid text went out
