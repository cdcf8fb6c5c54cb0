"""The one class-bias tuner (`training/offsets.py`) and its two callers: the TF-IDF model's
`train.tune_class_bias` and the transformer's `transformer.tune_bias`.

The expected offsets were produced by each caller's own loop before they shared this function (base
commit a441a18), on the same fixed inputs: the two break ties differently, and both must keep doing
what they did.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.training import offsets, train, transformer


def _noisy_case() -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(400, 3))
    noisy = logits + rng.normal(scale=1.0, size=(400, 3)) + [0.3, -0.4, 0.2]
    return logits, np.asarray(LABELS)[np.argmax(noisy, axis=1)].tolist()


CASES = {  # name: (logits, labels)
    "noisy": _noisy_case(),
    "all tied": (np.zeros((6, 3)), list(LABELS) * 2),
    "already right": (np.eye(3), list(LABELS)),
}
# What each caller chose before (offsets; the transformer's also its macro recall).
BEFORE_TFIDF = {"noisy": [0.2, 0.0, 0.1], "all tied": [-1.0, 0.0, -1.0], "already right": [-1.0, 0.0, -0.9]}
BEFORE_TRANSFORMER = {
    "noisy": ([0.2, 0.0, 0.1], 0.6680944519400814),
    "all tied": ([0.0, 0.0, 0.0], 1 / 3),
    "already right": ([0.0, 0.0, 0.0], 1.0),
}


class _Pipeline:
    """What `tune_class_bias` uses of a fitted pipeline: fixed scores, classes, the intercept."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.classes_ = np.asarray(LABELS)
        self.named_steps = {"clf": SimpleNamespace(intercept_=np.array([0.1, -0.2, 0.3]))}

    def decision_function(self, texts: list[str]) -> np.ndarray:
        assert len(texts) == len(self.scores)
        return self.scores


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_tfidf_caller_chooses_and_applies_the_offsets_it_did_before(case: str) -> None:
    logits, labels = CASES[case]
    pipeline = _Pipeline(logits)
    chosen = train.tune_class_bias(pipeline, pd.DataFrame({"text": [""] * len(labels), "label": labels}))
    assert chosen.tolist() == BEFORE_TFIDF[case]
    expected_intercept = np.array([0.1, -0.2, 0.3]) + np.array(BEFORE_TFIDF[case])
    assert pipeline.named_steps["clf"].intercept_.tobytes() == expected_intercept.tobytes()


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_transformer_caller_chooses_the_offsets_it_did_before(case: str) -> None:
    logits, labels = CASES[case]
    assert transformer.tune_logit_offsets is offsets.tune_logit_offsets  # what tune_bias calls
    chosen, value = transformer.tune_logit_offsets(logits, labels)  # as tune_bias calls it
    assert (chosen.tolist(), value) == BEFORE_TRANSFORMER[case]
    assert not np.signbit(chosen).any()  # no -0.0 in a card


def test_the_two_tie_rules_differ_only_among_equal_scores() -> None:
    logits, labels = CASES["noisy"]
    smallest, value_s = offsets.tune_logit_offsets(logits, labels, ties="smallest")
    first, value_g = offsets.tune_logit_offsets(logits, labels, ties="grid")
    assert value_s == value_g
    assert smallest.tolist() == first.tolist()  # one best grid point here: both rules find it
    with pytest.raises(ValueError, match="ties"):
        offsets.tune_logit_offsets(logits, labels, ties="largest")  # type: ignore[arg-type]
