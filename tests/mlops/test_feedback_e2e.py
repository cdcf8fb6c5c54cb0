"""The human loop on real components, all storage in Blob (Azurite): a real uvicorn serves the champion
and logs texts; `review` picks the texts to label from the log; a person's labels come back with
`feedback add` and through POST /v1/feedback (by request id and by text) into the feedback store;
`retrain --incoming az://...` trains a challenger on them, the gate promotes it, and the running API
serves the new champion (it follows `models:/...@champion`). benchmarks/feedback_loop.py runs the same
commands on Apple tweets at full size."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sentimentkit.cli import main
from sentimentkit.feedback.store import list_files, read_feedback
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL
from sentimentkit.mlops.predlog import NothingLoggedError, read_log
from sentimentkit.mlops.retrain import read_manifest
from tests.e2e.conftest import free_port, run_server, uvicorn_command
from tests.mlops.conftest import make_container
from tests.mlops.test_retrain import champion  # noqa: F401 - the fixture
from tests.mlops.test_retrain_domain import GADGETS, domain

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registry_env")]
KEY = "loop-test-key-0123456789"


def wait_for_log(log: str, rows: int, timeout: float = 30.0) -> pd.DataFrame:
    deadline = time.monotonic() + timeout
    while True:
        try:
            frame = read_log(log)
        except NothingLoggedError:
            frame = pd.DataFrame()
        if len(frame) >= rows or time.monotonic() > deadline:
            assert len(frame) >= rows, f"{len(frame)} rows logged, expected {rows}"
            return frame
        time.sleep(0.5)


def test_log_review_feedback_retrain_on_blob(
    champion: Path,  # noqa: F811
    blob_env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    make_container("loop")
    log, store = "az://loop/log", "az://loop/incoming"
    truth = domain(GADGETS, "my new {t} {w} #gadget", 100)  # talk the tiny champion gets wrong
    gold = dict(zip(truth["text"], truth["label"]))
    port = free_port()
    env = {"SENTIMENTKIT_MODEL": f"models:/{TFIDF_MODEL}@{CHAMPION}", "SENTIMENTKIT_API_KEY": KEY,
           "SENTIMENTKIT_PREDICTION_LOG": log, "SENTIMENTKIT_PREDICTION_LOG_TEXT": "true",
           "SENTIMENTKIT_FEEDBACK": store, "SENTIMENTKIT_MODEL_POLL_S": "1"}  # fmt: skip
    with (
        run_server(uvicorn_command(port), "/readyz", port, env, tmp_path, timeout=120) as server,
        httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": KEY}) as http,
    ):
        for i, text in enumerate(truth["text"]):
            answer = http.post("/v1/predict", json={"text": text}, headers={"X-Request-ID": f"r{i}"})
            assert answer.status_code == 200
        wait_for_log(log, len(truth))

        # 1. review: 30 logged texts chosen by the default strategy, labelled in a spreadsheet, added back
        review = tmp_path / "review.csv"
        assert main(["review", "--log", log, "--n", "30", "--output", str(review)]) == 0
        sheet = pd.read_csv(review, dtype=str, keep_default_na=False)
        sheet["label"] = sheet["text"].map(gold)
        sheet.to_csv(tmp_path / "labelled.csv", index=False)
        capsys.readouterr()
        assert main(["feedback", "add", "--input", str(tmp_path / "labelled.csv"), "--incoming", store]) == 0
        assert "stored 30 correction(s)" in capsys.readouterr().out

        # 2. the API: by request id (through the log in Blob) and by text
        rest = [t for t in truth["text"] if t not in set(sheet["text"])]
        by_id = [
            {"request_id": f"r{truth['text'].tolist().index(t)}", "label": gold[t], "user": "bob"}
            for t in rest[:20]
        ]
        by_text = [{"text": t, "label": gold[t]} for t in rest[20:]]
        answer = http.post("/v1/feedback", json={"items": by_id + by_text}).json()
        assert answer["stored"] == len(rest), answer
        assert [r["text_source"] for r in answer["results"]][:20] == ["request_id"] * 20

        stored = read_feedback(store)
        assert dict(zip(stored["text"], stored["label"])) == gold  # every text once, with its label
        assert len(list_files(store)) == 2  # one file per write
        assert set(stored[stored["user"] == "bob"]["request_id"]) == {item["request_id"] for item in by_id}

        # 3. retrain on the feedback store: the gate promotes the challenger...
        capsys.readouterr()
        assert main(["retrain", "--incoming", store]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["status"] == "done" and report["challenger_version"] == "2"
        assert report["decision"] == "promoted", report["reason"]
        assert report["domain"]["gain"] > 0 and report["guard"]["passed"] is True
        batches = read_manifest(f"{store}/_sentimentkit")["batches"]
        assert sorted(b["status"] for b in batches.values()) == ["accepted", "accepted"]
        assert sum(b["train_rows"] + b["heldout_rows"] for b in batches.values()) == len(truth)

        # 4. ...and the running API serves it: the new champion answers (and is logged) by itself.
        deadline = time.monotonic() + 60
        while (model := http.get("/v1/model").json())["registry"]["version"] != "2":
            assert time.monotonic() < deadline, f"the API still serves {model['registry']} after 60 s"
            time.sleep(0.5)
        unseen = ["my old phone freezes #gadget", "my old camera is snappy #gadget"]
        answer = http.post("/v1/predict/batch", json={"texts": unseen}).json()
        assert [r["sentiment"] for r in answer["results"]] == ["negative", "positive"], answer
        assert answer["model_version"] == model["model_version"]
        logged = wait_for_log(log, len(truth) + len(unseen))
        assert set(logged[logged["text"].isin(unseen)]["model_version"]) == {"2"}  # the log: registry version
