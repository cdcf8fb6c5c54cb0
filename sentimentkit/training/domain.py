"""Teach the model a user's domain from a few hundred corrections (issue 22): `fit_domain_model`.

What is fitted: the head of `models.domain` (logits = M @ base logits + V @ x + c over the base model's
own TF-IDF features, folded into one linear model) on the corrections; the base model's 48k SemEval
rows are not refitted (appending a few hundred rows to them moved Apple AvgRec by at most +0.8
points, benchmarks/domain_learning.md).

The weighting rule (`models.domain.class_balanced_weights`): every class weighs the same in total
(the score is macro recall, and a domain's classes are rarely balanced) and every near-duplicate group
(`data.near_duplicate_key`: re-posts, retweets) weighs as one text within its class.

The anchor: `N_ANCHOR` general texts (a seeded sample of the base model's own training tweets, given
as `anchor_texts`) join the fit with the base model's probabilities as their targets, together
weighing `ANCHOR_WEIGHT` times the corrections. The head may then change the base model's answers on
general text only as far as the corrections pay for it: on development splits of the Apple tweets,
at C = 2 and 200-500 corrections, it cut the loss on SemEval validation (the retrain gate's guard,
which allows 3 points) from 3-6 to 1-1.6 AvgRec points at about the same gain on the domain
(benchmarks/domain_learning.md, "How the choices were made").

`C` (how far the corrections may pull the model from the base) is fixed at `DEFAULT_C`, the L2
convention of scikit-learn (the loss is summed over rows, so more corrections pull harder). It was
chosen on development splits: choosing it per user by cross-validation within a few hundred
corrections (the first version) gained less at 500 corrections with every strategy tried (random
picks: +3.3 points against +5.5 for a fixed C = 1). A `grid` of several values brings that
cross-validation back:
`N_FOLDS`-fold, grouped by near-duplicate key (a re-post never sits on both sides), stratified by
label; the `C` with the highest out-of-fold AvgRec wins, ties going to the smaller `C`.
"""

from __future__ import annotations

import hashlib
import pickle
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.pipeline import Pipeline

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.data import near_duplicate_key
from sentimentkit.errors import LabelsError
from sentimentkit.models.card import PICKLE_FORMAT, library_versions, new_card
from sentimentkit.models.domain import MIX_PENALTY, class_balanced_weights, fit_head_on_features, fold
from sentimentkit.models.pipeline import load_model, save_model

__all__ = [
    "ANCHOR_WEIGHT",
    "anchor_sample",
    "C_GRID",
    "DEFAULT_C",
    "MIN_PER_CLASS",
    "N_ANCHOR",
    "N_FOLDS",
    "WEIGHTING_RULE",
    "fit_domain_model",
    "out_of_fold",
    "save_domain_model",
]

DEFAULT_C = 2.0
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)  # for a caller that asks for cross-validation (`grid=C_GRID`)
ANCHOR_WEIGHT = 1.0  # the anchor texts together weigh this many times the corrections
N_ANCHOR = 1000  # general texts sampled for the anchor
N_FOLDS = 5
MIN_PER_CLASS = 2  # corrections of each label needed: one per side of a cross-validation split
WEIGHTING_RULE = "class-balanced; each near-duplicate group counts once within its class"
LIBRARIES = ("scikit-learn", "numpy", "pandas")


def _avg_recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(recall_score(y_true, y_pred, labels=list(LABELS), average="macro", zero_division=0))


def _check_corrections(corrections: pd.DataFrame) -> pd.DataFrame:
    """The corrections' `text` and `label` columns, checked; ValueError with one line otherwise."""
    missing = [c for c in ("text", "label") if c not in corrections.columns]
    if missing:
        raise LabelsError(f"the corrections have no {' or '.join(missing)} column; they need text and label")
    frame = corrections[["text", "label"]].reset_index(drop=True)
    bad_label = ~frame["label"].isin(LABELS)
    if bad_label.any():
        row = int(np.flatnonzero(bad_label.to_numpy())[0])
        raise LabelsError(
            f"correction row {row + 1} has label {str(frame['label'][row])[:40]!r}; "
            f"labels must be one of {', '.join(LABELS)}"
        )
    bad_text = ~frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip()))
    if bad_text.any():
        row = int(np.flatnonzero(bad_text.to_numpy())[0])
        raise LabelsError(f"correction row {row + 1} has no text; every correction needs the tweet's text")
    counts = frame["label"].value_counts()
    short = [
        f"{label} ({int(counts.get(label, 0))})" for label in LABELS if counts.get(label, 0) < MIN_PER_CLASS
    ]
    if short:
        raise LabelsError(
            f"too few corrections of {', '.join(short)}: label at least {MIN_PER_CLASS} tweets of each "
            "sentiment before teaching the model your domain"
        )
    return frame


def _open_base(base: str | Path | Pipeline, settings: Settings | None) -> tuple[Pipeline, str]:
    """(the base pipeline, the SHA-256 of its pickle): a path is loaded through the verified loader."""
    if isinstance(base, Pipeline):
        return base, hashlib.sha256(pickle.dumps(base, protocol=5)).hexdigest()
    pipeline, card = load_model(base, settings=settings)
    return pipeline, str(next(iter(card["files"].values())))


