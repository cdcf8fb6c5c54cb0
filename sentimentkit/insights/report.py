"""Insights for a scored table: build them once, then as a JSON summary or a self-contained HTML page.

`build_insights` is what the CLI (`sentimentkit report`), the app's Insights section and the
notebook call. It reuses a file's `sentiment` / `p_*` columns when they are there and otherwise
scores the texts through `sentimentkit.serving.batch.score_table`.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.insights import charts
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
from sentimentkit.insights.timeline import Timeline, baseline_rows, over_time
from sentimentkit.serving import batch
from sentimentkit.serving.base import OUTPUT_COLUMNS, PROBA_COLUMNS, BasePredictor

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
        raise ValueError(
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
        raise ValueError("the file has no 'sentiment' column and no model was given to score it")
    scored = batch.score_table(backend, table, text_column)
    return scored, f"scored by {backend.card.get('name', 'the model')}"


# --- building ----------------------------------------------------------------------------------
def build_insights(
    scored: pd.DataFrame, text_column: str, explainer: BasePredictor | None = None,
    date_column: str | None = AUTO, group_column: str | None = AUTO, date_order: str = "auto",
    source: str = "", top_terms: int = 15,
) -> Insights:  # fmt: skip
    """All insights of a scored table (every row kept; rows without a label are counted apart).

    `explainer` is a predictor with `explain_batch` (the fast model) for exact word drivers;
    without it, drivers are left out and the rest still works. `date_column` / `group_column`:
    a column name, AUTO (detect) or None (skip).
    """
    scored = scored.reset_index(drop=True)
    labels = scored["sentiment"].where(scored["error"].isna())
    counts = {label: int((labels == label).sum()) for label in LABELS}
    ins = Insights(len(scored), LABELS, counts, text_column, source)
    not_scored = len(scored) - ins.n_scored
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
    return ins


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
            raise ValueError(f"{kind} column {wanted!r} not found; the columns are {list(scored.columns)}")
        return wanted
    return detect(scored, exclude)


def _excluded(ins: Insights, scored: pd.DataFrame) -> set[str]:
    return {ins.text_column, *OUTPUT_COLUMNS, *(c for c in scored.columns if str(c).endswith("_input"))}


def _add_timeline(
    ins: Insights, scored: pd.DataFrame, labels: pd.Series, wanted: str | None, order: str
) -> None:
    if order not in DATE_ORDERS:
        raise ValueError(f"date order must be one of {', '.join(DATE_ORDERS)}, got {order!r}")
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


# --- JSON ----------------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    """A JSON-safe float (NaN -> None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return round(float(value), 6)


def _bucket(row: pd.Series, labels: tuple[str, ...]) -> dict[str, Any]:
    return {
        "n": int(row["n"]),
        "shares": {label: _num(row[f"share_{label}"]) for label in labels},
        "net_sentiment": _num(row["net_sentiment"]),
        "ci_low": _num(row["ci_low"]),
        "ci_high": _num(row["ci_high"]),
    }


def summary(ins: Insights) -> dict[str, Any]:
    """The JSON summary: n_rows, shares, by_group, over_time, drivers, warnings, and more."""
    out: dict[str, Any] = {
        "n_rows": ins.n_rows, "n_scored": ins.n_scored, "labels": list(ins.labels), "counts": ins.counts,
        "shares": {k: _num(v) for k, v in ins.shares.items()}, "source": ins.source,
        "text_column": ins.text_column, "date_column": ins.date_column, "group_column": ins.group_column,
    }  # fmt: skip
    out["by_group"] = [] if ins.groups is None else [
        {"group": str(group), **_bucket(row, ins.labels)} for group, row in ins.groups.table.iterrows()
    ]  # fmt: skip
    out["group_test"] = _test_json(ins.groups)
    out["over_time"] = _timeline_json(ins.timeline)
    out["drivers"] = ins.drivers
    out["drivers_by_group"] = ins.drivers_by_group
    out["distinctive"] = ins.distinctive
    out["examples"] = ins.examples
    out["notes"] = ins.notes
    out["warnings"] = ins.warnings
    return out


def _test_json(groups: GroupResult | None) -> dict[str, Any] | None:
    if groups is None or groups.test is None:
        return None
    t = groups.test
    return {"test": "chi-square test of independence (group x label)", "chi2": _num(t.chi2), "dof": t.dof,
            "p_value": t.p_value, "cramers_v": _num(t.cramers_v), "strength": t.strength(),
            "in_words": groups.test_in_words()}  # fmt: skip


def _timeline_json(timeline: Timeline | None) -> dict[str, Any] | None:
    if timeline is None:
        return None
    points = [{"period": timeline.period_label(period), **_bucket(row, LABELS)}
              for period, row in timeline.table.iterrows()]  # fmt: skip
    spikes = [{"period": timeline.period_label(s.period), "n": s.n, "negative_share": _num(s.negative_share),
               "baseline_share": _num(s.baseline_share), "z": _num(s.z), "terms": s.terms,
               "in_words": s.in_words(timeline.period_label(s.period))} for s in timeline.spikes]  # fmt: skip
    return {"granularity": timeline.granularity, "points": points, "spikes": spikes}


def summary_json(ins: Insights) -> str:
    """`summary` as indented JSON text."""
    return json.dumps(summary(ins), indent=2, ensure_ascii=False)


# --- HTML ----------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Vega, Vega-Lite and vega-embed as one script (from vl-convert-python: no network needed)."""
    import altair as alt
    import vl_convert

    version = "v" + "_".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return vl_convert.javascript_bundle(vl_version=version)


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no '</script>' can end it early)."""
    return json.dumps(value).replace("</", "<\\/").replace("<!--", "<\\!--")


def chart_specs(ins: Insights) -> dict[str, dict]:
    """Vega-Lite specs of the report's charts, by element id."""
    specs = {}
    if ins.timeline is not None:
        specs["chart-time"] = charts.timeline_chart(ins.timeline).to_dict()
    if ins.groups is not None:
        specs["chart-groups"] = charts.group_chart(ins.groups).to_dict()
    if ins.drivers:
        specs["chart-drivers"] = charts.drivers_chart(ins.drivers).to_dict()
    if ins.distinctive.get("negative") or ins.distinctive.get("positive"):
        specs["chart-distinctive"] = charts.distinctive_chart(ins.distinctive).to_dict()
    return specs


