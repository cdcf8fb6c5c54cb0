"""No secret in anything sentimentkit prints: the redaction rule (`sentimentkit.redact`), the log
filter, and every CLI command run for real with each secret set to a unique marker, failing paths
included (an MLflow server and a Blob endpoint that nobody answers at). The API server's half is in
tests/e2e/test_secrets_server.py, the registry's and the monitor's in tests/mlops/test_secrets_mlops.py.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sentimentkit import redact as redaction
from sentimentkit.redact import MASK, RedactingFilter, redact, redact_obj, register_secret

from .conftest import TINY_TEXTS, write_tiny_splits
from .e2e.conftest import free_port

# One marker per secret: any of them in any output is a leak.
MARKERS = {
    "mlflow_password": "MARKmlflowPw01",
    "account_key": "MARKaccountKey02",
    "sas_sig": "MARKsasSig03",
    "api_key": "MARKapiKey04",
    "signing_key": "MARKsigningKey05xxxxxxxxxxxxxxxx",
    "client_secret": "MARKclientSecret06",
    "sas_connection": "MARKsasConn07",
    "mlflow_token": "MARKmlflowToken08",
    "fetch_password": "MARKfetchPw09",
}


def closed_port() -> int:
    """A loopback port nobody listens on (claimed, so no parallel test worker starts a server there)."""
    return free_port()


def secret_env(port: int, signing_key_file: Path | None = None) -> dict[str, str]:
    """Every secret set to its marker; the MLflow server and the Blob endpoint are `port` (closed)."""
    env = {
        "MLFLOW_TRACKING_URI": f"http://mluser:{MARKERS['mlflow_password']}@127.0.0.1:{port}/",
        "MLFLOW_TRACKING_TOKEN": MARKERS["mlflow_token"],
        # No retries against the dead server: each call fails in a moment.
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "3",
        "AZURE_STORAGE_CONNECTION_STRING": (
            f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={MARKERS['account_key']};"
            f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        ),
        "AZURE_CLIENT_SECRET": MARKERS["client_secret"],
        "AZURE_TENANT_ID": "00000000-0000-0000-0000-000000000000",
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
        "SENTIMENTKIT_API_KEY": MARKERS["api_key"],
    }
    if signing_key_file is not None:
        env["SENTIMENTKIT_SIGNING_KEY_FILE"] = str(signing_key_file)
    else:
        env["SENTIMENTKIT_SIGNING_KEY"] = MARKERS["signing_key"]
    return env


def sas_uri(port: int, path: str = "c/in.csv") -> str:
    """An HTTPS-style blob URL carrying a SAS token whose signature is the marker."""
    return f"http://127.0.0.1:{port}/{path}?sv=2024-05-04&ss=b&srt=o&sp=rwl&se=2030-01-01&sig={MARKERS['sas_sig']}"


def leaks(text: str) -> list[str]:
    """The markers found in `text`."""
    return [name for name, marker in MARKERS.items() if marker in text]


def file_leaks(root: Path, skip: set[Path] = frozenset()) -> dict[str, list[str]]:
    """file -> markers, for every file under `root` (except `skip`: inputs that hold secrets on purpose)."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and path not in skip:
            hits = leaks(path.read_bytes().decode("utf-8", "replace"))
            if hits:
                found[str(path)] = hits
    return found


