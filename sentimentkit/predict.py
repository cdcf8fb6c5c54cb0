"""The one way to get predictions: `Predictor` (used by the CLI, the API, the app and the notebook).

`predict` / `predict_proba` take one string or a list and answer in the same shape. `score` never
raises for a bad item: each result carries its own `error`. `explain` gives the exact additive
contributions of the linear model, per token, that make up the predicted class's logit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.features import N_LEXICON_FEATURES, TweetVectorizer
from sentimentkit.model import ModelError, load_model
from sentimentkit.preprocess import tokenize_with_spans

PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{label}" for label in LABELS)
OUTPUT_COLUMNS: tuple[str, ...] = ("sentiment", "confidence", *PROBA_COLUMNS, "uncertain", "error")
DEFAULT_THRESHOLD = 0.5

__all__ = [
    "OUTPUT_COLUMNS",
    "PROBA_COLUMNS",
    "BasePredictor",
    "ModelError",
    "Predictor",
    "load_predictor",
    "text_error",
]


class BackendError(Exception):
    """The model backend (e.g. the REST API) could not answer; the message says why and what to do."""


def text_error(value: object, max_chars: int) -> str | None:
    """Why `value` cannot be scored (None when it can): not text, empty, or too long."""
    if not isinstance(value, str):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "empty text"
        return f"not text (got {type(value).__name__})"
    if not value.strip():
        return "empty text"
    if len(value) > max_chars:
        return f"text too long: {len(value)} characters, the limit is {max_chars}"
    return None


@dataclass(frozen=True)
class TokenContribution:
    token: str
    start: int
    end: int
    weight: float


class BasePredictor:
    """What every front end relies on. Subclasses implement `predict_proba` (and may `explain`).

    Implementations: `Predictor` (the pickled TF-IDF pipeline, in-process), the transformer/ONNX
    predictor, and `sentimentkit.remote.RemotePredictor` (the REST API as a client).
    """

    labels: tuple[str, ...] = LABELS
    card: dict[str, Any]
    threshold: float = DEFAULT_THRESHOLD
    max_chars: int = Settings.max_chars

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))

    @property
    def can_explain(self) -> bool:
        return False

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities in `self.labels` order: shape (3,) for a string, (n, 3) for a list."""
        raise NotImplementedError

    def explain(self, text: str, label: str | None = None) -> dict[str, Any]:
        """Per-token contributions; only models with exact explanations implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not provide explanations")

    @overload
    def predict(self, texts: str) -> str: ...
    @overload
    def predict(self, texts: Sequence[str]) -> list[str]: ...
    def predict(self, texts: str | Sequence[str]) -> str | list[str]:
        """Most likely label(s), same shape as the input."""
        proba = self.predict_proba(texts)
        if isinstance(texts, str):
            return self.labels[int(np.argmax(proba))]
        return [self.labels[i] for i in np.argmax(proba, axis=1)] if len(proba) else []

    # --- records with validation ---------------------------------------------------------
    def score(self, texts: Sequence[object], threshold: float | None = None) -> list[dict[str, Any]]:
        """One result dict per input, in order. Invalid items get `error` and null scores."""
        errors = [text_error(t, self.max_chars) for t in texts]
        valid = [i for i, e in enumerate(errors) if e is None]
        proba = self.predict_proba([str(texts[i]) for i in valid])
        cut = self.threshold if threshold is None else threshold
        results: list[dict[str, Any]] = [error_record(e) for e in errors]
        for row, i in zip(proba, valid):
            results[i] = self.record(row, cut)
        return results

    def record(self, proba: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
        """The result dict for one probability row."""
        best = int(np.argmax(proba))
        confidence = float(proba[best])
        cut = self.threshold if threshold is None else threshold
        return {
            "sentiment": self.labels[best],
            "confidence": confidence,
            "scores": {label: float(p) for label, p in zip(self.labels, proba)},
            "uncertain": confidence < cut,
            "error": None,
        }

    def score_frame(
        self, frame: pd.DataFrame, text_column: str, threshold: float | None = None
    ) -> pd.DataFrame:
        """`frame` with the OUTPUT_COLUMNS appended; every row kept, in order."""
        if text_column not in frame.columns:
            raise KeyError(text_column)
        return records_to_frame(frame, self.score(frame[text_column].tolist(), threshold), self.labels)


def error_record(error: str | None) -> dict[str, Any]:
    """The result dict of an item that could not be scored."""
    return {"sentiment": None, "confidence": None, "scores": None, "uncertain": None, "error": error}


def keep_input_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose columns named like an output column get the suffix `_input`
    (plus `_` until the name is free), so appending the outputs overwrites nothing."""
    taken = {str(c) for c in frame.columns}
    renames: dict[Any, str] = {}
    for column in frame.columns:
        if column in OUTPUT_COLUMNS:
            new = f"{column}_input"
            while new in taken:
                new += "_"
            taken.add(new)
            renames[column] = new
    return frame.rename(columns=renames) if renames else frame.copy()


