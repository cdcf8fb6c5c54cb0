"""The API as deployed: `python -m sentimentkit serve` (real uvicorn) on 127.0.0.1, real HTTP."""

from __future__ import annotations

import io
import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.pipeline import card_path
from sentimentkit.serving.base import BackendError
from sentimentkit.serving.remote import RemotePredictor
from tests.e2e.conftest import Server, free_port, run_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

StartApi = Callable[..., Server]


@pytest.fixture
def tiny_api(start_api: StartApi, tiny_model_path: Path) -> Server:
    return start_api({
        "SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_MAX_BATCH": "7", "SENTIMENTKIT_CSV_CHUNK_ROWS": "1000",
    })  # fmt: skip


def request_lines(server: Server) -> list[dict]:
    lines = [line for line in server.log().splitlines() if line.startswith("{")]
    return [e for e in map(json.loads, lines) if e.get("event") == "request"]


def wait_for_request_line(server: Server, match: Callable[[dict], bool], timeout: float = 5.0) -> dict:
    """The first request log line that `match`es; the server writes it once the response has been
    sent, so it can land a moment after the client has read the last byte."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in request_lines(server) if match(e)]
        if found or time.monotonic() > deadline:
            assert found, "no matching request log line"
            return found[0]
        time.sleep(0.05)


def test_predict_batch_csv_metrics_over_real_http(tiny_api: Server) -> None:
    with httpx.Client(base_url=tiny_api.url, timeout=10) as http:
        assert http.get("/readyz").json()["status"] == "ready"
        one = http.post(
            "/v1/predict", json={"text": "my private love letter"}, headers={"X-Request-ID": "e2e-1"}
        )
        assert one.status_code == 200 and one.headers["x-request-id"] == "e2e-1"
        assert one.json()["sentiment"] == "positive" and one.json()["model_version"] == "tiny-test"
        batch = http.post("/v1/predict/batch", json={"texts": ["I hate it", "", "I love it"]}).json()
        assert [r["sentiment"] for r in batch["results"]] == ["negative", None, "positive"]
        too_many = http.post("/v1/predict/batch", json={"texts": ["a"] * 8})
        assert too_many.status_code == 422 and too_many.json()["limit"] == 7
        csv = b"id,text\n1,I love it\n2,=1+1\n3,\n"
        scored = http.post(
            "/v1/predict/csv", files={"file": ("t.csv", csv, "text/csv")}, data={"text_column": "text"}
        )
        assert scored.status_code == 200
        out = pd.read_csv(io.BytesIO(scored.content), dtype=str, keep_default_na=False)
        assert (
            out["id"].tolist() == ["1", "2", "3"]
            and out["text"][1] == "'=1+1"
            and out["error"][2] == "empty text"
        )
        huge = http.post(
            "/v1/predict", content=b"x" * 2_000_001, headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413 and huge.json()["limit"] == 2_000_000
        metrics = http.get("/metrics").text
    assert (
        'sentimentkit_http_requests_total{method="POST",route="/v1/predict/csv",status="200"} 1.0' in metrics
    )
    entries = request_lines(tiny_api)
    first = next(e for e in entries if e["request_id"] == "e2e-1")
    assert first["route"] == "/v1/predict" and first["status"] == 200 and first["labels"] == {"positive": 1}
    assert "private" not in tiny_api.log()


def test_wrong_type_batch_items_are_per_item_errors_over_real_http(tiny_api: Server) -> None:
    # Was: one item that is not a string (123, null, ["x"], {}) failed the whole batch with 422.
    texts = ["I love it", 123, None, ["x"], {"t": 1}, True, "I hate it"]  # the server's limit is 7
    with httpx.Client(base_url=tiny_api.url, timeout=10) as http:
        answer = http.post("/v1/predict/batch", json={"texts": texts})
        not_a_list = http.post("/v1/predict/batch", json={"texts": "I love it"})
        too_many = http.post("/v1/predict/batch", json={"texts": [1] * 8})
        schema = http.get("/openapi.json").json()["components"]["schemas"]["BatchRequest"]
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [r["sentiment"] for r in results] == ["positive", *[None] * 5, "negative"]
    assert [r["error"] for r in results[1:6]] == [
        "text must be a string (got number)", "text must be a string (got null)",
        "text must be a string (got array)", "text must be a string (got object)",
        "text must be a string (got boolean)",
    ]  # fmt: skip
    assert results[6]["error"] is None and results[6]["scores"] is not None
    # The body's shape is still a request-level error, and the schema says what the server accepts.
    assert not_a_list.status_code == 422 and not_a_list.json()["error"] == "invalid_request"
    assert too_many.status_code == 422 and too_many.json()["error"] == "too_many_texts"
    texts_schema = schema["properties"]["texts"]
    assert texts_schema["type"] == "array" and texts_schema["maxItems"] == 7
    assert "type" not in texts_schema["items"] and "not a string" in texts_schema["description"]


def test_csv_is_streamed_in_chunks_with_every_row_in_order(tiny_api: Server) -> None:
    rows = "".join(f"{i},I {'love' if i % 2 else 'hate'} it,=A{i}\n" for i in range(5000))
    data = ("id,text,formula\n" + rows).encode()
    with httpx.Client(base_url=tiny_api.url, timeout=30) as http:
        response = http.post("/v1/predict/csv", files={"file": ("big.csv", data, "text/csv")})
    assert response.status_code == 200
    assert response.headers.get("transfer-encoding") == "chunked"
    out = pd.read_csv(io.BytesIO(response.content), dtype=str, keep_default_na=False)
    assert out["id"].tolist() == [str(i) for i in range(5000)]
    assert out["formula"][4999] == "'=A4999"
    assert out["sentiment"].tolist()[:2] == ["negative", "positive"]
    entry = wait_for_request_line(
        tiny_api, lambda e: e["route"] == "/v1/predict/csv" and e["n_texts"] == 5000
    )
    assert entry["labels"] == {"negative": 2500, "positive": 2500}


def test_csv_failing_part_way_is_visible_to_the_client(tiny_model_path: Path, tmp_path: Path) -> None:
    """The real server, over a real predictor that fails on the row "boom" (tests/api_apps.py)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "tests.api_apps:create_exploding_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]  # fmt: skip
    env = {"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_CSV_CHUNK_ROWS": "1000"}
    rows = "".join(f"{i},{'boom' if i == 3500 else 'I love it'}\n" for i in range(5000))
    received = b""
    with run_server(command, "/readyz", port, env, tmp_path) as server, httpx.Client(timeout=30) as http:
        files = {"file": ("big.csv", ("id,text\n" + rows).encode(), "text/csv")}
        with http.stream("POST", server.url + "/v1/predict/csv", files=files) as response:
            assert response.status_code == 200  # the status went out with the first chunk
            assert response.headers["x-sentimentkit-rows"] == "5000"
            marker = response.headers["x-sentimentkit-error-marker"]
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
                for part in response.iter_raw():
                    received += part
        assert http.post(server.url + "/v1/predict", json={"text": "I love it"}).status_code == 200
        failed = wait_for_request_line(server, lambda e: e["route"] == "/v1/predict/csv")
        log = server.log()
    *data, last = received.decode().splitlines()
    assert last.startswith(marker) and "after 3000 of 5000 rows" in last
    assert [line.split(",")[0] for line in data[1:]] == [str(i) for i in range(3000)]
    assert failed["status"] == 500 and failed["request_id"] in last
    assert '"event": "csv_stream_failed"' in log and "Traceback" not in log and "secret" not in log


