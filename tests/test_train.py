"""Training procedure: recency weighting and the temporal split that judges it."""

import numpy as np
import pandas as pd
import pytest

from sentimentkit.training.train import CHOSEN_PARAMS, fit_pipeline, recency_weights, temporal_split


def test_recency_weights_grow_with_position_and_average_one() -> None:
    w = recency_weights(1000, 2.0)
    assert w.shape == (1000,) and w.mean() == pytest.approx(1.0)
    assert np.all(np.diff(w) > 0)
    assert w[-1] / w[0] == pytest.approx(np.exp(2.0 * 999 / 1000))
    assert np.allclose(recency_weights(7, 0.0), 1.0)


def test_later_rows_outweigh_earlier_ones_when_the_labels_disagree() -> None:
    """The same phrases labelled positive early and negative late: equal weights split the
    difference, recency weighting sides with the later labels."""
    early = ["this new phone thing", "the phone update today", "phone battery again"] * 10
    late = early[:3] * 6
    labels = ["positive"] * len(early) + ["negative"] * len(late)
    neutral = ["meeting at noon", "the bus is at six"] * 4
    train = pd.DataFrame({"text": early + late + neutral, "label": labels + ["neutral"] * len(neutral)})
    params = {"C": 10.0, "class_weight": None, "word_min_df": 1, "char_min_df": 1, "lexicons": ()}
    query = ["the phone update today"]

    def p_negative(beta: float) -> float:
        pipe = fit_pipeline(train, {**params, "recency_beta": beta})
        return float(pipe.predict_proba(query)[0][list(pipe.classes_).index("negative")])

    assert p_negative(0.0) < 0.5 < p_negative(6.0)


def test_temporal_split_keeps_time_order_and_the_chosen_params_use_it() -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(10)], "label": ["neutral"] * 10})
    older, newest = temporal_split(frame, 0.2)
    assert older["text"].tolist() == [f"t{i}" for i in range(8)]
    assert newest["text"].tolist() == ["t8", "t9"]
    assert CHOSEN_PARAMS["recency_beta"] > 0
