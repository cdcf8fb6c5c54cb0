"""Sentiment by group (brand, airline, product, region...): shares, net sentiment, a test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.insights.stats import MIN_POINT_N, ChiSquare, bucket_table, chi_square

TOP_GROUPS = 50
MISSING_GROUP = "(missing)"
GROUP_NAME_HINTS = ("brand", "airline", "product", "region", "channel", "category", "company", "country",
                    "source", "group", "topic", "store", "city", "platform", "segment")  # fmt: skip
MAX_DETECT_GROUPS = 200


@dataclass
class GroupResult:
    """Per-group table (sorted by net sentiment, best first) and the test of independence."""

    column: str
    table: pd.DataFrame
    test: ChiSquare | None
    n_groups: int  # distinct values before the top-N cut
    other_label: str | None  # the name given to the merged smaller groups, if any
    row_keys: pd.Series  # each row's group as shown (top groups, "other", "(missing)")

    def drawn(self) -> pd.DataFrame:
        """The groups whose net sentiment is drawn: those with at least MIN_POINT_N texts."""
        return self.table[self.table["n"] >= MIN_POINT_N]

    def thin_groups(self) -> list[str]:
        """The groups left out of the chart: some texts, but fewer than MIN_POINT_N."""
        n = self.table["n"]
        return [str(group) for group in self.table.index[(n > 0) & (n < MIN_POINT_N)]]

    def thin_note(self, named: int = 5) -> str | None:
        """The note under the chart naming the groups too small to draw (None when none is)."""
        thin = self.thin_groups()
        if not thin:
            return None
        names = ", ".join(f"“{g}”" for g in thin[:named]) + (
            f" and {len(thin) - named:,} more" if len(thin) > named else ""
        )
        return (
            f"{len(thin):,} group{'s' if len(thin) > 1 else ''} of '{self.column}' with fewer than {MIN_POINT_N} "
            f"texts {'are' if len(thin) > 1 else 'is'} not drawn: too few texts to say anything ({names}; "
            "still counted in the test of independence)."
        )

    def test_in_words(self) -> str:
        if self.test is None:
            return f"Too few groups or labels in '{self.column}' for a test of independence."
        return self.test.in_words(f"the groups of '{self.column}'")


def group_keys(raw: pd.Series, top: int = TOP_GROUPS) -> tuple[pd.Series, int, str | None]:
    """Each row's group: its value for the `top` most frequent ones, else "other"; empty -> (missing)."""
    values = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    values = values.where(values != "", MISSING_GROUP)
    counts = values.value_counts()
    if len(counts) <= top:
        return values, len(counts), None
    other = "other" if "other" not in counts.index else "other groups"
    keep = set(counts.index[:top])
    return values.where(values.isin(keep), other), len(counts), other


def by_group(raw: pd.Series, labels: pd.Series, column: str, top: int = TOP_GROUPS,
             label_order: Sequence[str] = LABELS) -> GroupResult:  # fmt: skip
    """Shares, net sentiment and its interval per group, plus a chi-square test with Cramér's V."""
    keys, n_groups, other = group_keys(raw, top)
    table = bucket_table(keys, labels, label_order)
    test = chi_square(table[[f"n_{label}" for label in label_order]])
    table = table.sort_values(["net_sentiment", "n"], ascending=[False, False])
    table.index.name = "group"
    return GroupResult(column, table, test, n_groups, other, keys)


def group_candidates(frame: pd.DataFrame, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Columns that look categorical (2..MAX_DETECT_GROUPS values, repeated), name hints first."""
    found = []
    for column in frame.columns:
        name = str(column)
        if name in exclude:
            continue
        distinct = frame[column].nunique(dropna=True)
        if 2 <= distinct <= MAX_DETECT_GROUPS and distinct <= max(2, len(frame) // 5):
            found.append(name)
    return sorted(found, key=lambda c: not any(h in c.lower() for h in GROUP_NAME_HINTS))
