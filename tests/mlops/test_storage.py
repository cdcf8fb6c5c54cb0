"""The storage layer: local paths unchanged, Azure Blob through adlfs against a real Azurite, and one
clear line (no secret) for each way the cloud can fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentimentkit.cli import main
from sentimentkit.io import storage
from tests.e2e.conftest import free_port
from tests.mlops.conftest import connection_string, make_container


def test_local_paths_need_no_cloud_packages(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    storage.write_bytes(target, b"hi")
    assert storage.read_bytes(target) == b"hi"
    with storage.local_input(target) as local:
        assert local == target
    assert not storage.is_remote(target) and storage.is_remote("az://c/a.txt")
    assert storage.join("az://c/folder/", "train.csv") == "az://c/folder/train.csv"


def test_remote_uri_without_credentials_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    with pytest.raises(storage.StorageError, match="set AZURE_STORAGE_CONNECTION_STRING"):
        storage.read_bytes("az://data/train.csv")


def test_unreachable_endpoint_fails_fast_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("adlfs")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(free_port()))  # nobody listens
    with pytest.raises(storage.StorageError, match="cannot reach the storage endpoint 127.0.0.1") as info:
        storage.read_bytes("az://data/train.csv")
    assert "AccountKey" not in str(info.value) and "\n" not in str(info.value)


def test_blob_round_trip_and_local_output(blob_env: str, tmp_path: Path) -> None:
    make_container("roundtrip")
    storage.write_bytes("az://roundtrip/a/b.txt", b"bytes")
    assert storage.read_bytes("az://roundtrip/a/b.txt") == b"bytes"
    with storage.local_output("az://roundtrip/out.csv") as local:
        local.write_text("x\n1\n")
    with storage.local_input("az://roundtrip/out.csv") as local:
        assert local.read_text() == "x\n1\n"


def test_missing_container_and_missing_blob(blob_env: str) -> None:
    with pytest.raises(storage.StorageError, match="container 'nosuchcontainer' does not exist"):
        storage.read_bytes("az://nosuchcontainer/x.csv")
    make_container("present")
    with pytest.raises(storage.StorageError, match="no file at az://present/missing.csv"):
        storage.read_bytes("az://present/missing.csv")


def test_service_errors_keep_the_services_reason(blob_env: str) -> None:
    with pytest.raises(
        storage.StorageError, match="resource name length is not within the permissible limits"
    ):
        storage.read_bytes("az://ab/x.csv")  # container names have 3 to 63 characters


def test_wrong_credentials_one_line_without_the_key(azurite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(azurite.split("127.0.0.1:")[1].split("/")[0])
    wrong = "A" * 86 + "=="
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(port, key=wrong))
    with pytest.raises(storage.StorageError, match="refused the credentials") as info:
        storage.read_bytes("az://present/x.csv")
    assert wrong not in str(info.value)


def test_cli_predict_and_evaluate_read_and_write_blobs(
    blob_env: str, tiny_model_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_container("iotest")
    storage.write_bytes(
        "az://iotest/in.csv", b"text,label\nI love it,positive\nthis is awful,negative\n,neutral\n"
    )
    assert main(["predict", "--model", str(tiny_model_path), "--input", "az://iotest/in.csv",
                 "--output", "az://iotest/out.csv"]) == 0  # fmt: skip
    out = storage.read_bytes("az://iotest/out.csv").decode().splitlines()
    assert out[0].startswith("text,label,sentiment") and len(out) == 4  # every row, the blank one flagged
    assert main(["evaluate", "--model", str(tiny_model_path), "--data", "az://iotest/in.csv", "--json"]) == 0
    assert '"n": 3' in capsys.readouterr().out
    assert main(["evaluate", "--model", str(tiny_model_path), "--data", "az://nothere/in.csv"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: container 'nothere' does not exist in the storage account; create it or fix the URI "
        "az://nothere/in.csv."
    )
