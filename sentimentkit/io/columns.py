"""Column names every table we write shares, and how an input's columns make room for them.

`OUTPUT_COLUMNS` are appended to every scored row; an input column already named like one of them
keeps its values under `<name>_input` (`input_column_renames`), so nothing an input holds is lost.
`UnsavedFormula` marks a spreadsheet cell that holds a formula but no saved value; `SpreadsheetError`
a cell whose value is a spreadsheet error (#DIV/0!, #N/A...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sentimentkit import LABELS

PROBA_COLUMNS: tuple[str, ...] = tuple(f"p_{label}" for label in LABELS)
# `language`: the language guard's ISO 639-1 code (rows in other languages than the model's are
# scored but flagged); `mixed`: one part of the text confidently positive and another negative.
OUTPUT_COLUMNS: tuple[str, ...] = (
    "sentiment", "confidence", *PROBA_COLUMNS, "uncertain", "error", "language", "mixed",
)  # fmt: skip
# Written only when asked for (`predict --parts`): each text's scored parts, as a JSON string.
PARTS_COLUMN = "parts"


class UnsavedFormula(str):
    """A spreadsheet cell holding a formula but no computed value (its workbook was written by a
    script or library and never calculated and saved by Excel). The string is the formula ("=A2&B2"),
    so outputs show what the cell holds; `text_error` flags it rather than scoring the formula."""

    __slots__ = ()


class SpreadsheetError(str):
    """A spreadsheet cell of the error type (Excel's #DIV/0!, #N/A, #VALUE!, #REF!, #NAME?, #NUM!,
    #NULL!, #SPILL!, #CALC!, #GETTING_DATA): the string is the error value, so outputs show it;
    `text_error` flags it rather than scoring it. A text cell that merely reads "#N/A" is a str."""

    __slots__ = ()


def input_column_renames(columns: Sequence[Any]) -> dict[Any, str]:
    """New names for input columns named like an output column: the suffix `_input` (plus `_`
    until the name is free), so appending the outputs overwrites nothing."""
    taken = {str(c) for c in columns}
    renames: dict[Any, str] = {}
    for column in columns:
        if column in OUTPUT_COLUMNS or column == PARTS_COLUMN:
            new = f"{column}_input"
            while new in taken:
                new += "_"
            taken.add(new)
            renames[column] = new
    return renames
