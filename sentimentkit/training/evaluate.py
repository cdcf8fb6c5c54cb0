"""Metrics (SemEval-2017 Task 4A: AvgRec, F1^PN, macro-F1, accuracy), calibration and error analysis."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from sentimentkit import LABELS

_EMOJI_RE = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf]")
_NEGATION_RE = re.compile(r"\b(?:not|no|never|nothing|none|nobody|cannot)\b|n['\u2019]t\b", re.I)
_URL_RE = re.compile(r"https?://|www\.", re.I)


def metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str] = LABELS) -> dict[str, Any]:
    """AvgRec (macro recall), F1^PN, macro-F1, accuracy, per-class table and confusion matrix.

    Over `labels` only (e.g. the labels present in a small set of corrections); F1^PN is then the mean
    F1 of the polar labels among them (0.0 when neither is)."""
    labels = list(labels)
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    f1 = dict(zip(labels, f))
    polar = [f1[label] for label in ("positive", "negative") if label in f1]
    return {
        "avg_recall": float(np.mean(r)),
        "f1_pn": float(np.mean(polar)) if polar else 0.0,
        "macro_f1": float(np.mean(f)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "n": int(len(y_true)),
        "labels": labels,
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "per_class": {
            label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, label in enumerate(labels)
        },
    }


def expected_calibration_error(
    proba: np.ndarray, y_true: Sequence[str], labels: Sequence[str] = LABELS, bins: int = 10
) -> float:
    """Top-label ECE: |accuracy - confidence| averaged over equal-width confidence bins."""
    table = reliability_table(proba, y_true, labels, bins)
    n = table["count"].sum()
    return float((table["count"] * (table["accuracy"] - table["confidence"]).abs()).sum() / n) if n else 0.0


def reliability_table(
    proba: np.ndarray, y_true: Sequence[str], labels: Sequence[str] = LABELS, bins: int = 10
) -> pd.DataFrame:
    """Per confidence bin: count, mean confidence and accuracy (for a reliability diagram)."""
    proba = np.asarray(proba)
    conf = proba.max(axis=1)
    correct = np.asarray(labels)[proba.argmax(axis=1)] == np.asarray(y_true)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        rows.append({
            "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
            "count": int(mask.sum()),
            "confidence": float(conf[mask].mean()) if mask.any() else float("nan"),
            "accuracy": float(correct[mask].mean()) if mask.any() else float("nan"),
        })  # fmt: skip
    return pd.DataFrame(rows).fillna({"confidence": 0.0, "accuracy": 0.0})


def format_report(result: dict[str, Any]) -> str:
    """Human-readable report: headline metrics, per-class table, confusion matrix."""
    lines = [
        f"n = {result['n']}",
        f"AvgRec (macro recall) {result['avg_recall']:.4f}   F1^PN {result['f1_pn']:.4f}   "
        f"macro-F1 {result['macro_f1']:.4f}   accuracy {result['accuracy']:.4f}",
        "",
        f"{'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}",
    ]
    for label, row in result["per_class"].items():
        lines.append(
            f"{label:<10}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}"
        )
    lines += ["", "confusion matrix (rows = true, columns = predicted)", " " * 10 + "".join(
        f"{label:>10}" for label in result["labels"])]  # fmt: skip
    for label, row in zip(result["labels"], result["confusion_matrix"]):
        lines.append(f"{label:<10}" + "".join(f"{v:>10}" for v in row))
    return "\n".join(lines)


def slice_flags(texts: Sequence[str]) -> pd.DataFrame:
    """Boolean slices for error analysis: negation, emoji, hashtag, URL present; length bucket."""
    s = pd.Series(list(texts), dtype=str)
    length = s.str.len()
    return pd.DataFrame({
        "negation": s.str.contains(_NEGATION_RE),
        "emoji": s.str.contains(_EMOJI_RE),
        "hashtag": s.str.contains("#", regex=False),
        "url": s.str.contains(_URL_RE),
        "length": pd.cut(length, [-1, 60, 100, 130, 10_000], labels=["<=60", "61-100", "101-130", ">130"]),
    })  # fmt: skip


def slice_accuracy(texts: Sequence[str], y_true: Sequence[str], y_pred: Sequence[str]) -> pd.DataFrame:
    """Accuracy and macro recall per slice (and its complement), with the slice size."""
    flags = slice_flags(texts)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rows = []
    for name in ["negation", "emoji", "hashtag", "url"]:
        for value in (True, False):
            mask = (flags[name] == value).to_numpy()
            rows.append(_slice_row(f"{name}={'yes' if value else 'no'}", mask, y_true, y_pred))
    for bucket in flags["length"].cat.categories:
        rows.append(_slice_row(f"length {bucket}", (flags["length"] == bucket).to_numpy(), y_true, y_pred))
    return pd.DataFrame(rows)


def _slice_row(name: str, mask: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    if not mask.any():
        return {"slice": name, "n": 0, "accuracy": float("nan"), "avg_recall": float("nan")}
    m = metrics(y_true[mask], y_pred[mask])
    return {"slice": name, "n": int(mask.sum()), "accuracy": m["accuracy"], "avg_recall": m["avg_recall"]}


def confident_mistakes(
    texts: Sequence[str],
    y_true: Sequence[str],
    proba: np.ndarray,
    labels: Sequence[str] = LABELS,
    k: int = 15,
) -> pd.DataFrame:
    """The `k` wrong predictions the model was most sure of."""
    proba = np.asarray(proba)
    pred = np.asarray(labels)[proba.argmax(axis=1)]
    frame = pd.DataFrame({"text": list(texts), "true": list(y_true), "predicted": pred,
                          "confidence": proba.max(axis=1)})  # fmt: skip
    wrong = frame[frame["true"] != frame["predicted"]]
    return wrong.sort_values("confidence", ascending=False).head(k).reset_index(drop=True)
