"""Altair (Vega-Lite) charts of the insights, shared by the app and the HTML report."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from sentimentkit import LABELS, palette
from sentimentkit.insights.groups import GroupResult
from sentimentkit.insights.timeline import MIN_POINT_N, Timeline

LABEL_COLOURS = palette.LABEL_COLOURS  # the one palette (sentimentkit/palette.py)
WIDTH = 640
TERM_AXIS = alt.Axis(labelOverlap=False, labelLimit=160)  # every term labelled, none skipped


def _label_scale(labels: Sequence[str] = LABELS) -> alt.Scale:
    return alt.Scale(domain=list(labels), range=palette.colours(list(labels)))


def timeline_frame(timeline: Timeline, labels: Sequence[str] = LABELS) -> pd.DataFrame:
    """One row per (period, label): count and share, plus the period's net sentiment and interval."""
    table = timeline.table.reset_index()
    table["period_label"] = table["period"].map(timeline.period_label)
    rows = []
    for label in labels:
        part = table[["period", "period_label", "n", "net_sentiment", "ci_low", "ci_high"]].copy()
        part["label"] = label
        part["count"] = table[f"n_{label}"]
        part["share"] = table[f"share_{label}"]
        rows.append(part)
    return pd.concat(rows, ignore_index=True)


def timeline_chart(timeline: Timeline, labels: Sequence[str] = LABELS) -> alt.VConcatChart:
    """Volume per period stacked by label, above net sentiment with its 95% band and the spikes."""
    data = timeline_frame(timeline, labels)
    x = alt.X("period:T", title=None)
    # On a time axis a bar is 1 pixel wide unless told otherwise: make each period's bar fill ~80% of it.
    bar_width = max(2.0, 0.8 * WIDTH / max(len(timeline.table), 1))
    volume = alt.Chart(data).mark_bar(size=bar_width).encode(
        x=x, y=alt.Y("count:Q", title="texts"), color=alt.Color("label:N", scale=_label_scale(labels), title=None),
        tooltip=["period_label:N", "label:N", "count:Q", alt.Tooltip("share:Q", format=".0%")],
    ).properties(width=WIDTH, height=160, title=f"Volume per {timeline.granularity}")  # fmt: skip
    net = data[data["label"] == labels[0]].dropna(subset=["net_sentiment"])
    net = net[net["n"] >= MIN_POINT_N]  # a handful of texts is no point (Timeline.thin_note says so)
    base = alt.Chart(net).encode(x=x)
    band = base.mark_area(opacity=0.25, color="#555555").encode(
        y=alt.Y("ci_low:Q", title="net sentiment", scale=alt.Scale(domain=[-1, 1])), y2="ci_high:Q"
    )
    line = base.mark_line(point=True, color="#333333").encode(
        y="net_sentiment:Q",
        tooltip=["period_label:N", "n:Q", alt.Tooltip("net_sentiment:Q", format="+.2f"),
                 alt.Tooltip("ci_low:Q", format="+.2f"), alt.Tooltip("ci_high:Q", format="+.2f")],
    )  # fmt: skip
    layers = [band, line]
    if timeline.spikes:
        spikes = pd.DataFrame({"period": [s.period for s in timeline.spikes],
                               "what": [s.in_words(timeline.period_label(s.period)) for s in timeline.spikes]})  # fmt: skip
        layers.append(alt.Chart(spikes).mark_rule(color=LABEL_COLOURS["negative"], strokeDash=[4, 3]).encode(
            x="period:T", tooltip=["what:N"]))  # fmt: skip
    trend = alt.layer(*layers).properties(
        width=WIDTH, height=180, title="Net sentiment ((positive - negative) / n) with its 95% interval"
    )
    return alt.vconcat(volume, trend)


