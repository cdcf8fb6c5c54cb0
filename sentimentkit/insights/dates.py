"""Find and read a date/time column without misreading it.

pandas guesses day/month order per value, so `03-04-2015` may become 4 March in one row and
`24-02-2015` 24 February in the next. Here the order is decided once per column from evidence
(a first field above 12 means day-first, a second field above 12 means month-first); when nothing
settles it, or the evidence conflicts, those dates are left unread and the reason is said in
words, with the option that fixes it. Unreadable values are counted and quoted, never dropped
silently: the rows stay in every other part of the report. So are real dates outside the years
1678-2261 (a nanosecond timestamp holds 1677-09-21 to 2262-04-11; the chart's periods need a margin):
placeholders such as 9999-12-31, typos such as 1500 are flagged (`ParsedDates.out_of_range`, and a
warning) and left out of the over-time chart only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sentimentkit.errors import OptionError

DATE_ORDERS = ("auto", "DMY", "MDY", "YMD")
DATE_NAME_HINTS = ("date", "time", "created", "timestamp", "posted", "published", "day", "when")
ORDER_WORDS = {
    "DMY": "day first (DD-MM-YYYY)",
    "MDY": "month first (MM-DD-YYYY)",
    "YMD": "year first (YYYY-MM-DD)",
}
DETECT_SAMPLE = 200
DETECT_MIN_SHARE = 0.9
# The dates that are read: whole years inside what a nanosecond timestamp holds, so that the
# over-time chart's periods (a month's or a week's start) stay inside it too.
EARLIEST = pd.Timestamp("1678-01-01")
LATEST = pd.Timestamp("2261-12-31 23:59:59.999999")

# Three numeric fields with -, / or . between them, optionally a time (11:35, 11.35, 11h35, with
# seconds, fractions, am/pm) and a UTC offset.
_NUMERIC_RE = (
    r"^(?P<a>\d{1,4})[-/.](?P<b>\d{1,2})[-/.](?P<c>\d{1,4})"
    r"(?:(?:[ T]+|,\s*)(?P<H>\d{1,2})[:.h](?P<M>\d{2})(?:[:.](?P<S>\d{2})(?:[.,]\d+)?)?\s*(?P<ampm>[aApP][mM])?)?"
    r"\s*(?P<tz>Z|UTC|GMT|[+-]\d{2}:?\d{2})?$"
)
_MONTH_NAME_RE = re.compile(r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\b", re.I)
_TWITTER_FORMAT = "%a %b %d %H:%M:%S %z %Y"  # the Twitter API's created_at


@dataclass
class ParsedDates:
    """Timestamps (naive, UTC where an offset was given; NaT where unread) and what was decided."""

    values: pd.Series
    order: str | None = None
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Rows left unread because the day/month order is undecided (already explained in `problems`).
    undecided: pd.Index = field(default_factory=lambda: pd.Index([]))
    # Rows with a real date outside the range a timestamp holds (left unread, explained in `problems`).
    out_of_range: pd.Index = field(default_factory=lambda: pd.Index([]))

    @property
    def n_read(self) -> int:
        return int(self.values.notna().sum())


def parse_dates(raw: pd.Series, order: str = "auto", column: str = "date") -> ParsedDates:
    """Read `raw` (any values) as timestamps; say in words what was assumed and what was not read."""
    if order not in DATE_ORDERS:
        raise OptionError(f"date order must be one of {', '.join(DATE_ORDERS)}, got {order!r}")
    text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    result = ParsedDates(out)
    fields = text.str.extract(_NUMERIC_RE)
    numeric = fields["a"].notna()
    if numeric.any():
        _read_numeric(fields[numeric], order, column, result)
    rest = (~numeric) & (text != "")
    if rest.any():
        out[rest] = _in_range(_read_textual(text[rest]), result)
    _report_unread(text, out, column, result)
    return result


def _read_numeric(fields: pd.DataFrame, order: str, column: str, result: ParsedDates) -> None:
    """Dates made of three numbers: decide the order for the whole column, then build them."""
    a, b, c = (fields[k].astype(int) for k in "abc")
    year_first = fields["a"].str.len() == 4
    chosen = order if order != "auto" else None
    if year_first.any():
        _assign(result, fields[year_first], a[year_first], b[year_first], c[year_first])
    last = ~year_first
    if not last.any():
        result.order = "YMD"
        return
    chosen = (
        chosen
        if chosen in ("DMY", "MDY")
        else _infer_order(a[last], b[last], fields["a"][last], column, result)
    )
    if chosen is None:
        result.undecided = fields.index[last]
        return
    result.order = chosen
    day, month = (a[last], b[last]) if chosen == "DMY" else (b[last], a[last])
    year = c[last].where(fields["c"][last].str.len() != 2, _two_digit_year(c[last]))
    if (fields["c"][last].str.len() == 2).any():
        result.notes.append(f"'{column}': two-digit years were read as 2000-2068 or 1969-1999.")
    _assign(result, fields[last], year, month, day)


def _infer_order(first: pd.Series, second: pd.Series, examples: pd.Series, column: str,
                 result: ParsedDates) -> str | None:  # fmt: skip
    """DMY or MDY from the values themselves, or None (with the problem said in words)."""
    day_first, month_first = first > 12, second > 12
    if day_first.any() and not month_first.any():
        example = examples.index[day_first.to_numpy()][0]
        result.notes.append(
            f"'{column}' was read {ORDER_WORDS['DMY']}: values such as row {example + 1} have a first "
            "number above 12, which can only be a day."
        )
        return "DMY"
    if month_first.any() and not day_first.any():
        result.notes.append(
            f"'{column}' was read {ORDER_WORDS['MDY']}: some values have a second number above 12, "
            "which can only be a day."
        )
        return "MDY"
    if day_first.any():
        result.problems.append(
            f"'{column}' mixes day-first and month-first dates (some have a first number above 12, "
            "others a second number above 12), so they were not read. Fix the column, or choose the "
            "order (date order DMY or MDY) to read the ones that fit it."
        )
    else:
        result.problems.append(
            f"The dates in '{column}' could be day-first or month-first (no value has a number above "
            "12 to tell: 03-04-2015 could be 3 April or 4 March), so they were not read. Choose the "
            "order (date order DMY or MDY)."
        )
    return None


def _two_digit_year(years: pd.Series) -> pd.Series:
    """The strptime convention for %y: 00-68 -> 2000s, 69-99 -> 1900s."""
    return years.where(years >= 69, years + 2000).where(years < 69, years + 1900)


def _assign(
    result: ParsedDates, fields: pd.DataFrame, year: pd.Series, month: pd.Series, day: pd.Series
) -> None:
    """Build timestamps from the parts into `result.values` (impossible dates such as 31-02 become
    NaT; dates out of range too, flagged)."""
    hour = fields["H"].fillna("0").astype(int)
    pm = fields["ampm"].fillna("").str.lower()
    hour = hour.where(~((pm == "pm") & (hour < 12)), hour + 12).where(~((pm == "am") & (hour == 12)), 0)
    parts = pd.DataFrame({
        "year": year, "month": month, "day": day, "hour": hour,
        "minute": fields["M"].fillna("0").astype(int), "second": fields["S"].fillna("0").astype(int),
    })  # fmt: skip
    stamps = pd.to_datetime(parts, errors="coerce")
    offset = fields["tz"].fillna("")
    shift = offset.map(_offset_minutes)
    result.values.loc[fields.index] = _in_range(stamps - pd.to_timedelta(shift, unit="m"), result)


def _in_range(stamps: pd.Series, result: ParsedDates) -> pd.Series:
    """`stamps` (naive, any unit) as nanosecond timestamps; those outside EARLIEST..LATEST become NaT
    and their rows are added to `result.out_of_range` (a coarser unit holds years 1-9999)."""
    far = stamps.notna() & ((stamps < EARLIEST) | (stamps > LATEST))
    if far.any():
        result.out_of_range = result.out_of_range.append(stamps.index[far.to_numpy()])
    return stamps.mask(far).astype("datetime64[ns]")


def _offset_minutes(offset: str) -> int:
    if offset in ("", "Z", "UTC", "GMT"):
        return 0
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return sign * (int(digits[:2]) * 60 + int(digits[2:]))


def _read_textual(text: pd.Series) -> pd.Series:
    """Twitter's created_at, then dates with a month name (unambiguous); anything else stays NaT."""
    stamps = pd.to_datetime(text, format=_TWITTER_FORMAT, errors="coerce", utc=True)
    named = stamps.isna() & text.str.contains(_MONTH_NAME_RE)
    if named.any():
        unique = pd.unique(text[named])
        parsed = {value: _parse_named(value) for value in unique}
        stamps[named] = text[named].map(parsed)
    return stamps.dt.tz_convert(None)


