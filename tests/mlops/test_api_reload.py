"""The API follows a `models:/NAME@ALIAS` model: polling, the authenticated reload endpoint, and
/v1/model's `registry` block (in-process server; the real uvicorn run is in test_round_trip)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sentimentkit.api import create_app
from sentimentkit.config import Settings
from sentimentkit.mlops import registry
from tests.mlops.test_registry import _register_twice

pytestmark = pytest.mark.usefixtures("registry_env")
CHAMPION_URI = Path("models:/sentimentkit-tfidf@champion")


def _settings(**changes: object) -> Settings:
    return dataclasses.replace(Settings.from_env(), model_path=CHAMPION_URI, **changes)


def _wait_for_version(client: TestClient, version: str, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get("/v1/model", headers={"X-API-Key": "k"}).json()
        if info["registry"]["version"] == version:
            return info
        time.sleep(0.1)
    raise AssertionError(f"/v1/model still reports {info['registry']} after {timeout}s")


def test_polling_follows_the_alias(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    with TestClient(create_app(_settings(model_poll_s=0.2, api_key="k"))) as client:
        info = client.get("/v1/model", headers={"X-API-Key": "k"}).json()
        assert info["registry"] == {"name": "sentimentkit-tfidf", "version": "1", "alias": "champion"}
        registry.promote("2", reason="test")
        assert _wait_for_version(client, "2")["model_version"] == "tiny-2"
        registry.rollback()
        _wait_for_version(client, "1")
        ok = client.post("/v1/predict", json={"text": "I love this"}, headers={"X-API-Key": "k"})
        assert ok.status_code == 200 and ok.json()["model_version"] == "tiny-test"


def test_reload_endpoint_needs_a_key_and_swaps(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    with TestClient(create_app(_settings(model_poll_s=0, api_key="k"))) as client:
        assert client.post("/v1/admin/reload").status_code == 401
        assert client.post("/v1/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
        registry.promote("2")
        time.sleep(0.3)  # polling is off: nothing changes by itself
        assert client.get("/v1/model", headers={"X-API-Key": "k"}).json()["registry"]["version"] == "1"
        answer = client.post("/v1/admin/reload", headers={"X-API-Key": "k"})
        assert answer.status_code == 200
        assert answer.json() == {"reloaded": True, "model_version": "tiny-2",
                                 "registry": {"name": "sentimentkit-tfidf", "version": "2", "alias": "champion"}}  # fmt: skip


def test_reload_is_refused_without_a_configured_key(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    with TestClient(create_app(_settings(model_poll_s=0, api_key=None))) as client:
        answer = client.post("/v1/admin/reload")
        assert answer.status_code == 403 and "SENTIMENTKIT_API_KEY" in answer.json()["message"]


def test_a_failed_reload_keeps_the_old_model(tiny_model_path: Path, tmp_path: Path) -> None:
    _register_twice(tiny_model_path, tmp_path)
    with TestClient(create_app(_settings(model_poll_s=0, api_key="k"))) as client:
        source = Path(registry.describe_version(registry.TFIDF_MODEL, "2")["source"])
        (source / "model.pkl").write_bytes(b"tampered")
        registry.promote("2")
        answer = client.post("/v1/admin/reload", headers={"X-API-Key": "k"})
        assert answer.status_code == 503 and "still serving the old one" in answer.json()["message"]
        assert client.get("/v1/model", headers={"X-API-Key": "k"}).json()["registry"]["version"] == "1"
        assert (
            client.post("/v1/predict", json={"text": "great"}, headers={"X-API-Key": "k"}).status_code == 200
        )


def test_a_plain_model_file_reports_no_registry(tiny_model_path: Path) -> None:
    settings = dataclasses.replace(Settings.from_env(), model_path=tiny_model_path)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/model").json()["registry"] is None
