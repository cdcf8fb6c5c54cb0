"""The MLflow tracking server and model registry: log training runs, register versions, move aliases,
and turn `models:/NAME@ALIAS` (or `models:/NAME/VERSION`) into a verified local copy.

Trust: when a version is registered, the SHA-256 of every artifact file is written as a tag on the
model version (`sha256.<file>`). The registry database is a separate trust domain from the artifact
store (local folder or Azure Blob): a copy is loaded only when each downloaded file matches its tag,
and model.pkl then still goes through the allow-list unpickler (`load_model`), so no code is run.

Default, no server: a SQLite file and an artifact folder under `mlruns/` in the repository
(`MLFLOW_TRACKING_URI` and `SENTIMENTKIT_MLFLOW_ARTIFACTS` point elsewhere, e.g. a tracking server and
`wasbs://container@account.blob.core.windows.net/mlflow`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sentimentkit.config import REPO_ROOT
from sentimentkit.data import file_sha256
from sentimentkit.io import storage
from sentimentkit.io.redact import redact
from sentimentkit.mlops import CHALLENGER, CHAMPION, MODEL_NAMES, TFIDF_MODEL, TRANSFORMER_MODEL
from sentimentkit.models.card import ModelError, card_file

EXPERIMENT = "sentimentkit"
DEFAULT_ROOT = REPO_ROOT / "mlruns"
ARTIFACT_DIR = "model"
SHA_TAG = "sha256."  # version tag prefix: one tag per artifact file
ENTRY_TAG = "sentimentkit.entry"  # what load_predictor opens inside the copy: model.pkl, or "." (a folder)
EVENT_TAG = "event."  # registered-model tags: one JSON event (who/when/why) per alias change
METRIC_KEYS = ("avg_recall", "f1_pn", "macro_f1", "accuracy", "ece")
URI_PREFIX = "models:/"

Log = Callable[[str], None]


class RegistryError(ModelError):
    """A registry problem a user can fix (unknown model or alias, tampered artifact, no server).
    Its message is redacted like every ModelError's: the tracking URI's password never shows."""


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
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    DEFAULT_ROOT.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_ROOT / 'mlflow.db'}"


def artifact_location() -> str:
    """Where a new experiment keeps its artifacts: SENTIMENTKIT_MLFLOW_ARTIFACTS or mlruns/artifacts."""
    return os.environ.get("SENTIMENTKIT_MLFLOW_ARTIFACTS", "").strip() or str(DEFAULT_ROOT / "artifacts")


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
        from mlflow import MlflowClient

        # Schema creation logs a few INFO lines per new database; users need none of them.
        for noisy in ("mlflow", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        uri = tracking_uri()
        return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _check_artifact_store(location: str) -> None:
    """Fail fast (one line) on unreachable Blob storage before MLflow's SDK retries for minutes."""
    if location.startswith("wasbs://"):
        storage.check_reachable(storage.blob_endpoint(), location)


def experiment_id(mlflow_client: Any) -> str:
    """The `sentimentkit` experiment (created with the configured artifact location if new)."""
    with registry_errors("finding the sentimentkit experiment"):
        found = mlflow_client.get_experiment_by_name(EXPERIMENT)
        if found is not None:
            return found.experiment_id
        return mlflow_client.create_experiment(EXPERIMENT, artifact_location=artifact_location())


# -- logging a run and registering a version ----------------------------------------------------


def user() -> str:
    """Who acts: SENTIMENTKIT_USER, else the login name."""
    with contextlib.suppress(Exception):
        return os.environ.get("SENTIMENTKIT_USER") or getpass.getuser()
    return "unknown"


def now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def git_commit() -> str | None:
    """The repository's HEAD commit (None outside a git checkout)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or None
    return None


def card_metrics(card: dict[str, Any]) -> dict[str, float]:
    """`split.metric` floats from a card's metrics block (what the run logs and `list` shows)."""
    out = {}
    for split, block in (card.get("metrics") or {}).items():
        for key in METRIC_KEYS:
            if isinstance(block, dict) and isinstance(block.get(key), (int, float)):
                out[f"{split}.{key}"] = float(block[key])
    return out


def card_params(card: dict[str, Any]) -> dict[str, str]:
    """Hyperparameters as MLflow params (strings, nested values as JSON)."""
    params = card.get("hyperparameters") or card.get("config") or {}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


def artifact_files(model: Path) -> tuple[Path, list[Path]]:
    """(folder to upload, its files): model.pkl with its card, or every file of a transformer folder."""
    if model.is_dir():
        return model, sorted(p for p in model.rglob("*") if p.is_file())
    return model.parent, [model, card_file(model)]


