"""Probability calibration that travels in the model card as plain numbers (never a pickle).

A calibrator maps a model's class probabilities p (rows sum to 1, classes in the card's label order)
to calibrated ones: p' = softmax(scale * log p + bias). Three methods, all of that one form:

- `none`: scale 1, bias 0 (p' = p);
- `temperature`: one scale 1/T for every class, bias 0 (Guo et al. 2017): fixes over/under-confidence;
- `vector`: a scale and a bias per class (diagonal vector scaling): also fixes a class the model
  predicts too often or too rarely.

`fit_calibrator` fits one method by minimising the negative log-likelihood of the labels;
`choose_calibrator` picks the method by k-fold cross-validated NLL on held-out data (never test),
then fits it on all of that data. Only the performance estimator applies it (mlops/estimate.py); the
served probabilities are never changed. `expected_confusion` / `confusion_scores` are the CBPE
arithmetic both sides share (training stores the reference's estimate, monitoring each window's).
Pure NumPy + scipy.optimize.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimentkit.errors import OptionError

METHODS = ("none", "temperature", "vector")
FLOOR = 1e-12  # log(0) is undefined: probabilities are floored before the log


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def apply_calibrator(proba: np.ndarray, calibrator: dict[str, Any] | None) -> np.ndarray:
    """`proba` (n x k) calibrated by `calibrator` (a card's `calibration` dict); unchanged when None."""
    proba = np.asarray(proba, dtype=float)
    if not calibrator or calibrator.get("method", "none") == "none":
        return proba
    scale = np.asarray(calibrator["scale"], dtype=float)
    bias = np.asarray(calibrator["bias"], dtype=float)
    return _softmax(np.log(np.maximum(proba, FLOOR)) * scale + bias)


def nll(proba: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of integer labels `y` under `proba`."""
    return float(-np.mean(np.log(np.maximum(proba[np.arange(len(y)), y], FLOOR))))


def fit_calibrator(proba: np.ndarray, y: Sequence[int], method: str, labels: Sequence[str]) -> dict[str, Any]:
    """The calibrator of `method` minimising the NLL of integer labels `y` (indices into `labels`)."""
    from scipy.optimize import minimize

    if method not in METHODS:
        raise OptionError(f"unknown calibration method {method!r}; use one of {METHODS}")
    k = proba.shape[1]
    y = np.asarray(y, dtype=int)
    logp = np.log(np.maximum(np.asarray(proba, dtype=float), FLOOR))
    if method == "none":
        scale, bias = np.ones(k), np.zeros(k)
    elif method == "temperature":
        res = minimize(lambda t: nll(_softmax(logp * t[0]), y), x0=[1.0], method="L-BFGS-B",
                       bounds=[(0.05, 20.0)])  # fmt: skip
        scale, bias = np.full(k, float(res.x[0])), np.zeros(k)
    else:

        def loss(theta: np.ndarray) -> float:
            return nll(_softmax(logp * theta[:k] + theta[k:]), y) + 1e-4 * float(np.sum(theta[k:] ** 2))

        res = minimize(loss, x0=np.r_[np.ones(k), np.zeros(k)], method="L-BFGS-B",
                       bounds=[(0.05, 20.0)] * k + [(-5.0, 5.0)] * k)  # fmt: skip
        scale, bias = res.x[:k], res.x[k:] - res.x[k:].mean()  # softmax ignores a common shift
    return {"method": method, "labels": list(labels), "scale": [round(float(s), 6) for s in scale],
            "bias": [round(float(b), 6) for b in bias]}  # fmt: skip


def choose_calibrator(
    proba: np.ndarray, y: Sequence[int], labels: Sequence[str], folds: int = 5, seed: int = 0
) -> tuple[dict[str, Any], dict[str, float]]:
    """(calibrator, cross-validated NLL per method): the method with the lowest k-fold NLL on this
    held-out data, refitted on all of it. `none` wins ties (fewer numbers, nothing to go wrong)."""
    proba, y = np.asarray(proba, dtype=float), np.asarray(y, dtype=int)
    order = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(order, folds)
    scores: dict[str, float] = {}
    for method in METHODS:
        losses = []
        for i, test in enumerate(parts):
            train = np.concatenate([p for j, p in enumerate(parts) if j != i])
            cal = fit_calibrator(proba[train], y[train], method, labels)
            losses.append(nll(apply_calibrator(proba[test], cal), y[test]) * len(test))
        scores[method] = float(np.sum(losses) / len(y))
    best = min(METHODS, key=lambda m: (round(scores[m], 4), METHODS.index(m)))
    return fit_calibrator(proba, y, best, labels), scores


def expected_confusion(proba: np.ndarray, predicted: Sequence[int]) -> np.ndarray:
    """CBPE's expected confusion matrix E[C] (k x k, rows true, columns predicted): column j sums the
    probability rows of the texts predicted j (E[C_ij] = sum of p_i over texts predicted j)."""
    proba = np.asarray(proba, dtype=float)
    one_hot = np.eye(proba.shape[1])[np.asarray(predicted, dtype=int)]  # n x k
    return proba.T @ one_hot


def confusion_scores(confusion: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """AvgRec, accuracy and per-class recall of a (possibly expected, fractional) confusion matrix.
    A class with no (expected) members has no recall; AvgRec averages the classes that have one."""
    c = np.asarray(confusion, dtype=float)
    support = c.sum(axis=1)
    recall = np.where(support > 0, np.diag(c) / np.where(support > 0, support, 1), np.nan)
    return {
        "avg_recall": float(np.nanmean(recall)) if np.isfinite(recall).any() else float("nan"),
        "accuracy": float(np.trace(c) / c.sum()) if c.sum() else float("nan"),
        "recall": {label: float(r) for label, r in zip(labels, recall)},
    }


def calibration_errors(
    proba: np.ndarray, y: Sequence[int], labels: Sequence[str], bins: int = 10
) -> dict[str, Any]:
    """Expected calibration error (equal-width bins): top-label (confidence vs accuracy) and per class
    (one-vs-rest: mean p_c vs the share that is c, over bins of p_c), plus the NLL."""
    proba, y = np.asarray(proba, dtype=float), np.asarray(y, dtype=int)
    edges = np.linspace(0, 1, bins + 1)[1:-1]

    def ece(score: np.ndarray, hit: np.ndarray) -> float:
        which = np.digitize(score, edges)
        total = 0.0
        for b in np.unique(which):
            mask = which == b
            total += mask.sum() * abs(score[mask].mean() - hit[mask].mean())
        return float(total / len(score)) if len(score) else 0.0

    top = ece(proba.max(axis=1), (proba.argmax(axis=1) == y).astype(float))
    per_class = {label: ece(proba[:, c], (y == c).astype(float)) for c, label in enumerate(labels)}
    return {"top_label": top, "per_class": per_class, "nll": nll(proba, y)}
