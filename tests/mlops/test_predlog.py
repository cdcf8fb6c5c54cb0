"""The prediction log: rows and their fields, bounded queue with counted drops, nothing lost on close,
storage failures counted not raised, date partitions, Azure Blob (real Azurite), and the real API."""

from __future__ import annotations

import hashlib
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sentimentkit.mlops.predlog import PredictionLog, model_identity, parse_age, read_log
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training.profile import model_vocabulary, text_stats, token_hash
from tests.mlops.conftest import make_container

TEXTS = ["I love this, it is great", "worst day ever :(", "zqxw blorf flimp", "the train leaves at noon"]


def _scored(predictor: Predictor, texts: list[str]) -> list[dict[str, Any]]:
    return predictor.score(texts)


def test_rows_hold_every_field_and_no_text_by_default(tiny_predictor: Predictor, tmp_path: Path) -> None:
    texts = [*TEXTS, "   "]  # the blank one has an error: nothing was predicted, nothing is logged
    records = _scored(tiny_predictor, texts)
    with PredictionLog(tmp_path / "log") as log:
        assert log.submit(tiny_predictor, texts, records, source="/v1/predict/batch", request_id="r1")
    frame = read_log(tmp_path / "log")
    assert len(frame) == 4 and log.counts == {"logged": 4, "dropped": 0, "failed": 0}
    row = frame.iloc[1]
    assert row["request_id"] == "r1" and row["source"] == "/v1/predict/batch"
    assert (row["model_name"], row["model_version"]) == model_identity(tiny_predictor)
    assert row["label"] == records[1]["sentiment"] and row["confidence"] == pytest.approx(
        records[1]["confidence"]
    )
    assert row["p_negative"] + row["p_neutral"] + row["p_positive"] == pytest.approx(1.0)
    assert row["text_sha256"] == hashlib.sha256(TEXTS[1].encode()).hexdigest()
    assert row["n_chars"] == len(TEXTS[1]) and row["n_tokens"] == 4
    assert frame["text"].isna().all()  # privacy: the text is not stored unless asked for
    nonsense = frame.iloc[2]
    assert nonsense["unknown_share"] == 1.0
    assert sorted(nonsense["unknown_tokens"]) == sorted(token_hash(w) for w in ("zqxw", "blorf", "flimp"))
    assert list(Path(tmp_path / "log").glob("date=*/*.parquet"))  # date-partitioned Parquet


def test_text_is_kept_only_when_enabled(tiny_predictor: Predictor, tmp_path: Path) -> None:
    with PredictionLog(tmp_path, log_text=True) as log:
        log.submit(tiny_predictor, TEXTS, _scored(tiny_predictor, TEXTS), source="cli")
    assert read_log(tmp_path)["text"].tolist() == TEXTS


def test_unknown_share_uses_the_models_training_vocabulary(tiny_predictor: Predictor) -> None:
    vocabulary = model_vocabulary(tiny_predictor)
    assert vocabulary is not None and "love" in vocabulary and "blorf" not in vocabulary
    # Markers (mentions, URLs, numbers) are never unknown; a negated word counts as its base word.
    chars, tokens, share, unknown = text_stats("@bob I don't love blorf http://x.co 42", vocabulary)
    # words: i, don't, love (negated), blorf (negated); the tiny model never saw "don't" or "blorf"
    assert (chars, tokens, unknown, share) == (38, 7, ["don't", "blorf"], 0.5)
    assert text_stats("anything", None)[2] is None  # no vocabulary (the transformer): no share


class _SlowCard(dict):
    """A card whose first read blocks the writer thread until released (to fill the queue)."""

    def __init__(self, gate: threading.Event) -> None:
        super().__init__(name="slow", version="1")
        self.gate = gate

    def get(self, *args: Any) -> Any:
        self.gate.wait(10)
        return super().get(*args)


def test_full_queue_drops_and_counts_without_waiting_and_close_loses_nothing_queued(
    tiny_predictor: Predictor, tmp_path: Path
) -> None:
    gate = threading.Event()

    class Slow:
        card = _SlowCard(gate)
        labels = tiny_predictor.labels

    records = _scored(tiny_predictor, TEXTS[:1])
    counted: list[tuple[str, int]] = []
    log = PredictionLog(tmp_path, max_queue=2, on_count=lambda outcome, n: counted.append((outcome, n)))
    results = [log.submit(Slow(), TEXTS[:1], records, source="api") for _ in range(6)]
    # The writer holds one batch (blocked), the queue holds two more, the other three are refused.
    assert results.count(False) >= 3 and log.counts["dropped"] == results.count(False)
    gate.set()
    log.close()
    assert log.counts["logged"] == results.count(True)
    assert len(read_log(tmp_path)) == results.count(True)
    assert ("dropped", 1) in counted


