"""The model card: one schema and one builder for both model kinds, and the checks run before loading.

A model is a location: `model.pkl` (card `model.json` beside it) or a transformer folder (card
`card.json` inside it). Every card has the same common fields (`new_card`) and a `files` table with the
SHA-256 of each artifact file. `open_card` reads a card and, before anything else reads a model file,
checks the optional HMAC signature (`signing`) and the recorded hashes; training writes cards with
`write_card`, which signs them when a key is configured.

Cards written before the schema was unified are still read: `normalise_card` maps their old key names.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sentimentkit import LABELS, __version__
from sentimentkit.config import SPLITS, Settings
from sentimentkit.data import file_sha256 as sha256_file
from sentimentkit.data import split_path
from sentimentkit.errors import ModelError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io.write import Input, write_output
from sentimentkit.models import signing
from sentimentkit.redact import redact_obj

CARD_FILE = "card.json"  # a transformer folder's card
PICKLE_CARD_SUFFIX = ".json"  # model.pkl -> model.json
TOKENIZER_FILE = "tokenizer.json"
ONNX_INT8_FILE = "model.int8.onnx"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ENSEMBLE_FILE = "ensemble.json"  # an ensemble folder's members and weights (serving.ensemble)
PICKLE_FORMAT = "sklearn-pickle"
DEFAULT_THRESHOLD = 0.5
TASK = "3-class tweet sentiment (SemEval-2017 Task 4A)"
NO_KEY_MESSAGE = (
    "no signing key: set SENTIMENTKIT_SIGNING_KEY or SENTIMENTKIT_SIGNING_KEY_FILE "
    f"({signing.KEY_HINT}), kept outside the model folder"
)
# Old metric-split names -> the one name every card now uses.
RENAMED_SPLITS = {"validation_clean": "clean_validation"}


# --- building a card -----------------------------------------------------------------------------
def library_versions(packages: Iterable[str]) -> dict[str, str]:
    """Python's version and each installed package's (distribution names; missing ones are left out),
    then the BLAS each loaded package ships (`blas_libraries`)."""
    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return {**out, **blas_libraries()}


def blas_libraries() -> dict[str, str]:
    """The BLAS loaded in this process, per package that ships it: `{"openblas (numpy)": "0.3.31
    SkylakeX"}`. OpenBLAS picks its kernels by CPU (the architecture named), and different kernels
    round differently: the same code, data and versions give the same model bytes only on the same
    kernels. Empty where threadpoolctl (a scikit-learn dependency) cannot tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    out = {}
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        owner = Path(str(lib.get("filepath", ""))).parent.name.removesuffix(".libs").replace("_", "-")
        label = f"{lib.get('internal_api', 'blas')} ({owner})" if owner else str(lib.get("internal_api"))
        out[label] = " ".join(str(lib[k]) for k in ("version", "architecture") if lib.get(k))
    return dict(sorted(out.items()))


def code_version(package_dir: str | Path | None = None) -> dict[str, Any] | None:
    """The git commit of the code that trains a model, and whether the package's tracked files differ
    from it (`dirty`): what a retrain needs to give the same bytes. None outside a git checkout (an
    installed package) or where git is missing; the card then says nothing rather than guess."""
    where = Path(package_dir) if package_dir else Path(__file__).resolve().parents[1]
    try:
        commit = _git(where, "rev-parse", "HEAD")
        changed = _git(where, "status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "dirty": bool(changed)}


def _git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                          timeout=10, check=True)  # fmt: skip
    return done.stdout.strip()


