"""Batch scoring of tables: read CSV/TSV/XLSX safely, score every row, write results.

Guarantees: every input row comes out, in order, with its original columns plus
OUTPUT_COLUMNS; rows that cannot be scored are flagged in `error`, never dropped.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

from sentimentkit.predict import OUTPUT_COLUMNS, Predictor

SAMPLE_BYTES = 64 * 1024
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
TEXT_COLUMN_HINTS = ("text", "tweet", "content", "message", "comment", "review", "body", "sentence")


class BatchError(Exception):
    """A problem with an uploaded or given table; the message says what to do."""


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (by BOM) or Latin-1 as the fallback that never fails."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if len(sample) >= 4 and sample[1::2].count(0) > len(sample) // 4:
        return "utf-16-le"  # UTF-16 without BOM: every other byte zero for Latin text
    return "latin-1"


def detect_delimiter(text_sample: str, filename: str = "") -> str:
    """Tab for .tsv, otherwise csv.Sniffer over , ; tab |, defaulting to comma."""
    if filename.lower().endswith((".tsv", ".tab")):
        return "\t"
    try:
        return csv.Sniffer().sniff(text_sample[:20_000], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def guess_text_column(columns: list[str]) -> str:
    """The column most likely to hold the text (by name), else the first column."""
    lowered = [str(c).strip().lower() for c in columns]
    for hint in TEXT_COLUMN_HINTS:
        if hint in lowered:
            return columns[lowered.index(hint)]
    return columns[0]


def _csv_options(sample: bytes, filename: str) -> dict[str, Any]:
    encoding = detect_encoding(sample)
    text = sample.decode(encoding if encoding != "utf-8" else "utf-8", errors="ignore")
    return {"encoding": encoding, "sep": detect_delimiter(text, filename)}


def read_csv_chunks(source: str | Path | IO[bytes], filename: str = "", chunk_rows: int = 20_000
                    ) -> Iterator[pd.DataFrame]:  # fmt: skip
    """Stream a CSV/TSV as string-typed frames; values are kept exactly (no NA guessing)."""
    if isinstance(source, (str, Path)):
        filename = filename or str(source)
        with open(source, "rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
    else:
        sample = source.read(SAMPLE_BYTES)
        source.seek(0)
    if not sample.strip():
        raise BatchError("The file is empty. Upload a CSV with a header row and one text per row.")
    options = _csv_options(sample, filename)
    try:
        reader = pd.read_csv(source, dtype=str, keep_default_na=False, na_filter=False,
                             chunksize=chunk_rows, **options)  # fmt: skip
        yield from reader
    except UnicodeDecodeError as exc:
        raise BatchError(
            f"The file has bytes that are not valid {options['encoding']} (at byte {exc.start}). "
            "Re-save it as UTF-8 CSV."
        ) from None
    except pd.errors.EmptyDataError:
        raise BatchError("The file is empty. Upload a CSV with a header row and one text per row.") from None
    except pd.errors.ParserError as exc:
        raise BatchError(f"The file is not a well-formed CSV: {exc}. Check quoting and delimiters.") from None


def read_table(data: bytes, filename: str, max_rows: int | None = None) -> pd.DataFrame:
    """Read an uploaded CSV, TSV or XLSX into a string-typed frame (all in memory)."""
    name = filename.lower()
    if name.endswith((".xlsx", ".xlsm")):
        frame = _read_excel(data)
    elif name.endswith((".csv", ".tsv", ".tab", ".txt")):
        frame = pd.concat(list(read_csv_chunks(io.BytesIO(data), filename)), ignore_index=True)
    else:
        raise BatchError(f"{filename!r} is not a CSV, TSV or Excel (.xlsx) file.")
    if frame.columns.empty:
        raise BatchError("The file has no columns. Upload a CSV with a header row.")
    if frame.empty:
        raise BatchError("The file has a header but no rows to score.")
    if max_rows is not None and len(frame) > max_rows:
        raise BatchError(
            f"The file has {len(frame):,} rows; this app scores at most {max_rows:,}. Use the command line "
            "for large files: python -m sentimentkit predict --input FILE.csv --output OUT.csv"
        )
    return frame


def _read_excel(data: bytes) -> pd.DataFrame:
    try:
        frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False, engine="openpyxl")
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise BatchError(
            f"The Excel file could not be read ({type(exc).__name__}). Save it again as .xlsx."
        ) from None
    return frame


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix cells that a spreadsheet would run as formulas with ' (OWASP CSV-injection advice)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_neutralise_cell)
    return out


def _neutralise_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER_RE.match(value):
        return "'" + value
    return value


def check_column(frame: pd.DataFrame, text_column: str) -> None:
    if text_column not in frame.columns:
        raise BatchError(
            f"Column {text_column!r} not found; the columns are {list(frame.columns)}. "
            "Choose the column that holds the text."
        )


def score_csv_file(
    predictor: Predictor, input_path: str | Path, output_path: str | Path,
    text_column: str = "text", chunk_rows: int = 20_000, escape_formulas: bool = False,
) -> tuple[int, int]:  # fmt: skip
    """Stream-score a CSV file chunk by chunk into `output_path`. Returns (rows, flagged rows)."""
    rows = flagged = 0
    with open(output_path, "w", encoding="utf-8", newline="") as out:
        for chunk in read_csv_chunks(input_path, chunk_rows=chunk_rows):
            check_column(chunk, text_column)
            scored = predictor.score_frame(chunk, text_column)
            if escape_formulas:
                scored = neutralise_formulas(scored)
            scored.to_csv(out, index=False, header=rows == 0)
            rows += len(scored)
            flagged += int(scored["error"].notna().sum())
    if rows == 0:
        raise BatchError(f"{input_path} has a header but no rows to score.")
    return rows, flagged


__all__ = ["OUTPUT_COLUMNS", "BatchError", "read_table", "score_csv_file", "neutralise_formulas"]
