"""Fit on train (newer tweets weigh more), choose on a temporal holdout of train, report validation and
test, write model.pkl + model.json."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from sentimentkit.config import SPLITS
from sentimentkit.data import load_split, near_duplicates_of
from sentimentkit.models.card import PICKLE_FORMAT, code_version, data_provenance, library_versions, new_card
from sentimentkit.models.pipeline import build_pipeline, save_model
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training.evaluate import expected_calibration_error, metrics
from sentimentkit.training.offsets import tune_logit_offsets
from sentimentkit.training.performance import performance_reference
from sentimentkit.training.profile import pipeline_reference

# Chosen on the temporal holdout by benchmarks/model_selection.py (table: benchmarks/model_selection.md).
CHOSEN_PARAMS: dict[str, Any] = {
    "C": 0.25,
    "class_weight": "balanced",
    "word_max_n": 2,
    "char_ngram_range": (2, 5),
    "lexicons": ("vader", "afinn"),
    "lexicon_weight": 1.0,
    "char_weight": 1.0,
    "bias_tuning": False,
    "recency_beta": 2.0,
}
SEARCH_GRID: dict[str, list[Any]] = {
    "C": [0.25, 0.5],
    "recency_beta": [0.0, 1.0, 2.0, 3.0],
}
HOLDOUT_FRACTION = 0.2
LIBRARIES = ("scikit-learn", "scipy", "nltk", "numpy", "pandas")

Log = Callable[[str], None]


def load_splits(directory: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Load train, validation and test from the data directory."""
    return {split: load_split(split, directory) for split in SPLITS}