def log_run(
    model: Path, card: dict[str, Any], data_sources: dict[str, str], plots: dict[str, Any] | None = None
) -> tuple[Any, str, str]:
    """Log one training run (params, metrics, card, plots, data hashes, git commit, model files).

    Returns (client, run id, artifact URI of the uploaded model folder).
    """
    mlflow_client = client()
    exp = experiment_id(mlflow_client)
    _check_artifact_store(mlflow_client.get_experiment(exp).artifact_location)
    folder, files = artifact_files(model)
    with registry_errors("logging the training run"):
        run = mlflow_client.create_run(
            exp, tags={"mlflow.user": user(), "git_commit": git_commit() or "unknown"}
        )
        run_id = run.info.run_id
        for key, value in card_params(card).items():
            mlflow_client.log_param(run_id, key, redact(value)[:6000])
        for key, value in card_metrics(card).items():
            mlflow_client.log_metric(run_id, key, value)
        for split, info in (card.get("training_data") or {}).items():
            mlflow_client.set_tag(run_id, f"data.{split}.sha256", str(info.get("sha256")))
            mlflow_client.set_tag(run_id, f"data.{split}.rows", str(info.get("rows")))
        for split, source in data_sources.items():
            mlflow_client.set_tag(run_id, f"data.{split}.source", redact(source))
        for rel in files:
            subdir = rel.parent.relative_to(folder).as_posix()
            mlflow_client.log_artifact(
                run_id, str(rel), ARTIFACT_DIR if subdir == "." else f"{ARTIFACT_DIR}/{subdir}"
            )
        for name, figure in (plots or {}).items():
            mlflow_client.log_figure(run_id, figure, f"plots/{name}.png")
        mlflow_client.set_terminated(run_id)
        return mlflow_client, run_id, f"{run.info.artifact_uri}/{ARTIFACT_DIR}"


