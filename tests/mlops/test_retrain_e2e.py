"""The whole loop on real components: a champion trained on the older part of train.csv serves from the
registry in a real uvicorn with the prediction log on; later parts of train.csv land in Blob storage
(Azurite) as labelled batches; `watch` picks them up, the challenger is registered and promoted or not
by the gate's rule; the API follows the champion alias; the monitoring report shows the versions."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.io import storage
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL, registry
from sentimentkit.mlops.monitor import compare
from sentimentkit.mlops.predlog import read_log
from sentimentkit.mlops.retrain import Gate, watch
from sentimentkit.serving.loader import load_predictor
from sentimentkit.training.profile import model_reference
from tests.e2e.conftest import free_port, run_server, uvicorn_command
from tests.mlops.conftest import make_container

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("registry_env")]


def _data(shared: Path, folder: Path) -> pd.DataFrame:
    """A data directory whose train.csv is the oldest 3,000 tweets; returns the next 2,000 (the batches)."""
    folder.mkdir()
    train = pd.read_csv(shared / "train.csv", dtype=str, keep_default_na=False)
    train.iloc[:3000].to_csv(folder / "train.csv", index=False)
    pd.read_csv(shared / "validation.csv").to_csv(folder / "validation.csv", index=False)
    pd.read_csv(shared / "test.csv").iloc[:1000].to_csv(folder / "test.csv", index=False)
    return train.iloc[3000:5000]


def _predict(url: str, texts: list[str]) -> set[str]:
    versions = set()
    for text in texts:
        request = urllib.request.Request(url + "/v1/predict", data=json.dumps({"text": text}).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request) as response:  # noqa: S310 - loopback only
            versions.add(json.loads(response.read())["model_version"])
    return versions


def _served_version(url: str) -> str:
    with urllib.request.urlopen(url + "/v1/model") as response:  # noqa: S310
        return json.loads(response.read())["registry"]["version"]


def test_watch_on_blob_promotes_by_the_rule_and_the_api_and_report_follow(
    shared_data: Path, blob_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sentimentkit.training.train import train

    data = tmp_path / "data"
    later = _data(shared_data, data)
    monkeypatch.setenv("SENTIMENTKIT_DATA_DIR", str(data))
    card = train(data, tmp_path / "champion" / "model.pkl", log=lambda *a: None)
    registry.register(tmp_path / "champion" / "model.pkl", card, {"train": "older 3,000 tweets"})
    texts = (
        pd.read_csv(shared_data.parent / "unlabeled" / "tweets.csv")["text"]
        .sample(400, random_state=2)
        .tolist()
    )
    port = free_port()
    env = {"SENTIMENTKIT_MODEL": f"models:/{TFIDF_MODEL}@{CHAMPION}", "SENTIMENTKIT_MODEL_POLL_S": "1",
           "SENTIMENTKIT_PREDICTION_LOG": str(tmp_path / "log")}  # fmt: skip
    with run_server(uvicorn_command(port), "/readyz", port, env, tmp_path, timeout=120) as server:
        assert _served_version(server.url) == "1"
        _predict(server.url, texts[:200])
        make_container("labels")
        for k in range(2):  # two batches land in Blob storage
            part = later.iloc[1000 * k : 1000 * (k + 1)].to_csv(index=False).encode()
            storage.write_bytes(f"az://labels/incoming/2016-0{k + 1}.csv", part)
        # SemEval-like batches of 1,000 tweets: the refit learner, the documented choice for them (the
        # domain learner's end to end on Azurite is tests/mlops/test_feedback_e2e.py)
        reports = watch("az://labels/incoming", 0.1, cycles=2, sleep=lambda s: None, gate=Gate(),
                        log=lambda *a: None, learner="refit")  # fmt: skip
        assert len(reports) == 1 and reports[0]["challenger_version"] == "2"
        report = reports[0]
        gain = report["scores"]["challenger"]["avg_recall"] - report["scores"]["champion"]["avg_recall"]
        drops = [report["scores"]["champion"]["f1"][c] - report["scores"]["challenger"]["f1"][c]
                 for c in ("negative", "neutral", "positive")]  # fmt: skip
        should_promote = gain >= Gate().margin and max(drops) <= Gate().max_class_drop
        print(report["reason"])  # shown with -s: which way the rule went on this data
        assert (report["decision"] == "promoted") == should_promote, report["reason"]
        expected = "2" if should_promote else "1"
        assert registry.current_version(TFIDF_MODEL, CHAMPION) == expected
        deadline = time.monotonic() + 30
        while _served_version(server.url) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _served_version(server.url) == expected  # the API followed the alias
        _predict(server.url, texts[200:])
    frame = read_log(tmp_path / "log")
    reference, _ = model_reference(load_predictor(f"models:/{TFIDF_MODEL}/{expected}"), data)
    monitored = compare(frame, reference, timedelta(days=1), timedelta(days=1))
    served = {(m["name"], m["version"]) for m in monitored["models"]}
    assert len(frame) == 400  # every answered request is in the log
    # The log and the report name the registry versions that served: both, when the champion changed.
    assert served == ({(TFIDF_MODEL, "1"), (TFIDF_MODEL, "2")} if should_promote else {(TFIDF_MODEL, "1")})