def clean_validation(splits: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Validation rows with no near-duplicate (same text once URLs/mentions are dropped) in train.

    About 18% of the validation tweets are re-posts of training tweets; scoring on them rewards
    memorising train, so choices are made on the rest. (Test has none.)
    """
    val = splits["validation"]
    return val[~near_duplicates_of(val, splits["train"]).to_numpy()].reset_index(drop=True)


def recency_weights(n: int, beta: float) -> np.ndarray:
    """Sample weights exp(beta * t) for rows in time order, t = position / n in [0, 1); mean 1.

    train.csv runs from 2013 to 2016 and users score later tweets, so later rows count more:
    with beta = 2 the newest tweet weighs e^2 = 7.4 times the oldest. beta = 0 gives equal weights.
    """
    w = np.exp(beta * np.arange(n) / max(n, 1))
    return w / w.mean()


def fit_pipeline(train: pd.DataFrame, params: dict[str, Any], extra: pd.DataFrame | None = None) -> Pipeline:
    """Fit the pipeline on the training frame, which must be in time order when `recency_beta` > 0
    (rows weighted by `recency_weights`, on top of the class weights; `bias_tuning` is applied
    separately).

    `extra` rows (`text`, `label`, `weight`: e.g. a teacher's pseudo-labels, see training/distill.py)
    are appended after the gold rows with their own weights; the vocabulary is fitted on both.
    """
    model_params = {k: v for k, v in params.items() if k not in ("bias_tuning", "recency_beta")}
    beta = float(params.get("recency_beta") or 0.0)
    weights = recency_weights(len(train), beta) if beta else None
    texts, labels = train["text"].tolist(), train["label"].tolist()
    if extra is not None and len(extra):
        weights = np.concatenate([np.ones(len(train)) if weights is None else weights, extra["weight"]])
        texts, labels = texts + extra["text"].tolist(), labels + extra["label"].tolist()
    fit_params = {"clf__sample_weight": weights} if weights is not None else {}
    return build_pipeline(model_params).fit(texts, labels, **fit_params)


def tune_class_bias(pipeline: Pipeline, validation: pd.DataFrame) -> np.ndarray:
    """Logit offsets (negative, neutral=0, positive) maximising validation AvgRec (`offsets`, ties
    to the first in grid order); applied in place."""
    scores = pipeline.decision_function(validation["text"].tolist())
    offsets, _ = tune_logit_offsets(scores, validation["label"], pipeline.classes_, ties="grid")
    pipeline.named_steps["clf"].intercept_ = pipeline.named_steps["clf"].intercept_ + offsets
    return offsets


def evaluate_pipeline(pipeline: Pipeline, frame: pd.DataFrame) -> dict[str, Any]:
    """Metrics plus top-label ECE for a fitted pipeline on a labelled frame."""
    proba = pipeline.predict_proba(frame["text"].tolist())
    pred = np.asarray(pipeline.classes_)[proba.argmax(axis=1)]
    result = metrics(frame["label"], pred)
    result["ece"] = expected_calibration_error(proba, frame["label"].tolist())
    return result


def temporal_split(
    train: pd.DataFrame, fraction: float = HOLDOUT_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(older part, newest `fraction`) of train.csv, which is in time order (2013 sets first, 2016 last).

    The test set is a later period again, so this split is what selection is judged on.
    """
    cut = int(len(train) * (1 - fraction))
    return train.iloc[:cut], train.iloc[cut:]


def fit_candidate(
    splits: dict[str, pd.DataFrame],
    params: dict[str, Any],
    holdout: bool = False,
    clean: pd.DataFrame | None = None,
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit one candidate on train (bias tuned on clean validation if asked); return it and its scores.

    With `holdout`, the same candidate is also fitted on the older 80% of train and scored on the
    newest 20% (`record["holdout"]`), the selection criterion. `clean` is `clean_validation(splits)`
    when the caller already has it.
    """
    if clean is None:
        clean = clean_validation(splits)
    if clean.empty:  # every validation tweet is re-posted in train (tiny or synthetic data)
        clean = splits["validation"]
    start = time.perf_counter()
    pipeline = fit_pipeline(splits["train"], params)
    if params.get("bias_tuning"):
        tune_class_bias(pipeline, clean)
    seconds = time.perf_counter() - start
    record = {
        "params": params,
        "train_seconds": seconds,
        "validation": evaluate_pipeline(pipeline, splits["validation"]),
        "clean_validation": evaluate_pipeline(pipeline, clean),
    }
    if holdout:
        older, newest = temporal_split(splits["train"])
        record["holdout"] = evaluate_pipeline(fit_pipeline(older, params), newest)
    return pipeline, record


def grid(base: dict[str, Any], search: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of `search` values layered over `base`."""
    keys = list(search)
    return [{**base, **dict(zip(keys, values))} for values in itertools.product(*(search[k] for k in keys))]


def select(
    splits: dict[str, pd.DataFrame], candidates: list[dict[str, Any]], log: Log = print
) -> tuple[Pipeline, dict[str, Any], list[dict[str, Any]]]:
    """Fit every candidate; keep the best by temporal-holdout AvgRec (recorded in the card even for one).

    Test is only recorded, never used to choose.
    """
    best: tuple[Pipeline, dict[str, Any]] | None = None
    table = []
    clean = clean_validation(splits)  # once: it tokenises all of train
    for params in candidates:
        pipeline, record = fit_candidate(splits, params, holdout=True, clean=clean)
        record["test"] = evaluate_pipeline(pipeline, splits["test"])  # recorded, never used to choose
        table.append(record)
        log(f"{params} val AvgRec {record['validation']['avg_recall']:.4f} "
            f"test AvgRec {record['test']['avg_recall']:.4f} ({record['train_seconds']:.0f}s)")  # fmt: skip
        if best is None or record["holdout"]["avg_recall"] > best[1]["holdout"]["avg_recall"]:
            best = (pipeline, record)
    assert best is not None
    return best[0], best[1], table


def tfidf_card(
    params: dict[str, Any], data_dir: Path | None, splits: dict[str, pd.DataFrame],
    scores: dict[str, dict[str, Any]], train_seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """The model card (the common schema of `models.card`): provenance, hyperparameters, versions, metrics."""
    hyperparameters = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
    return new_card("sentimentkit-tfidf-lr", PICKLE_FORMAT, "", hyperparameters,
                    data_provenance(data_dir, splits), train_seconds, library_versions(LIBRARIES), scores,
                    code=code_version())  # fmt: skip


def train(
    data_dir: str | Path | None = None,
    out: str | Path = "model.pkl",
    params: dict[str, Any] | None = None,
    search: bool = False,
    log: Log = print,
) -> dict[str, Any]:
    """Train the default (or searched) model on train, evaluate, and write `out` + its card."""
    splits = load_splits(data_dir)
    base = {**CHOSEN_PARAMS, **(params or {})}
    candidates = grid(base, SEARCH_GRID) if search else [base]
    pipeline, record, _ = select(splits, candidates, log=log)
    return save_trained(pipeline, record, splits, data_dir, out)


def save_trained(
    pipeline: Pipeline, record: dict[str, Any], splits: dict[str, pd.DataFrame],
    data_dir: str | Path | None, out: str | Path,
) -> dict[str, Any]:  # fmt: skip
    """Write a fitted candidate (`fit_candidate`'s record, with "test" added) and its card to `out`."""
    scores = {k: record[k] for k in ("holdout", "validation", "clean_validation", "test") if k in record}
    card = tfidf_card(
        record["params"], Path(data_dir) if data_dir else None, splits, scores, record["train_seconds"]
    )
    card["reference"] = pipeline_reference(
        pipeline, card, splits["validation"]["text"].tolist(), "validation.csv"
    )
    clean = clean_validation(splits)
    card["reference"]["performance"] = performance_reference(
        Predictor(pipeline, card), splits["validation"], clean if not clean.empty else splits["validation"]
    )
    return save_model(pipeline, out, card)