# --- the rule ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("API request to http://u:pw0rd@host:5000/api failed", "API request to http://u:***@host:5000/api failed"),
        ("postgresql://user:p@ss@db:5432/mlflow", "postgresql://user:***@db:5432/mlflow"),
        ("AccountName=a;AccountKey=abc+/d==;BlobEndpoint=http://x", "AccountName=a;AccountKey=***;BlobEndpoint=http://x"),
        ("SharedAccessSignature=sv=2020-08-04&ss=b&sig=a%2Bb;BlobEndpoint=x", "SharedAccessSignature=***;BlobEndpoint=x"),
        ("Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=k3y=", "Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=***"),
        ("Server=db;Uid=me;Pwd=hunter2;", "Server=db;Uid=me;Pwd=***;"),
        ("https://a.blob.core.windows.net/c/f.csv?sv=2023-01-03&sp=r&sig=XYZ%3D tail", "https://a.blob.core.windows.net/c/f.csv?*** tail"),
        ("https://h/x?foo=1&sig=abc", "https://h/x?foo=1&sig=***"),
        ("Authorization: Bearer eyJhbGciOi.abc", "Authorization: Bearer ***"),
        ('{"client_secret": "abc", "password": "xyz"}', '{"client_secret": "***", "password": "***"}'),
        ("MLFLOW_TRACKING_PASSWORD=hunter22", "MLFLOW_TRACKING_PASSWORD=***"),
    ],
)  # fmt: skip
def test_patterns(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "send it in the X-API-Key header.",
        '{"error":"api_key_missing","message":"This API needs a key"}',
        "wasbs://container@account.blob.core.windows.net/mlflow",
        "http://127.0.0.1:8000/v1/predict",
        '{"tokenizer": "tokenizer.json", "max_tokens": 5, "ApiKey": {"type": "apiKey"}}',
        "set SENTIMENTKIT_SIGNING_KEY or SENTIMENTKIT_SIGNING_KEY_FILE",
        "I love this, it is great and wonderful",
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert redact(text) == text


def test_configured_values_in_every_form(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("file-held key/+= 12345\n")
    monkeypatch.setenv("SENTIMENTKIT_SIGNING_KEY_FILE", str(key_file))
    monkeypatch.setenv("AZURE_CLIENT_SECRET", 'sec"ret/value')
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-value-77")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://me:uri-pass-1@mlflow.example/")
    out = redact(
        'a file-held key/+= 12345 b file-held%20key%2F%2B%3D%2012345 c "sec\\"ret/value" '
        "d tok-value-77 e uri-pass-1 f"
    )
    assert out == f'a {MASK} b {MASK} c "{MASK}" d {MASK} e {MASK} f'
    key_file.write_text("a changed key 67890")  # read again when the file changes
    assert redact("x a changed key 67890") == f"x {MASK}"


def test_registered_secrets_and_short_values(monkeypatch: pytest.MonkeyPatch) -> None:
    register_secret("registered-only-secret")
    assert redact("leak: registered-only-secret") == f"leak: {MASK}"
    monkeypatch.setenv("SENTIMENTKIT_API_KEY", "k")  # too short to search for by value
    assert redact("keep this k") == "keep this k"


def test_redact_obj_keeps_the_shape() -> None:
    value = {"a": ["http://u:pw123456@h/", 3, None], "b": ("x", {"c": "AccountKey=zzz;"})}
    assert redact_obj(value) == {"a": ["http://u:***@h/", 3, None], "b": ("x", {"c": "AccountKey=***;"})}


def test_log_filter_redacts_message_args_and_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "filter-secret-1")
    try:
        raise RuntimeError("boom with filter-secret-1")
    except RuntimeError:
        import sys as _sys

        exc_info = _sys.exc_info()
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "uri %s and %s", ("http://u:pw9999@h/", "filter-secret-1"), exc_info
    )
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "pw9999" not in formatted and "filter-secret-1" not in formatted
    assert "uri http://u:***@h/ and ***" in formatted and "RuntimeError: boom with ***" in formatted
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "%s rows", (5,), None)
    RedactingFilter().filter(plain)
    assert plain.args == (5,)  # nothing to redact: left as it was


def test_cheap_when_nothing_matches() -> None:
    line = json.dumps(
        {
            "event": "request",
            "route": "/v1/predict",
            "status": 200,
            "latency_ms": 1.2,
            "labels": {"positive": 1},
        }
    )
    assert redact(line) is line
    assert redaction.redact(line * 1000) == line * 1000


# --- every CLI command, for real ---------------------------------------------------------------------
def cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[list[str], subprocess.CompletedProcess]:
    result = subprocess.run([sys.executable, "-m", "sentimentkit", *args], capture_output=True, text=True,
                            cwd=cwd, env={**os.environ, **env}, timeout=300)  # fmt: skip
    return args, result


