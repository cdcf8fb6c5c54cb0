"""One storage layer for every file sentimentkit reads or writes: plain paths, or Azure Blob URIs.

`az://container/path` (also `abfs://`) goes through fsspec + adlfs. Credentials come only from the
environment, never from arguments, and are never logged:

- `AZURE_STORAGE_CONNECTION_STRING` (an account key or SAS connection string; Azurite's too), or
- `AZURE_STORAGE_ACCOUNT_NAME` with an azure-identity `DefaultAzureCredential` (managed identity,
  `az login`, workload identity, `AZURE_CLIENT_ID`/`AZURE_TENANT_ID`/`AZURE_CLIENT_SECRET`).

Callers never branch on where the bytes live: `local_input` yields a local file to read (the blob is
downloaded to a temporary folder first), `local_output` yields a local file to write and uploads it
when the block succeeds. Every storage failure becomes one `StorageError` line saying what to fix.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sentimentkit.config import Settings
from sentimentkit.errors import StorageError  # noqa: F401  (re-exported under its old name)
from sentimentkit.redact import redact

AZURE_PROTOCOLS = ("az", "abfs", "abfss")
CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_NAME_ENV = "AZURE_STORAGE_ACCOUNT_NAME"
REACH_TIMEOUT_S = 5.0
MLOPS_HINT = "pip install -r requirements-mlops.txt (the `mlops` extra)"


def protocol_of(uri: str | Path) -> str:
    """The URI's scheme (`az`, `abfs`, ...), or '' for a plain local path."""
    text = str(uri)
    return text.split("://", 1)[0].lower() if "://" in text else ""


def is_remote(uri: str | Path) -> bool:
    """True for a URI that names object storage rather than a local file."""
    return protocol_of(uri) not in ("", "file")


def container_of(uri: str | Path) -> str:
    """The container (first path segment) of an `az://container/path` URI."""
    return str(uri).split("://", 1)[-1].split("/", 1)[0]


def storage_options(protocol: str) -> dict[str, Any]:
    """fsspec options for `protocol`, credentials read from the environment (never from arguments)."""
    if protocol not in AZURE_PROTOCOLS:
        return {}
    # Listings are not cached: another process (the trainer, the registry) may add blobs at any time.
    options: dict[str, Any] = {"use_listings_cache": False, "skip_instance_cache": True}

    settings = Settings.from_env()
    if settings.azure_connection_string:
        return {**options, "connection_string": settings.azure_connection_string}
    if settings.azure_account_name:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise StorageError(f"{ACCOUNT_NAME_ENV} needs azure-identity: {MLOPS_HINT}") from None
        return {
            **options,
            "account_name": settings.azure_account_name,
            "credential": DefaultAzureCredential(),
        }
    raise StorageError(
        f"{protocol}:// URIs need Azure credentials in the environment: set {CONNECTION_STRING_ENV} "
        f"(or {ACCOUNT_NAME_ENV} with an azure-identity login)."
    )


def filesystem(uri: str | Path) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) for `uri`."""
    protocol = protocol_of(uri)
    options = storage_options(protocol)  # first: missing credentials are the likelier mistake
    try:
        import fsspec
    except ImportError:
        raise StorageError(f"{uri} is a remote URI, which needs fsspec and adlfs: {MLOPS_HINT}") from None
    if protocol in AZURE_PROTOCOLS:
        check_reachable(blob_endpoint(), uri)
    try:
        return fsspec.core.url_to_fs(str(uri), **options)
    except StorageError:
        raise
    except ImportError:
        raise StorageError(f"{protocol}:// URIs need adlfs: {MLOPS_HINT}") from None
    except ValueError as exc:  # e.g. a malformed connection string; the message never echoes its secret
        raise StorageError(
            f"cannot open {uri}: the Azure settings are invalid ({type(exc).__name__})."
        ) from None


def blob_endpoint() -> tuple[str, int] | None:
    """(host, port) of the Blob endpoint the environment's credentials point at, if it can be told."""

    settings = Settings.from_env()
    conn = settings.azure_connection_string or ""
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    if parts.get("BlobEndpoint"):
        parsed = urlsplit(parts["BlobEndpoint"])
        return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    account = parts.get("AccountName") or settings.azure_account_name
    suffix = parts.get("EndpointSuffix", "core.windows.net")
    return (f"{account}.blob.{suffix}", 443) if account else None


def _reachable(host: str, port: int) -> bool:
    """One TCP connect (milliseconds when the endpoint is up), checked before each operation."""
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def check_reachable(endpoint: tuple[str, int] | None, uri: str | Path) -> None:
    """Fail fast on an endpoint nobody answers at: the Azure SDK would retry for minutes first."""
    if endpoint is None:
        return
    if not _reachable(*endpoint):
        raise StorageError(
            f"cannot reach the storage endpoint {endpoint[0]}:{endpoint[1]} for {uri}; check the endpoint "
            f"in {CONNECTION_STRING_ENV} (or {ACCOUNT_NAME_ENV}) and the network."
        )