def _parse_named(value: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, OverflowError):
        return pd.NaT
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def _report_unread(text: pd.Series, values: pd.Series, column: str, result: ParsedDates) -> None:
    empty = text == ""
    far = text.index.isin(result.out_of_range)
    unread = values.isna() & ~empty & ~text.index.isin(result.undecided) & ~far
    if far.any():
        examples = ", ".join(repr(v) for v in pd.unique(text[far])[:3])
        result.problems.append(
            f"{int(far.sum()):,} rows have a date in '{column}' outside the years 1678-2261 (e.g. "
            f"{examples}; placeholders or typos?); they are counted everywhere except the over-time chart."
        )
    if empty.any():
        result.notes.append(f"{int(empty.sum()):,} rows have no value in '{column}'.")
    if unread.any():
        examples = ", ".join(repr(v) for v in pd.unique(text[unread])[:3])
        result.problems.append(
            f"{int(unread.sum()):,} rows have a value in '{column}' that is not a readable date "
            f"(e.g. {examples}); they are counted everywhere except the over-time chart."
        )


def looks_like_dates(raw: pd.Series) -> float:
    """Share of the first DETECT_SAMPLE non-empty values that have the shape of a date."""
    text = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    sample = text[text != ""].head(DETECT_SAMPLE)
    if sample.empty:
        return 0.0
    numeric = sample.str.match(_NUMERIC_RE)
    named = sample.str.contains(_MONTH_NAME_RE) & sample.str.contains(r"\d")
    return float((numeric | named).mean())


def detect_date_column(frame: pd.DataFrame, exclude: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The column that holds dates (by content; a date-like name wins a tie), or None."""
    scores = {
        str(c): looks_like_dates(frame[c]) for c in frame.columns if str(c) not in exclude
    }  # fmt: skip
    candidates = [c for c, share in scores.items() if share >= DETECT_MIN_SHARE]
    if not candidates:
        return None
    hinted = [c for c in candidates if any(h in c.lower() for h in DATE_NAME_HINTS)]
    return (hinted or candidates)[int(np.argmax([scores[c] for c in (hinted or candidates)]))]
