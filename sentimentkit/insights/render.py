"""Insights (`insights.build.Insights`) shown: a JSON summary and a self-contained HTML page.

`summary` / `summary_json` is the JSON (`sentimentkit report --json`); `render_html` is the report
page of the CLI and the app's "Download report" (charts as Vega-Lite specs with the Vega bundle
inlined, so the page opens without a network). Nothing here computes an insight; it only formats
what `build_insights` built.
"""

from __future__ import annotations

import html
import json
import math
from functools import lru_cache
from typing import Any

import pandas as pd

from sentimentkit import LABELS, palette
from sentimentkit.insights import charts
from sentimentkit.insights.build import Insights, finding
from sentimentkit.insights.groups import GroupResult
from sentimentkit.insights.targets import trend_frame, trend_words
from sentimentkit.insights.timeline import MIN_POINT_N, Timeline


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
    out["targets"] = ins.targets
    out["targets_how"] = ins.targets_how or None
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
    if ins.groups is not None and len(ins.groups.drawn()):
        specs["chart-groups"] = charts.group_chart(ins.groups).to_dict()
    if ins.drivers:
        specs["chart-drivers"] = charts.drivers_chart(ins.drivers).to_dict()
    if ins.distinctive.get("negative") or ins.distinctive.get("positive"):
        specs["chart-distinctive"] = charts.distinctive_chart(ins.distinctive).to_dict()
    trend = trend_frame(ins.targets)
    if len(trend):
        specs["chart-targets"] = charts.targets_trend_chart(trend).to_dict()
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
        f"<p class='finding'><b>{e(finding(ins))}</b></p>",
        f"<p><b>{ins.n_rows:,}</b> rows, {ins.n_scored:,} with a label ({e(ins.source)}): {e(shares)}.</p>",
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
        chart = "<div id='chart-groups'></div>" if "chart-groups" in specs else ""
        note = f"<p class='note'>{e(ins.groups.thin_note())}</p>" if ins.groups.thin_note() else ""
        parts.append(chart + note + _group_table_html(ins.groups))
    if "chart-drivers" in specs:
        parts.append("<h2>What drives each label</h2><p>Terms whose exact contributions pushed the texts of each "
                     "label toward it, summed over those texts (fast model).</p><div id='chart-drivers'></div>")  # fmt: skip
    if "chart-distinctive" in specs:
        parts.append("<h2>Negative vs positive</h2><div id='chart-distinctive'></div>")
    if ins.drivers_by_group:
        parts.append(_group_drivers_html(ins))
    if ins.targets:
        parts.append(_targets_html(ins.targets, ins.targets_how, "chart-targets" in specs))
    elif ins.targets_how:  # automatic targets, none frequent enough: say so
        parts.append(f"<h2>Targets</h2><p>{html.escape(ins.targets_how)}</p>")
    if ins.examples:
        parts.append(_examples_html(ins.examples))
    return parts


def _targets_html(targets: list[dict[str, Any]], how: str = "", chart: bool = False) -> str:
    """Per target: texts and parts mentioning it, the parts' labels, net sentiment with its 95%
    interval and trend; then the texts behind each target, the mentioning part marked."""
    e = html.escape
    labels = list(targets[0]["counts"])
    rows = "".join(
        f"<tr><td>{e(t['target'])}</td><td>{t['texts']:,}</td><td>{t['mentions']:,}</td>"
        + "".join(f"<td>{t['counts'].get(x, 0):,}</td>" for x in labels)
        + f"<td>{_signed(t['net'])}</td><td>{_interval(t)}</td><td>{e(trend_words(t))}</td></tr>"
        for t in targets
    )
    head = "".join(f"<th>{e(label)} parts</th>" for label in labels)
    has_dates = any(t.get("trend") is not None for t in targets)
    trend_note = (
        f" Trend: net per period where at least {MIN_POINT_N} parts mention the target."
        if has_dates
        else " No date column, so no trend."
    )
    return (
        f"<h2>Targets</h2><p>{e(how)}</p><p>Each target's sentiment from the parts (sentences, clauses) that "
        "mention it, not the whole text; net = (positive - negative) / parts, with its 95% interval over the "
        f"texts (adjusted Wald).{e(trend_note)}</p><table class='targets'><tr><th>target</th><th>texts</th>"
        f"<th>parts</th>{head}<th>net</th><th>95% interval</th><th>trend</th></tr>{rows}</table>"
        + ("<div id='chart-targets'></div>" if chart else "")
        + _target_texts_html(targets)
    )


def _signed(value: float | None) -> str:
    return "" if value is None else format(value, "+.2f")


def _interval(target: dict[str, Any]) -> str:
    if target.get("ci_low") is None:
        return ""
    return f"{target['ci_low']:+.2f} to {target['ci_high']:+.2f}"


def _target_texts_html(targets: list[dict[str, Any]]) -> str:
    """A folded list per target: its example texts (all escaped), the mentioning part marked in
    its label's colour, with the row, label and probability."""
    e = html.escape
    blocks = []
    for t in targets:
        items = "".join(
            f"<li>{e(x['text'][: x['start']])}<mark class='sk-{e(x['sentiment'], quote=True)}' "
            f"style='background: rgba({palette.rgb(palette.colour(x['sentiment']))}, 0.30)'>"
            f"{e(x['text'][x['start'] : x['end']])}</mark>{e(x['text'][x['end'] :])} <span class='p'>(row "
            f"{x['row']}, this part {e(x['sentiment'])}, p = {x['probability']:.2f})</span></li>"
            for x in t.get("examples") or []
        )
        if items:
            blocks.append(
                f"<details><summary>{e(t['target'])}: {t['texts']:,} texts</summary><ul>{items}</ul></details>"
            )
    if not blocks:
        return ""
    return (
        "<h3>The texts behind each target</h3><p>The most confident mentioning parts of each label.</p>"
        + "".join(blocks)
    )


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
.notes, .note {{ color: #555; }} .p {{ color: #777; font-size: 0.85em; }}
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
