"""Build the scikit-learn Pipeline; save and load it together with its card (`model.json`).

The pickle is only ever loaded after its SHA-256 matches the card written beside it when we
saved it: we never unpickle a file we did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sentimentkit import LABELS
from sentimentkit.config import SEED
from sentimentkit.data import file_sha256 as sha256_file  # noqa: F401 - part of this module's API
from sentimentkit.models.safe_pickle import UnsafePickleError, safe_loads
from sentimentkit.text.features import TweetVectorizer

FEATURE_PARAMS = (
    "word_max_n", "char_ngram_range", "word_min_df", "char_min_df",
    "sublinear_tf", "char_weight", "lexicons", "lexicon_weight",
)  # fmt: skip
DEFAULT_PARAMS: dict[str, Any] = {"C": 1.0, "class_weight": "balanced"}


class ModelError(Exception):
    """A model file that is missing, corrupt, or does not match its card. The message says why."""


def build_pipeline(params: dict[str, Any] | None = None) -> Pipeline:
    """TF-IDF word + char n-grams + lexicon cues -> multinomial LogisticRegression."""
    params = {**DEFAULT_PARAMS, **(params or {})}
    features = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items() if k in FEATURE_PARAMS}
    clf = LogisticRegression(
        C=params["C"], class_weight=params["class_weight"], max_iter=3000, random_state=SEED
    )
    return Pipeline([("features", TweetVectorizer(**features)), ("clf", clf)])


def card_path(model_path: str | Path) -> Path:
    """The card lives beside the pickle: model.pkl -> model.json."""
    return Path(model_path).with_suffix(".json")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_model(pipeline: Pipeline, path: str | Path, card: dict[str, Any]) -> dict[str, Any]:
    """Write the pickle and its card (with the pickle's SHA-256 and size). Returns the card."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(pipeline, protocol=5)
    _atomic_write(path, blob)
    card = {**card, "labels": list(LABELS), "model_file": path.name,
            "sha256": hashlib.sha256(blob).hexdigest(), "size_bytes": len(blob)}  # fmt: skip
    _atomic_write(card_path(path), (json.dumps(card, indent=2, sort_keys=False) + "\n").encode())
    return card


def read_json_card(cpath: Path, missing: str) -> dict[str, Any]:
    """A card file as a dict; ModelError(`missing`) if absent, ModelError if not a JSON object."""
    if not cpath.is_file():
        raise ModelError(missing)
    try:
        card = json.loads(cpath.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"Model card {cpath} is not valid JSON ({exc}).") from None
    if not isinstance(card, dict):
        raise ModelError(f"Model card {cpath} is not a JSON object.")
    return card


def load_card(path: str | Path) -> dict[str, Any]:
    """Read the card beside `path`; ModelError if it is missing or not valid JSON."""
    cpath = card_path(path)
    card = read_json_card(
        cpath,
        f"Model card {cpath} not found. A model is only loaded together with the card written "
        "when it was trained; retrain with `python -m sentimentkit train`.",
    )
    if "sha256" not in card:
        raise ModelError(f"Model card {cpath} has no 'sha256' entry; it cannot vouch for the model.")
    return card


def load_model(path: str | Path) -> tuple[Pipeline, dict[str, Any]]:
    """Load a pipeline after checking its SHA-256 against its card. Raises ModelError."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"Model file {path} not found. Train one with `python -m sentimentkit train --out {path}` "
            "or set SENTIMENTKIT_MODEL to an existing model.pkl."
        )
    card = load_card(path)
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != card["sha256"]:
        raise ModelError(
            f"Refusing to load {path}: its SHA-256 ({actual[:12]}...) does not match the card "
            f"{card_path(path).name} ({str(card['sha256'])[:12]}...). The file was changed or "
            "replaced after training; retrain or restore the original file."
        )
    try:
        pipeline = safe_loads(blob)
    except UnsafePickleError as exc:
        raise ModelError(f"Refusing to load {path}: {exc}. Nothing from the file was run.") from None
    except Exception as exc:  # a truncated/garbled pickle raises many different types
        raise ModelError(f"Model file {path} is corrupt and cannot be read ({type(exc).__name__}).") from None
    if not isinstance(pipeline, Pipeline) or list(getattr(pipeline, "classes_", [])) != list(LABELS):
        raise ModelError(f"Model file {path} is not a sentimentkit pipeline with labels {list(LABELS)}.")
    return pipeline, card
