"""Insights for a scored table, built once: label shares, over time (with negative spikes and the
terms behind them), by group (with a chi-square test), word drivers, distinctive terms, examples.

`build_insights` is what the CLI (`sentimentkit report`), the app's Insights section and the
notebook call. `ensure_scored` reuses a file's `sentiment` / `p_*` columns when they are there and
otherwise scores the texts through `sentimentkit.serving.batch.score_table`. How the result is shown
(JSON summary, self-contained HTML page) is `insights.render`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.errors import DataError, LabelsError, OptionError
from sentimentkit.insights.dates import DATE_ORDERS, detect_date_column, parse_dates
from sentimentkit.insights.drivers import (
    TermMatrix,
    distinctive_terms,
    driver_terms,
    driver_terms_by,
    excess_terms,
    representative_examples,
    term_matrix,
)  # fmt: skip
from sentimentkit.insights.groups import GroupResult, by_group, group_candidates
from sentimentkit.insights.targets import auto_targets, target_sentiment
from sentimentkit.insights.timeline import Timeline, baseline_rows, over_time
from sentimentkit.serving import batch
from sentimentkit.serving.base import OUTPUT_COLUMNS, PROBA_COLUMNS, BasePredictor
from sentimentkit.text.language import LanguagePolicy

AUTO = "auto"
GROUP_DRIVER_GROUPS = 10  # per-group drivers for the largest groups only
GROUP_DRIVER_TERMS = 5


@dataclass
class Insights:
    """Everything the report shows; `terms` (for filtering texts by term) is not serialised."""

    n_rows: int
    labels: tuple[str, ...]
    counts: dict[str, int]
    text_column: str
    source: str  # how the labels were obtained
    date_column: str | None = None
    group_column: str | None = None
    timeline: Timeline | None = None
    groups: GroupResult | None = None
    drivers: dict[str, list[dict]] = field(default_factory=dict)
    drivers_by_group: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    distinctive: dict[str, list[dict]] = field(default_factory=dict)
    examples: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    terms: TermMatrix | None = None
    targets: list[dict[str, Any]] = field(default_factory=list)
    targets_how: str = ""  # how the targets were chosen (given, or automatically and how)
    target_rows: dict[str, Any] = field(default_factory=dict)  # target -> row positions (not serialised)

    @property
    def n_scored(self) -> int:
        return sum(self.counts.values())

    @property
    def shares(self) -> dict[str, float]:
        return {label: count / max(self.n_scored, 1) for label, count in self.counts.items()}


# --- scoring or reusing ------------------------------------------------------------------------
def has_scores(frame: pd.DataFrame) -> bool:
    """Whether `frame` already carries our `sentiment` column (an earlier `predict` output)."""
    return "sentiment" in frame.columns


def reuse_scores(frame: pd.DataFrame, labels: tuple[str, ...] = LABELS) -> pd.DataFrame:
    """A copy of an already scored table with typed output columns; refuses unknown labels."""
    out = frame.copy()
    sentiment = out["sentiment"].astype(object).where(out["sentiment"].notna(), "").astype(str).str.strip()
    unknown = sorted(set(sentiment) - set(labels) - {""})
    if unknown:
        raise LabelsError(
            f"column 'sentiment' has values other than {', '.join(labels)} (e.g. {unknown[:3]}); rename it "
            "if it is not sentimentkit's output, so the texts are scored instead"
        )
    out["sentiment"] = sentiment.where(sentiment != "", None)
    error = out["error"].astype(object) if "error" in out.columns else pd.Series(None, index=out.index)
    error = error.where(error.notna() & (error.astype(str) != ""), None)
    out["error"] = error.where(out["sentiment"].isna() | error.notna(), None)
    out.loc[out["sentiment"].isna() & out["error"].isna(), "error"] = "no sentiment label"
    for column in (*PROBA_COLUMNS, "confidence"):
        if column in out.columns:
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def ensure_scored(
    table: batch.Table | pd.DataFrame, text_column: str, backend: BasePredictor | None
) -> tuple[pd.DataFrame, str]:
    """(scored table, how): the file's own labels when present, else scored by `backend`
    (`batch.score_table`, which keeps a Table's per-row read errors)."""
    frame = table.frame if isinstance(table, batch.Table) else table
    batch.check_column(frame, text_column)
    if has_scores(frame):
        return reuse_scores(frame), "the file's own 'sentiment' column"
    if backend is None:
        raise DataError("the file has no 'sentiment' column and no model was given to score it")
    scored = batch.score_table(backend, table, text_column)
    return scored, f"scored by {backend.card.get('name', 'the model')}"


# --- building ----------------------------------------------------------------------------------
def _other_languages(scored: pd.DataFrame, languages: Sequence[str] | None) -> pd.Series:
    """Rows whose `language` (when the table has one) is not among `languages`."""
    if "language" not in scored.columns:
        return pd.Series(False, index=scored.index)
    policy = LanguagePolicy(tuple(languages) if languages is not None else Settings.from_env().languages)
    return ~scored["language"].map(policy.counts).astype(bool)


def build_insights(
    scored: pd.DataFrame, text_column: str, explainer: BasePredictor | None = None,
    date_column: str | None = AUTO, group_column: str | None = AUTO, date_order: str = "auto",
    source: str = "", top_terms: int = 15, languages: Sequence[str] | None = None,
    targets: Sequence[str] | str = (),
) -> Insights:  # fmt: skip
    """All insights of a scored table (every row kept; rows without a label are counted apart).

    `explainer` is a predictor with `explain_batch` (the fast model) for exact word drivers;
    without it, drivers are left out and the rest still works. `date_column` / `group_column`:
    a column name, AUTO (detect) or None (skip). `languages`: the languages whose rows count in
    the statistics (default: Settings' `languages`, i.e. SENTIMENTKIT_LANGUAGES, default `en`);
    rows the language guard put in another language are counted apart, with a note. `targets`:
    per-target mentions, net sentiment with its interval and trend, and the texts behind it, from
    the parts that mention each (`insights.targets`; needs `explainer`, the model that scores the
    parts); AUTO picks them (`auto_targets`: the most frequent @mentions, #hashtags and content words).
    """
    scored = scored.reset_index(drop=True)
    labels = scored["sentiment"].where(scored["error"].isna())
    other = _other_languages(scored, languages)
    labels = labels.where(~other)
    counts = {label: int((labels == label).sum()) for label in LABELS}
    ins = Insights(len(scored), LABELS, counts, text_column, source)
    not_scored = len(scored) - ins.n_scored
    if other.any():
        found = scored.loc[other, "language"].value_counts()
        listed = ", ".join(f"{code} {n:,}" for code, n in found.head(5).items())
        ins.notes.append(
            f"{int(other.sum()):,} rows are in languages the model does not read ({listed}): they are scored "
            "and flagged in the 'language' column, but left out of these statistics (SENTIMENTKIT_LANGUAGES "
            "lists the languages that count)."
        )
    not_scored = not_scored - int(other.sum())
    if not_scored:
        ins.warnings.append(
            f"{not_scored:,} rows have no label (see their 'error'); they are counted in n_rows only."
        )
    ins.terms = _terms(scored, text_column, labels, explainer, ins)
    _add_timeline(ins, scored, labels, date_column, date_order)
    _add_groups(ins, scored, labels, group_column, top_terms)
    if ins.terms is not None:
        ins.drivers = driver_terms(ins.terms, labels, top=top_terms)
        ins.distinctive = distinctive_terms(ins.terms, labels, top=top_terms)
    ins.examples = representative_examples(scored.assign(sentiment=labels), text_column)
    _add_targets(ins, scored, text_column, labels, explainer, targets)
    return ins


def _add_targets(ins: Insights, scored: pd.DataFrame, text_column: str, labels: pd.Series,
                 explainer: BasePredictor | None, targets: Sequence[str] | str) -> None:  # fmt: skip
    """Per-target sentiment (given targets, or AUTO ones) from the rows that count."""
    if not targets:
        return
    if explainer is None:
        ins.notes.append("Targets need a model to score the parts that mention them; none was given.")
        return
    texts = [str(t) if ok else None for t, ok in zip(scored[text_column], labels.notna())]
    if isinstance(targets, str):  # AUTO
        chosen, ins.targets_how = auto_targets(texts, ins.terms)
    else:
        chosen = list(targets)
        ins.targets_how = f"Targets as given: {', '.join(chosen)}."
    if not chosen:
        return
    columns = [f"p_{label}" for label in explainer.labels]
    probas = scored[columns].to_numpy(dtype=float) if set(columns) <= set(scored.columns) else None
    periods = None
    if ins.timeline is not None:
        row_periods = ins.timeline.row_periods.reindex(scored.index)
        names = {p: ins.timeline.period_label(p) for p in row_periods.dropna().unique()}
        periods = row_periods.map(names).astype(object).where(row_periods.notna(), None).tolist()
    ins.targets = target_sentiment(texts, chosen, explainer, probas, periods, ins.target_rows)


def _terms(scored: pd.DataFrame, text_column: str, labels: pd.Series, explainer: BasePredictor | None,
           ins: Insights) -> TermMatrix | None:  # fmt: skip
    """The term matrix (rows aligned with `scored`; unlabelled rows empty) with exact contributions."""
    texts = [str(t) if ok else "" for t, ok in zip(scored[text_column], labels.notna())]
    if explainer is not None and hasattr(explainer, "explain_batch"):
        return term_matrix(texts, explainer.explain_batch(texts))
    ins.notes.append(
        "Word drivers need the fast model's exact explanations, which this backend does not give; "
        "the distinctive terms are still shown."
    )
    return term_matrix(texts)


def _resolve(scored: pd.DataFrame, wanted: str | None, kind: str, detect, exclude: set[str]) -> str | None:
    if wanted is None:
        return None
    if wanted != AUTO:
        if wanted not in scored.columns:
            raise OptionError(f"{kind} column {wanted!r} not found; the columns are {list(scored.columns)}")
        return wanted
    return detect(scored, exclude)


def _excluded(ins: Insights, scored: pd.DataFrame) -> set[str]:
    return {ins.text_column, *OUTPUT_COLUMNS, *(c for c in scored.columns if str(c).endswith("_input"))}


def _add_timeline(
    ins: Insights, scored: pd.DataFrame, labels: pd.Series, wanted: str | None, order: str
) -> None:
    if order not in DATE_ORDERS:
        raise OptionError(f"date order must be one of {', '.join(DATE_ORDERS)}, got {order!r}")
    column = _resolve(scored, wanted, "date", detect_date_column, _excluded(ins, scored))
    if column is None:
        if wanted == AUTO:
            ins.notes.append(
                "No date column was found, so there is no over-time view (choose one to add it)."
            )
        return
    ins.date_column = column
    parsed = parse_dates(scored[column], order, column)
    ins.notes += parsed.notes
    ins.warnings += parsed.problems
    ins.timeline = over_time(parsed.values, labels)
    if ins.timeline is not None and ins.timeline.thin_note():
        ins.notes.append(ins.timeline.thin_note())
    if ins.timeline is None or ins.terms is None:
        return
    periods = ins.timeline.row_periods.to_numpy()
    for spike in ins.timeline.spikes:
        period = periods == spike.period.to_datetime64()
        base = baseline_rows(ins.timeline.row_periods, ins.timeline.table, spike).to_numpy()
        spike.terms = excess_terms(ins.terms, period, base)


def _add_groups(ins: Insights, scored: pd.DataFrame, labels: pd.Series, wanted: str | None, top: int) -> None:
    exclude = _excluded(ins, scored) | ({ins.date_column} if ins.date_column else set())
    column = _resolve(scored, wanted, "group", lambda f, e: next(iter(group_candidates(f, e)), None), exclude)
    if column is None:
        return
    ins.group_column = column
    ins.groups = by_group(scored[column], labels, column)
    if ins.groups.other_label:
        ins.notes.append(
            f"'{column}' has {ins.groups.n_groups:,} values: the {len(ins.groups.table) - 1} most frequent are "
            f"shown, the rest together as '{ins.groups.other_label}'."
        )
    if ins.terms is None or ins.terms.contributions is None:
        return
    largest = [str(g) for g in ins.groups.table.sort_values("n", ascending=False).index[:GROUP_DRIVER_GROUPS]]
    number = pd.Series(range(len(largest)), index=largest)
    group = ins.groups.row_keys.map(number).fillna(-1).astype(int).to_numpy()
    found = driver_terms_by(ins.terms, labels, group, len(largest), top=GROUP_DRIVER_TERMS)
    ins.drivers_by_group = {name: found[i] for i, name in enumerate(largest)}


def finding(ins: Insights) -> str:
    """The plain-language finding, shown first: the overall mood, the most and least positive groups
    and the spikes, in one or two sentences."""
    if not ins.n_scored:
        return "No text has a sentiment label, so there is nothing to summarise."
    shares = sorted(ins.shares.items(), key=lambda kv: -kv[1])
    top, rest = shares[0], shares[1:]
    parts = [
        f"Most of the {ins.n_scored:,} texts are {top[0]} ({top[1]:.0%}); "
        + ", ".join(f"{label} {share:.0%}" for label, share in rest)
        + "."
    ]
    table = None if ins.groups is None else ins.groups.drawn()  # groups of a handful: no finding
    if ins.groups is not None and table is not None and len(table) >= 2:
        best, worst = table.index[0], table.index[-1]
        parts.append(
            f"By {ins.groups.column}, “{best}” is the most positive (net {table['net_sentiment'].iloc[0]:+.2f}) "
            f"and “{worst}” the most negative (net {table['net_sentiment'].iloc[-1]:+.2f})."
        )
    if ins.timeline is not None and ins.timeline.spikes:
        count = len(ins.timeline.spikes)
        parts.append(
            f"{count} {ins.timeline.granularity}{'s' if count > 1 else ''} had a spike of negative texts."
        )
    return " ".join(parts)
