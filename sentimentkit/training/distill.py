"""Distillation: a teacher (the transformer) labels unlabeled tweets; the fast model learns from them.

The student is today's TF-IDF pipeline fitted on gold train plus pool rows that carry the teacher's
label, either its top label (`hard`) or all three labels weighted by its probabilities (`soft`).
The plan and adoption rule are in benchmarks/distillation_plan.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.errors import ModelError
from sentimentkit.serving.base import BasePredictor

TEACHER_CHUNK = 4096


def teacher_proba(teacher: BasePredictor, texts: Sequence[str], log: bool = False) -> np.ndarray:
    """The teacher's class probabilities for `texts`, (n, 3) in LABELS order, scored in chunks."""
    if tuple(teacher.labels) != LABELS:
        raise ModelError(f"the teacher's labels {teacher.labels} are not {LABELS}")
    parts = []
    for start in range(0, len(texts), TEACHER_CHUNK):
        parts.append(teacher.predict_proba(list(texts[start : start + TEACHER_CHUNK])))
        if log:
            print(f"teacher: {min(start + TEACHER_CHUNK, len(texts)):,}/{len(texts):,}", flush=True)
    return np.vstack(parts) if parts else np.zeros((0, len(LABELS)))


def pseudo_labelled(
    texts: Sequence[str], proba: np.ndarray, weight: float, cutoff: float = 0.0, soft: bool = False
) -> pd.DataFrame:
    """Pool rows as training rows (`text`, `label`, `weight`).

    Rows whose top probability is below `cutoff` are left out. `hard` gives each kept row its top label
    with weight `weight`; `soft` gives it three rows, one per label, weighted `weight * p(label)`.
    """
    proba = np.asarray(proba, dtype=np.float64)
    keep = proba.max(axis=1) >= cutoff
    kept_texts = np.asarray(texts, dtype=object)[keep]
    kept = proba[keep]
    if not soft:
        labels = np.asarray(LABELS, dtype=object)[kept.argmax(axis=1)]
        return pd.DataFrame({"text": kept_texts, "label": labels, "weight": weight})
    frames = [
        pd.DataFrame({"text": kept_texts, "label": label, "weight": weight * kept[:, k]})
        for k, label in enumerate(LABELS)
    ]
    return pd.concat(frames, ignore_index=True)