def records_to_frame(
    frame: pd.DataFrame, records: list[dict[str, Any]], labels: Sequence[str] = LABELS
) -> pd.DataFrame:
    """Append OUTPUT_COLUMNS built from `records` (one per row, in order) to a copy of `frame`.

    No input column is lost: one named like an output column is kept as `<name>_input`.
    """
    out = keep_input_columns(frame)
    out["sentiment"] = [r["sentiment"] for r in records]
    out["confidence"] = [r["confidence"] for r in records]
    for label, column in zip(labels, PROBA_COLUMNS):
        out[column] = [r["scores"][label] if r["scores"] else None for r in records]
    out["uncertain"] = [r["uncertain"] for r in records]
    out["error"] = [r["error"] for r in records]
    return out


class Predictor(BasePredictor):
    """The TF-IDF + LogisticRegression pipeline, loaded from a verified model.pkl."""

    def __init__(
        self,
        pipeline: Pipeline,
        card: dict[str, Any],
        threshold: float | None = None,
        max_chars: int = Settings.max_chars,
    ) -> None:
        self.pipeline = pipeline
        self.card = card
        self.labels = tuple(str(c) for c in pipeline.classes_)
        default = card.get("default_threshold", DEFAULT_THRESHOLD)
        self.threshold = float(default if threshold is None else threshold)
        self.max_chars = max_chars
        clf = pipeline.named_steps["clf"]
        self._vectorizer = pipeline.named_steps["features"]
        self._coef_t = np.ascontiguousarray(clf.coef_.T, dtype=np.float64)
        self._intercept = clf.intercept_.astype(np.float64)

    @classmethod
    def load(
        cls, path: str | Path | None = None, threshold: float | None = None, settings: Settings | None = None
    ) -> Predictor:
        """Load and verify a model (default: settings' model path). Raises ModelError."""
        settings = settings or Settings.from_env()
        pipeline, card = load_model(path or settings.model_path)
        chosen = threshold if threshold is not None else settings.threshold
        return cls(pipeline, card, threshold=chosen, max_chars=settings.max_chars)

    @property
    def can_explain(self) -> bool:
        return True

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities in `self.labels` order: shape (3,) for a string, (n, 3) for a list."""
        if isinstance(texts, str):
            return self._proba_one(texts)
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return self._proba(list(texts))

    def _proba_one(self, text: str) -> np.ndarray:
        cols, vals = self._vectorizer.sparse_row(text)
        logits = vals @ self._coef_t[cols] + self._intercept
        logits = np.exp(logits - logits.max())
        return logits / logits.sum()

    def _proba(self, texts: list[str]) -> np.ndarray:
        # Same maths as pipeline.predict_proba (multinomial softmax), minus sklearn's per-call
        # input validation, which dominates the cost of a single short text.
        X = self._vectorizer.transform(texts)
        logits = X @ self._coef_t + self._intercept
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    # --- explanation ---------------------------------------------------------------------
    def explain(self, text: str, label: str | None = None) -> dict[str, Any]:
        """Exact per-token contributions to the (centred) logit of `label` (default: predicted).

        The logit of each class minus the mean of the three logits equals `bias` plus the sum of
        the token weights; positive weights push toward `label`, negative ones against it.
        """
        error = text_error(text, self.max_chars)
        if error:
            raise ValueError(error)
        spans = tokenize_with_spans(text)
        tokens = [t for t, _, _ in spans]
        vec: TweetVectorizer = self.pipeline.named_steps["features"]
        clf = self.pipeline.named_steps["clf"]
        proba = self.predict_proba(text)
        k = self.labels.index(label) if label else int(np.argmax(proba))
        coef = clf.coef_[k] - clf.coef_.mean(axis=0)
        bias = float(clf.intercept_[k] - clf.intercept_.mean())
        x = vec.transform_tokens([tokens]).toarray()[0]
        weights = _attribute(vec, tokens, x * coef)
        contributions = [
            TokenContribution(tok, s, e, float(w)).__dict__ for (tok, s, e), w in zip(spans, weights)
        ]
        return {
            "label": self.labels[k],
            "probability": float(proba[k]),
            "bias": bias,
            "logit": bias + float(weights.sum()),
            "tokens": contributions,
        }


def _attribute(vec: TweetVectorizer, tokens: list[str], contrib: np.ndarray) -> np.ndarray:
    """Split each feature's contribution among the tokens that produced it (exactly)."""
    n_text = vec.n_word_ + vec.n_char_
    owners: dict[int, list[tuple[int, float]]] = {}
    valences = np.zeros((len(tokens), len(vec.lexicons)))
    for i, tok in enumerate(tokens):
        ids, valences[i] = vec.token_features(tok)
        for j in ids.tolist():
            owners.setdefault(j, []).append((i, 1.0))
    for start, n, j in vec.ngram_positions(tokens):
        owners.setdefault(j, []).extend((start + m, 1.0 / n) for m in range(n))
    weights = np.zeros(len(tokens))
    for j, shares in owners.items():
        total = sum(s for _, s in shares)
        for i, s in shares:
            weights[i] += contrib[j] * s / total
    for k in range(len(vec.lexicons) if len(tokens) else 0):
        start = n_text + k * N_LEXICON_FEATURES
        weights += _attribute_lexicon(valences[:, k], contrib[start : start + N_LEXICON_FEATURES])
    return weights


