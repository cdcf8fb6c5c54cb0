"""Batch scoring of tables: read CSV/TSV/XLSX safely, score every row, write results.

Guarantees: every input row comes out, in order, with its original columns plus
OUTPUT_COLUMNS; rows that cannot be scored are flagged in `error`, never dropped.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from sentimentkit.serving.base import OUTPUT_COLUMNS, BasePredictor

SAMPLE_BYTES = 64 * 1024
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
TEXT_COLUMN_HINTS = ("text", "tweet", "content", "message", "comment", "review", "body", "sentence")
TABLE_EXTENSIONS = (".csv", ".tsv", ".tab", ".txt", ".xlsx", ".xlsm")
CLI_HINT = "python -m sentimentkit predict --input FILE.csv --output OUT.csv"
# The label used in summaries for rows that could not be scored (empty, not text, too long).
NOT_SCORED = "not scored"


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
    if b"\x00" in sample and not options["encoding"].startswith("utf-16"):
        # Latin-1 decodes any bytes, so a binary file would otherwise parse into garbage rows.
        raise BatchError(
            "The file is not text (it contains binary bytes). Upload a CSV/TSV saved as text, "
            "or an Excel workbook with the .xlsx extension."
        )
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
    elif name.endswith(".xls"):
        raise BatchError(
            f"{filename!r} is an old Excel (.xls) workbook. Save it as .xlsx or CSV (UTF-8) and upload that."
        )
    else:
        raise BatchError(
            f"{filename!r} is not a CSV, TSV or Excel (.xlsx) file. Export your table as CSV (UTF-8) "
            "or .xlsx and upload that."
        )
    if frame.columns.empty:
        raise BatchError("The file has no columns. Upload a CSV with a header row.")
    if frame.empty:
        raise BatchError(
            "The file has a header but no rows to score. Add one text per row below the header and "
            "upload it again."
        )
    if max_rows is not None and len(frame) > max_rows:
        raise BatchError(
            f"The file has {len(frame):,} rows; this app scores at most {max_rows:,}. Use the command line "
            "for large files: python -m sentimentkit predict --input FILE.csv --output OUT.csv"
        )
    return frame


def _read_excel(data: bytes) -> pd.DataFrame:
    if not data.strip():
        raise BatchError("The file is empty. Upload a workbook with a header row and one text per row.")
    try:
        # dtype=object keeps each cell's own type, so a number in the text column is flagged
        # "not text" instead of being scored as the string "12345".
        frame = pd.read_excel(io.BytesIO(data), dtype=object, keep_default_na=False, engine="openpyxl")
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
    """Raise BatchError (naming the available columns) when `text_column` is not in `frame`."""
    if text_column not in frame.columns:
        raise BatchError(
            f"Column {text_column!r} not found; the columns are {list(frame.columns)}. "
            "Choose the column that holds the text."
        )


def score_csv_file(
    predictor: BasePredictor, input_path: str | Path, output_path: str | Path,
    text_column: str = "text", chunk_rows: int = 20_000, escape_formulas: bool = False,
    on_scored: Callable[[pd.DataFrame], None] | None = None,
) -> tuple[int, int]:  # fmt: skip
    """Stream-score a CSV file chunk by chunk into `output_path`. Returns (rows, flagged rows).

    `on_scored` (the prediction log) sees each scored chunk before it is written."""
    rows = flagged = 0
    with open(output_path, "w", encoding="utf-8", newline="") as out:
        for chunk in read_csv_chunks(input_path, chunk_rows=chunk_rows):
            check_column(chunk, text_column)
            scored = predictor.score_frame(chunk, text_column)
            if on_scored is not None:
                on_scored(scored)
            if escape_formulas:
                scored = neutralise_formulas(scored)
            scored.to_csv(out, index=False, header=rows == 0)
            rows += len(scored)
            flagged += int(scored["error"].notna().sum())
    if rows == 0:
        raise BatchError(f"{input_path} has a header but no rows to score.")
    return rows, flagged


def check_upload(filename: str, size_bytes: int, max_upload_mb: int) -> None:
    """Reject an upload by name or size before reading it; the message says what to do instead."""
    if not filename.lower().endswith((*TABLE_EXTENSIONS, ".xls")):
        raise BatchError(
            f"{filename!r} is not a CSV, TSV or Excel (.xlsx) file. Export your table as CSV (UTF-8) "
            "or .xlsx and upload that."
        )
    if size_bytes > max_upload_mb * 1024 * 1024:
        raise BatchError(
            f"The file is {size_bytes / 1024 / 1024:.1f} MB; the app accepts at most {max_upload_mb} MB. "
            f"Split it, or score it with the command line: {CLI_HINT}"
        )
    if size_bytes == 0:
        raise BatchError("The file is empty. Upload a CSV with a header row and one text per row.")


ProgressCallback = Callable[[int, int], None]


def score_table(
    backend: BasePredictor,
    frame: pd.DataFrame,
    text_column: str,
    threshold: float | None = None,
    progress_callback: ProgressCallback | None = None,
    chunk_rows: int = 5_000,
) -> pd.DataFrame:
    """Score every row of `frame` in chunks; call `progress_callback(done, total)` after each.

    The result has every input row, in order, and every input column (one named like an output
    column gets the suffix `_input`), followed by OUTPUT_COLUMNS. Rows that cannot be scored
    carry a message in `error` and nulls elsewhere; they are never dropped.
    """
    check_column(frame, text_column)
    total = len(frame)
    parts: list[pd.DataFrame] = []
    for start in range(0, total, chunk_rows):
        parts.append(backend.score_frame(frame.iloc[start : start + chunk_rows], text_column, threshold))
        if progress_callback is not None:
            progress_callback(min(start + chunk_rows, total), total)
    if not parts:
        return backend.score_frame(frame, text_column, threshold)
    return pd.concat(parts)


def apply_threshold(scored: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Recompute `uncertain` for a new threshold without scoring again (scored rows only)."""
    out = scored.copy()
    confidence = pd.to_numeric(out["confidence"], errors="coerce")
    flags = (confidence < threshold).astype(object)
    flags[confidence.isna()] = None
    out["uncertain"] = flags
    return out


