"""The predictor interface every backend implements and every front end relies on.

`predict` / `predict_proba` take one string or a list and answer in the same shape. `score` never
raises for a bad item: each result carries its own `error`. This module imports no backend, so the
backends (`predictor`, `transformer`, `remote`) and `loader` can all import it without a cycle.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.errors import BackendError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io.columns import (
    OUTPUT_COLUMNS,
    PARTS_COLUMN,
    PROBA_COLUMNS,
    SpreadsheetError,
    UnsavedFormula,
    input_column_renames,
)
from sentimentkit.models.card import DEFAULT_THRESHOLD
from sentimentkit.serving.parts import long_texts, score_parts
from sentimentkit.text.language import Language, identify

__all__ = [
    "OUTPUT_COLUMNS",
    "PROBA_COLUMNS",
    "BackendError",
    "BasePredictor",
    "UnsavedFormula",
    "error_record",
    "input_column_renames",
    "records_to_frame",
    "text_error",
]


EMPTY_TEXT = "empty text"
TOO_LONG = "text too long"
UNSAVED_FORMULA = (
    "formula with no saved value: open and save the workbook in Excel (it stores the results), "
    "or export it as CSV"
)

SPREADSHEET_ERROR = "spreadsheet error value"


def text_error(value: object, max_chars: int) -> str | None:
    """Why `value` cannot be scored (None when it can): not text, empty, or too long.

    The one rule for every front end (CLI, app, API, batch files, the API client): a text is a
    `str` of valid Unicode with at least one visible character (not white space, not a zero-width or
    direction mark) and at most `max_chars` characters.
    """
    if isinstance(value, UnsavedFormula):
        return UNSAVED_FORMULA
    if isinstance(value, SpreadsheetError):
        return f"{SPREADSHEET_ERROR} {value}"
    if not isinstance(value, str):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return EMPTY_TEXT
        return f"not text (got {type(value).__name__})"
    if not value.strip() or (not value.isascii() and _invisible(value)):
        return EMPTY_TEXT
    if len(value) > max_chars:
        return f"{TOO_LONG}: {len(value)} characters, the limit is {max_chars}"
    if not value.isascii() and not _is_unicode(value):
        return "not valid Unicode (a lone surrogate such as \\ud83d)"
    return None


def _invisible(text: str) -> bool:
    """True when `text` shows nothing: only white space and format characters (zero-width joiners and
    spaces, direction marks, BOMs...), which a model would score as if it had read something."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate (JSON allows "\\ud83d"; no model can read it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class TokenContribution:
    token: str
    start: int
    end: int
    weight: float


