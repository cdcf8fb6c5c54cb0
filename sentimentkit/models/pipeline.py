"""Build the scikit-learn Pipeline; save and load it together with its card (`model.json`).

The pickle is only ever unpickled after its card has vouched for it (`card.open_card`: the signature
when a signing key is configured, then the SHA-256), and then only through the allow-list unpickler
(`safe_pickle`), so even a pickle that passes those checks cannot run code while loading.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sentimentkit import LABELS
from sentimentkit.config import SEED, Settings
from sentimentkit.models.card import (
    PICKLE_FORMAT,
    ModelError,
    atomic_write,
    card_file,
    file_hashes,
    open_card,
    write_card,
)
from sentimentkit.models.card import sha256_file as sha256_file  # noqa: F401 - part of this module's API
from sentimentkit.models.domain import DomainAdapted
from sentimentkit.models.safe_pickle import UnsafePickleError, safe_loads
from sentimentkit.text.features import TweetVectorizer

__all__ = ["ModelError", "build_pipeline", "card_path", "load_model", "save_model"]

FEATURE_PARAMS = (
    "word_max_n", "char_ngram_range", "word_min_df", "char_min_df",
    "sublinear_tf", "char_weight", "lexicons", "lexicon_weight",
)  # fmt: skip
DEFAULT_PARAMS: dict[str, Any] = {"C": 1.0, "class_weight": "balanced"}


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
    return card_file(model_path)


def save_model(
    pipeline: Pipeline, path: str | Path, card: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Write the pickle and its card (with the pickle's SHA-256 and size; signed when a key is
    configured). Returns the card."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps(pipeline, protocol=5)
    atomic_write(path, blob)
    card = {**card, "format": PICKLE_FORMAT, "labels": list(LABELS), "model_file": path.name,
            "size_bytes": len(blob), "files": file_hashes({path.name: path}, {path: blob})}  # fmt: skip
    return write_card(path, card, settings)


def load_model(path: str | Path, settings: Settings | None = None) -> tuple[Pipeline, dict[str, Any]]:
    """Load a pipeline its card vouches for (signature when a key is configured, SHA-256), through the
    allow-list unpickler, and check its shape. Raises ModelError with one line."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(
            f"Model file {path} not found. Train one with `python -m sentimentkit train --out {path}` "
            "or set SENTIMENTKIT_MODEL to an existing model.pkl."
        )
    blob = path.read_bytes()  # the bytes checked are the bytes unpickled
    card = open_card(path, settings=settings, data={path: blob})
    try:
        pipeline = safe_loads(blob)
    except UnsafePickleError as exc:
        raise ModelError(f"Refusing to load {path}: {exc}. Nothing from the file was run.") from None
    except Exception as exc:  # a truncated/garbled pickle raises many different types
        raise ModelError(f"Model file {path} is corrupt and cannot be read ({type(exc).__name__}).") from None
    try:
        problem = pipeline_problem(pipeline)
    except Exception as exc:  # a crafted object can fail on any attribute it is asked for
        problem = f"its state is malformed ({type(exc).__name__})"
    if problem:
        raise ModelError(f"Model file {path} is not a sentimentkit pipeline: {problem}.")
    return pipeline, card


def pipeline_problem(pipeline: Any) -> str | None:
    """Why `pipeline` is not the two-step features -> LogisticRegression pipeline we save (None if it is).

    The allow-list already stops code from running while unpickling; this stops an object built
    from allowed classes in an unexpected shape from reaching the predictor.
    """
    if type(pipeline) is not Pipeline:
        return f"it holds a {type(pipeline).__name__}"
    steps = getattr(pipeline, "steps", None)
    shape = [(n, type(s)) for n, s in steps] if isinstance(steps, list) else None
    classifiers = (("clf", LogisticRegression), ("clf", DomainAdapted))
    if (
        not shape
        or len(shape) != 2
        or shape[0] != ("features", TweetVectorizer)
        or shape[1] not in classifiers
    ):
        return "its steps are not features (TweetVectorizer) -> clf (LogisticRegression)"
    vec = pipeline.named_steps["features"]
    for name in ("word_vectorizer_", "char_vectorizer_"):
        if type(getattr(vec, name, None)) is not TfidfVectorizer:
            return f"its features.{name} is not a TfidfVectorizer"
    # These are rebuilt lazily and never pickled (TweetVectorizer.__getstate__).
    if {"_token_table", "_char_analyzer_fn", "_idf_all"} & set(vars(vec)):
        return "its features carry state that a saved model never has"
    if list(getattr(pipeline, "classes_", [])) != list(LABELS):
        return f"its labels are not {list(LABELS)}"
    clf = pipeline.named_steps["clf"]
    if np.shape(clf.coef_) != (len(LABELS), vec.n_features_) or np.shape(clf.intercept_) != (len(LABELS),):
        return "its classifier's weights do not fit its features"
    if not (np.isfinite(clf.coef_).all() and np.isfinite(clf.intercept_).all()):
        return "its classifier's weights are not all finite numbers"  # they would answer NaN
    if type(clf) is DomainAdapted:
        base_coef, base_intercept = getattr(clf, "base_coef_", None), getattr(clf, "base_intercept_", None)
        if np.shape(base_coef) != np.shape(clf.coef_) or np.shape(base_intercept) != np.shape(clf.intercept_):
            return "its domain classifier's base weights do not fit its features"
        if not (np.isfinite(base_coef).all() and np.isfinite(base_intercept).all()):
            return "its domain classifier's base weights are not all finite numbers"
    return None