def _predict_fold(base: Pipeline, X: Any, y: np.ndarray, groups: np.ndarray, train: np.ndarray,
                  test: np.ndarray, C: float, anchor: Any, anchor_weight: float) -> np.ndarray | None:  # fmt: skip
    """The labels a head fitted on rows `train` gives rows `test`; None when `train` lacks a class."""
    weights = class_balanced_weights(y[train], groups[train])
    try:
        head = fit_head_on_features(base, X[train], y[train], C, weights, anchor=anchor,
                                    anchor_weight=anchor_weight)  # fmt: skip
    except ValueError:  # a fold without one class
        return None
    folded = fold(base, head, C, len(train)).named_steps["clf"]
    return folded.classes_[np.argmax(X[test] @ folded.coef_.T + folded.intercept_, axis=1)]


def cross_validate(
    base: Pipeline,
    X: Any,
    y: np.ndarray,
    groups: np.ndarray,
    seed: int,
    grid: tuple[float, ...] = C_GRID,
    anchor: Any = None,
    anchor_weight: float = 0.0,
) -> tuple[dict[float, float], int]:
    """Out-of-fold AvgRec of the head for each C (grouped, stratified folds); and the folds used."""
    per_class_groups = min(len(set(groups[y == label])) for label in LABELS)
    n_folds = max(2, min(N_FOLDS, per_class_groups))
    folds = list(StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed).split(X, y, groups))
    scores = {}
    for C in grid:
        pred = np.empty(len(y), dtype=object)
        for train, test in folds:  # a fold without one class is left out of the score
            pred[test] = _predict_fold(base, X, y, groups, train, test, C, anchor, anchor_weight)
        known = pred != None  # noqa: E711 - elementwise on an object array
        scores[C] = _avg_recall(y[known], pred[known].astype(str)) if known.any() else 0.0
    return scores, n_folds


def out_of_fold(
    base: Pipeline,
    corrections: pd.DataFrame,
    judged: Sequence[bool],
    seed: int = 0,
    anchor_texts: Sequence[str] | None = None,
    n_folds: int = N_FOLDS,
    C: float = DEFAULT_C,
    anchor_weight: float = ANCHOR_WEIGHT,
) -> tuple[list[str | None], int]:
    """What `fit_domain_model` (same C, weighting and anchor) would answer for the `judged` rows of
    `corrections` had it not seen them: (their labels in row order, the number of folds).

    The judged rows are split into `n_folds` folds, grouped by near-duplicate text and stratified by
    label; each fold is answered by a head fitted on every other row of `corrections` (the unjudged
    rows always train), its re-posts excluded too. One judged group makes one fold. A fold whose
    training rows lack a class cannot be fitted: its rows are answered None (the gate leaves them out
    and counts them). Nothing to judge: ([], 0).
    This is how the retrain gate judges the recipe on all corrections and then promotes the model
    fitted on all of them (sentimentkit/mlops/retrain.py)."""
    frame = _check_corrections(corrections)
    mask = np.asarray(judged, dtype=bool)
    X, y, groups, A, anchor_weight = _prepare(base, frame, seed, anchor_texts, anchor_weight)
    rows = np.flatnonzero(mask)
    pred = np.full(len(rows), None, dtype=object)
    n_groups = len(set(groups[rows].tolist()))
    if not n_groups:
        return [], 0
    k = min(n_folds, n_groups)
    if k < 2:  # one judged group: one fold, answered by a head fitted on every other correction
        folds = [np.arange(len(rows))]
    else:
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # a class with fewer groups than folds: stratified as far as it goes
            warnings.simplefilter("ignore", UserWarning)
            folds = [test for _, test in splitter.split(rows, y[rows], groups[rows])]
    for test in folds:
        test_rows = rows[test]
        train = np.flatnonzero(~np.isin(groups, groups[test_rows]))
        pred[test] = _predict_fold(base, X, y, groups, train, test_rows, C, A, anchor_weight)
    return [None if p is None else str(p) for p in pred], len(folds)


def _prepare(pipeline: Pipeline, frame: pd.DataFrame, seed: int, anchor_texts: Sequence[str] | None,
             anchor_weight: float) -> tuple[Any, np.ndarray, np.ndarray, Any, float]:  # fmt: skip
    """(features, labels, near-duplicate groups, anchor features or None, anchor weight) of checked
    corrections: what every fit of the head starts from."""
    texts = frame["text"].tolist()
    y = frame["label"].to_numpy(dtype=object)
    groups = np.asarray([near_duplicate_key(t) or f"\x00{i}" for i, t in enumerate(texts)], dtype=object)
    vectorizer = pipeline.named_steps["features"]
    anchor = anchor_sample(anchor_texts, seed) if anchor_texts is not None else []
    A = vectorizer.transform(anchor) if anchor else None
    return vectorizer.transform(texts), y, groups, A, (anchor_weight if anchor else 0.0)


