"""The issue's round trip on a real Azurite and a real uvicorn: data uploaded to Blob -> train from Blob
-> register with artifacts in Blob (wasbs://) -> serve the champion -> promote -> the API reloads ->
rollback; an artifact whose bytes were changed in the store is refused."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.cli import main
from sentimentkit.io import storage
from sentimentkit.mlops import registry
from sentimentkit.models.pipeline import ModelError
from sentimentkit.serving.loader import load_predictor
from tests.e2e.conftest import free_port, run_server, uvicorn_command
from tests.mlops.conftest import AZURITE_ACCOUNT, make_container

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROWS = {"train": 3000, "validation": 500, "test": 1000}  # a subset keeps two trainings to seconds
KEY = {"X-API-Key": "round-trip"}


def _get(url: str) -> dict:
    request = urllib.request.Request(url, headers=KEY)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def _post(url: str, body: dict | None = None) -> int:
    data = json.dumps(body or {}).encode()
    request = urllib.request.Request(url, data=data, headers={**KEY, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return response.status


def _served_version(url: str, version: str, timeout: float) -> float:
    """Seconds until /v1/model reports registry version `version`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if _get(url + "/v1/model")["registry"]["version"] == version:
            return time.monotonic() - start
        time.sleep(0.2)
    raise AssertionError(f"the API did not switch to version {version} within {timeout}s")


class Traffic(threading.Thread):
    """Predictions sent back to back while the model is swapped; every status is kept."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.statuses, self.stop = url, [], threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                self.statuses.append(
                    _post(self.url + "/v1/predict", {"text": f"what a great day number {n}"})
                )
            except Exception as exc:  # an HTTP error or a dropped connection is what this test looks for
                self.statuses.append(repr(exc))


def test_blob_round_trip(
    shared_data: Path, blob_env: str, registry_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for container in ("data", "mlflow"):
        make_container(container)
    for split, rows in ROWS.items():
        subset = pd.read_csv(shared_data / f"{split}.csv", dtype=str, keep_default_na=False).head(rows)
        storage.write_bytes(f"az://data/semeval/{split}.csv", subset.to_csv(index=False).encode())
    artifacts = f"wasbs://mlflow@{AZURITE_ACCOUNT}.blob.core.windows.net/artifacts"
    monkeypatch.setenv("SENTIMENTKIT_MLFLOW_ARTIFACTS", artifacts)

    for n, c in ((1, "0.25"), (2, "0.5")):
        out = tmp_path / f"m{n}" / "model.pkl"
        assert main(["train", "--data", "az://data/semeval", "--out", str(out), "--C", c, "--register"]) == 0
    versions = registry.list_versions(registry.TFIDF_MODEL)
    assert [(r["version"], r["aliases"]) for r in versions] == [("2", ["challenger"]), ("1", ["champion"])]
    assert all(r["source"].startswith(artifacts) for r in versions)

    port = free_port()
    env = {"SENTIMENTKIT_MODEL": "models:/sentimentkit-tfidf@champion", "SENTIMENTKIT_MODEL_POLL_S": "1",
           "SENTIMENTKIT_API_KEY": KEY["X-API-Key"], "SENTIMENTKIT_REGISTRY_CACHE": str(tmp_path / "server-cache")}  # fmt: skip
    with run_server(uvicorn_command(port), "/readyz", port, env, tmp_path, timeout=120) as server:
        assert _get(server.url + "/v1/model")["registry"] == {
            "name": "sentimentkit-tfidf", "version": "1", "alias": "champion"}  # fmt: skip
        traffic = Traffic(server.url)
        traffic.start()
        try:
            assert main(["models", "promote", "2", "--reason", "round trip"]) == 0
            assert _served_version(server.url, "2", timeout=30) < 30
            assert main(["models", "rollback", "--reason", "round trip"]) == 0
            assert _served_version(server.url, "1", timeout=30) < 30
            assert _post(server.url + "/v1/admin/reload") == 200
        finally:
            traffic.stop.set()
            traffic.join(timeout=30)
        assert len(traffic.statuses) > 10 and set(traffic.statuses) == {200}, set(traffic.statuses)

    # Change the bytes of version 2 in Blob: a fresh copy is refused, in one line.
    blob = versions[0]["source"].replace(
        f"wasbs://mlflow@{AZURITE_ACCOUNT}.blob.core.windows.net", "az://mlflow"
    )
    data = bytearray(storage.read_bytes(blob + "/model.pkl"))
    data[100] ^= 0xFF
    storage.write_bytes(blob + "/model.pkl", bytes(data))
    monkeypatch.setenv("SENTIMENTKIT_REGISTRY_CACHE", str(tmp_path / "fresh-cache"))
    with pytest.raises(ModelError, match="the artifact store was changed after registration"):
        load_predictor("models:/sentimentkit-tfidf/2")