def test_storage_failure_is_counted_never_raised(tiny_predictor: Predictor, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the log folder should be")
    with PredictionLog(blocker) as log:
        assert log.submit(tiny_predictor, TEXTS, _scored(tiny_predictor, TEXTS), source="api")
    assert log.counts == {"logged": 0, "dropped": 0, "failed": 4}


def test_read_log_since_skips_old_partitions_and_a_missing_log_says_so(
    tiny_predictor: Predictor, tmp_path: Path
) -> None:
    with PredictionLog(tmp_path) as log:
        log.submit(tiny_predictor, TEXTS, _scored(tiny_predictor, TEXTS), source="api")
    old = tmp_path / "date=2020-01-01"
    old.mkdir()
    (old / "part-old.parquet").write_bytes(b"not parquet: must not even be opened")
    assert len(read_log(tmp_path, since=datetime.now(UTC) - timedelta(days=1))) == 4
    with pytest.raises(FileNotFoundError, match="no prediction log files"):
        read_log(tmp_path / "empty")


@pytest.mark.parametrize(("text", "expected"), [("7d", timedelta(days=7)), ("12h", timedelta(hours=12)),
                                                ("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2))])  # fmt: skip
def test_parse_age(text: str, expected: timedelta) -> None:
    assert parse_age(text) == expected


@pytest.mark.parametrize("bad", ["7", "d", "seven days", "-1d", ""])
def test_parse_age_refuses_with_the_accepted_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="e.g. 30m, 12h, 7d"):
        parse_age(bad)


@pytest.mark.slow
def test_log_on_azure_blob(tiny_predictor: Predictor, blob_env: str) -> None:
    make_container("predlog")
    with PredictionLog("az://predlog/api") as log:
        log.submit(tiny_predictor, TEXTS, _scored(tiny_predictor, TEXTS), source="api", request_id="b1")
    assert log.counts["logged"] == 4
    frame = read_log("az://predlog/api")
    assert frame["request_id"].tolist() == ["b1"] * 4


@pytest.mark.slow
def test_real_api_logs_every_route_and_flushes_on_shutdown(tiny_model_path: Path, tmp_path: Path) -> None:
    from tests.e2e.conftest import free_port, run_server, uvicorn_command

    port = free_port()
    from tests.conftest import write_tiny_splits

    env = {"SENTIMENTKIT_MODEL": str(tiny_model_path), "SENTIMENTKIT_PREDICTION_LOG": str(tmp_path / "log"),
           "SENTIMENTKIT_DATA_DIR": str(write_tiny_splits(tmp_path / "data"))}  # fmt: skip
    with run_server(uvicorn_command(port), "/healthz", port, env, tmp_path) as server:
        post = _poster(server.url)
        post("/v1/predict", b'{"text": "I love this"}', "application/json", "req-fast")
        post("/v1/predict?explain=true", b'{"text": "worst day ever"}', "application/json", "req-explain")
        post("/v1/predict/batch", b'{"texts": ["great", " ", "bad"]}', "application/json", "req-batch")
        csv = b"text\nhello there\nso sad\n"
        post("/v1/predict/csv", csv, "text/csv", "req-csv")
        post("/v1/predict", b'{"text": ""}', "application/json", "req-bad", expect=422)
        deadline = time.monotonic() + 20  # the writer writes every 5 s; the live gauges follow each write
        while time.monotonic() < deadline:
            metrics = urllib.request.urlopen(server.url + "/metrics").read().decode()  # noqa: S310
            if 'sentimentkit_monitor{signal="overall",statistic="status"}' in metrics:
                break
            time.sleep(0.5)
        assert 'sentimentkit_prediction_log_rows_total{outcome="logged"} 6.0' in metrics
        # 6 predictions are too few to judge: the live status is WARN (1) and says how many it saw.
        assert 'sentimentkit_monitor{signal="overall",statistic="status"} 1.0' in metrics
        assert 'sentimentkit_monitor{signal="overall",statistic="n"} 6.0' in metrics
    frame = read_log(tmp_path / "log")  # the server was stopped with SIGTERM: the queue was flushed
    assert frame.groupby("request_id").size().to_dict() == {
        "req-fast": 1, "req-explain": 1, "req-batch": 2, "req-csv": 2
    }  # fmt: skip
    assert set(frame["source"]) == {"/v1/predict", "/v1/predict/batch", "/v1/predict/csv"}
    assert "prediction_log_closed" in server.log()


def _poster(base: str) -> Any:
    def post(path: str, body: bytes, content_type: str, request_id: str, expect: int = 200) -> None:
        if content_type == "text/csv":
            boundary = "xx"
            body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
                    f"Content-Type: text/csv\r\n\r\n").encode() + body + f"\r\n--{boundary}--\r\n".encode()  # fmt: skip
            content_type = f"multipart/form-data; boundary={boundary}"
        request = urllib.request.Request(base + path, data=body, method="POST", headers={
            "Content-Type": content_type, "X-Request-ID": request_id})  # fmt: skip
        try:
            with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback only
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == expect

    return post


def test_cli_predict_logs_the_csv_and_the_single_text(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentimentkit.cli import main

    monkeypatch.setenv("SENTIMENTKIT_PREDICTION_LOG", str(tmp_path / "log"))
    source = tmp_path / "in.csv"
    source.write_text("text\ngreat day\n\nawful day\n", encoding="utf-8")
    assert main(["predict", "--model", str(tiny_model_path), "--input", str(source),
                 "--output", str(tmp_path / "out.csv"), "--chunk-rows", "1"]) == 0  # fmt: skip
    assert main(["predict", "--model", str(tiny_model_path), "--text", "so happy"]) == 0
    frame = read_log(tmp_path / "log")
    assert frame["text_sha256"].tolist() == [hashlib.sha256(t.encode()).hexdigest()
                                             for t in ("great day", "awful day", "so happy")]  # fmt: skip
    assert set(frame["source"]) == {"cli"}


def test_batch_logger_is_off_without_a_log_and_for_the_remote_api(
    tiny_predictor: Predictor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sentimentkit.mlops.predlog import batch_logger
    from sentimentkit.serving.remote import RemotePredictor

    monkeypatch.delenv("SENTIMENTKIT_PREDICTION_LOG", raising=False)
    with batch_logger(tiny_predictor, "text", "app") as log:
        assert log is None
    monkeypatch.setenv("SENTIMENTKIT_PREDICTION_LOG", str(tmp_path))
    remote = RemotePredictor("http://127.0.0.1:9", connect=False)
    with batch_logger(remote, "text", "app") as log:
        assert log is None  # the API logs what it scores: no second copy
