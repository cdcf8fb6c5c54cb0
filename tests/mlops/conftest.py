"""Fixtures for the registry and storage tests: a throw-away MLflow store (SQLite + local artifacts)
and a real Azurite blob emulator on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sentimentkit.config import REPO_ROOT
from tests.e2e.conftest import free_port, stop

# Azurite's documented development account (public, the same in every Azurite install).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
AZURITE_BIN = REPO_ROOT / ".tools" / "node" / "node_modules" / ".bin" / "azurite-blob"


def connection_string(port: int, key: str = AZURITE_KEY) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with its schema, made once (the migrations take seconds)."""
    pytest.importorskip("mlflow", reason="needs the mlops extra: pip install -r requirements-mlops.txt")
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}").search_registered_models()
    return db


@pytest.fixture
def registry_env(tmp_path: Path, mlflow_template: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh registry for one test: its own SQLite file, artifact folder and verified-copy cache."""
    root = tmp_path / "mlruns"
    root.mkdir()
    shutil.copyfile(mlflow_template, root / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("SENTIMENTKIT_MLFLOW_ARTIFACTS", str(root / "artifacts"))
    monkeypatch.setenv("SENTIMENTKIT_REGISTRY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SENTIMENTKIT_USER", "tester")
    return root


def _azurite_command() -> str:
    found = str(AZURITE_BIN) if AZURITE_BIN.exists() else shutil.which("azurite-blob")
    if not found:
        pytest.skip("Azurite is not installed (scripts/setup-dev.sh installs it with npm into .tools/node)")
    return found


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Azurite blob service on 127.0.0.1 (in memory); yields its connection string."""
    pytest.importorskip("adlfs", reason="needs the mlops extra: pip install -r requirements-mlops.txt")
    workdir = tmp_path_factory.mktemp("azurite")
    port = free_port()
    args = [_azurite_command(), "--blobHost", "127.0.0.1", "--blobPort", str(port),
            "--inMemoryPersistence", "--disableTelemetry", "--skipApiVersionCheck", "--loose"]  # fmt: skip
    with open(workdir / "azurite.log", "wb") as log:
        # cwd: anything Azurite writes beside it lands in the test's folder, not the checkout.
        process = subprocess.Popen(
            args, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}
        )
    try:
        _wait_listening(port, process, workdir / "azurite.log")
        yield connection_string(port)
    finally:
        stop(process)


def _wait_listening(port: int, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Azurite did not listen on {port} within {timeout}s")


@pytest.fixture
def blob_env(azurite: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """AZURE_STORAGE_CONNECTION_STRING pointing at the test's Azurite."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    return azurite


def make_container(name: str) -> None:
    """Create a blob container (idempotent) through the storage layer's filesystem."""
    from sentimentkit.io.storage import filesystem

    fs, _ = filesystem(f"az://{name}")
    if not fs.exists(name):
        fs.mkdir(name)
