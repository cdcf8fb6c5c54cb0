"""The MLflow tracking server and model registry, write side: log training runs, register versions,
move aliases (with who/when/why), list versions. Reading a version back (`models:/NAME@ALIAS` ->
a verified local copy) is `sentimentkit.models.fetch`.

Trust: when a version is registered, the SHA-256 of every artifact file is written as a tag on the
model version (`sha256.<file>`); `models.fetch` loads a copy only when each file matches its tag.

Default, no server: a SQLite file and an artifact folder under `mlruns/` in the repository
(`MLFLOW_TRACKING_URI` and `SENTIMENTKIT_MLFLOW_ARTIFACTS` point elsewhere, e.g. a tracking server and
`wasbs://container@account.blob.core.windows.net/mlflow`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentimentkit.config import REPO_ROOT, Settings
from sentimentkit.data import file_sha256
from sentimentkit.mlops import CHALLENGER, CHAMPION, MODEL_NAMES, TFIDF_MODEL, TRANSFORMER_MODEL
from sentimentkit.models.card import card_file
from sentimentkit.models.fetch import (
    DEFAULT_ROOT,
    ENTRY_TAG,
    SHA_TAG,
    RegistryError,
    check_artifact_store,
    client,
    current_version,
    registry_errors,
)
from sentimentkit.redact import redact

EXPERIMENT = "sentimentkit"
ARTIFACT_DIR = "model"
EVENT_TAG = "event."  # registered-model tags: one JSON event (who/when/why) per alias change
METRIC_KEYS = ("avg_recall", "f1_pn", "macro_f1", "accuracy", "ece")

Log = Callable[[str], None]


# -- the experiment -----------------------------------------------------------------------------


def artifact_location() -> str:
    """Where a new experiment keeps its artifacts: SENTIMENTKIT_MLFLOW_ARTIFACTS or mlruns/artifacts."""
    return Settings.from_env().mlflow_artifacts or str(DEFAULT_ROOT / "artifacts")


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
        return Settings.from_env().user or getpass.getuser()
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
    check_artifact_store(mlflow_client.get_experiment(exp).artifact_location)
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


# -- aliases and their history ------------------------------------------------------------------


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