@pytest.fixture
def workspace(tmp_path: Path, tiny_model_path: Path) -> Iterator[Path]:
    """A copy of the tiny model, its training data, a CSV to score, and an incoming batch folder."""
    model = tmp_path / "model" / "model.pkl"
    model.parent.mkdir()
    shutil.copyfile(tiny_model_path, model)
    shutil.copyfile(tiny_model_path.with_suffix(".json"), model.with_suffix(".json"))
    write_tiny_splits(tmp_path / "data")
    (tmp_path / "in.csv").write_text("text\n" + "\n".join(TINY_TEXTS[:5]) + "\n")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "batch1.csv").write_text(
        "text,label\n" + "\n".join(f"a fresh tweet number {i} about lunch,positive" for i in range(6)) + "\n"
    )
    yield tmp_path


@pytest.mark.slow
def test_no_cli_command_prints_or_writes_a_secret(workspace: Path) -> None:
    port = closed_port()
    env = secret_env(port)
    ws, model, registered = (
        workspace,
        str(workspace / "model" / "model.pkl"),
        "models:/sentimentkit-tfidf@champion",
    )
    # Sign first (the key is configured, so every later load checks the signature).
    signed = cli(["sign", "--model", model], env, ws)[1]
    assert signed.returncode == 0, signed.stderr
    log_env = {**env, "SENTIMENTKIT_PREDICTION_LOG": "az://logs/predictions"}
    runs = [
        (["predict", "--model", registered, "--text", "hi"], env),
        (["predict", "--model", model, "--text", "I love it"], log_env),  # the log's blob store is down
        (["predict", "--model", model, "--input", "az://c/in.csv", "--output", str(ws / "out1.csv")], env),
        (["predict", "--model", model, "--input", sas_uri(port), "--output", str(ws / "out2.csv")], env),
        (["predict", "--model", model, "--input", str(ws / "in.csv"), "--output", sas_uri(port, "c/out.csv")], env),
        (["predict", "--model", model, "--input", str(ws / "in.csv"), "--output", str(ws / "out3.csv"), "--jobs", "1"], log_env),
        (["evaluate", "--model", registered, "--data", str(ws / "data" / "test.csv")], env),
        (["evaluate", "--model", model, "--data", sas_uri(port, "c/test.csv")], env),
        (["report", "--model", registered, "--input", str(ws / "in.csv"), "--output", str(ws / "r.html")], env),
        (["monitor", "--log", "az://logs/predictions"], env),
        (["monitor", "--log", sas_uri(port, "logs"), "--json"], env),
        (["models", "list"], env),
        (["models", "list", "--json"], env),
        (["models", "promote", "1"], env),
        (["models", "rollback"], env),
        (["models", "register", model], env),
        (["train", "--data", str(ws / "data"), "--out", str(ws / "trained" / "model.pkl"), "--C", "10", "--register"], env),
        (["train", "--data", "az://c/data", "--out", str(ws / "trained2" / "model.pkl")], env),
        (["retrain", "--incoming", str(ws / "incoming"), "--data", str(ws / "data")], env),
        (["retrain", "--incoming", "az://c/incoming"], env),
        (["watch", "--incoming", str(ws / "incoming"), "--data", str(ws / "data"), "--cycles", "1", "--every", "1s"], env),
        (["fetch-data", "--data", str(ws / "fetched"), "--base-url", f"http://u:{MARKERS['fetch_password']}@127.0.0.1:{port}/x"], env),
    ]  # fmt: skip
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda run: cli(run[0], run[1], ws), runs))
    problems = []
    for args, result in [(["sign"], signed), *results]:
        for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if leaks(text):
                problems.append(f"{' '.join(args)} {stream}: {leaks(text)}\n{text[-2000:]}")
    assert results[0][1].returncode == 2  # the registry is down: one error line
    assert all("Traceback" not in r.stderr for _, r in results if r.returncode == 2)
    problems += [f"file {path}: {hits}" for path, hits in file_leaks(ws).items()]
    assert not problems, "\n\n".join(problems)


def test_unexpected_errors_print_a_redacted_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from sentimentkit import cli as cli_module

    monkeypatch.setenv("AZURE_CLIENT_SECRET", MARKERS["client_secret"])

    def explode(args: object) -> int:
        raise RuntimeError(
            f"unexpected {MARKERS['client_secret']} at http://u:{MARKERS['mlflow_password']}@h/"
        )

    monkeypatch.setitem(cli_module.COMMANDS, "validate-data", explode)
    assert cli_module.main(["validate-data"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: unexpected ***" in err and not leaks(err)