def anchor_sample(texts: Sequence[str], seed: int = 0, n: int = N_ANCHOR) -> list[str]:
    """A seeded sample of `n` distinct non-blank texts (all of them when fewer): the anchor."""
    distinct = sorted({t for t in texts if isinstance(t, str) and t.strip()})
    if len(distinct) <= n:
        return distinct
    rng = np.random.default_rng(seed)
    return [distinct[i] for i in sorted(rng.choice(len(distinct), n, replace=False).tolist())]


def fit_domain_model(
    base: str | Path | Pipeline,
    corrections: pd.DataFrame,
    seed: int = 0,
    grid: tuple[float, ...] = (DEFAULT_C,),
    settings: Settings | None = None,
    anchor_texts: Sequence[str] | None = None,
    anchor_weight: float = ANCHOR_WEIGHT,
) -> tuple[Pipeline, dict[str, Any]]:
    """Adapt `base` (a model.pkl path, loaded verified, or a fitted pipeline) to the domain of
    `corrections` (a frame with `text` and `label`); returns (the adapted pipeline, the fit's report).

    `anchor_texts`: general texts the head should keep answering as the base does (a sample of
    `N_ANCHOR` is taken, seeded; None: no anchor). `C` is `DEFAULT_C`, or chosen from `grid` by
    cross-validation within the corrections when it holds several values (module doc); the holdout a
    caller gates on is never seen. Raises ValueError with one line for unusable corrections.
    """
    started = time.perf_counter()
    frame = _check_corrections(corrections)
    pipeline, base_sha = _open_base(base, settings)
    X, y, groups, A, anchor_weight = _prepare(pipeline, frame, seed, anchor_texts, anchor_weight)
    if len(grid) > 1:
        cv, n_folds = cross_validate(pipeline, X, y, groups, seed, grid, A, anchor_weight)
        best: float | None = max(cv.values())
        chosen = min(C for C, score in cv.items() if score >= best - 1e-12)
        selection = (
            f"{n_folds}-fold cross-validation within the corrections, grouped by near-duplicate text, "
            "stratified by label; highest out-of-fold AvgRec, ties to the smaller C"
        )
    else:
        cv, best, chosen = {}, None, float(grid[0])
        selection = "fixed C (chosen on development splits, benchmarks/domain_learning_dev.py)"
    weights = class_balanced_weights(y, groups)
    head = fit_head_on_features(pipeline, X, y, chosen, weights, anchor=A, anchor_weight=anchor_weight)
    model = fold(pipeline, head, chosen, len(y))
    base_clf = pipeline.named_steps["clf"]
    base_pred = base_clf.classes_[np.argmax(X @ base_clf.coef_.T + base_clf.intercept_, axis=1)]
    report = {
        "base_model_sha256": base_sha,
        "n_corrections": len(y),
        "n_groups": len(set(groups.tolist())),
        "label_counts": {label: int((y == label).sum()) for label in LABELS},
        "weighting": WEIGHTING_RULE,
        "selection": selection,
        "seed": seed,
        "mix_penalty": MIX_PENALTY,
        "anchor": {"texts": 0 if A is None else A.shape[0], "weight": anchor_weight},
        "cv_avg_recall": {str(C): round(score, 4) for C, score in cv.items()},
        "base_avg_recall_on_corrections": round(_avg_recall(y, base_pred.astype(str)), 4),
        "chosen": {"C": chosen, "cv_avg_recall": None if best is None else round(best, 4)},
        "fit_seconds": round(time.perf_counter() - started, 1),
    }
    return model, report


def save_domain_model(
    model: Pipeline, path: str | Path, report: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Write the adapted model and its card (what it is: the base model's SHA-256, the number of
    corrections, the hyperparameters, the anchor and any cross-validation scores). Returns the card."""
    card = new_card(
        name="sentimentkit-tfidf-lr-domain",
        fmt=PICKLE_FORMAT,
        version_tag="domain",
        hyperparameters={
            "C": report["chosen"]["C"],
            "mix_penalty": report["mix_penalty"],
            "weighting": report["weighting"],
            "selection": report["selection"],
            "anchor": report.get("anchor"),
        },
        training_data={
            "base_model": {"sha256": report["base_model_sha256"]},
            "corrections": {
                "rows": report["n_corrections"],
                "groups": report["n_groups"],
                "labels": report["label_counts"],
            },
        },
        train_seconds=float(report.get("fit_seconds", 0.0)),
        libraries=library_versions(LIBRARIES),
        metrics={
            "base_on_corrections": {"avg_recall": report["base_avg_recall_on_corrections"]},
            **(
                {
                    "corrections_cv": {
                        "avg_recall": report["chosen"]["cv_avg_recall"],
                        "n": report["n_corrections"],
                    }
                }
                if report["chosen"]["cv_avg_recall"] is not None
                else {}
            ),
        },
    )
    card["domain"] = {k: report[k] for k in ("cv_avg_recall", "seed", "n_groups")}
    return save_model(model, path, card, settings)