class BasePredictor:
    """What every front end relies on. Subclasses implement `predict_proba` (and may `explain`).

    Implementations: `Predictor` (the pickled TF-IDF pipeline, in-process), the transformer/ONNX
    predictor, and `sentimentkit.serving.remote.RemotePredictor` (the REST API as a client).
    """

    labels: tuple[str, ...] = LABELS
    card: dict[str, Any]
    threshold: float = DEFAULT_THRESHOLD
    max_chars: int = Settings.max_chars
    # {name, version, alias} when loaded from the model registry (`models:/...`), else None.
    registry: dict[str, str | None] | None = None
    # Whether a process holding this predictor may fork workers that use it (`scale.multiproc`):
    # False for backends with native thread pools (onnxruntime, torch) that a child inherits
    # without their threads.
    fork_safe: bool = False
    # Whether `score` finds `mixed` (scores every text's parts; Settings.mixed). Off, `mixed` is None
    # (not computed) unless parts are asked for; texts longer than a tweet are scored by parts anyway.
    find_mixed: bool = True

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
    def score(
        self,
        texts: Sequence[object],
        threshold: float | None = None,
        max_chars: int | None = None,
        parts: bool = False,
    ) -> list[dict[str, Any]]:
        """One result dict per input, in order. Invalid items get `error` and null scores.

        `max_chars`: the caller's own character limit (an API server's), checked before this
        predictor's, which still applies. `parts`: add each text's scored parts (`serving.parts`).
        """
        if max_chars is None:
            errors = [text_error(t, self.max_chars) for t in texts]
        else:
            errors = [text_error(t, max_chars) or text_error(t, self.max_chars) for t in texts]
        valid = [i for i, e in enumerate(errors) if e is None]
        cut = self.threshold if threshold is None else threshold
        results: list[dict[str, Any]] = [error_record(e, parts) for e in errors]
        valid_texts = [str(texts[i]) for i in valid]
        for i, record in zip(valid, self.score_valid(valid_texts, cut, parts=parts)):
            results[i] = record
        return results

    def proba_language(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Language]]:
        """`predict_proba` of a list and each text's `Language` (the cheap test for any backend:
        `language.function_word_test`; `Predictor` reads its own vocabulary instead)."""
        texts = list(texts)
        return self.predict_proba(texts), identify(texts)

    def score_valid(self, texts: list[str], threshold: float, parts: bool = False) -> list[dict[str, Any]]:
        """Records for texts that passed `text_error`: label, language, `mixed` (and the parts with
        `parts`). Texts longer than `parts.LONG_TEXT_CHARS` are scored by parts. Backends that
        answer records themselves override this."""
        if not texts:
            return []
        find = self.find_mixed or parts
        # the texts whose parts are scored: all of them, or (`mixed` off) only those longer than a tweet
        chosen = list(range(len(texts))) if find else np.flatnonzero(long_texts(texts)).tolist()
        parted = score_parts(self.predict_proba, [texts[i] for i in chosen]) if chosen else None
        # the whole texts last: a backend may keep per-call details of its last call (windows)
        whole, languages = self.proba_language(texts)
        probas = whole
        if parted is not None:
            probas = np.array(whole, dtype=np.float64, copy=True)
            probas[chosen] = parted.fill(whole[chosen])
        mixed = parted.mixed(self.labels) if find and parted is not None else [None] * len(texts)
        part_records = parted.records(texts, self.labels) if parts and parted is not None else None
        out = []
        for i, (row, language) in enumerate(zip(probas, languages)):
            record = self.record(row, threshold, language, mixed[i])
            if part_records is not None:
                record["parts"] = part_records[i]
            out.append(record)
        return out

    def record(
        self,
        proba: np.ndarray,
        threshold: float | None = None,
        language: Language | None = None,
        mixed: bool | None = None,
    ) -> dict[str, Any]:
        """The result dict for one probability row (and the text's language and `mixed`, when known)."""
        best = int(np.argmax(proba))
        confidence = float(proba[best])
        cut = self.threshold if threshold is None else threshold
        return {
            "sentiment": self.labels[best],
            "confidence": confidence,
            "scores": {label: float(p) for label, p in zip(self.labels, proba)},
            "uncertain": confidence < cut,
            "error": None,
            "language": language.code if language else None,
            "language_confidence": language.confidence if language else None,
            "mixed": mixed,
        }

    def score_frame(
        self, frame: pd.DataFrame, text_column: str, threshold: float | None = None
    ) -> pd.DataFrame:
        """`frame` with the OUTPUT_COLUMNS appended; every row kept, in order."""
        if text_column not in frame.columns:
            raise KeyError(text_column)
        return records_to_frame(frame, self.score(frame[text_column].tolist(), threshold), self.labels)


def error_record(error: str | None, parts: bool = False) -> dict[str, Any]:
    """The result dict of an item that could not be scored."""
    record: dict[str, Any] = {
        "sentiment": None,
        "confidence": None,
        "scores": None,
        "uncertain": None,
        "error": error,
        "language": None,
        "language_confidence": None,
        "mixed": None,
    }
    if parts:
        record["parts"] = None
    return record


def keep_input_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with `input_column_renames` applied."""
    renames = input_column_renames(list(frame.columns))
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
    out["language"] = [r.get("language") for r in records]
    out["mixed"] = [r.get("mixed") for r in records]
    if any("parts" in r for r in records):  # asked for: JSON text per row (null for error rows)
        out[PARTS_COLUMN] = [None if r.get("parts") is None else json.dumps(r["parts"]) for r in records]
    return out
