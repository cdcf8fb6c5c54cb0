"""Class bias: per-class logit offsets chosen on a validation split for macro recall (AvgRec).

One tuner for both model kinds. The TF-IDF model adds the offsets to its classifier's intercept
(`train.tune_class_bias`, when the `bias_tuning` parameter is on); the transformer records them in
its card and every predictor adds them to the logits (`transformer.tune_bias`, `--tune-bias`).

The grid: offsets (negative, 0, positive), the negative and positive ones in [-1, 1] in steps of
0.1 (neutral is the reference). The highest macro recall wins; the two callers break ties as they
always have (`ties`), so neither's results changed when they came here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from sentimentkit import LABELS
from sentimentkit.errors import OptionError
from sentimentkit.training.evaluate import metrics

BIAS_STEPS = np.round(np.arange(-1.0, 1.01, 0.1), 2)
# "smallest": among equal scores the smallest offsets win (sum of absolute values, then grid order;
# the transformer). "grid": the first in grid order wins, most negative first (the TF-IDF model).
Ties = Literal["smallest", "grid"]


def tune_logit_offsets(
    logits: np.ndarray, labels: Sequence[str], classes: Sequence[str] = LABELS, ties: Ties = "smallest"
) -> tuple[np.ndarray, float]:
    """(offsets, macro recall with them): the grid's offsets that, added to `logits` (rows of
    scores, columns in `classes` order: negative, neutral, positive), maximise the macro recall of
    the argmax against `labels`."""
    if ties not in ("smallest", "grid"):
        raise OptionError(f"ties must be 'smallest' or 'grid', not {ties!r}")
    y, names = list(labels), np.asarray(classes)
    grid = [(neg, pos) for neg in BIAS_STEPS for pos in BIAS_STEPS]
    if ties == "smallest":
        grid.sort(key=lambda t: (abs(t[0]) + abs(t[1]), t))
    best, best_offsets = -1.0, np.zeros(len(names))
    for neg, pos in grid:
        offsets = np.array([neg, 0.0, pos])
        value = metrics(y, names[np.argmax(logits + offsets, axis=1)].tolist())["avg_recall"]
        if value > best + 1e-9:
            best, best_offsets = value, offsets
    return best_offsets + 0.0, best  # + 0.0 turns -0.0 into 0.0 (for the card)