def group_chart(
    groups: GroupResult, labels: Sequence[str] = LABELS, max_groups: int = 50
) -> alt.HConcatChart:
    """Net sentiment per group with its 95% interval, beside each group's label shares; groups of a
    handful of texts are left out (`GroupResult.thin_note` names them)."""
    table = groups.drawn().head(max_groups).reset_index()
    order = table["group"].tolist()
    height = max(120, 18 * len(order))
    y = alt.Y("group:N", sort=order, title=None)
    base = alt.Chart(table).encode(y=y)
    interval = base.mark_rule(color="#555555").encode(
        x=alt.X("ci_low:Q", title="net sentiment (95% interval)", scale=alt.Scale(domain=[-1, 1])),
        x2="ci_high:Q",
    )
    point = base.mark_point(filled=True, size=60, color="#333333").encode(
        x="net_sentiment:Q",
        tooltip=["group:N", "n:Q", alt.Tooltip("net_sentiment:Q", format="+.2f"),
                 alt.Tooltip("ci_low:Q", format="+.2f"), alt.Tooltip("ci_high:Q", format="+.2f")],
    )  # fmt: skip
    net = alt.layer(interval, point).properties(width=300, height=height, title="Net sentiment by group")
    shares = table.melt(id_vars=["group", "n"], value_vars=[f"share_{x}" for x in labels], var_name="label",
                        value_name="share")  # fmt: skip
    shares["label"] = shares["label"].str.removeprefix("share_")
    stacked = alt.Chart(shares).mark_bar().encode(
        y=alt.Y("group:N", sort=order, title=None, axis=None),
        x=alt.X("share:Q", stack="normalize", title="share of texts", axis=alt.Axis(format="%")),
        color=alt.Color("label:N", scale=_label_scale(labels), title=None),
        order=alt.Order("label_order:Q"),
        tooltip=["group:N", "label:N", alt.Tooltip("share:Q", format=".1%"), "n:Q"],
    ).transform_calculate(label_order=f"indexof({list(labels)!r}, datum.label)").properties(
        width=300, height=height, title="Label shares")  # fmt: skip
    return alt.hconcat(net, stacked)


def drivers_chart(drivers: dict[str, list[dict]], top: int = 12) -> alt.HConcatChart:
    """One bar chart per label: the terms that pushed its texts toward it (summed contributions)."""
    charts = []
    for label, terms in drivers.items():
        if not terms:
            continue  # e.g. no text has this label
        data = pd.DataFrame(terms[:top], columns=["term", "weight", "n_texts"])
        charts.append(alt.Chart(data).mark_bar(color=palette.colour(label)).encode(
            y=alt.Y("term:N", sort="-x", title=None, axis=TERM_AXIS), x=alt.X("weight:Q", title="summed contribution"),
            tooltip=["term:N", alt.Tooltip("weight:Q", format=".2f"), "n_texts:Q"],
        ).properties(width=170, height=20 * max(len(data), 3), title=f"Toward {label}"))  # fmt: skip
    return alt.hconcat(*charts)


def distinctive_chart(distinctive: dict[str, list[dict]], top: int = 12) -> alt.Chart:
    """Diverging bars: the terms most distinctive of negative (left) and of positive (right) texts."""
    rows = []
    for label, sign in (("negative", -1), ("positive", 1)):
        for entry in distinctive.get(label, [])[:top]:
            rows.append({**entry, "label": label, "signed_z": sign * entry["z"]})
    data = pd.DataFrame(rows, columns=["term", "z", "log_odds", "n_texts", "label", "signed_z"])
    return alt.Chart(data).mark_bar().encode(
        y=alt.Y("term:N", sort=alt.SortField("signed_z"), title=None, axis=TERM_AXIS),
        x=alt.X("signed_z:Q", title="z-score of the log-odds ratio (negative <-> positive)"),
        color=alt.Color("label:N", scale=_label_scale(), title=None),
        tooltip=["term:N", "label:N", alt.Tooltip("z:Q", format=".1f"), alt.Tooltip("log_odds:Q", format=".2f"),
                 "n_texts:Q"],
    ).properties(width=WIDTH, height=20 * max(len(data), 4),
                 title="Most distinctive terms: negative vs positive (log-odds, informative Dirichlet prior)")  # fmt: skip


def targets_trend_chart(points: pd.DataFrame) -> alt.Chart:
    """Net sentiment of each target per period (a `targets.trend_frame`: periods with at least
    MIN_POINT_N mentioning parts only), one line per target."""
    return alt.Chart(points).mark_line(point=True).encode(
        x=alt.X("period:O", title=None), y=alt.Y("net:Q", title="net sentiment", scale=alt.Scale(domain=[-1, 1])),
        color=alt.Color("target:N", title="target"),
        tooltip=["target:N", "period:N", "mentions:Q", alt.Tooltip("net:Q", format="+.2f"),
                 alt.Tooltip("ci_low:Q", format="+.2f"), alt.Tooltip("ci_high:Q", format="+.2f")],
    ).properties(width=WIDTH, height=200, title="Net sentiment per target over time (parts that mention it)")  # fmt: skip