def _attribute_lexicon(valences: np.ndarray, lex: np.ndarray) -> np.ndarray:
    """Attribute the 7 lexicon-feature contributions to the tokens whose valence made them."""
    out = np.zeros(len(valences))
    pos, neg = np.clip(valences, 0, None), np.clip(-valences, 0, None)
    for share, value in ((pos, lex[0]), (neg, lex[1]), (valences > 0, lex[2]), (valences < 0, lex[3])):
        share = np.asarray(share, dtype=float)
        if share.sum() > 0:
            out += value * share / share.sum()
    if valences.max() > 0:
        out[int(np.argmax(valences))] += lex[4]
    if valences.min() < 0:
        out[int(np.argmin(valences))] += lex[5]
    nonzero = np.flatnonzero(valences)
    if len(nonzero):
        out[nonzero[-1]] += lex[6]
    return out


def load_predictor(
    path: str | Path | None = None, threshold: float | None = None, settings: Settings | None = None
) -> BasePredictor:
    """Open whichever model `path` (default: SENTIMENTKIT_MODEL) names.

    A `.pkl` file is the TF-IDF pipeline; a directory is a transformer artifact (served with
    onnxruntime when it holds `model.int8.onnx`, otherwise with torch).
    """
    settings = settings or Settings.from_env()
    path = Path(path or settings.model_path)
    if path.is_dir():
        from sentimentkit.transformer_predict import load_transformer_predictor

        return load_transformer_predictor(path, threshold=threshold, settings=settings)
    return Predictor.load(path, threshold=threshold, settings=settings)


def open_backend(settings: Settings | None = None) -> BasePredictor:
    """What the app uses: the REST API when SENTIMENTKIT_API_URL is set, else the local model."""
    settings = settings or Settings.from_env()
    if settings.api_url:
        from sentimentkit.remote import RemotePredictor

        return RemotePredictor(settings.api_url, api_key=settings.api_key, timeout=settings.api_timeout_s)
    return load_predictor(settings=settings)
