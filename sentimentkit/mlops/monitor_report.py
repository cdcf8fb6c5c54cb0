"""The monitoring report as one self-contained HTML file: no script, no external file, charts drawn
as inline SVG (so it opens offline, in a mail attachment, or from Blob storage as is)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from sentimentkit import palette

# Label colours come from the one palette; the rest are the report's own (series and statuses).
COLOURS = {"reference": "#9aa5b1", "live": "#1f6feb", "OK": "#1a7f37", "WARN": "#bf8700", "ALERT": "#cf222e",
           **palette.LABEL_COLOURS}  # fmt: skip
LINE_COLOURS = ("#1f6feb", "#cf222e", "#1a7f37", "#8250df", "#bf8700")
W, H, PAD = 460, 200, 36

# The one place a monitoring signal's key becomes words (the app's table and the HTML report use it).
SIGNAL_NAMES = {
    "labels": "Share of each predicted label",
    "confidence": "How sure the model is",
    "text_length": "Length of the texts",
    "unknown_tokens": "Words the model never saw",
    "new_tokens": "New frequent words",
    "non_english": "Share of texts not in English",
    "performance": "Estimated accuracy (AvgRec)",
    "volume": "Number of predictions",
}
ONE_WINDOW_NOTE = (
    "Only one window holds predictions so far: the trends over windows appear from the second one."
)


def signal_name(key: str) -> str:
    """A signal's name in words ("unknown_tokens" -> "Words the model never saw"); unknown keys as is."""
    return SIGNAL_NAMES.get(key, key.replace("_", " "))


def summary_in_words(report: dict[str, Any]) -> str:
    """The report's one-line summary with each signal named in words ("ALERT: Words the model never saw
    (ALERT), ..."); the JSON's `summary` keeps the keys that --thresholds and scripts use."""
    moved = [
        f"{signal_name(name)} ({s['status']})" for name, s in report["signals"].items() if s["status"] != "OK"
    ]
    return f"{report['status']}: " + ", ".join(moved) if moved else report["summary"]


def windows_with_data(report: dict[str, Any]) -> int:
    """How many windows of the report's trend hold at least one prediction."""
    return sum(1 for row in report.get("trend", []) if row.get("n"))


def bars(
    title: str, categories: Sequence[str], series: dict[str, Sequence[float]], percent: bool = True
) -> str:
    """Grouped bar chart (one group per category, one bar per series) as an SVG element."""
    top = max([max(v, default=0) for v in series.values()] + [1e-9])
    group = (W - 2 * PAD) / max(1, len(categories))
    width = group * 0.8 / max(1, len(series))
    parts = [_frame(title)]
    for j, (name, values) in enumerate(series.items()):
        colour = COLOURS.get(name, LINE_COLOURS[j % len(LINE_COLOURS)])
        for i, value in enumerate(values):
            h = (H - 2 * PAD) * value / top
            x = PAD + i * group + group * 0.1 + j * width
            label = (
                f"{name} {categories[i]}: {value:.1%}" if percent else f"{name} {categories[i]}: {value:,.3g}"
            )
            parts.append(f'<rect x="{x:.1f}" y="{H - PAD - h:.1f}" width="{width:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{html.escape(label)}</title></rect>')  # fmt: skip
    for i, category in enumerate(categories):
        parts.append(f'<text x="{PAD + (i + 0.5) * group:.1f}" y="{H - PAD + 14}" font-size="10" '
                     f'text-anchor="middle">{html.escape(str(category))}</text>')  # fmt: skip
    parts.append(_legend(list(series)))
    return _svg(parts)


