"""The review queue and request-id look-ups, both read from the prediction log (mlops/predlog.py).

`logged_predictions(log)` gives the log's distinct texts with the latest prediction of each;
`review_queue(log, n, strategy)` the `n` most worth a human label, as a frame with the columns a
labelling round trip needs (`QUEUE_COLUMNS`: `text`, `predicted`, `confidence`, `request_id` and an empty
`label`); `resolve_request_ids(log, ids)` the logged rows of API requests, so a client can correct a
prediction by its request id. All of them need the texts in the log: `SENTIMENTKIT_PREDICTION_LOG_TEXT=
true` when the predictions were made; without them `NoTextInLogError` says so.

Strategies: `balanced` (the default, `feedback.DEFAULT_STRATEGY`), `representative`, `diverse`, `uncertain`,
`random`
(sentimentkit/feedback/review.py, pure functions over texts and probabilities) and `disagree`: the texts on which the fast model and the accurate one
(models/accurate) disagree most (largest total-variation distance between their probabilities), and
`frequent`: the texts logged most often (retweets, re-posts), the labels that make the performance
estimate right for the most predictions (docs/performance_estimate.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.errors import LabelsError, OptionError
from sentimentkit.feedback import DEFAULT_STRATEGY, QUEUE_STRATEGIES
from sentimentkit.feedback.review import select_for_review
from sentimentkit.io import storage
from sentimentkit.mlops.predlog import SCHEMA, _log_files, _partition_day, read_log
from sentimentkit.serving.loader import load_predictor

QUEUE_COLUMNS: tuple[str, ...] = ("text", "predicted", "confidence", "request_id", "label")
STRATEGIES = QUEUE_STRATEGIES
TEXT_SETTING = "SENTIMENTKIT_PREDICTION_LOG_TEXT=true"
LOOKUP_DAYS = 30  # request ids are looked up in this many days of the log


class NoTextInLogError(LabelsError):
    """The prediction log holds no texts (they are kept only with SENTIMENTKIT_PREDICTION_LOG_TEXT=true)."""


def no_text_message(log: str | Path) -> str:
    return (
        f"the prediction log {log} does not keep the texts, so there is nothing to show a person: set "
        f"{TEXT_SETTING} where predictions are made (API, predict, app), score some texts, then try again"
    )


def logged_predictions(log: str | Path) -> pd.DataFrame:
    """One row per distinct logged text (its latest prediction): `text`, `predicted`, `confidence`,
    `request_id`, `p_negative`, `p_neutral`, `p_positive`, `model_version`, `ts`, `times_logged`."""
    frame = read_log(log)
    frame = frame[frame["text"].notna()]
    if frame.empty:
        raise NoTextInLogError(no_text_message(log))
    times = frame["text"].map(frame["text"].value_counts())
    frame = frame.assign(times_logged=times).drop_duplicates("text", keep="last")
    frame = frame.rename(columns={"label": "predicted"})
    columns = [
        "text",
        "predicted",
        "confidence",
        "request_id",
        *(f"p_{c}" for c in LABELS),
        "model_version",
        "ts",
        "times_logged",
    ]
    return frame[columns].reset_index(drop=True)


def review_queue(log: str | Path, n: int, strategy: str = DEFAULT_STRATEGY, *, seed: int = 0,
                 exclude: Sequence[str] = (), accurate: Callable[[list[str]], np.ndarray] | None = None,
                 ) -> pd.DataFrame:  # fmt: skip
    """The `n` logged predictions most worth a label under `strategy`, most useful first, with an
    empty `label` column (`QUEUE_COLUMNS`). Texts in `exclude` (already labelled) are left out.
    `accurate`: probabilities of the second model for `disagree` (default: models/accurate)."""
    if strategy not in STRATEGIES:
        raise OptionError(f"unknown review strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise OptionError(f"--n must be at least 1, got {n}")
    frame = logged_predictions(log)
    frame = frame[~frame["text"].isin(set(exclude))].reset_index(drop=True)
    proba = frame[[f"p_{c}" for c in LABELS]].to_numpy(dtype=np.float64)
    texts = frame["text"].tolist()
    if strategy == "disagree":
        picks = select_disagreeing(proba, (accurate or accurate_proba)(texts), n)
    elif strategy == "frequent":
        picks = select_frequent(frame["times_logged"].to_numpy(), n)
    else:
        picks = select_for_review(texts, proba, n, strategy, seed=seed)
    queue = frame.iloc[np.asarray(picks, dtype=np.int64)].reset_index(drop=True)
    queue = queue[["text", "predicted", "confidence", "request_id"]].copy()
    queue["request_id"] = queue["request_id"].fillna("")
    queue["label"] = ""
    return queue


def select_frequent(times_logged: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` texts logged most often, ties by position (the log's order)."""
    times = np.asarray(times_logged, dtype=np.int64)
    return np.lexsort((np.arange(len(times)), -times))[:k]


def select_disagreeing(fast: np.ndarray, accurate: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` rows where the two models' probabilities differ most (different top
    labels first), ties by position."""
    fast, accurate = np.asarray(fast, dtype=np.float64), np.asarray(accurate, dtype=np.float64)
    distance = 0.5 * np.abs(fast - accurate).sum(axis=1)
    differ = fast.argmax(axis=1) != accurate.argmax(axis=1)
    order = np.lexsort((np.arange(len(distance)), -distance, ~differ))
    return order[: max(k, 0)]


def accurate_proba(texts: list[str]) -> np.ndarray:
    """Probabilities of the accurate model (SENTIMENTKIT_ACCURATE_MODEL, default models/accurate);
    one clear line when it cannot be loaded."""
    location = Settings.from_env().accurate_model_path
    try:
        predictor = load_predictor(location)
    except Exception as exc:  # a missing extra, a missing folder, a bad card: one line either way
        raise OptionError(
            f"the disagree strategy needs the accurate model at {location}, which cannot be loaded "
            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); set SENTIMENTKIT_ACCURATE_MODEL "
            "or choose another --strategy"
        ) from None
    return np.asarray(predictor.predict_proba(texts))


def resolve_request_ids(log: str | Path, ids: Sequence[str], days: int = LOOKUP_DAYS) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """request id -> its logged rows (text, predicted label, confidence, model version), oldest first.
    Ids the log does not hold are absent. Only the last `days` days of the log are searched (a
    correction follows its prediction; the whole log would be read on every call), and only the rows
    of these ids are read from each file."""
    from datetime import UTC, datetime, timedelta

    import pyarrow.parquet as pq

    wanted = sorted({i for i in ids if i})
    found: dict[str, list[dict[str, Any]]] = {}
    if not wanted:
        return found
    first_day = (datetime.now(UTC) - timedelta(days=days)).date()
    for path in (f for f in _log_files(str(log)) if _partition_day(f) >= first_day):
        with storage.local_input(path) as local:
            table = pq.read_table(local, schema=SCHEMA(), filters=[("request_id", "in", wanted)],
                                  columns=["ts", "request_id", "label", "confidence", "model_version", "text"])  # fmt: skip
        for row in table.to_pylist():
            found.setdefault(row["request_id"], []).append(row)
    return found