def data_provenance(data_dir: Path | None, splits: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """File name, rows and SHA-256 of each data split a model was trained or scored on."""
    return {
        split: {"file": split_path(split, data_dir).name, "rows": len(splits[split]),
                "sha256": sha256_file(split_path(split, data_dir))}
        for split in SPLITS if split in splits
    }  # fmt: skip


def new_card(
    name: str, fmt: str, version_tag: str, hyperparameters: dict[str, Any], training_data: dict[str, Any],
    train_seconds: float, libraries: dict[str, str], metrics: dict[str, Any],
    code: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The fields every card has, in one order; the trainer adds its own (and `files` on saving).
    `code` (`code_version()`), when known, is recorded beside `libraries`: together they say what a
    retrain needs to give the same model."""
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    return {
        "name": name,
        "version": f"{__version__}+{version_tag}{created:%Y%m%d%H%M}",
        "format": fmt,
        "created_at": created.isoformat(),
        "task": TASK,
        "labels": list(LABELS),
        "default_threshold": DEFAULT_THRESHOLD,
        "hyperparameters": hyperparameters,
        "training_data": training_data,
        "train_seconds": round(train_seconds, 1),
        "libraries": libraries,
        **({"code": code} if code else {}),
        "metrics": metrics,
    }


def model_threshold(card: dict[str, Any], chosen: float | None = None) -> float:
    """The confidence threshold a predictor uses: `chosen` (a setting or option), else the card's
    `default_threshold`. Raises ModelError unless it is a number from 0 to 1."""
    value = card.get("default_threshold", DEFAULT_THRESHOLD) if chosen is None else chosen
    where = (
        "The threshold (--threshold, SENTIMENTKIT_THRESHOLD)"
        if chosen is not None
        else "The card's default_threshold"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ModelError(f"{where} must be a number from 0 to 1, got {str(value)[:40]!r}.")
    return float(value)


# --- where the card and the artifact files are ---------------------------------------------------
def card_file(model: str | Path) -> Path:
    """The card of a model location: FOLDER/card.json, or model.pkl -> model.json."""
    model = Path(model)
    return model / CARD_FILE if model.is_dir() else model.with_suffix(PICKLE_CARD_SUFFIX)


def artifact_paths(model: str | Path, card: dict[str, Any]) -> dict[str, Path]:
    """Name in the card's `files` table -> the file it vouches for. A pickle is vouched for under the
    name it was saved with, wherever it now lives (a renamed copy keeps its card)."""
    model = Path(model)
    if model.is_dir():
        return {name: model / name for name in card["files"]}
    return {name: model for name in card["files"]}


# --- reading and checking ------------------------------------------------------------------------
def read_json_card(path: Path, missing: str) -> dict[str, Any]:
    """A card file as a dict; ModelError(`missing`) if absent, ModelError if not a JSON object."""
    if not path.is_file():
        raise ModelError(missing)
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Model card {path} is not valid JSON ({exc}).") from None
    if not isinstance(card, dict):
        raise ModelError(f"Model card {path} is not a JSON object.")
    return card


def normalise_card(card: dict[str, Any]) -> dict[str, Any]:
    """The card in today's schema: a pickle card's top-level `sha256` becomes its `files` table and old
    metric names are renamed. The stored text is not changed (its signature covers it as written)."""
    card = dict(card)
    if "files" not in card and "sha256" in card:
        card["files"] = {str(card.get("model_file", "model.pkl")): card.pop("sha256")}
        card.setdefault("format", PICKLE_FORMAT)
    if isinstance(card.get("metrics"), dict):
        card["metrics"] = {RENAMED_SPLITS.get(k, k): v for k, v in card["metrics"].items()}
    return card


def _check_files_table(card: dict[str, Any], path: Path) -> None:
    files = card.get("files")
    if not isinstance(files, dict) or not files:
        raise ModelError(
            f"Model card {path} has no 'files' table of SHA-256s; it cannot vouch for the model."
        )
    for name in files:
        # Plain names only: a card cannot point the loader at a file outside the model's folder.
        if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name:
            raise ModelError(
                f"Model card {path} names {name!r} in 'files'; only plain file names are allowed."
            )


def file_hashes(paths: Mapping[str, Path], data: Mapping[Path, bytes] | None = None) -> dict[str, str]:
    """SHA-256 of each artifact file (of `data[path]` where the caller already holds its bytes)."""
    data = data or {}
    out = {}
    for name, path in paths.items():
        if path in data:
            out[name] = hashlib.sha256(data[path]).hexdigest()
        elif not path.is_file():
            raise ModelError(f"{path} not found; the model at {path.parent} is incomplete.")
        else:
            out[name] = sha256_file(path)
    return out


def verify_hashes(card: dict[str, Any], paths: Mapping[str, Path], actual: Mapping[str, str]) -> None:
    """Refuse (ModelError) unless every file's SHA-256 is the one its card records."""
    for name, digest in actual.items():
        expected = str(card["files"][name])
        if digest != expected:
            raise ModelError(
                f"Refusing to load {paths[name]}: its SHA-256 ({digest[:12]}...) does not match the card "
                f"({expected[:12]}...). The file was changed or replaced after training; retrain or "
                "restore the original file."
            )


def open_card(
    model: str | Path, settings: Settings | None = None, data: Mapping[Path, bytes] | None = None
) -> dict[str, Any]:
    """Read a model's card and check it before any model file is opened; return it in today's schema.

    With a signing key configured, the card and the files must carry a valid signature by that key.
    Then every file in the card's `files` table must match its SHA-256. `data` holds bytes the caller
    already read (so the bytes checked are the bytes loaded). Raises ModelError with one line.
    """
    raw, card, paths, actual = _read_and_hash(Path(model), data)
    key = configured_key(settings)
    if key is not None:
        problem = signing.check(raw, actual, key)
        if problem:
            raise ModelError(f"Refusing to load {model}: {problem}.")
    verify_hashes(card, paths, actual)
    return card


def _read_and_hash(
    model: Path, data: Mapping[Path, bytes] | None = None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Path], dict[str, str]]:
    """(the card as stored, in today's schema, its artifact paths, their SHA-256s as read now)."""
    path = card_file(model)
    raw = read_json_card(path, _missing_card_message(model, path))
    card = normalise_card(raw)
    _check_files_table(card, path)
    paths = artifact_paths(model, card)
    return raw, card, paths, file_hashes(paths, data)


def sign_model(model: str | Path, settings: Settings | None = None) -> dict[str, Any]:
    """Sign an existing model's card with the configured key (`sentimentkit sign`); returns the card.

    Refuses when no key is configured or a file no longer matches its card: a signature vouches for
    the files as they were when the card was written, never for whatever is in the folder now.
    """
    if configured_key(settings) is None:
        raise ModelError(NO_KEY_MESSAGE)
    model = Path(model)
    raw, card, paths, actual = _read_and_hash(model)
    verify_hashes(card, paths, actual)
    return write_card(model, raw, settings)


def require_files(card: dict[str, Any], model: str | Path, names: Sequence[str]) -> None:
    """Refuse (ModelError) unless the card (already checked by `open_card`) vouches for each of `names`."""
    for name in names:
        if name not in card["files"]:
            raise ModelError(f"The card of {model} records no SHA-256 for {name}; it cannot vouch for it.")


def _missing_card_message(model: Path, path: Path) -> str:
    if model.is_dir():
        return (
            f"{path} not found: a transformer folder is only loaded together with the card written when it "
            "was trained or exported (`python -m sentimentkit train-transformer` / `export-onnx`)."
        )
    return (
        f"Model card {path} not found. A model is only loaded together with the card written "
        "when it was trained; retrain with `python -m sentimentkit train`."
    )


def configured_key(settings: Settings | None = None) -> bytes | None:
    """The signing key from the settings (default: the environment), or None; ModelError if unusable."""
    try:
        return signing.load_key(settings or Settings.from_env())
    except ValueError as exc:
        raise ModelError(str(exc)) from None


# --- writing -------------------------------------------------------------------------------------
def atomic_write(path: Path, data: bytes, inputs: Iterable[Input] = (), replaces: Path | None = None) -> None:
    """Write `data` to `path` through the one writer (`io.write.write_output`: a temporary file beside
    it renamed over it; refuses `inputs` except `replaces`, the file this write exists to update)."""
    write_output(path, data, inputs=inputs, replaces=replaces)


def write_card(model: str | Path, card: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Write the card of `model` (its `files` must be filled in and the files written); signed with
    the configured key, if any. Returns the card as written. No secret is written: every string in it
    is redacted first (e.g. a base-model or data URI that carried a token)."""
    card = redact_obj({k: v for k, v in card.items() if k != signing.SIGNATURE_FIELD})
    key = configured_key(settings)
    if key is not None:
        hashes = file_hashes(artifact_paths(model, normalise_card(card)))
        card[signing.SIGNATURE_FIELD] = signing.sign(card, hashes, key)
    path = card_file(model)  # inside a model folder: the one file of it this write updates
    atomic_write(
        path, (json.dumps(card, indent=2) + "\n").encode("utf-8"), [(model, "the model")], replaces=path
    )
    return card