def lines(title: str, x_labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> str:
    """Line chart over windows (None = no data in that window) as an SVG element."""
    values = [v for vs in series.values() for v in vs if v is not None]
    low, high = min(values, default=0.0), max(values, default=1.0)
    span = (high - low) or 1.0
    step = (W - 2 * PAD) / max(1, len(x_labels) - 1)
    parts = [_frame(title), f'<text x="4" y="{PAD}" font-size="10">{high:,.3g}</text>',
             f'<text x="4" y="{H - PAD}" font-size="10">{low:,.3g}</text>']  # fmt: skip
    for j, (name, vs) in enumerate(series.items()):
        points = [
            (PAD + i * step, H - PAD - (H - 2 * PAD) * (v - low) / span)
            for i, v in enumerate(vs)
            if v is not None
        ]
        colour = COLOURS.get(name, LINE_COLOURS[j % len(LINE_COLOURS)])
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
    for i, anchor in ((0, "start"), (len(x_labels) - 1, "end")) if x_labels else ():
        parts.append(f'<text x="{PAD + i * step:.1f}" y="{H - PAD + 14}" font-size="10" '
                     f'text-anchor="{anchor}">{html.escape(x_labels[i])}</text>')  # fmt: skip
    parts.append(_legend(list(series)))
    return _svg(parts)


def _frame(title: str) -> str:
    return (f'<text x="{PAD}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>'
            f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#444"/>')  # fmt: skip


def _legend(names: list[str]) -> str:
    items = []
    for j, name in enumerate(names):
        colour = COLOURS.get(name, LINE_COLOURS[j % len(LINE_COLOURS)])
        x = W - PAD - 110 * (len(names) - j)
        items.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14}" y="35" font-size="10">{html.escape(name)}</text>')  # fmt: skip
    return "".join(items)


def _svg(parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img">{"".join(parts)}</svg>'
    )


def _edges_labels(edges: Sequence[float | None], digits: int = 2) -> list[str]:
    """Bin labels: 'a-b' for fractions; for lengths (digits=0) the lower edge only, 'a+' (less crowded)."""
    if not digits:
        return [f"{a:.0f}+" for a in edges[:-1] if a is not None]
    return [
        f"{a:.{digits}g}-{b:.{digits}g}"
        for a, b in zip(edges[:-1], edges[1:])
        if a is not None and b is not None
    ]


def charts(report: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """The report's SVG charts: distributions live vs reference, then trends over windows."""
    s = report["signals"]
    out = []
    values = s["labels"]["values"]
    if "shares" in values:
        labels = list(values["reference"])
        out.append(bars("Predicted labels", labels, {"reference": [values["reference"][x] for x in labels],
                                                      "live": [values["shares"][x] for x in labels]}))  # fmt: skip
    for key, title, edges, digits in (("confidence", "Confidence", "confidence_edges", 2),
                                      ("text_length", "Text length (characters)", "length_edges", 0),
                                      ("unknown_tokens", "Share of unknown words per text", "unknown_edges", 2)):  # fmt: skip
        v = s[key]["values"]
        if v.get("shares") and v.get("reference_shares"):
            out.append(bars(title, _edges_labels(reference[edges], digits),
                            {"reference": v["reference_shares"], "live": v["shares"]}))  # fmt: skip
    trend = report["trend"]
    if windows_with_data(report) < 2:  # one point is no trend: no empty-looking line charts
        return out
    x = [row["start"][5:16].replace("T", " ") for row in trend]
    out.append(lines("Predictions per window", x, {"predictions": [row["n"] for row in trend]}))
    out.append(lines("Label shares per window", x, {f"{label}": [row.get(f"share_{label}") for row in trend]
                                                   for label in ("negative", "neutral", "positive")}))  # fmt: skip
    performance = performance_series(report)
    if performance:
        out.append(lines("AvgRec per window (estimated; realized where labelled)", x, performance))
    out.append(lines("Confidence per window", x, {"mean confidence": [row.get("confidence_mean") for row in trend],
                                                 "uncertain share": [row.get("uncertain_share") for row in trend]}))  # fmt: skip
    return out


def performance_series(report: dict[str, Any]) -> dict[str, list[float | None]]:
    """Estimated AvgRec per window, the realized one where labels matched, and the reference level."""
    trend = report["trend"]
    if not any(row.get("estimated_avg_recall") is not None for row in trend):
        return {}
    series: dict[str, list[float | None]] = {"estimated": [row.get("estimated_avg_recall") for row in trend]}
    if any(row.get("realized_avg_recall") is not None for row in trend):
        series["realized"] = [row.get("realized_avg_recall") for row in trend]
    reference = report["signals"].get("performance", {}).get("values", {}).get("reference_avg_recall")
    if reference is not None:
        series["reference"] = [reference] * len(trend)
    return series


def performance_rows(report: dict[str, Any]) -> str:
    """HTML rows: per window, estimated AvgRec and accuracy, and realized ones with n labelled."""

    def pct(value: Any) -> str:
        return "" if value is None else f"{value:.3f}"

    return "".join(
        f"<tr><td>{html.escape(row['start'][:16].replace('T', ' '))}</td><td>{row['n']:,}</td>"
        f"<td>{pct(row.get('estimated_avg_recall'))}</td><td>{pct(row.get('estimated_accuracy'))}</td>"
        f"<td>{pct(row.get('realized_avg_recall'))}</td><td>{pct(row.get('realized_accuracy'))}</td>"
        f"<td>{row.get('n_labelled', '') if row.get('n_labelled') else ''}</td></tr>"
        for row in report["trend"]
    )


def _version_runs(trend: list[dict[str, Any]]) -> list[str]:
    """'from START: versions' each time the set of serving versions changes (a promotion shows here)."""
    runs: list[str] = []
    last = None
    for row in trend:
        versions = ", ".join(row.get("versions", []))
        if versions and versions != last:
            runs.append(f"from {row['start'][:16].replace('T', ' ')}: {versions}")
            last = versions
    return runs


def render_html(report: dict[str, Any], reference: dict[str, Any]) -> str:
    """The whole report page."""
    status = report["status"]
    rows = "".join(
        f'<tr><td>{html.escape(signal_name(name))}</td><td><b style="color:{COLOURS[sig["status"]]}">{sig["status"]}</b></td>'
        f"<td>{html.escape(sig['reason'])}</td></tr>"
        for name, sig in report["signals"].items()
    )
    models = (
        ", ".join(f"{m['name']} {m['version']} ({m['predictions']:,})" for m in report["models"]) or "none"
    )
    versions = _version_runs(report["trend"])
    ref = report["reference"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sentimentkit monitoring: {status}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1000px;color:#1f2328}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #d0d7de;padding:6px;text-align:left;vertical-align:top}}
.status{{font-size:28px;font-weight:bold;color:{COLOURS[status]}}}.charts svg{{margin:8px;border:1px solid #eee}}</style>
</head><body>
<h1>sentimentkit monitoring report</h1>
<p class="status">{status}</p><p>{html.escape(summary_in_words(report))}</p>
<p>Latest window: {html.escape(report["window"]["start"][:19])} to {html.escape(report["window"]["end"][:19])} UTC,
{report["n"]:,} predictions. Served by: {html.escape(models)}.<br>
Reference: {html.escape(str(ref.get("source")))} ({ref.get("n") or 0:,} texts), {html.escape(ref.get("note") or "")}.</p>
<h2>Signals</h2><table><tr><th>signal</th><th>status</th><th>reason</th></tr>{rows}</table>
<h2>Performance per window</h2>
<p>{html.escape(report["signals"].get("performance", {}).get("reason", ""))}</p>
<p style="color:#666;font-size:12px">Estimated from the model's probabilities (confidence-based performance
estimation; docs/performance_estimate.md): right when the probabilities are calibrated for this traffic, blind to
mistakes the model makes confidently.</p>
<table><tr><th>window start</th><th>predictions</th><th>estimated AvgRec</th><th>estimated accuracy</th>
<th>realized AvgRec</th><th>realized accuracy</th><th>labelled</th></tr>{performance_rows(report)}</table>
<h2>Charts</h2>{"" if windows_with_data(report) >= 2 else f"<p>{ONE_WINDOW_NOTE}</p>"}<div class="charts">{"".join(charts(report, reference))}</div>
<h2>Model versions serving</h2><p>{html.escape("; ".join(versions)) or "none"}</p>
<p style="color:#666;font-size:12px">Thresholds: {html.escape(", ".join(f"{k}={v}" for k, v in report["thresholds"].items()))}</p>
</body></html>
"""


def signals_table(report: dict[str, Any]) -> Any:
    """One row per signal: signal (in words, `SIGNAL_NAMES`), status, reason (a pandas DataFrame)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"signal": signal_name(name), "status": s["status"], "reason": s["reason"]}
            for name, s in report["signals"].items()
        ]
    )


def trend_table(report: dict[str, Any]) -> Any:
    """One row per window (indexed by its start): predictions, label shares, confidence, drift."""
    import pandas as pd

    frame = pd.DataFrame(report["trend"])
    frame["start"] = pd.to_datetime(frame["start"])
    return frame.set_index("start")


# The app's trend charts: (title, {column in the trend: its name in words}); label shares get the label colours.
TREND_CHARTS = (
    ("Predictions per window", {"n": "predictions"}),
    ("Label shares per window", {f"share_{label}": label for label in palette.LABEL_COLOURS}),
    ("Confidence per window", {"confidence_mean": "mean confidence", "uncertain_share": "uncertain share"}),
    ("Estimated and realized AvgRec per window",
     {"estimated_avg_recall": "estimated AvgRec", "realized_avg_recall": "realized AvgRec"}),
)  # fmt: skip


def trend_charts(report: dict[str, Any]) -> list[tuple[str, Any, list[str] | None]]:
    """The app's line charts of the trend: (title, frame with its series named in words, colours or None).

    A label's share is drawn in that label's colour (the one palette); series the log lacks are left out.
    """
    trend = trend_table(report)
    found = []
    for title, names in TREND_CHARTS:
        columns = [c for c in names if c in trend.columns]
        if not columns:
            continue
        frame = trend[columns].rename(columns=names)
        labels = [names[c] for c in columns]
        colours = palette.colours(labels) if all(x in palette.LABEL_COLOURS for x in labels) else None
        found.append((title, frame, colours))
    return found
