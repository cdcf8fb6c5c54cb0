"""The formula guard: a cell a spreadsheet would run as a formula is written so that it will not."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix with ' every text cell (and column name) that a spreadsheet would run as a formula:
    it starts with = + - @ tab or CR and is not a number (OWASP CSV-injection advice)."""
    out = frame.copy()
    for column in out.columns:
        if _may_hold_text(out[column]):
            out[column] = out[column].map(_neutralise_cell)
    out.columns = [_neutralise_cell(c) for c in out.columns]
    return out


def _may_hold_text(values: pd.Series) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values)


def _neutralise_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER_RE.match(value):
        return "'" + value
    return value
