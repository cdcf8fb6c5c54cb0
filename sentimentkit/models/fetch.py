"""Reading the model registry: turn `models:/NAME@ALIAS` (or `models:/NAME/VERSION`) into a verified
local copy that `load_predictor` opens.

Trust: when a version is registered (`mlops.registry`, the write side), the SHA-256 of every artifact
file is written as a tag on the model version (`sha256.<file>`). The registry database is a separate
trust domain from the artifact store (local folder or Azure Blob): a copy is loaded only when each
downloaded file matches its tag, and model.pkl then still goes through the allow-list unpickler
(`load_model`), so no code is run. Copies are cached per version and re-verified at every use.

Default, no server: a SQLite file under `mlruns/` in the repository (`MLFLOW_TRACKING_URI` points
elsewhere). MLflow (the `mlops` extra) is imported only when a registry is actually opened.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentimentkit.config import REPO_ROOT, Settings
from sentimentkit.data import file_sha256
from sentimentkit.errors import RegistryError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io import storage
from sentimentkit.redact import redact

DEFAULT_ROOT = REPO_ROOT / "mlruns"
SHA_TAG = "sha256."  # version tag prefix: one tag per artifact file
ENTRY_TAG = "sentimentkit.entry"  # what load_predictor opens inside the copy: model.pkl, or "." (a folder)
URI_PREFIX = "models:/"


@dataclass(frozen=True)
class ResolvedModel:
    """A registered version copied locally and verified: `path` is what load_predictor opens."""

    path: Path
    name: str
    version: str
    alias: str | None

    def info(self) -> dict[str, str | None]:
        """What the API reports as `registry`."""
        return {"name": self.name, "version": self.version, "alias": self.alias}


def is_registry_uri(location: str | Path) -> bool:
    """True for `models:/...` (Path() keeps its single slash, so Paths work too)."""
    return str(location).startswith(URI_PREFIX)


def parse_uri(uri: str) -> tuple[str, str | None, str | None]:
    """`models:/NAME@ALIAS` -> (NAME, None, ALIAS); `models:/NAME/VERSION` -> (NAME, VERSION, None)."""
    body = str(uri)[len(URI_PREFIX) :].strip("/")
    if "@" in body:
        name, alias = body.split("@", 1)
        if name and alias and "/" not in body:
            return name, None, alias
    elif "/" in body:
        name, version = body.split("/", 1)
        if name and version.isdigit():
            return name, version, None
    raise RegistryError(f"{uri} is not a registry URI; use models:/NAME@ALIAS or models:/NAME/VERSION.")


# -- connection ---------------------------------------------------------------------------------


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, or the embedded default: a SQLite file under mlruns/ (created on use)."""
    uri = Settings.from_env().mlflow_tracking_uri
    if uri:
        return uri
    DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_ROOT / 'mlflow.db'}"


@contextlib.contextmanager
def registry_errors(what: str) -> Iterator[None]:
    """MLflow's exceptions (often pages long) as one RegistryError line."""
    try:
        yield
    except (RegistryError, storage.StorageError):
        raise
    except ImportError:
        raise RegistryError(f"{what} needs MLflow: {storage.MLOPS_HINT}") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise RegistryError(f"{what} failed: {first[:300]}") from None


def client() -> Any:
    """An MlflowClient on the configured tracking and registry store."""
    with registry_errors("opening the model registry"):
        from mlflow import MlflowClient  # the mlops extra: loaded only when a registry is opened

        # Schema creation logs a few INFO lines per new database; users need none of them.
        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        uri = tracking_uri()
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def check_artifact_store(location: str) -> None:
    """Fail fast (one line) on unreachable Blob storage before MLflow's SDK retries for minutes."""
    if location.startswith("wasbs://"):
        storage.check_reachable(storage.blob_endpoint(), location)


def current_version(name: str, alias: str) -> str | None:
    """The version `alias` points at now (None when unset)."""
    mlflow_client = client()
    with registry_errors(f"reading {name}@{alias}"):
        model = mlflow_client.get_registered_model(name)
        return {str(a): str(v) for a, v in (model.aliases or {}).items()}.get(alias)


# -- resolving models:/ URIs to verified local copies -------------------------------------------


def cache_root() -> Path:
    """Verified local copies: SENTIMENTKIT_REGISTRY_CACHE or ~/.cache/sentimentkit/registry."""
    configured = Settings.from_env().registry_cache
    return configured or Path.home() / ".cache" / "sentimentkit" / "registry"


def verify_copy(folder: Path, expected: dict[str, str], label: str) -> None:
    """Refuse a copy whose files are not exactly the registered ones with the registered SHA-256s."""
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    if present != set(expected):
        odd = sorted(present ^ set(expected))
        raise RegistryError(
            f"Refusing {label}: its files differ from the registered ones ({', '.join(odd[:5])}); "
            "the artifact store was changed after registration."
        )
    for rel, sha in expected.items():
        actual = file_sha256(folder / rel)
        if actual != sha:
            raise RegistryError(
                f"Refusing {label}: {rel} has SHA-256 {actual[:12]}... but the registry recorded {sha[:12]}...; "
                "the artifact store was changed after registration. Nothing from it was loaded."
            )


def _fetch_verified(source: str, folder: Path, expected: dict[str, str], label: str) -> None:
    """Download the registered artifact folder, verify it, and only then put it in place at `folder`.

    Several API workers may do this at once: a worker whose copy finds `folder` already filled by
    another uses that one after verifying it, so none deletes a copy another is loading.
    """
    check_artifact_store(source)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        with registry_errors(f"downloading {source}"):
            from mlflow.artifacts import download_artifacts  # the mlops extra, as in client()

            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep CLI output one line
            got = Path(
                download_artifacts(artifact_uri=source, dst_path=str(tmp), tracking_uri=tracking_uri())
            )
        verify_copy(got, expected, label)  # a tampered store is refused before anything is cached
        if folder.exists():
            try:
                verify_copy(folder, expected, label)
                return  # another process installed it meanwhile
            except RegistryError:
                folder.rename(tmp / "stale")  # the bad cached copy the caller found
        try:
            got.rename(folder)
        except OSError:  # another process installed its verified copy first
            verify_copy(folder, expected, label)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def resolve(uri: str) -> ResolvedModel:
    """`models:/NAME@ALIAS` or `models:/NAME/VERSION` -> a local copy verified against the registry.

    The copy is cached per version; the cached copy is re-verified each time, and a copy that fails is
    downloaded again and verified again (so a tampered store is refused, a tampered cache repaired).
    """
    name, version, alias = parse_uri(uri)
    mlflow_client = client()
    try:
        mv = (mlflow_client.get_model_version_by_alias(name, alias) if alias
              else mlflow_client.get_model_version(name, version))  # fmt: skip
    except Exception:
        raise RegistryError(
            f"{uri} is not in the registry at {redact(tracking_uri())}; `sentimentkit models list` shows what is."
        ) from None
    version = str(mv.version)
    expected = {k[len(SHA_TAG) :]: v for k, v in (mv.tags or {}).items() if k.startswith(SHA_TAG)}
    label = f"{uri} (version {version})"
    if not expected:
        raise RegistryError(
            f"Refusing {label}: the registry records no SHA-256 for it (not registered by sentimentkit)."
        )
    folder = cache_root() / name / version
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        verify_copy(folder, expected, label)
    except RegistryError:
        _fetch_verified(mv.source, folder, expected, label)
    entry = (mv.tags or {}).get(ENTRY_TAG, "model.pkl")
    return ResolvedModel(folder if entry == "." else folder / entry, name, version, alias)
