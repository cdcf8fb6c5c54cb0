"""The one user-error family (`sentimentkit.errors`) and how each front end maps it once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from sentimentkit import cli, errors
from sentimentkit.api.errors import add_error_handlers
from sentimentkit.config import Settings
from sentimentkit.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "sv=2024-01-01&sig=TOPSECRETsasTOKEN123"

# (class, its CLI exit code, its HTTP status, a built-in base it keeps for old `except` clauses)
FAMILY = [
    (errors.UsageError, 2, 400, None),
    (errors.OptionError, 2, 422, ValueError),
    (errors.ConfigError, 2, 500, ValueError),
    (errors.DataError, 2, 422, None),
    (errors.LabelsError, 2, 422, ValueError),
    (errors.NoReferenceError, 2, 422, None),
    (errors.NoProfileError, 2, 422, ValueError),
    (errors.TextError, 2, 422, ValueError),
    (errors.BatchError, 2, 400, None),
    (errors.MissingColumnError, 2, 422, None),
    (errors.OutputError, 2, 500, None),
    (errors.OutputExistsError, 2, 409, None),
    (errors.StorageError, 2, 502, OSError),
    (errors.ModelError, 2, 503, None),
    (errors.ProbeError, 2, 503, ValueError),
    (errors.RegistryError, 2, 503, None),
    (errors.BackendError, 2, 502, None),
    (errors.WorkerDiedError, 4, 500, RuntimeError),
    (errors.LockedError, 5, 409, RuntimeError),
    (errors.NothingLoggedError, 2, 404, FileNotFoundError),
]


@pytest.mark.parametrize(
    ("cls", "exit_code", "status", "base"), FAMILY, ids=lambda v: getattr(v, "__name__", "")
)
def test_every_member_is_a_user_error_with_its_documented_codes(
    cls: type[UserError], exit_code: int, status: int, base: type[Exception] | None
) -> None:
    error = cls(f"cannot open az://box/in.csv?{SECRET}")
    assert isinstance(error, UserError)
    assert (error.exit_code, error.http_status) == (exit_code, status)
    assert error.code and error.code.isidentifier()
    assert "TOPSECRET" not in str(error) and "az://box/in.csv" in str(error)  # redacted when made
    if base is not None:
        assert isinstance(error, base)
    assert f"\n{exit_code}  " in errors.__doc__  # the exit code is in the documented table


def test_no_member_gained_value_error_it_lacked() -> None:
    """Code that catches ValueError must not start catching these (they never were ValueErrors)."""
    for cls in (
        errors.UsageError,
        errors.DataError,
        errors.BatchError,
        errors.ModelError,
        errors.BackendError,
    ):
        assert not issubclass(cls, ValueError)


def test_old_import_locations_name_the_same_classes() -> None:
    from sentimentkit.data import DataError
    from sentimentkit.io.storage import StorageError
    from sentimentkit.io.tables import BatchError
    from sentimentkit.io.write import OutputError, OutputExistsError
    from sentimentkit.mlops.lock import LockedError
    from sentimentkit.mlops.predlog import NothingLoggedError
    from sentimentkit.models.card import ModelError
    from sentimentkit.models.fetch import RegistryError
    from sentimentkit.scale.multiproc import WorkerDiedError
    from sentimentkit.serving.base import BackendError
    from sentimentkit.training.profile import NoReferenceError

    assert cli.UsageError is errors.UsageError and DataError is errors.DataError
    assert (BatchError, OutputError, OutputExistsError) == (
        errors.BatchError,
        errors.OutputError,
        errors.OutputExistsError,
    )
    assert (ModelError, RegistryError, StorageError) == (
        errors.ModelError,
        errors.RegistryError,
        errors.StorageError,
    )
    assert (BackendError, WorkerDiedError, LockedError) == (
        errors.BackendError,
        errors.WorkerDiedError,
        errors.LockedError,
    )
    assert (NoReferenceError, NothingLoggedError) == (errors.NoReferenceError, errors.NothingLoggedError)
    assert issubclass(errors.OutputError, errors.BatchError) and issubclass(
        errors.RegistryError, errors.ModelError
    )
    assert issubclass(errors.NoReferenceError, errors.DataError)


def test_user_mistakes_that_were_bare_value_errors_are_family_members(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sentimentkit.mlops.predlog import parse_age
    from sentimentkit.text.lexicon import load_lexicons

    monkeypatch.setenv("SENTIMENTKIT_MAX_CHARS", "many")
    with pytest.raises(errors.ConfigError, match="SENTIMENTKIT_MAX_CHARS must be a whole number"):
        Settings.from_env()
    with pytest.raises(errors.OptionError, match="e.g. 30m"):
        parse_age("soon")
    with pytest.raises(errors.OptionError, match="unknown lexicon"):
        load_lexicons(("no-such-lexicon",))


# --- the CLI: one except clause, the error's own exit code ------------------------------------------
@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.DataError("train.csv not found"), 2),
        (errors.WorkerDiedError("a worker process died"), 4),
        (errors.LockedError("another run holds the lock"), 5),
        (errors.NothingLoggedError("the prediction log is empty"), 2),
        (PermissionError(13, "Permission denied", "/root/out.csv"), 2),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_cli_maps_a_raised_member_to_its_exit_code_and_one_line(
    error: Exception, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail(args: object) -> int:
        raise error

    monkeypatch.setitem(cli.COMMANDS, "validate-data", fail)
    assert cli.main(["validate-data"]) == code
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_shows_a_bug_as_a_traceback_not_as_a_user_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: any ValueError was printed as `error: ...` with exit 2, hiding bugs as user mistakes."""

    def bug(args: object) -> int:
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setitem(cli.COMMANDS, "validate-data", bug)
    assert cli.main(["validate-data"]) == 1
    assert "Traceback" in capsys.readouterr().err


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_STORAGE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "sentimentkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_subprocess_data_storage_and_model_errors_are_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("text\nI love it\n")
    data = run_cli("validate-data", "--data", str(tmp_path), cwd=tmp_path)  # DataError: no train.csv
    storage = run_cli("predict", "--input", f"az://box/in.csv?{SECRET}", "--output", "out.csv", cwd=tmp_path)
    model = run_cli("predict", "--model", str(tmp_path / "missing.pkl"), "--input", "in.csv", "--output", "o.csv",
                    cwd=tmp_path)  # fmt: skip
    for result, words in ((data, "train.csv"), (storage, "Azure credentials"), (model, "missing.pkl")):
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
        assert words in result.stderr and "TOPSECRET" not in result.stderr
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "o.csv").exists()