def render_html(ins: Insights, title: str = "Sentiment report") -> str:
    """One self-contained HTML page (charts, tables, notes) that opens without a network."""
    specs = chart_specs(ins)
    body = "\n".join(_sections(ins, specs))
    embeds = "\n".join(
        f"vegaEmbed('#{key}', {_script_json(spec)}, {{actions: false, renderer: 'svg'}});"
        for key, spec in specs.items()
    )
    return HTML_TEMPLATE.format(title=html.escape(title), body=body, bundle=vega_bundle(), embeds=embeds)


def _sections(ins: Insights, specs: dict[str, dict]) -> list[str]:
    e = html.escape
    shares = ", ".join(f"{label} {share:.1%}" for label, share in ins.shares.items())
    parts = [
        f"<p><b>{ins.n_rows:,}</b> rows, {ins.n_scored:,} with a label ({e(ins.source)}): {e(shares)}.</p>"
    ]
    if ins.warnings:
        parts.append(
            "<div class='warn'><b>Warnings</b><ul>"
            + "".join(f"<li>{e(w)}</li>" for w in ins.warnings)
            + "</ul></div>"
        )
    if ins.notes:
        parts.append("<ul class='notes'>" + "".join(f"<li>{e(n)}</li>" for n in ins.notes) + "</ul>")
    if ins.timeline is not None:
        parts.append(
            f"<h2>Over time ({e(str(ins.date_column))}, per {ins.timeline.granularity})</h2><div id='chart-time'></div>"
        )
        parts.append(_spikes_html(ins.timeline))
    if ins.groups is not None:
        parts.append(f"<h2>By group ({e(ins.groups.column)})</h2><p>{e(ins.groups.test_in_words())}</p>")
        parts.append("<div id='chart-groups'></div>" + _group_table_html(ins.groups))
    if "chart-drivers" in specs:
        parts.append("<h2>What drives each label</h2><p>Terms whose exact contributions pushed the texts of each "
                     "label toward it, summed over those texts (fast model).</p><div id='chart-drivers'></div>")  # fmt: skip
    if "chart-distinctive" in specs:
        parts.append("<h2>Negative vs positive</h2><div id='chart-distinctive'></div>")
    if ins.drivers_by_group:
        parts.append(_group_drivers_html(ins))
    if ins.examples:
        parts.append(_examples_html(ins.examples))
    return parts


def _spikes_html(timeline: Timeline) -> str:
    if not timeline.spikes:
        return "<p>No negative spikes: no period's negative share rose far above its recent baseline.</p>"
    items = []
    for s in timeline.spikes:
        terms = ", ".join(t["term"] for t in s.terms) or "no clear terms"
        items.append(f"<li>{html.escape(s.in_words(timeline.period_label(s.period)))} Driven by: "
                     f"<b>{html.escape(terms)}</b></li>")  # fmt: skip
    return "<h3>Negative spikes</h3><ul>" + "".join(items) + "</ul>"


def _group_table_html(groups: GroupResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(g))}</td><td>{int(r['n']):,}</td>"
        + "".join(f"<td>{r[f'share_{x}']:.1%}</td>" for x in LABELS)
        + f"<td>{r['net_sentiment']:+.2f}</td><td>{r['ci_low']:+.2f} to {r['ci_high']:+.2f}</td></tr>"
        for g, r in groups.table.iterrows()
    )
    head = "".join(f"<th>{x}</th>" for x in ("group", "n", *LABELS, "net", "95% interval"))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _group_drivers_html(ins: Insights) -> str:
    rows = []
    for group, drivers in ins.drivers_by_group.items():
        cells = "".join(
            f"<td>{html.escape(', '.join(t['term'] for t in drivers.get(x, [])))}</td>" for x in LABELS
        )
        rows.append(f"<tr><td>{html.escape(group)}</td>{cells}</tr>")
    head = "".join(f"<th>toward {x}</th>" for x in LABELS)
    return f"<h2>Drivers per group (largest groups)</h2><table><tr><th>group</th>{head}</tr>{''.join(rows)}</table>"


def _examples_html(examples: dict[str, Any]) -> str:
    parts = ["<h2>Representative texts</h2>"]
    for label, kinds in examples.items():
        for kind, items in kinds.items():
            lis = "".join(f"<li>{html.escape(x['text'])} <span class='p'>(row {x['row']}, "
                          f"p = {x['probability']:.2f})</span></li>" for x in items)  # fmt: skip
            parts.append(f"<h3>{label}: {kind.replace('_', ' ')}</h3><ul>{lis}</ul>")
    return "".join(parts)


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
.warn {{ background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.5em 1em; }}
.notes {{ color: #555; }} .p {{ color: #777; font-size: 0.85em; }}
</style>
<script>{bundle}</script>
</head><body>
<h1>{title}</h1>
{body}
<script>
{embeds}
</script>
</body></html>
"""
