"""The REST API in-process (Starlette TestClient): every endpoint, every error, limits, key, CORS,
metrics, request ids and logs. Runs on the tiny model trained in conftest (real pipeline, no mocks)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from sentimentkit.api import create_app
from sentimentkit.config import Settings
from sentimentkit.models.pipeline import card_path
from sentimentkit.serving.base import OUTPUT_COLUMNS, BasePredictor
from sentimentkit.serving.loader import load_verified, verify_predictor
from sentimentkit.serving.predictor import Predictor
from tests.api_apps import ExplodingPredictor


def make_client(predictor: BasePredictor | None = None, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(**settings), predictor=predictor))  # type: ignore[arg-type]


@pytest.fixture
def client(tiny_predictor: Predictor) -> Iterator[TestClient]:
    with make_client(tiny_predictor) as c:
        yield c


class LogLines(logging.Handler):
    """Collects the API's JSON log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def requests(self) -> list[dict]:
        return [e for e in map(json.loads, self.lines) if e.get("event") == "request"]


@pytest.fixture
def logs() -> Iterator[LogLines]:
    handler = LogLines()
    logger = logging.getLogger("sentimentkit.api")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


# --- health, readiness, model ----------------------------------------------------------------------
def test_lifespan_loads_the_model_once_and_is_ready(tiny_model_path: Path) -> None:
    with make_client(model_path=tiny_model_path) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready" and ready.json()["model_version"] == "tiny-test"
        first = c.app.state.predictor  # type: ignore[attr-defined]
        c.post("/v1/predict", json={"text": "great"})
        assert c.app.state.predictor is first  # type: ignore[attr-defined]


def tampered_copy(src: Path, dest_dir: Path) -> Path:
    dest = dest_dir / "model.pkl"
    shutil.copy(src, dest)
    shutil.copy(card_path(src), card_path(dest))
    data = bytearray(dest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest


def test_broken_model_makes_readyz_503_with_the_reason_and_the_process_stays_up(
    tiny_model_path: Path, tmp_path: Path, logs: LogLines
) -> None:
    broken = tampered_copy(tiny_model_path, tmp_path)
    with make_client(model_path=broken) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert "model.pkl" in body["reason"] and "Traceback" not in body["reason"]
        for response in (c.post("/v1/predict", json={"text": "hi"}), c.get("/v1/model")):
            assert response.status_code == 503
            assert response.json()["error"] == "model_unavailable"
            assert body["reason"] in response.json()["message"]
    failures = [json.loads(line) for line in logs.lines if "model_load_failed" in line]
    assert len(failures) == 1 and failures[0]["level"] == "error"


def test_missing_model_file_is_reported_not_crashed(tmp_path: Path) -> None:
    with make_client(model_path=tmp_path / "nowhere.pkl") as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert "nowhere.pkl" in ready.json()["reason"]


class NaNPredictor(Predictor):
    """A model that loads but answers NaN: what the start-up and reload probe must refuse."""

    def predict_proba(self, texts):  # type: ignore[no-untyped-def]
        return np.full((1 if isinstance(texts, str) else len(texts), len(self.labels)), np.nan)


def test_the_probe_is_one_function_for_start_up_and_reload(
    tiny_predictor: Predictor, tiny_model_path: Path
) -> None:
    """`create_app(predictor=...)`, the lifespan load and `/v1/admin/reload` all run `verify_predictor`
    (`load_verified` = load + probe, in serving/loader.py): a model answering NaN is refused by each."""
    bad = NaNPredictor(tiny_predictor.pipeline, tiny_predictor.card)
    with pytest.raises(ValueError, match="invalid result"):
        verify_predictor(bad)
    with pytest.raises(ValueError, match="invalid result"):
        create_app(Settings(), predictor=bad)
    assert load_verified(tiny_model_path).version == tiny_predictor.version


def test_model_endpoint_gives_card_labels_threshold_and_limits(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["model_version"] == "tiny-test"
    assert info["labels"] == ["negative", "neutral", "positive"]
    assert info["threshold"] == 0.5 and info["can_explain"] is True
    assert info["limits"] == {
        "max_chars": 5120, "max_batch": 1000, "max_body_bytes": 2_000_000, "max_upload_bytes": 50 * 1024 * 1024,
    }  # fmt: skip
    assert info["card"]["version"] == "tiny-test" and "files" in info["card"]


# --- single text -------------------------------------------------------------------------------------
def test_predict_returns_label_confidence_scores_uncertain_and_version(
    client: TestClient, tiny_predictor: Predictor
) -> None:
    response = client.post("/v1/predict", json={"text": "I love this, wonderful day"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"sentiment", "confidence", "scores", "uncertain", "language", "language_confidence",
                         "mixed", "model_version"}  # fmt: skip
    assert body["language"] == "en" and body["mixed"] is False
    assert body["sentiment"] == "positive"
    assert set(body["scores"]) == {"negative", "neutral", "positive"}
    assert sum(body["scores"].values()) == pytest.approx(1.0)
    assert body["confidence"] == max(body["scores"].values())
    expected = tiny_predictor.score(["I love this, wonderful day"])[0]
    assert body["confidence"] == pytest.approx(expected["confidence"])
    assert body["uncertain"] is (body["confidence"] < 0.5)
    assert body["model_version"] == "tiny-test"


def test_uncertain_follows_the_configured_threshold(tiny_model_path: Path) -> None:
    with make_client(model_path=tiny_model_path, threshold=0.999) as c:
        assert c.post("/v1/predict", json={"text": "the train leaves at noon"}).json()["uncertain"] is True
        assert c.get("/v1/model").json()["threshold"] == 0.999


def test_explain_adds_word_contributions_that_add_up(client: TestClient) -> None:
    body = client.post("/v1/predict?explain=true", json={"text": "I hate this awful day"}).json()
    explanation = body["explanation"]
    assert explanation["label"] == body["sentiment"] == "negative"
    assert [t["token"] for t in explanation["tokens"]][:2] == ["i", "hate"]
    total = explanation["bias"] + sum(t["weight"] for t in explanation["tokens"])
    assert total == pytest.approx(explanation["logit"])
    assert "explanation" not in client.post("/v1/predict", json={"text": "I hate this"}).json()


def test_explain_another_label_and_an_unknown_one(client: TestClient) -> None:
    body = client.post("/v1/predict?explain=true&label=positive", json={"text": "I hate this"}).json()
    assert body["explanation"]["label"] == "positive"
    bad = client.post("/v1/predict?explain=true&label=angry", json={"text": "I hate this"})
    assert bad.status_code == 422 and bad.json()["error"] == "unknown_label"


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"text": ""}, "empty_text"),
        ({"text": "   \n\t "}, "empty_text"),
        ({"text": 123}, "invalid_request"),
        ({"text": None}, "invalid_request"),
        ({"text": ["a", "b"]}, "invalid_request"),
        ({}, "missing_field"),
        ({"texts": ["a"]}, "missing_field"),
        ([1, 2], "invalid_request"),
        ("just a string", "invalid_request"),
    ],
)
def test_predict_rejects_bad_input_with_a_clear_422(client: TestClient, payload: object, code: str) -> None:
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == code
    assert body["message"] and body["request_id"]
    assert "Traceback" not in response.text


