"""The statistics behind the insights: label shares, net sentiment with its interval, tests.

Net sentiment is (positive - negative) / n, between -1 and 1. Its 95% interval is the normal
(Wald) interval of a difference of two proportions from one multinomial sample:
var = (p+ + p- - (p+ - p-)^2) / n. For small n it is too narrow; buckets under MIN_RELIABLE_N
texts are flagged in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from sentimentkit import LABELS

Z95 = float(stats.norm.ppf(0.975))
MIN_RELIABLE_N = 30
# A period or a group needs this many texts for its net sentiment to be drawn: with a handful of texts
# the net sentiment swings to +1 or -1 by chance (one positive tweet is "net +1.0"); such buckets are left
# out of the net-sentiment charts and a note names them (the timeline's volume bars and the tables stay).
MIN_POINT_N = 10
# Cohen's (1988) small / medium / large effect sizes for w, divided by sqrt(min(rows, cols) - 1)
# to give Cramér's V thresholds.
COHEN_W = ((0.5, "large"), (0.3, "moderate"), (0.1, "small"))


def net_sentiment(positive: np.ndarray, negative: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, ...]:
    """(net, ci_low, ci_high) per bucket from counts; NaN where n is 0."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_pos, p_neg = np.asarray(positive) / n, np.asarray(negative) / n
        net = p_pos - p_neg
        half = Z95 * np.sqrt(np.clip(p_pos + p_neg - net**2, 0, None) / n)
    return net, np.clip(net - half, -1, 1), np.clip(net + half, -1, 1)


def bucket_table(keys: pd.Series, labels: pd.Series, label_order: Sequence[str] = LABELS) -> pd.DataFrame:
    """Per bucket (key): n, n_<label>, share_<label>, net_sentiment, ci_low, ci_high.

    Rows whose key or label is missing are left out (the caller counts and reports them).
    """
    known = keys.notna() & labels.isin(list(label_order))
    counts = pd.crosstab(keys[known], labels[known]).reindex(columns=list(label_order), fill_value=0)
    table = counts.add_prefix("n_")
    table.insert(0, "n", counts.sum(axis=1))
    for label in label_order:
        table[f"share_{label}"] = counts[label] / table["n"].where(table["n"] > 0)
    net, low, high = net_sentiment(counts.get("positive", 0), counts.get("negative", 0), table["n"])
    table["net_sentiment"], table["ci_low"], table["ci_high"] = net, low, high
    return table


@dataclass
class ChiSquare:
    """A chi-square test of independence between two categorical variables, with Cramér's V."""

    chi2: float
    dof: int
    p_value: float
    cramers_v: float
    n: int
    small_expected_share: float

    def strength(self) -> str:
        """'negligible', 'small', 'moderate' or 'large' (Cohen's thresholds for this table's shape)."""
        k = max(1, self.dof_min)
        for w, word in COHEN_W:
            if self.cramers_v >= w / np.sqrt(k):
                return word
        return "negligible"

    dof_min: int = 1  # min(rows, cols) - 1

    def in_words(self, what: str) -> str:
        """One sentence: is `what` related to sentiment, how strongly, how sure."""
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3f}"
        if self.p_value >= 0.05:
            verdict = f"No clear difference in sentiment between {what} ({p}; chi-square {self.chi2:.1f}, df {self.dof})."
        else:
            verdict = (
                f"Sentiment differs between {what} (chi-square {self.chi2:.1f}, df {self.dof}, {p}); the "
                f"association is {self.strength()} (Cramér's V {self.cramers_v:.2f})."
            )
        if self.small_expected_share > 0.2:
            verdict += (
                f" Treat it with care: {self.small_expected_share:.0%} of the expected counts are below 5."
            )
        return verdict


def chi_square(table: pd.DataFrame) -> ChiSquare | None:
    """Chi-square test of a contingency table (no continuity correction); None when under 2 x 2."""
    observed = table.loc[table.sum(axis=1) > 0, table.sum(axis=0) > 0].to_numpy(dtype=float)
    if observed.shape[0] < 2 or observed.shape[1] < 2:
        return None
    result = stats.chi2_contingency(observed, correction=False)
    n = observed.sum()
    k = min(observed.shape) - 1
    v = float(np.sqrt(result.statistic / (n * k)))
    small = float((result.expected_freq < 5).mean())
    return ChiSquare(float(result.statistic), int(result.dof), float(result.pvalue), v, int(n), small, k)


def two_proportion_z(x1: np.ndarray, n1: np.ndarray, x0: np.ndarray, n0: np.ndarray) -> np.ndarray:
    """Pooled two-proportion z statistic of x1/n1 against x0/n0 (positive when x1/n1 is higher)."""
    x1, n1, x0, n0 = (np.asarray(v, dtype=float) for v in (x1, n1, x0, n0))
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (x1 + x0) / (n1 + n0)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n0))
        return np.where(se > 0, (x1 / n1 - x0 / n0) / se, 0.0)
