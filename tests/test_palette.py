"""One colour per label everywhere: only sentimentkit/palette.py defines label colours, and the app,
Insights charts, the monitoring report and the explanation highlighting use its values."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from sentimentkit import palette, ui
from sentimentkit.insights import charts
from sentimentkit.mlops import monitor_report as report

REPO = Path(__file__).resolve().parent.parent
SOURCES = [REPO / "app.py", *sorted((REPO / "sentimentkit").rglob("*.py"))]
LABEL_KEY_WITH_HEX = re.compile(r"""["'](negative|neutral|positive)["']\s*:\s*["']#[0-9a-fA-F]{3,8}""")
HEX = re.compile(r"#[0-9a-fA-F]{6}\b")


def test_only_the_palette_defines_label_colours() -> None:
    palette_values = {v.lower() for v in (*palette.LABEL_COLOURS.values(), palette.NOT_SCORED)}
    offenders = []
    for path in SOURCES:
        if path.name == "palette.py":
            continue
        source = path.read_text(encoding="utf-8")
        if LABEL_KEY_WITH_HEX.search(source):
            offenders.append(f"{path.relative_to(REPO)}: a label mapped to a hex colour")
        reused = palette_values & {h.lower() for h in HEX.findall(source)}
        if reused:
            offenders.append(f"{path.relative_to(REPO)}: palette colours copied as literals {sorted(reused)}")
        if re.search(r"\b(TOWARD|AGAINST)_RGB\b", source):
            offenders.append(f"{path.relative_to(REPO)}: its own highlight colours")
    assert not offenders, offenders


def test_palette_has_a_distinct_colour_per_label_and_grey_for_not_scored() -> None:
    assert set(palette.LABEL_COLOURS) == {"negative", "neutral", "positive"}
    assert len(set(palette.LABEL_COLOURS.values()) | {palette.NOT_SCORED}) == 4
    assert palette.colour("not scored") == palette.colour("uncertain") == palette.NOT_SCORED
    assert palette.rgb("#d41159") == "212, 17, 89"


def test_insights_and_monitoring_charts_use_the_palette() -> None:
    assert charts.LABEL_COLOURS == palette.LABEL_COLOURS
    for label, colour in palette.LABEL_COLOURS.items():
        assert report.COLOURS[label] == colour
    svg = report.bars("Predicted labels", ["negative"], {"negative": [0.5]})
    assert f'fill="{palette.NEGATIVE}"' in svg
    scale = charts._label_scale().to_dict()
    assert scale["range"] == [palette.NEGATIVE, palette.NEUTRAL, palette.POSITIVE]


def test_app_charts_use_the_palette() -> None:
    frame = pd.DataFrame({"label": ["negative", "neutral", "positive"], "probability": [0.6, 0.1, 0.3]})
    spec = ui.probability_chart(frame).to_dict()
    assert spec["encoding"]["color"]["scale"]["range"] == [
        palette.NEGATIVE,
        palette.NEUTRAL,
        palette.POSITIVE,
    ]
    summary = pd.DataFrame({"label": ["negative", "neutral", "positive", "not scored"], "rows": [1, 2, 3, 4]})
    spec = ui.label_count_chart(summary).to_dict()
    assert spec["encoding"]["color"]["scale"]["range"][-1] == palette.NOT_SCORED


def test_why_negative_paints_negative_words_in_the_negative_colour() -> None:
    """The defect: "Why negative?" painted the words pushing toward negative blue (the positive colour)
    while Insights paints negative red."""
    text = "awful service"
    explanation = {"label": "negative", "tokens": [{"start": 0, "end": 5, "weight": 1.2}]}
    html = ui.explanation_html(text, explanation)
    assert f"rgba({palette.rgb(palette.NEGATIVE)}" in html
    assert f"rgba({palette.rgb(palette.POSITIVE)}" not in html
    explanation = {"label": "positive", "tokens": [{"start": 0, "end": 5, "weight": -1.2}]}
    assert f"rgba({palette.rgb(palette.NEGATIVE)}" in ui.explanation_html(text, explanation)