def test_text_too_long_names_the_limit(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, max_chars=20) as c:
        ok = c.post("/v1/predict", json={"text": "x" * 20})
        assert ok.status_code == 200
        response = c.post("/v1/predict", json={"text": "x" * 21})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "text_too_long" and body["limit"] == 20 and "20" in body["message"]


def test_malformed_json_is_a_422_not_a_500(client: TestClient) -> None:
    response = client.post(
        "/v1/predict", content=b'{"text": "unterminated', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_json"
    no_type = client.post("/v1/predict", content=b"text=hello")
    assert no_type.status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1000,
        b'{"text": ' + b"[" * 100_000,
        b'{"text": "hi", "x": ' + b'{"a": ' * 2000 + b"1" + b"}" * 2001,
    ],
    ids=["list", "text-list", "object"],
)
def test_deeply_nested_json_is_a_4xx_not_a_500(tiny_predictor: Predictor, body: bytes) -> None:
    # Regression: the fast path caught only ValueError, and json.loads raises RecursionError here.
    with TestClient(create_app(Settings(), predictor=tiny_predictor), raise_server_exceptions=False) as c:
        answers = [
            c.post(path, content=body, headers={"Content-Type": "application/json"})
            for path in ("/v1/predict", "/v1/predict/batch")
        ]
        assert c.post("/v1/predict", json={"text": "still fine"}).status_code == 200
    assert [a.status_code for a in answers] == [400, 400]
    assert {a.json()["error"] for a in answers} == {"invalid_body"}