# --- the API: one handler, the error's own status and code ------------------------------------------
def tiny_app(error: Exception) -> TestClient:
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (errors.BatchError("The file is empty."), 400, "invalid_csv"),
        (errors.MissingColumnError("Column 'text' not found"), 422, "missing_column"),
        (errors.ModelError(f"cannot load az://box/model.pkl?{SECRET}"), 503, "model_unavailable"),
        (errors.BackendError("the API did not answer"), 502, "backend_unavailable"),
        (errors.LockedError("another run holds the lock"), 409, "locked"),
        (errors.TextError("empty text"), 422, "invalid_text"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_api_maps_a_member_to_its_status_and_code(error: UserError, status: int, code: str) -> None:
    with tiny_app(error) as client:
        response = client.get("/boom")
    assert response.status_code == status
    body = response.json()
    assert body["error"] == code and body["message"] == str(error) and "TOPSECRET" not in response.text


def test_api_keeps_other_exceptions_a_bare_500() -> None:
    with tiny_app(RuntimeError("internal /secret/path")) as client:
        response = client.get("/boom")
    assert response.status_code == 500 and response.json()["error"] == "internal_error"
    assert "secret/path" not in response.text


# --- settings read in one place ---------------------------------------------------------------------
def test_settings_read_the_variables_other_modules_used_to_read(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = f"DefaultEndpointsProtocol=http;AccountName=dev;AccountKey={SECRET};BlobEndpoint=http://127.0.0.1:1/dev"
    values = {
        "MLFLOW_TRACKING_URI": "http://user:pw@mlflow.example:5000",
        "SENTIMENTKIT_MLFLOW_ARTIFACTS": "az://box/artifacts",
        "SENTIMENTKIT_USER": "ana",
        "SENTIMENTKIT_REGISTRY_CACHE": "/tmp/cache",
        "AZURE_STORAGE_CONNECTION_STRING": connection,
        "AZURE_STORAGE_ACCOUNT_NAME": "acct",
        "SENTIMENTKIT_TRANSFORMER_THREADS": "3",
        "PROMETHEUS_MULTIPROC_DIR": "/tmp/prom",
        "SENTIMENTKIT_PURE_PYTHON": "1",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = Settings.from_env()
    assert (s.mlflow_tracking_uri, s.mlflow_artifacts, s.user) == (
        values["MLFLOW_TRACKING_URI"],
        "az://box/artifacts",
        "ana",
    )
    assert (s.registry_cache, s.azure_connection_string, s.azure_account_name) == (
        Path("/tmp/cache"),
        connection,
        "acct",
    )
    assert (s.transformer_threads, s.prometheus_multiproc_dir, s.pure_python) == (3, "/tmp/prom", True)
    assert "TOPSECRET" not in repr(s) and "pw@" not in repr(s)  # secrets stay out of repr/logs

    from sentimentkit.io import storage
    from sentimentkit.mlops import registry
    from sentimentkit.models import fetch
    from sentimentkit.serving.transformer import threads_from_env

    assert fetch.tracking_uri() == values["MLFLOW_TRACKING_URI"] and fetch.cache_root() == Path("/tmp/cache")
    assert registry.artifact_location() == "az://box/artifacts" and registry.user() == "ana"
    assert storage.storage_options("az")["connection_string"] == connection
    assert storage.blob_endpoint() == ("127.0.0.1", 1) and threads_from_env() == 3

    monkeypatch.setenv("SENTIMENTKIT_TRANSFORMER_THREADS", "lots")
    with pytest.raises(errors.ConfigError, match="positive whole number"):
        Settings.from_env()


def test_env_example_documents_every_setting_read_from_the_environment() -> None:
    source = (ROOT / "sentimentkit" / "config.py").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r'"((?:SENTIMENTKIT|MLFLOW|AZURE_STORAGE|PROMETHEUS)_[A-Z_]+)"', source))
    assert names >= {"MLFLOW_TRACKING_URI", "AZURE_STORAGE_CONNECTION_STRING", "PROMETHEUS_MULTIPROC_DIR"}
    assert not [name for name in names if name not in example]
