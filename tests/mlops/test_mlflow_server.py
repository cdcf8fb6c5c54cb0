"""A registry you can see: the product against a real MLflow tracking server over HTTP
(`scripts/mlflow-server.sh`, the full `mlflow` package in its own virtualenv), and the registered
model's page in the MLflow UI, in a real browser.

The server runs on a throw-away store (`--store`) on a free loopback port. Skipped, with the reason,
where the virtualenv cannot be built (no network, no python3-venv); `scripts/setup-dev.sh` builds it.
Set SENTIMENTKIT_UPDATE_DOCS=1 to also write the screenshot to docs/registry.png (taken by
`registry_screenshot` in docs/screenshot.py, the script that takes every docs screenshot).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sentimentkit import LABELS
from sentimentkit.config import REPO_ROOT
from tests.e2e.conftest import Server, browser, free_port, run_server, screenshot_script  # noqa: F401 - browser: a fixture

SCRIPT = REPO_ROOT / "scripts" / "mlflow-server.sh"
MODEL = "sentimentkit-tfidf"
DOCS_SHOT = REPO_ROOT / "docs" / "registry.png"


def run_script(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "http"], "mlflow-server: --port must be a number from 1 to 65535, got 'http'"),
        (["--port", "70000"], "mlflow-server: --port must be a number from 1 to 65535, got '70000'"),
        (["--port"], "mlflow-server: --port needs a number, e.g. --port 5000"),
        (["--stroe", "x"], "mlflow-server: unknown argument '--stroe'"),
    ],
)
def test_the_script_refuses_bad_arguments_in_one_line(args: list[str], message: str) -> None:
    done = run_script(*args)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """(server, store folder): `scripts/mlflow-server.sh --store STORE` on a free loopback port."""
    if shutil.which("python3") is None:
        pytest.skip("no python3 on PATH to build the full-mlflow virtualenv with")
    try:
        # One build at a time: parallel test workers (pytest -n) would otherwise both build one virtualenv.
        with open(tempfile.gettempdir() + "/sentimentkit-mlflow-venv.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            built = run_script("--install-only", timeout=1200)
    except subprocess.TimeoutExpired:
        pytest.skip("building the full-mlflow virtualenv took over 20 minutes")
    if built.returncode != 0:
        last = (built.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"the full-mlflow virtualenv could not be built ({last}); scripts/setup-dev.sh builds it")
    store = tmp_path_factory.mktemp("mlflow-store")
    port = free_port()
    args = ["bash", str(SCRIPT), "--port", str(port), "--store", str(store)]
    with run_server(args, "/health", port, log_dir=store.parent, timeout=240) as server:
        yield server, store


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sentimentkit", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT,
    )  # fmt: skip


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


def second_model(tiny_model_path: Path, folder: Path) -> Path:
    """A copy of the tiny model whose card differs (so the two versions can be told apart)."""
    second = folder / "v2" / "model.pkl"
    second.parent.mkdir(parents=True)
    shutil.copyfile(tiny_model_path, second)
    card = json.loads(tiny_model_path.with_suffix(".json").read_text())
    second.with_suffix(".json").write_text(json.dumps({**card, "version": "tiny-2"}))
    return second


@pytest.fixture(scope="module")
def promoted(
    mlflow_server: tuple[Server, Path], tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Two versions registered and version 2 promoted to champion through the CLI, over HTTP; returns
    the environment that points the product at the server."""
    server, store = mlflow_server
    work = tmp_path_factory.mktemp("registered")
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "SENTIMENTKIT_MLFLOW_ARTIFACTS": str(store / "artifacts"),
        "SENTIMENTKIT_REGISTRY_CACHE": str(work / "cache"),
        "SENTIMENTKIT_USER": "tester",
    }
    first = cli("models", "register", str(tiny_model_path), "--reason", "baseline", env=env)
    assert first.returncode == 0, first.stderr
    assert f"registered {MODEL} version 1" in first.stdout
    second = cli("models", "register", str(second_model(tiny_model_path, work)), "--reason", "v2", env=env)
    assert second.returncode == 0, second.stderr
    promoted = cli("models", "promote", "2", "--reason", "better holdout", env=env)
    assert promoted.returncode == 0, promoted.stderr
    assert f"{MODEL}@champion: version 1 -> 2" in promoted.stdout
    return env


@pytest.mark.slow
def test_register_promote_and_serve_the_champion_over_http(
    mlflow_server: tuple[Server, Path], promoted: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, store = mlflow_server
    # The server holds it: its REST API answers, and its store has the database and the files.
    query = urllib.parse.urlencode({"name": MODEL, "alias": "champion"})
    alias = get_json(f"{server.url}/api/2.0/mlflow/registered-models/alias?{query}")
    assert alias["model_version"]["version"] == "2"
    assert (store / "mlflow.db").is_file()
    assert len(list((store / "artifacts").rglob("model.pkl"))) == 2  # each version's uploaded files

    from sentimentkit.serving.loader import load_predictor

    for key, value in promoted.items():
        monkeypatch.setenv(key, value)
    champion = load_predictor(f"models:/{MODEL}@champion")
    assert champion.registry == {"name": MODEL, "version": "2", "alias": "champion"}
    assert champion.version == "tiny-2"
    assert champion.predict("I love this, it is great") in LABELS


@pytest.fixture
def ui_page(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A Playwright page in Debian's chromium (the e2e `browser` fixture), sized for a screenshot."""
    context = request.getfixturevalue("browser").new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.usefixtures("promoted")
def test_the_registered_model_page_renders_in_a_browser(
    mlflow_server: tuple[Server, Path], ui_page: Any, tmp_path: Path
) -> None:
    server, _ = mlflow_server
    shot = tmp_path / "registry.png"
    body = screenshot_script().registry_screenshot(ui_page, server.url, MODEL, shot)  # docs/screenshot.py's
    assert MODEL in body and "sha256.model.pkl" in body and "better holdout" in body
    assert 10_000 < shot.stat().st_size < 300_000
    if os.environ.get("SENTIMENTKIT_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, DOCS_SHOT)