def test_body_size_limit_is_enforced_before_parsing(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, max_body_bytes=200) as c:
        # Not even valid JSON: the limit answers first, from Content-Length alone.
        response = c.post("/v1/predict", content=b"{" * 500, headers={"Content-Type": "application/json"})
        assert response.status_code == 413
        body = response.json()
        assert body["error"] == "body_too_large" and body["limit"] == 200 and "200" in body["message"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            for _ in range(10):
                yield b'{"text": "' + b"a" * 50

        streamed = c.post("/v1/predict", content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and streamed.json()["limit"] == 200
        assert c.post("/v1/predict", json={"text": "fine"}).status_code == 200


# --- batch -------------------------------------------------------------------------------------------
def test_batch_keeps_order_and_flags_bad_items_individually(tiny_predictor: Predictor) -> None:
    texts = ["I love it", "", "I hate it", "x" * 31, "   ", "the train at noon"]
    with make_client(tiny_predictor, max_chars=30) as c:
        response = c.post("/v1/predict/batch", json={"texts": texts})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "tiny-test"
    results = body["results"]
    assert len(results) == len(texts)
    assert [r["sentiment"] for r in results] == ["positive", None, "negative", None, None, "neutral"]
    assert results[1]["error"] == "empty text" and results[4]["error"] == "empty text"
    assert "limit is 30" in results[3]["error"]
    for r in (results[0], results[2], results[5]):
        assert r["error"] is None and sum(r["scores"].values()) == pytest.approx(1.0)


def test_large_batch_matches_the_predictor(client: TestClient, tiny_predictor: Predictor) -> None:
    texts = [f"day {i}: I {'love' if i % 2 else 'hate'} this" for i in range(300)]
    results = client.post("/v1/predict/batch", json={"texts": texts}).json()["results"]
    expected = tiny_predictor.score(texts)
    assert [r["sentiment"] for r in results] == [e["sentiment"] for e in expected]
    assert np.allclose([r["confidence"] for r in results], [e["confidence"] for e in expected])


def test_batch_limit_and_types(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, max_batch=3) as c:
        assert c.post("/v1/predict/batch", json={"texts": ["a", "b", "c"]}).status_code == 200
        too_many = c.post("/v1/predict/batch", json={"texts": ["a", "b", "c", "d"]})
        assert too_many.status_code == 422
        assert too_many.json()["error"] == "too_many_texts" and too_many.json()["limit"] == 3
        assert c.post("/v1/predict/batch", json={"texts": "not a list"}).status_code == 422
        mixed = c.post("/v1/predict/batch", json={"texts": ["ok", 5]})  # a wrong item fails alone
        assert mixed.status_code == 200
        assert mixed.json()["results"][1]["error"] == "text must be a string (got number)"
        assert c.post("/v1/predict/batch", json={"texts": []}).json()["results"] == []


def test_concurrent_single_requests_are_batched_with_identical_results(tiny_predictor: Predictor) -> None:
    app = create_app(Settings(), predictor=tiny_predictor)
    texts = [f"text {i} {'great' if i % 3 else 'awful'} {'day' * (i % 4)}" for i in range(60)]

    async def run() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            responses = await asyncio.gather(*[ac.post("/v1/predict", json={"text": t}) for t in texts])
        return [r.json() for r in responses]

    answers = asyncio.run(run())
    assert app.state.batcher.batches < len(texts) // 4  # requests were scored together
    for answer, text in zip(answers, texts):
        alone = tiny_predictor.score([text])[0]
        assert answer["sentiment"] == alone["sentiment"]
        assert answer["confidence"] == pytest.approx(alone["confidence"], abs=1e-12)


# --- CSV ---------------------------------------------------------------------------------------------
def post_csv(c: TestClient, data: bytes, name: str = "in.csv", **form: str) -> httpx.Response:
    return c.post("/v1/predict/csv", files={"file": (name, data, "text/csv")}, data=form)


def read_answer(response: httpx.Response) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(response.content), dtype=str, keep_default_na=False)


def test_csv_every_row_in_order_with_original_columns_and_formulas_neutralised(client: TestClient) -> None:
    data = (
        b'id,tweet,note\n1,I love it,=HYPERLINK("http://x")\n2,,blank\n3,I hate it,+1+2\n'
        b'4,"line one\nline two, great",-5\n5,@user the train at noon,x\n'
    )
    response = post_csv(client, data, text_column="tweet")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="in-scored.csv"' in response.headers["content-disposition"]
    out = read_answer(response)
    assert list(out.columns) == ["id", "tweet", "note", *OUTPUT_COLUMNS]
    assert out["id"].tolist() == ["1", "2", "3", "4", "5"]
    assert out["tweet"][3] == "line one\nline two, great"
    assert out["note"].tolist() == ['\'=HYPERLINK("http://x")', "blank", "'+1+2", "-5", "x"]
    assert out["tweet"][4] == "@user the train at noon"  # a reply, not a formula (formula_guard=auto)
    assert out["sentiment"].tolist()[:3] == ["positive", "", "negative"]
    assert out["error"][1] == "empty text"


def test_csv_formula_guard_field_and_server_default(tiny_predictor: Predictor) -> None:
    data = b'text,note\n@user I love it,=HYPERLINK("http://x")\nI hate it,-A1\n'
    with make_client(tiny_predictor) as c:
        assert read_answer(post_csv(c, data))["text"][0] == "@user I love it"  # auto
        out = read_answer(post_csv(c, data, formula_guard="all"))
        assert out["text"][0] == "'@user I love it" and out["note"].tolist() == [
            '\'=HYPERLINK("http://x")',
            "'-A1",
        ]
        out = read_answer(post_csv(c, data, formula_guard="off"))
        assert out["note"].tolist() == ['=HYPERLINK("http://x")', "-A1"]
        wrong = post_csv(c, data, formula_guard="sometimes")
        assert wrong.status_code == 422 and wrong.json()["error"] == "invalid_formula_guard"
        assert "must be one of auto, all, off, got 'sometimes'" in wrong.json()["message"]
        schema = c.get("/openapi.json").json()
    form = schema["components"]["schemas"]["Body_predict_csv_v1_predict_csv_post"]["properties"]
    assert form["formula_guard"]["enum"] == ["auto", "all", "off"]
    with make_client(tiny_predictor, formula_guard="all") as c:  # SENTIMENTKIT_FORMULA_GUARD=all
        assert read_answer(post_csv(c, data))["text"][0] == "'@user I love it"
        assert read_answer(post_csv(c, data, formula_guard="auto"))["text"][0] == "@user I love it"


def test_csv_default_column_utf16_and_semicolons(client: TestClient) -> None:
    data = "text;n\nI love it;1\nI hate it;2\n".encode("utf-16")
    out = read_answer(post_csv(client, data))
    assert out["sentiment"].tolist() == ["positive", "negative"]


def test_csv_streams_many_chunks(tiny_predictor: Predictor) -> None:
    rows = "".join(f"{i},I {'love' if i % 2 else 'hate'} it\n" for i in range(250))
    with make_client(tiny_predictor, csv_chunk_rows=40) as c:
        out = read_answer(post_csv(c, ("id,text\n" + rows).encode()))
    assert out["id"].tolist() == [str(i) for i in range(250)]
    assert set(out["sentiment"]) == {"positive", "negative"}


def test_csv_missing_column_lists_the_columns(client: TestClient) -> None:
    response = post_csv(client, b"id,body\n1,hello\n", text_column="text")
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "missing_column" and "['id', 'body']" in body["message"]


def test_csv_undecodable_is_a_400_before_any_row_is_sent(client: TestClient) -> None:
    valid = "id,text\n" + "".join(f"{i},caf\u00e9 number {i}\n" for i in range(6000))
    response = post_csv(client, valid.encode("utf-8") + b"9999,bad \xff\xfe byte\n")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_csv" and "UTF-8" in response.json()["message"]


@pytest.mark.parametrize("data", [b"", b"   \n", b"id,text\n"])
def test_csv_empty_or_header_only(client: TestClient, data: bytes) -> None:
    response = post_csv(client, data)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_csv"


def test_csv_malformed_and_missing_file(client: TestClient) -> None:
    response = post_csv(client, b'id,text\n1,"unterminated\n2,ok\n')
    assert response.status_code in (200, 400)  # pandas may read it as one long quoted cell; never a 5xx
    assert client.post("/v1/predict/csv", data={"text_column": "text"}).status_code == 422


def test_csv_scoring_that_fails_at_once_is_a_json_500_before_streaming(tiny_predictor: Predictor) -> None:
    exploding = ExplodingPredictor(tiny_predictor.pipeline, tiny_predictor.card)
    with TestClient(create_app(Settings(), predictor=exploding), raise_server_exceptions=False) as c:
        response = post_csv(c, b"text\nboom\nI love it\n")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error" and "secret" not in response.text


def test_csv_scoring_that_fails_part_way_ends_with_the_marker_line(
    tiny_predictor: Predictor, logs: LogLines
) -> None:
    exploding = ExplodingPredictor(tiny_predictor.pipeline, tiny_predictor.card)
    rows = "".join(f"{i},{'boom' if i == 130 else 'I love it'}\n" for i in range(200))
    with make_client(exploding, csv_chunk_rows=50) as c:
        response = post_csv(c, ("id,text\n" + rows).encode(), text_column="text")
    assert response.status_code == 200  # already sent when row 130 failed
    assert response.headers["x-sentimentkit-rows"] == "200"
    marker = response.headers["x-sentimentkit-error-marker"]
    *data, last = response.text.splitlines()
    assert last.startswith(marker) and "after 100 of 200 rows" in last and "secret" not in last
    assert [line.split(",")[0] for line in data[1:]] == [str(i) for i in range(100)]
    failed = [e for e in map(json.loads, logs.lines) if e.get("event") == "csv_stream_failed"]
    assert failed and failed[0]["rows_sent"] == 100 and failed[0]["request_id"] in last
    assert logs.requests()[-1]["status"] == 500


def test_csv_upload_limit(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, max_upload_mb=1) as c:
        big = b"text\n" + b"I love it\n" * 120_000
        response = post_csv(c, big)
    assert response.status_code == 413
    assert response.json()["limit"] == 1024 * 1024


# --- API key, CORS -------------------------------------------------------------------------------------
def test_api_key_required_when_configured(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, api_key="s3cret") as c:
        missing = c.post("/v1/predict", json={"text": "hi"})
        assert missing.status_code == 401 and missing.json()["error"] == "api_key_missing"
        assert "X-API-Key" in missing.json()["message"]
        wrong = c.post("/v1/predict", json={"text": "hi"}, headers={"X-API-Key": "guess"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "api_key_invalid"
        assert c.get("/v1/model").status_code == 401
        ok = c.post("/v1/predict", json={"text": "hi"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert c.get(open_path).status_code == 200
        schema = c.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
        assert schema["paths"]["/v1/predict"]["post"]["security"] == [{"ApiKey": []}]


def test_no_key_needed_by_default(client: TestClient) -> None:
    assert (
        client.post("/v1/predict", json={"text": "hi"}, headers={"X-API-Key": "anything"}).status_code == 200
    )


def test_cors_allows_only_configured_origins(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, cors_origins=["http://app.example"], api_key="k") as c:
        preflight = c.options("/v1/predict", headers={
            "Origin": "http://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        })  # fmt: skip
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example"
        assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
        simple = c.post("/v1/predict", json={"text": "hi"},
                        headers={"Origin": "http://app.example", "X-API-Key": "k"})  # fmt: skip
        assert simple.headers["access-control-allow-origin"] == "http://app.example"
        assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
        evil = c.post(
            "/v1/predict", json={"text": "hi"}, headers={"Origin": "http://evil.example", "X-API-Key": "k"}
        )
        assert "access-control-allow-origin" not in evil.headers


def test_cors_off_by_default(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"text": "hi"}, headers={"Origin": "http://app.example"})
    assert "access-control-allow-origin" not in response.headers


# --- metrics, request ids, logs, errors -------------------------------------------------------------------
def test_metrics_count_requests_latency_labels_and_confidence(client: TestClient) -> None:
    client.post("/v1/predict", json={"text": "I love it"})
    client.post("/v1/predict/batch", json={"texts": ["I hate it", "I hate this", ""]})
    client.post("/v1/predict", json={"text": ""})
    client.get("/no/such/path")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'sentimentkit_http_requests_total{method="POST",route="/v1/predict",status="200"} 1.0' in text
    assert 'sentimentkit_http_requests_total{method="POST",route="/v1/predict",status="422"} 1.0' in text
    assert 'sentimentkit_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'sentimentkit_http_request_duration_seconds_bucket{le="0.05",method="POST",route="/v1/predict/batch",status="200"}'
        in text
    )
    assert 'sentimentkit_predictions_total{label="positive"} 1.0' in text
    assert 'sentimentkit_predictions_total{label="negative"} 2.0' in text
    assert "sentimentkit_prediction_confidence_count 3.0" in text


def test_request_id_is_honoured_or_generated(client: TestClient) -> None:
    given = client.post("/v1/predict", json={"text": "hi"}, headers={"X-Request-ID": "abc-123.x"})
    assert given.headers["x-request-id"] == "abc-123.x"
    generated = client.post("/v1/predict", json={"text": "hi"})
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert unsafe.headers["x-request-id"] != "bad id"
    assert len(unsafe.headers["x-request-id"]) == 32
    error = client.post("/v1/predict", json={"text": ""}, headers={"X-Request-ID": "err-1"})
    assert error.json()["request_id"] == "err-1" and error.headers["x-request-id"] == "err-1"


def test_one_json_log_line_per_request_without_raw_text(client: TestClient, logs: LogLines) -> None:
    client.post("/v1/predict", json={"text": "my secret love letter"}, headers={"X-Request-ID": "r1"})
    client.post("/v1/predict/batch", json={"texts": ["private hate", "private love", ""]},
                headers={"X-Request-ID": "r2"})  # fmt: skip
    client.post("/v1/predict", json={"text": ""}, headers={"X-Request-ID": "r3"})
    entries = logs.requests()
    assert [e["request_id"] for e in entries] == ["r1", "r2", "r3"]
    first, second, third = entries
    assert first["route"] == "/v1/predict" and first["status"] == 200 and first["n_texts"] == 1
    assert first["labels"] == {"positive": 1} and first["latency_ms"] > 0
    assert second["n_texts"] == 3 and second["labels"] == {"negative": 1, "positive": 1}
    assert third["status"] == 422
    joined = "\n".join(logs.lines)
    assert "secret" not in joined and "private" not in joined


def test_raw_text_logged_only_when_enabled(tiny_predictor: Predictor, logs: LogLines) -> None:
    with make_client(tiny_predictor, log_text=True) as c:
        c.post("/v1/predict", json={"text": "my secret love letter"})
    assert logs.requests()[-1]["texts"] == ["my secret love letter"]


def test_unexpected_errors_are_json_500_without_internals(tiny_predictor: Predictor) -> None:
    exploding = ExplodingPredictor(tiny_predictor.pipeline, tiny_predictor.card)
    app = create_app(Settings(), predictor=exploding)
    with TestClient(app, raise_server_exceptions=False) as c:
        response = c.post("/v1/predict", json={"text": "boom"}, headers={"X-Request-ID": "bug-1"})
        assert c.post("/v1/predict", json={"text": "fine"}).status_code == 200
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "The server failed to answer; the error was logged with this request id.",
        "request_id": "bug-1",
    }
    assert "secret" not in response.text


def test_a_text_that_breaks_the_model_fails_alone_when_batched(tiny_predictor: Predictor) -> None:
    exploding = ExplodingPredictor(tiny_predictor.pipeline, tiny_predictor.card)
    app = create_app(Settings(), predictor=exploding)
    texts = ["I love it", "boom", "I hate it", "the train at noon"]

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*[ac.post("/v1/predict", json={"text": t}) for t in texts])

    statuses = [r.status_code for r in asyncio.run(run())]
    assert statuses == [200, 500, 200, 200]
    assert app.state.batcher.texts == 4 and app.state.batcher.batches < 4  # "boom" was batched with others


def test_unknown_paths_and_methods_are_json(client: TestClient) -> None:
    missing = client.get("/v2/predict")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = client.get("/v1/predict")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


def test_openapi_schema_documents_the_limits(tiny_predictor: Predictor) -> None:
    with make_client(tiny_predictor, max_chars=77, max_batch=9) as c:
        schema = c.get("/openapi.json").json()
    components = schema["components"]["schemas"]
    assert components["PredictRequest"]["properties"]["text"]["maxLength"] == 77
    assert components["BatchRequest"]["properties"]["texts"]["maxItems"] == 9
    assert set(schema["paths"]) == {
        "/healthz", "/readyz", "/v1/model", "/v1/predict", "/v1/predict/batch", "/v1/predict/csv", "/metrics",
        "/v1/admin/reload", "/v1/predict/csv/notes", "/v1/feedback",
    }  # fmt: skip
    assert "413" in schema["paths"]["/v1/predict"]["post"]["responses"]
    assert components["FeedbackRequest"]["properties"]["items"]["maxItems"] == 9


def test_fast_path_and_the_fastapi_route_answer_alike(client: TestClient, logs: LogLines) -> None:
    text = "I love this, wonderful day"
    fast = client.post("/v1/predict", json={"text": text})
    routed = client.post("/v1/predict?explain=false", json={"text": text})  # a query string takes the route
    extra = client.post("/v1/predict", json={"text": text, "lang": "en"})  # extra fields are ignored
    charset = client.post(
        "/v1/predict",
        content=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert fast.json() == routed.json() == extra.json() == charset.json()
    assert {e["route"] for e in logs.requests()} == {"/v1/predict"}
    assert all(e["labels"] == {"positive": 1} for e in logs.requests())
    metrics = client.get("/metrics").text
    assert 'sentimentkit_http_requests_total{method="POST",route="/v1/predict",status="200"} 4.0' in metrics


def test_unicode_round_trips_and_lone_surrogates_are_refused_alike(client: TestClient) -> None:
    def post(path: str, raw: bytes) -> httpx.Response:
        return client.post(path, content=raw, headers={"Content-Type": "application/json"})

    good = b'{"text": "I love it \\u00e9t\\u00e9 \\ud83d\\ude00"}'
    for path in ("/v1/predict", "/v1/predict?explain=true"):
        assert post(path, good).status_code == 200
    assert any(
        "\u00e9" in t["token"] for t in post("/v1/predict?explain=true", good).json()["explanation"]["tokens"]
    )
    lone = b'{"text": "\\ud83d love"}'
    answers = [post(path, lone) for path in ("/v1/predict", "/v1/predict?explain=true")]
    assert [a.status_code for a in answers] == [422, 422]
    assert {a.json()["error"] for a in answers} == {"invalid_text"}


def test_long_lived_objects_are_frozen_out_of_the_garbage_collector(tiny_model_path: Path) -> None:
    import gc

    with make_client(model_path=tiny_model_path) as c:
        assert c.get("/readyz").status_code == 200
        assert gc.get_freeze_count() > 0


class ThreadGuardPredictor(Predictor):
    """A real predictor that records which threads call it and whether two calls ever overlap (the API
    scores on the loop's thread, one call at a time: see MODEL_SLICE in sentimentkit/api/batcher.py)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        import threading

        self.threads: set[int] = set()
        self.busy = threading.Lock()
        self.overlaps = 0

    def predict_proba(self, texts):  # type: ignore[no-untyped-def]
        import threading

        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            self.busy.acquire()
        try:
            self.threads.add(threading.get_ident())
            return super().predict_proba(texts)
        finally:
            self.busy.release()


def test_model_is_only_called_from_one_thread_even_under_mixed_load(tiny_predictor: Predictor) -> None:
    guard = ThreadGuardPredictor(tiny_predictor.pipeline, tiny_predictor.card)
    app = create_app(Settings(csv_chunk_rows=100), predictor=guard)
    guard.threads.clear()
    csv = ("text\n" + "".join(f"row {i} I {'love' if i % 2 else 'hate'} it\n" for i in range(500))).encode()

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as ac:
            calls = [
                ac.post("/v1/predict/batch", json={"texts": [f"{k} {i} great" for i in range(300)]})
                for k in range(4)
            ]
            calls += [ac.post("/v1/predict", json={"text": f"{i} awful"}) for i in range(30)]
            calls += [ac.post("/v1/predict/csv", files={"file": ("a.csv", csv, "text/csv")})]
            calls += [ac.post("/v1/predict?explain=true", json={"text": "I love it"})]
            return await asyncio.gather(*calls)

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    assert len(read_answer(responses[-2])) == 500
    assert len(guard.threads) == 1 and guard.overlaps == 0


def test_csv_route_shares_the_batch_path_blank_ragged_xlsx_and_notes(client: TestClient) -> None:
    response = post_csv(client, b"id,text,text\n1,I love it,a\n\n3,hello, world,b\n")
    assert response.status_code == 200
    out = read_answer(response)
    assert out["id"].tolist() == ["1", "", "3"]  # the blank line is an empty row, in its place
    assert out["error"].tolist() == ["", "empty text", "line 4: 4 fields, the header has 3"]
    notes = response.headers["X-Input-Notes"]
    assert "'text.1'" in notes and "(lines 4)" in notes
    import openpyxl

    book = openpyxl.Workbook()
    for row in (["text"], ["I love it"], ["@SUM(1)"]):
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    answer = read_answer(post_csv(client, buffer.getvalue(), name="book.xlsx"))
    assert answer["sentiment"][0] == "positive" and answer["text"].tolist() == ["I love it", "'@SUM(1)"]


def header_bytes(response: httpx.Response) -> int:
    """The size of the response's header block as sent: 'Name: value' plus CRLF per header."""
    return sum(len(name) + len(value) + 4 for name, value in response.headers.raw)


def test_csv_notes_keep_the_headers_small_and_the_notes_route_has_them_all(tiny_predictor: Predictor) -> None:
    # Was: 1,500 trailing commas gave a 101 KB X-Input-Notes header (http.client and requests refuse
    # a header line over 64 KB), a wide workbook 1.1 MB. 1,500 columns are now over MAX_COLUMNS: 990.
    data = ("id,text" + "," * 990 + "\n" + "".join(f"{i},I love it{',' * 990}\n" for i in range(3))).encode()
    with make_client(tiny_predictor, api_key="k" * 20, max_body_bytes=1000) as c:
        key = {"X-API-Key": "k" * 20}
        response = c.post("/v1/predict/csv", files={"file": ("wide.csv", data)}, headers=key)
        assert response.status_code == 200 and len(read_answer(response)) == 3
        assert header_bytes(response) < 4096
        assert response.headers["X-Input-Notes-Count"] == "990"
        summary = response.headers["X-Input-Notes"]
        assert summary.endswith(
            "(990 notes in all, the first 5 here; POST the file to /v1/predict/csv/notes for every note in full)"
        )
        # the full list: the same file to the notes route (the upload limit applies, not max_body_bytes)
        notes = c.post("/v1/predict/csv/notes", files={"file": ("wide.csv", data)}, headers=key)
        assert notes.status_code == 200
        assert notes.json()["rows"] == 3 and notes.json()["count"] == 990 == len(notes.json()["notes"])
        assert summary.startswith(" | ".join(notes.json()["notes"][:5]))
        assert notes.json()["notes"][-1] == "column 992 has no name in the header; it is called 'column_992'."
        assert c.post("/v1/predict/csv/notes", files={"file": ("wide.csv", data)}).status_code == 401
        missing = c.post("/v1/predict/csv/notes", files={"file": ("w.csv", data)}, data={"text_column": "x"},
                         headers=key)  # fmt: skip
        assert missing.status_code == 422 and missing.json()["error"] == "missing_column"


def test_csv_notes_header_cuts_a_huge_note_and_escapes_what_a_header_cannot_hold(client: TestClient) -> None:
    name = "é" * 100_000  # a wide workbook's duplicated names made one note of 1.1 MB
    data = f"text,{name},{name}\nI love it,a,b\n".encode()
    response = post_csv(client, data)
    assert response.status_code == 200 and header_bytes(response) < 4096
    summary = response.headers["X-Input-Notes"]
    assert summary.isascii() and "\\xe9" in summary
    assert summary.endswith(
        "(cut to 300 characters; POST the file to /v1/predict/csv/notes for every note in full)"
    )
    assert response.headers["X-Input-Notes-Count"] == "1"
    full = client.post("/v1/predict/csv/notes", files={"file": ("in.csv", data)}).json()["notes"]
    assert len(full) == 1 and name in full[0]
    few = post_csv(client, b"id,text,text\nI love it,a,b\n", text_column="text")
    assert few.headers["X-Input-Notes-Count"] == "1" and "POST the file" not in few.headers["X-Input-Notes"]
    from sentimentkit.api.csv_route import _notes_header

    assert _notes_header(["a\nb\x00c"]) == {"X-Input-Notes": "a\\nb\\x00c", "X-Input-Notes-Count": "1"}


def test_csv_route_flags_xlsx_formulas_without_a_saved_value(client: TestClient) -> None:
    # Was: "empty text" for a formula cell of a workbook a script wrote (no saved value).
    from sentimentkit.serving.base import UNSAVED_FORMULA
    from tests.workbooks import xlsx_bytes

    data = xlsx_bytes([["id", "text"], [1, "I love it"], [2, "=A1"], [3, "=A2"]], saved={"B4": "I hate it"})
    response = post_csv(client, data, name="book.xlsx")
    answer = read_answer(response)
    assert answer["text"].tolist() == ["I love it", "'=A1", "I hate it"]
    assert answer["error"].tolist() == ["", UNSAVED_FORMULA, ""]
    assert answer["sentiment"].tolist() == ["positive", "", "negative"]
    assert response.headers["X-Input-Notes"].startswith(
        "1 cell holds a formula with no saved value (column 'text': row 3)"
    )


def test_predict_uses_the_one_text_rule(client: TestClient) -> None:
    from sentimentkit.serving.base import text_error

    assert text_error("\ud83d love", 100) is not None  # the rule itself refuses a lone surrogate
    for payload, code in (({"text": " "}, "empty_text"), ({"text": "x" * 5121}, "text_too_long")):
        body = client.post("/v1/predict", json=payload).json()
        assert body["error"] == code


def test_invisible_texts_and_old_mac_csv_files(client: TestClient) -> None:
    # A zero-width joiner and a direction mark were scored as a text; a CSV with \r line ends was a 400.
    assert client.post("/v1/predict", json={"text": "\u200d\u200f"}).json()["error"] == "empty_text"
    answer = read_answer(post_csv(client, b'text,id\r"multi\rline",1\rI love it,2\r'))
    assert answer["text"].tolist() == ["multi\rline", "I love it"] and answer["id"].tolist() == ["1", "2"]
