"""The one palette: a colour per sentiment label, used by every chart and report.

The app (probability bars, rows per label, the "Why ...?" word highlighting), the Insights charts, the
monitoring charts and both HTML reports take their label colours from here, so "negative" is the same
colour everywhere. Negative and positive are a colour-blind-safe pair (magenta / blue); neutral is a
mid grey; rows that were not scored, and uncertain answers, are a light grey. Nothing is imported: this
module sits on the package's ground floor.
"""

from __future__ import annotations

NEGATIVE = "#d41159"
NEUTRAL = "#9e9e9e"
POSITIVE = "#1a85ff"
NOT_SCORED = "#d0d0d0"  # also "uncertain": an answer below the confidence threshold

LABEL_COLOURS: dict[str, str] = {"negative": NEGATIVE, "neutral": NEUTRAL, "positive": POSITIVE}
# Words that push a text away from "neutral" have no single opposite label: they are shown dark grey.
AWAY_FROM_NEUTRAL = "#555555"


def colour(label: str) -> str:
    """The colour of `label` ("not scored", "uncertain" and any unknown label: the light grey)."""
    return LABEL_COLOURS.get(str(label), NOT_SCORED)


def colours(labels: list[str] | tuple[str, ...]) -> list[str]:
    """The colours of `labels`, in order (for a chart's colour scale)."""
    return [colour(label) for label in labels]


def against_colour(label: str) -> str:
    """The colour of words that push a text away from `label`: the opposite pole (positive for
    negative and back), dark grey for neutral (those words push toward either pole)."""
    opposite = {"negative": POSITIVE, "positive": NEGATIVE}
    return opposite.get(str(label), AWAY_FROM_NEUTRAL)


def rgb(hex_colour: str) -> str:
    """'#d41159' -> '212, 17, 89' (for CSS rgba() with a transparency)."""
    value = hex_colour.lstrip("#")
    return ", ".join(str(int(value[i : i + 2], 16)) for i in (0, 2, 4))
