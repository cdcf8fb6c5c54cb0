"""The API as deployed (real uvicorn) never shows a secret: every route, with and without the key, a
model that cannot be loaded (503), a failed reload, the prediction log's dead blob store, /metrics, the
server log and the files it writes. Each secret is set to a unique marker (tests/test_secrets.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from sentimentkit.config import Settings
from sentimentkit.models.card import sign_model
from tests.e2e.conftest import Server
from tests.test_secrets import MARKERS, closed_port, file_leaks, leaks, secret_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

StartApi = Callable[..., Server]
CSV = b"text\nI love it\nI hate it\n"


def exercise(server: Server, with_reload: bool = True) -> list[tuple[str, httpx.Response]]:
    """Every route, without the key, with a wrong one and with the right one."""
    answers = []
    keys = {"none": {}, "wrong": {"X-API-Key": "wrong-key-123"}, "right": {"X-API-Key": MARKERS["api_key"]}}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for name, headers in keys.items():
            calls = [
                ("GET", "/healthz", {}), ("GET", "/readyz", {}), ("GET", "/metrics", {}), ("GET", "/v1/model", {}),
                ("GET", "/openapi.json", {}), ("GET", "/no/such/route", {}),
                ("POST", "/v1/predict", {"json": {"text": "I love it"}}),
                ("POST", "/v1/predict?explain=true", {"json": {"text": "I love it"}}),
                ("POST", "/v1/predict#empty", {"json": {"text": ""}}),
                ("POST", "/v1/predict/batch", {"json": {"texts": ["I love it", "", 3]}}),
                ("POST", "/v1/predict/csv", {"files": {"file": ("in.csv", CSV, "text/csv")}}),
                ("POST", "/v1/predict/csv#bad", {"files": {"file": ("in.csv", b"\xff\xfe", "text/csv")}}),
            ]  # fmt: skip
            if with_reload:
                calls.append(("POST", "/v1/admin/reload", {}))
            for method, path, kwargs in calls:
                url = path.split("#")[0]  # the fragment only names the call
                answers.append(
                    (f"{name} {method} {path}", http.request(method, url, headers=headers, **kwargs))
                )
    return answers


def leaked(
    answers: list[tuple[str, httpx.Response]], server: Server, root: Path, skip: set[Path]
) -> list[str]:
    problems = []
    for what, response in answers:
        text = response.text + " " + " ".join(f"{k}: {v}" for k, v in response.headers.items())
        if leaks(text):
            problems.append(f"{what} -> {response.status_code}: {leaks(text)}: {text[:600]}")
    log = server.log()
    if leaks(log):
        problems.append(
            f"server log: {leaks(log)}:\n" + "\n".join(line for line in log.splitlines() if leaks(line))
        )
    problems += [f"file {path}: {hits}" for path, hits in file_leaks(root, skip).items()]
    return problems


def test_unloadable_registry_model_leaks_nothing(start_api: StartApi, tmp_path: Path) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_text(MARKERS["signing_key"])
    env = {**secret_env(closed_port(), signing_key_file=key_file),
           "SENTIMENTKIT_MODEL": "models:/sentimentkit-tfidf@champion", "SENTIMENTKIT_MODEL_POLL_S": "0.3",
           "SENTIMENTKIT_PREDICTION_LOG": "az://logs/predictions",
           "SENTIMENTKIT_REGISTRY_CACHE": str(tmp_path / "cache")}  # fmt: skip
    server = start_api(env)
    answers = exercise(server)
    statuses = {what: r.status_code for what, r in answers}
    assert statuses["none GET /readyz"] == 503 and statuses["right POST /v1/predict"] == 503
    assert statuses["right POST /v1/admin/reload"] == 503 and statuses["none POST /v1/predict"] == 401
    time.sleep(1.0)  # let the alias poller fail a few times (it logs why)
    assert "model_poll_failed" in server.log() and "model_load_failed" in server.log()
    problems = leaked(answers, server, tmp_path, {key_file})
    assert not problems, "\n\n".join(problems)
    # The reason is still said, only without the password.
    assert "mluser:***@127.0.0.1" in dict(answers)["none GET /readyz"].json()["reason"]


def test_working_model_with_a_dead_prediction_log_leaks_nothing(
    start_api: StartApi, tmp_path: Path, tiny_model_path: Path
) -> None:
    key_file = tmp_path / "signing.key"
    key_file.write_text(MARKERS["signing_key"])
    model = tmp_path / "model" / "model.pkl"
    model.parent.mkdir()
    shutil.copyfile(tiny_model_path, model)
    shutil.copyfile(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    sign_model(model, Settings(signing_key_file=key_file))
    env = {**secret_env(closed_port(), signing_key_file=key_file), "SENTIMENTKIT_MODEL": str(model),
           "SENTIMENTKIT_PREDICTION_LOG": "az://logs/predictions"}  # fmt: skip
    server = start_api(env)
    answers = exercise(server)
    statuses = {what: r.status_code for what, r in answers}
    assert statuses["right POST /v1/predict"] == 200 and statuses["right POST /v1/admin/reload"] == 200
    model.with_suffix(".json").unlink()  # now a reload fails: the old model keeps serving
    with httpx.Client(base_url=server.url, timeout=30) as http:
        failed = http.post("/v1/admin/reload", headers={"X-API-Key": MARKERS["api_key"]})
    assert failed.status_code == 503
    time.sleep(0.5)
    problems = leaked([*answers, ("failed reload", failed)], server, tmp_path, {key_file})
    assert not problems, "\n\n".join(problems)