def outcome_labels(scored: pd.DataFrame) -> pd.Series:
    """Each row's label, or NOT_SCORED for rows with an error."""
    return scored["sentiment"].astype(object).where(scored["error"].isna(), NOT_SCORED).fillna(NOT_SCORED)


def label_summary(scored: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """Rows per label (plus NOT_SCORED when any) with their share of all rows, in label order."""
    counts = outcome_labels(scored).value_counts()
    order = [*labels, NOT_SCORED] if counts.get(NOT_SCORED, 0) else list(labels)
    rows = [int(counts.get(label, 0)) for label in order]
    total = max(len(scored), 1)
    return pd.DataFrame({"label": order, "rows": rows, "share": [r / total for r in rows]})


def confidence_histogram(scored: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Scored rows per confidence bin of equal width over [1/3, 1] (a 3-class top probability)."""
    confidence = pd.to_numeric(scored["confidence"], errors="coerce").dropna().to_numpy(dtype=float)
    edges = np.linspace(1 / 3, 1.0, bins + 1)
    counts, _ = np.histogram(np.clip(confidence, edges[0], edges[-1]), bins=edges)
    names = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:])]
    return pd.DataFrame({"confidence": names, "rows": counts.astype(int)})


def filter_results(
    scored: pd.DataFrame, labels: Sequence[str] | None = None, uncertain: bool | None = None
) -> pd.DataFrame:
    """Rows whose outcome label is in `labels` (None: all) and whose `uncertain` flag matches."""
    mask = pd.Series(True, index=scored.index)
    if labels is not None:
        mask &= outcome_labels(scored).isin(list(labels))
    if uncertain is not None:
        mask &= scored["uncertain"].map(lambda v: v is not None and not pd.isna(v) and bool(v) == uncertain)
    return scored[mask]


def result_csv_bytes(scored: pd.DataFrame) -> bytes:
    """The full result as UTF-8 CSV (with BOM, so Excel shows accents), formulas neutralised."""
    return neutralise_formulas(scored).to_csv(index=False).encode("utf-8-sig")


__all__ = [
    "CLI_HINT",
    "NOT_SCORED",
    "OUTPUT_COLUMNS",
    "BatchError",
    "apply_threshold",
    "check_column",
    "check_upload",
    "confidence_histogram",
    "filter_results",
    "guess_text_column",
    "label_summary",
    "neutralise_formulas",
    "read_csv_chunks",
    "read_table",
    "result_csv_bytes",
    "score_csv_file",
    "score_table",
]
