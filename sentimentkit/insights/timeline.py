"""Sentiment over time: volume and label shares per period, net sentiment, negative spikes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sentimentkit import LABELS
from sentimentkit.insights.stats import MIN_POINT_N, bucket_table, two_proportion_z

# (granularity, pandas frequency, largest span it is chosen for)
GRANULARITIES = (
    ("hour", "h", pd.Timedelta(days=3)),
    ("day", "D", pd.Timedelta(days=120)),
    ("week", "W-MON", pd.Timedelta(days=3 * 365)),
    ("month", "MS", None),
)
BASELINE_PERIODS = 7  # a spike is judged against the pooled previous periods
SPIKE_MIN_N = 20  # texts a period needs before it can be called a spike
SPIKE_MIN_Z = 3.0
SPIKE_MIN_RISE = 0.10  # and the negative share must be at least 10 points above the baseline


@dataclass
class Spike:
    """A period whose negative share is far above its recent baseline."""

    period: pd.Timestamp
    n: int
    negative_share: float
    baseline_share: float
    baseline_n: int
    z: float
    terms: list[dict] = field(default_factory=list)

    def in_words(self, label: str) -> str:
        return (
            f"{label}: {self.negative_share:.0%} negative of {self.n:,} texts, against "
            f"{self.baseline_share:.0%} over the previous {self.baseline_n:,} texts (z = {self.z:.1f})."
        )


@dataclass
class Timeline:
    """Per-period table (index: period start) plus the spikes found in it."""

    granularity: str
    table: pd.DataFrame
    spikes: list[Spike]
    row_periods: pd.Series  # each input row's period start (NaT: no readable date or no label)

    def period_label(self, period: pd.Timestamp) -> str:
        return period_label(period, self.granularity)

    def thin_periods(self) -> int:
        """Periods with some texts but fewer than MIN_POINT_N (no net-sentiment point is drawn)."""
        n = self.table["n"]
        return int(((n > 0) & (n < MIN_POINT_N)).sum())

    def thin_note(self) -> str | None:
        """The note under the chart when some periods are too thin to plot (None when none is)."""
        thin = self.thin_periods()
        if not thin:
            return None
        return (
            f"{thin:,} {self.granularity}{'s' if thin > 1 else ''} with fewer than {MIN_POINT_N} texts "
            "have no net-sentiment point: too few texts to say anything (their volume is still shown)."
        )


def choose_granularity(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """Hour for up to 3 days, day up to 120 days, week up to 3 years, else month."""
    span = end.to_pydatetime() - start.to_pydatetime()  # a pd.Timedelta holds only 292 years
    for name, _, limit in GRANULARITIES:
        if limit is None or span <= limit.to_pytimedelta():
            return name
    return "month"


def period_starts(dates: pd.Series, granularity: str) -> pd.Series:
    """Each timestamp's period start (weeks start on Monday)."""
    if granularity == "hour":
        return dates.dt.floor("h")
    if granularity == "day":
        return dates.dt.normalize()
    if granularity == "week":
        return (dates - pd.to_timedelta(dates.dt.dayofweek, unit="D")).dt.normalize()
    return dates.dt.to_period("M").dt.start_time


def period_label(period: pd.Timestamp, granularity: str) -> str:
    """'2015-02-24 11:00' (hour), '2015-02-24' (day, week start), '2015-02' (month)."""
    if granularity == "hour":
        return period.strftime("%Y-%m-%d %H:00")
    if granularity == "month":
        return period.strftime("%Y-%m")
    return period.strftime("%Y-%m-%d")


def over_time(dates: pd.Series, labels: pd.Series, granularity: str | None = None,
              label_order: Sequence[str] = LABELS) -> Timeline | None:  # fmt: skip
    """Per-period counts, shares and net sentiment (every period in the range, empty ones with n 0)."""
    known = dates.notna() & labels.isin(list(label_order))
    if not known.any():
        return None
    granularity = granularity or choose_granularity(dates[known].min(), dates[known].max())
    periods = period_starts(dates[known], granularity)
    table = bucket_table(periods, labels[known], label_order)
    freq = dict((g, f) for g, f, _ in GRANULARITIES)[granularity]
    full = pd.date_range(table.index.min(), table.index.max(), freq=freq)
    table = table.reindex(full)
    count_columns = ["n", *(f"n_{label}" for label in label_order)]
    table[count_columns] = table[count_columns].fillna(0).astype(int)
    table.index.name = "period"
    return Timeline(granularity, table, find_spikes(table), periods.reindex(dates.index))


def find_spikes(table: pd.DataFrame, window: int = BASELINE_PERIODS) -> list[Spike]:
    """Periods whose negative share is at least SPIKE_MIN_RISE above the pooled previous `window`
    periods and significantly so (one-sided two-proportion z >= SPIKE_MIN_Z)."""
    n = table["n"].to_numpy(dtype=float)
    neg = table["n_negative"].to_numpy(dtype=float)
    base_n = pd.Series(n).rolling(window, min_periods=1).sum().shift(1).fillna(0).to_numpy()
    base_neg = pd.Series(neg).rolling(window, min_periods=1).sum().shift(1).fillna(0).to_numpy()
    z = two_proportion_z(neg, n, base_neg, base_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        rise = neg / n - base_neg / base_n
    hits = (n >= SPIKE_MIN_N) & (base_n >= SPIKE_MIN_N) & (z >= SPIKE_MIN_Z) & (rise >= SPIKE_MIN_RISE)
    return [
        Spike(table.index[i], int(n[i]), neg[i] / n[i], base_neg[i] / base_n[i], int(base_n[i]), float(z[i]))
        for i in np.flatnonzero(hits)
    ]


def baseline_rows(period_of_row: pd.Series, table: pd.DataFrame, spike: Spike,
                  window: int = BASELINE_PERIODS) -> pd.Series:  # fmt: skip
    """Mask of the rows in the `window` periods before `spike` (its baseline)."""
    position = table.index.get_loc(spike.period)
    previous = table.index[max(0, position - window) : position]
    return period_of_row.isin(previous)