def register(
    model: str | Path,
    card: dict[str, Any],
    data_sources: dict[str, str] | None = None,
    plots: dict[str, Any] | None = None,
    name: str | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """Log a run for `model` (model.pkl or a transformer folder) and register it as a new version.

    The new version is the `challenger`; the first version of a model also becomes `champion`.
    Returns the `list_versions` row of the new version.
    """
    model = Path(model)
    name = name or (TRANSFORMER_MODEL if model.is_dir() else TFIDF_MODEL)
    folder, files = artifact_files(model)
    hashes = {f"{SHA_TAG}{p.relative_to(folder).as_posix()}": file_sha256(p) for p in files}
    mlflow_client, run_id, source = log_run(model, card, data_sources or {}, plots)
    with registry_errors(f"registering {name}"):
        with contextlib.suppress(Exception):  # already exists
            mlflow_client.create_registered_model(name)
        entry = "." if model.is_dir() else model.name
        tags = {
            **hashes,
            ENTRY_TAG: entry,
            "registered_by": user(),
            "card_version": redact(str(card.get("version", ""))),
        }
        version = str(mlflow_client.create_model_version(name, source, run_id, tags=tags).version)
    set_alias(name, CHALLENGER, version, reason or "newly registered", action="register")
    if current_version(name, CHAMPION) is None:
        set_alias(name, CHAMPION, version, reason or "first version of the model", action="register")
    return describe_version(name, version)


def registered_message(row: dict[str, Any]) -> str:
    """The line the CLI and the notebook print after a registration."""
    return f"registered {row['name']} version {row['version']} (aliases: {', '.join(row['aliases'])})"


def register_existing(model: str | Path, name: str | None = None, reason: str = "") -> dict[str, Any]:
    """Register a model already on disk (model.pkl, or a transformer/ONNX folder) with its own card.

    It is loaded first, through the same checks as serving, so only a model that loads gets a version.
    """
    from sentimentkit.serving.ensemble import EnsemblePredictor
    from sentimentkit.serving.loader import load_predictor

    predictor = load_predictor(model)
    if isinstance(predictor, EnsemblePredictor):  # its members live outside the folder a version copies
        raise ModelError(
            f"{model} is an ensemble; register its members instead (the registry copies one folder)."
        )
    return register(model, predictor.card, {}, name=name, reason=reason or "registered from disk")


# -- aliases and their history ------------------------------------------------------------------


def current_version(name: str, alias: str) -> str | None:
    """The version `alias` points at now (None when unset)."""
    mlflow_client = client()
    with registry_errors(f"reading {name}@{alias}"):
        model = mlflow_client.get_registered_model(name)
        return {str(a): str(v) for a, v in (model.aliases or {}).items()}.get(alias)


def history(name: str) -> list[dict[str, Any]]:
    """Every alias change of `name`, oldest first: action, alias, version, previous, who, when, why."""
    mlflow_client = client()
    with registry_errors(f"reading the history of {name}"):
        tags = mlflow_client.get_registered_model(name).tags or {}
    return [json.loads(tags[k]) for k in sorted(k for k in tags if k.startswith(EVENT_TAG))]


def set_alias(name: str, alias: str, version: str, reason: str, action: str = "promote") -> dict[str, Any]:
    """Point `alias` at `version` and record who, when and why as a registered-model tag."""
    mlflow_client = client()
    previous = current_version(name, alias)
    event = {"action": action, "alias": alias, "version": str(version), "previous": previous,
             "who": user(), "when": now(), "why": reason}  # fmt: skip
    with registry_errors(f"setting {name}@{alias}"):
        mlflow_client.set_registered_model_alias(name, alias, str(version))
        count = len(history(name))
        mlflow_client.set_registered_model_tag(name, f"{EVENT_TAG}{count + 1:06d}", redact(json.dumps(event)))
    return event


def _check_version(name: str, version: str) -> None:
    mlflow_client = client()
    try:
        mlflow_client.get_model_version(name, str(version))
    except Exception:
        raise RegistryError(
            f"{name} has no version {version}; `sentimentkit models list` shows the registered ones."
        ) from None


def promote(version: str, name: str = TFIDF_MODEL, alias: str = CHAMPION, reason: str = "") -> dict[str, Any]:
    """Point `alias` (default champion) at `version`; returns the recorded event."""
    _check_version(name, version)
    return set_alias(name, alias, str(version), reason or f"promoted to {alias}")


def alias_stack(events: list[dict[str, Any]], alias: str) -> list[str]:
    """The versions `alias` has stood on, replayed from the history: a rollback pops the latest."""
    stack: list[str] = []
    for event in events:
        if event.get("alias") != alias:
            continue
        if event.get("action") == "rollback":
            stack = stack[:-1]
        elif not stack or stack[-1] != event["version"]:
            stack.append(event["version"])
    return stack


def rollback(name: str = TFIDF_MODEL, alias: str = CHAMPION, reason: str = "") -> dict[str, Any]:
    """Move `alias` back to the version it pointed at before its latest promotion."""
    stack = alias_stack(history(name), alias)
    if len(stack) < 2:
        raise RegistryError(f"{name}@{alias} has no earlier version to roll back to.")
    return set_alias(name, alias, stack[-2], reason or "rollback", action="rollback")


# -- listing ------------------------------------------------------------------------------------


def _aliases(mlflow_client: Any, name: str) -> dict[str, list[str]]:
    """version -> its aliases (searched versions do not carry them, the registered model does)."""
    by_version: dict[str, list[str]] = {}
    for alias, version in (mlflow_client.get_registered_model(name).aliases or {}).items():
        by_version.setdefault(str(version), []).append(str(alias))
    return by_version


def _row(mlflow_client: Any, version: Any, aliases: dict[str, list[str]]) -> dict[str, Any]:
    tags = version.tags or {}
    metrics: dict[str, float] = {}
    with contextlib.suppress(Exception):  # a run deleted from tracking still leaves the version usable
        metrics = dict(mlflow_client.get_run(version.run_id).data.metrics)
    entry = tags.get(ENTRY_TAG, "model.pkl")
    return {
        "name": version.name,
        "version": str(version.version),
        "aliases": sorted(aliases.get(str(version.version), [])),
        "sha256": tags.get(f"{SHA_TAG}{entry}") if entry != "." else None,
        "files": {k[len(SHA_TAG) :]: v for k, v in tags.items() if k.startswith(SHA_TAG)},
        "metrics": metrics,
        "created": dt.datetime.fromtimestamp(version.creation_timestamp / 1000, dt.UTC)
        .replace(microsecond=0)
        .isoformat(),
        "registered_by": tags.get("registered_by"),
        "source": version.source,
    }


def describe_version(name: str, version: str) -> dict[str, Any]:
    """One version's row (as in `list_versions`)."""
    mlflow_client = client()
    with registry_errors(f"reading {name} version {version}"):
        found = mlflow_client.get_model_version(name, str(version))
        return _row(mlflow_client, found, _aliases(mlflow_client, name))


def list_versions(name: str | None = None) -> list[dict[str, Any]]:
    """Every registered version of `name` (default: both sentimentkit models), newest first."""
    mlflow_client = client()
    rows = []
    with registry_errors("listing the registry"):
        for model in (name,) if name else MODEL_NAMES:
            found = mlflow_client.search_model_versions(f"name='{model}'")
            if found:
                aliases = _aliases(mlflow_client, model)
                rows += sorted(
                    (_row(mlflow_client, v, aliases) for v in found), key=lambda r: -int(r["version"])
                )
    return rows


# -- resolving models:/ URIs to verified local copies -------------------------------------------


def cache_root() -> Path:
    """Verified local copies: SENTIMENTKIT_REGISTRY_CACHE or ~/.cache/sentimentkit/registry."""
    configured = os.environ.get("SENTIMENTKIT_REGISTRY_CACHE", "").strip()
    return Path(configured) if configured else Path.home() / ".cache" / "sentimentkit" / "registry"


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
    _check_artifact_store(source)
    tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=folder.parent))
    try:
        with registry_errors(f"downloading {source}"):
            from mlflow.artifacts import download_artifacts

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