def raw_http(url: str, request: bytes) -> bytes:
    """Send `request` as is on a fresh socket; everything the server answers until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while part := sock.recv(65536):
            answer += part
    return answer


def test_a_bad_content_length_gets_the_servers_answer_that_the_docs_describe(tiny_api: Server) -> None:
    docs = (REPO_ROOT / "docs" / "api.md").read_text()
    section = docs[docs.index("### Errors the server answers before the application") :]
    request = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: "
    for length in [b"abc", b"-1", b"1e3", b"5, 6", b"13\r\nContent-Length: 14"]:
        answer = raw_http(tiny_api.url, request + length + b'\r\n\r\n{"text":"hi"}')
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines)
        assert status_line == "HTTP/1.1 400 Bad Request" and headers["connection"] == "close", length
        assert (
            f"`Content-Type: {headers['content-type']}`" in section and f"body `{body.decode()}`" in section
        )
    assert not [e for e in request_lines(tiny_api) if e["route"] == "/v1/predict"]  # the app never saw one


def test_remote_predictor_against_the_real_server(tiny_api: Server, tiny_predictor) -> None:  # type: ignore[no-untyped-def]
    texts = [f"{i}: I {'love' if i % 3 else 'hate'} it" for i in range(30)] + [""]
    with RemotePredictor(tiny_api.url, timeout=10) as remote:
        results = remote.score(texts)  # 31 texts in chunks of the server's limit of 7
        assert [r["sentiment"] for r in results] == [r["sentiment"] for r in tiny_predictor.score(texts)]
        assert remote.predict("I love it") == "positive"
        assert remote.explain("I hate it")["label"] == "negative"
        assert remote.card["version"] == "tiny-test"
    assert sum(1 for e in request_lines(tiny_api) if e["route"] == "/v1/predict/batch") >= 5


def test_remote_predictor_against_a_closed_port() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendError, match=f"cannot reach the sentiment API at {url}.*is it running"):
        RemotePredictor(url, timeout=3)


def test_broken_model_keeps_the_server_up_and_not_ready(
    start_api: StartApi, tiny_model_path: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "model.pkl"
    broken.write_bytes(tiny_model_path.read_bytes()[:-100])
    card_path(broken).write_text(card_path(tiny_model_path).read_text())
    server = start_api({"SENTIMENTKIT_MODEL": str(broken)})
    with httpx.Client(base_url=server.url, timeout=10) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and str(broken) in ready.json()["reason"]
        assert http.post("/v1/predict", json={"text": "hi"}).status_code == 503
        assert http.get("/healthz").status_code == 200
    assert server.process.poll() is None
    assert "model_load_failed" in server.log() and "Traceback" not in server.log()
    with pytest.raises(BackendError, match="no model loaded"):
        RemotePredictor(server.url, timeout=5)


def test_api_key_over_http(start_api: StartApi, tiny_model_path: Path) -> None:
    server = start_api({"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_API_KEY": "k3y"})
    with pytest.raises(BackendError, match="SENTIMENTKIT_API_KEY"):
        RemotePredictor(server.url, api_key="nope", timeout=5)
    with RemotePredictor(server.url, api_key="k3y", timeout=5) as remote:
        assert remote.predict("I love it") == "positive"


def wait_until_every_worker_is_ready(url: str, timeout: float = 60) -> None:
    """/readyz answered once means one worker is ready; the other may still be loading the model."""
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < 20:  # fresh connections land on either worker
        assert time.monotonic() < deadline, "the workers did not all become ready"
        ready = httpx.get(url + "/readyz", headers={"Connection": "close"}).status_code == 200
        in_a_row = in_a_row + 1 if ready else 0
        if not ready:
            time.sleep(0.2)


def test_two_workers_share_the_load_and_the_metrics(tiny_model_path: Path, tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "sentimentkit", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "2", "--model", str(tiny_model_path)]  # fmt: skip
    with (
        run_server(command, "/readyz", port, log_dir=tmp_path) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        wait_until_every_worker_is_ready(server.url)
        for _ in range(40):
            assert http.post(
                "/v1/predict", json={"text": "I love it"}, headers={"Connection": "close"}
            ).is_success
        metrics = http.get("/metrics").text
    assert 'sentimentkit_http_requests_total{method="POST",route="/v1/predict",status="200"} 40.0' in metrics
    assert len({e["request_id"] for e in request_lines(server)}) >= 40


def test_the_committed_model_serves(start_api: StartApi) -> None:
    server = start_api()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/readyz").json()["status"] == "ready", http.get("/readyz").text
        answer = http.post("/v1/predict", json={"text": "I love this phone, best purchase ever"}).json()
    assert answer["sentiment"] == "positive"


def test_a_file_with_thousands_of_notes_gets_a_200_requests_can_read(
    tiny_model_path: Path, tmp_path: Path
) -> None:
    """Was: a CSV with 1,500 trailing commas got a 101 KB X-Input-Notes header, which Python's
    http.client (and so requests) refuses ("got more than 65536 bytes when reading header line"); such a
    file is now refused by the reader's column limit (MAX_COLUMNS), so 990 commas (a ~60 KB header then)
    show the bound.
    Two workers and an API key: the full notes come from POST /v1/predict/csv/notes, which keeps no
    state, so whichever worker answers has them."""
    requests = pytest.importorskip("requests")
    data = ("id,text" + "," * 990 + "\n" + "".join(f"{i},I love it{',' * 990}\n" for i in range(3))).encode()
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "sentimentkit",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    env = {"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_API_KEY": "e2e-key-0123456789"}
    key = {"X-API-Key": "e2e-key-0123456789"}
    with run_server(args, "/readyz", port, env, tmp_path) as server:
        response = requests.post(
            f"{server.url}/v1/predict/csv",
            files={"file": ("wide.csv", data, "text/csv")},
            headers=key,
            timeout=60,
        )
        assert response.status_code == 200
        raw = response.raw.headers  # as received: every header line, before requests merges them
        assert sum(len(k) + len(v) + 4 for k, v in raw.items()) < 8192
        assert response.headers["X-Input-Notes-Count"] == "990"
        out = pd.read_csv(io.BytesIO(response.content), dtype=str, keep_default_na=False)
        assert out["id"].tolist() == ["0", "1", "2"] and out["sentiment"].tolist() == ["positive"] * 3
        for _ in range(4):  # either worker may answer
            notes = requests.post(
                f"{server.url}/v1/predict/csv/notes",
                files={"file": ("wide.csv", data)},
                headers=key,
                timeout=60,
            )
            assert notes.status_code == 200 and notes.json()["count"] == 990 == len(notes.json()["notes"])
        assert response.headers["X-Input-Notes"].startswith(" | ".join(notes.json()["notes"][:5]))
        anonymous = requests.post(
            f"{server.url}/v1/predict/csv/notes", files={"file": ("w.csv", data)}, timeout=60
        )
        assert anonymous.status_code == 401