def describe(exc: BaseException, uri: str | Path) -> str:
    """One line saying why a storage operation on `uri` failed and what to do; never a secret."""
    return redact(_describe(exc, uri))


def _describe(exc: BaseException, uri: str | Path) -> str:
    name, text = type(exc).__name__, str(exc)
    code = str(getattr(exc, "error_code", "") or "")
    status = getattr(exc, "status_code", None)
    if code == "ContainerNotFound" or "ContainerNotFound" in text:
        return f"container {container_of(uri)!r} does not exist in the storage account; create it or fix the URI {uri}."
    if name == "ClientAuthenticationError" or status == 403 or "AuthenticationFailed" in text:
        return (
            f"Azure Blob refused the credentials for {uri}: check {CONNECTION_STRING_ENV} "
            f"(or {ACCOUNT_NAME_ENV} and your azure-identity login)."
        )
    if isinstance(exc, FileNotFoundError) or code == "BlobNotFound" or status == 404:
        return f"no file at {uri}."
    if name in ("ServiceRequestError", "ServiceResponseError", "ClientConnectorError") or isinstance(
        exc, (ConnectionError, TimeoutError)
    ):
        return f"cannot reach the storage endpoint for {uri}; check the endpoint in {CONNECTION_STRING_ENV} and the network."
    if name == "HttpResponseError" and text.strip():  # the service's own first line says what was wrong
        return f"storage operation on {uri} failed: {text.strip().splitlines()[0]}"
    return f"storage operation on {uri} failed ({name})."


@contextlib.contextmanager
def translated(uri: str | Path) -> Iterator[None]:
    """Turn whatever the storage SDKs raise inside the block into one StorageError line."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise StorageError(describe(_root_cause(exc), uri)) from None


def _root_cause(exc: BaseException) -> BaseException:
    """The most telling error in the chain: adlfs wraps Azure's (which carries an error code) in
    generic ones. Falls back to `exc` itself."""
    seen: BaseException | None = exc
    for _ in range(10):  # chains are short; the bound guards against a cycle
        if seen is None:
            break
        if getattr(seen, "error_code", None) or type(seen).__name__ == "ClientAuthenticationError":
            return seen
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return exc


def read_bytes(uri: str | Path) -> bytes:
    """The whole content of a local file or a blob."""
    if not is_remote(uri):
        return Path(uri).read_bytes()
    fs, path = filesystem(uri)
    with translated(uri):
        return fs.cat_file(path)


def write_bytes(uri: str | Path, data: bytes) -> None:
    """Write `data` to a local file (parents created) or a blob (overwritten)."""
    if not is_remote(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        Path(uri).write_bytes(data)
        return
    fs, path = filesystem(uri)
    with translated(uri):
        fs.pipe_file(path, data)


def upload(local: str | Path, uri: str | Path) -> None:
    """Copy a local file to `uri` (a blob, or another local path)."""
    if not is_remote(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local, uri)
        return
    fs, path = filesystem(uri)
    with translated(uri):
        fs.put_file(str(local), path)


def download(uri: str | Path, local: str | Path) -> Path:
    """Copy the file at `uri` to the local path `local`; returns it."""
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    if not is_remote(uri):
        shutil.copyfile(uri, local)
        return local
    fs, path = filesystem(uri)
    with translated(uri):
        fs.get_file(path, str(local))
    return local


def join(base: str | Path, name: str) -> str:
    """`base/name` for a folder URI or path (no Path() on URIs: it would fold `az://` to `az:/`)."""
    return f"{str(base).rstrip('/')}/{name}" if is_remote(base) else str(Path(base) / name)


@contextlib.contextmanager
def local_input(uri: str | Path) -> Iterator[Path]:
    """A local file with the content of `uri`: the path itself, or a temporary download of the blob."""
    folder, name = str(uri).rsplit("/", 1) if is_remote(uri) else (Path(uri).parent, Path(uri).name)
    with local_dir(folder, [name]) as local:
        yield local / name


@contextlib.contextmanager
def local_dir(uri: str | Path, names: Sequence[str]) -> Iterator[Path]:
    """A local folder holding `names` from the folder `uri` (downloaded when it is remote)."""
    if not is_remote(uri):
        yield Path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="sentimentkit-dir-") as tmp:
        for name in names:
            download(join(uri, name), Path(tmp) / name)
        yield Path(tmp)


@contextlib.contextmanager
def local_output(uri: str | Path) -> Iterator[Path]:
    """A local path to write; for a blob URI it is uploaded when the block ends without an error."""
    if not is_remote(uri):
        yield Path(uri)
        return
    with tempfile.TemporaryDirectory(prefix="sentimentkit-out-") as tmp:
        local = Path(tmp) / Path(str(uri)).name
        yield local
        upload(local, uri)
