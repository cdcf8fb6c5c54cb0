"""Distillation: the teacher's labels become weighted training rows, and they change the student."""

import numpy as np
import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.training.distill import pseudo_labelled, teacher_proba
from sentimentkit.training.train import fit_pipeline

PROBA = np.array([[0.9, 0.05, 0.05], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
TEXTS = ["awful", "meh", "great"]


def test_hard_labels_keep_confident_rows_with_their_top_label() -> None:
    rows = pseudo_labelled(TEXTS, PROBA, weight=0.5, cutoff=0.6)
    assert rows["text"].tolist() == ["awful", "great"]
    assert rows["label"].tolist() == ["negative", "positive"]
    assert rows["weight"].tolist() == [0.5, 0.5]


def test_soft_labels_give_one_row_per_label_weighted_by_probability() -> None:
    rows = pseudo_labelled(TEXTS, PROBA, weight=2.0, soft=True)
    assert len(rows) == 9 and set(rows["label"]) == set(LABELS)
    meh = rows[rows["text"] == "meh"].set_index("label")["weight"]
    assert meh.to_dict() == pytest.approx({"negative": 0.4, "neutral": 1.0, "positive": 0.6})


def test_teacher_proba_scores_in_chunks_and_keeps_order(tiny_predictor) -> None:
    texts = [f"what a great day {i}" if i % 2 else f"awful awful {i}" for i in range(10)]
    assert np.allclose(teacher_proba(tiny_predictor, texts), tiny_predictor.predict_proba(texts))


def test_pool_rows_teach_the_student_words_gold_never_had() -> None:
    """'zorbly' never occurs in gold; the teacher calls texts with it negative, so the student learns it."""
    gold = pd.DataFrame(
        {"text": ["good day", "great fun", "bad day", "sad news", "the bus", "at noon"] * 5,
         "label": ["positive", "positive", "negative", "negative", "neutral", "neutral"] * 5}
    )  # fmt: skip
    pool = pseudo_labelled(["zorbly zorbly", "so zorbly"] * 10, np.tile([0.95, 0.03, 0.02], (20, 1)), 1.0)
    params = {"C": 10.0, "word_min_df": 1, "char_min_df": 1, "lexicons": (), "char_weight": 0.0}
    without = fit_pipeline(gold, params).predict(["zorbly"])[0]
    with_pool = fit_pipeline(gold, params, pool).predict(["zorbly"])[0]
    assert without != "negative" and with_pool == "negative"
