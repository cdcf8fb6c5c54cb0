"""Batch scoring of tables: one chunk function, one streaming driver, one CSV writer.

- `score_chunk(predictor, frame, text_column)` is pure: a pandas frame in, the same rows with
  OUTPUT_COLUMNS appended out. It has no I/O and no state, so it runs as well in a worker process or
  a Spark `mapInPandas` as here.
- `score_chunks` streams chunks (from `tables.open_table(...).chunks(n)` or plain frames) through it.
- `csv_text` is the only way a scored frame becomes CSV (CLI, app download, API): every cell that
  a spreadsheet would run as a formula is neutralised first (`neutralise_formulas`; the guard's
  mode, auto by default, is a parameter of every writer).
- `score_file`: input file -> scored CSV in this process, through the one writer (`io.write.open_output`); the
  CLI's driver with worker processes is `sentimentkit.scale.multiproc.score_file`, built on the same pieces.

Guarantees: every input row comes out, in order, with its original columns plus OUTPUT_COLUMNS;
rows that cannot be scored are flagged in `error`, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sentimentkit.io.formula import DEFAULT_FORMULA_GUARD, FORMULA_GUARDS, neutralise_formulas
from sentimentkit.io.tables import (
    CLI_HINT,
    BatchError,
    Chunk,
    CsvTable,
    Table,
    check_column,
    check_upload,
    detect_delimiter,
    detect_encoding,
    guess_text_column,
    open_table,
    read_table,
)
from sentimentkit.io.write import atomic_output, check_target, csv_text, open_output, result_csv_bytes
from sentimentkit.serving.base import OUTPUT_COLUMNS, BasePredictor, records_to_frame

# The label used in summaries for rows that could not be scored (empty, not text, too long).
NOT_SCORED = "not scored"
ProgressCallback = Callable[[int, int], None]


# --- the chunk function and its driver ----------------------------------------------------------
def score_chunk(
    predictor: BasePredictor,
    frame: pd.DataFrame,
    text_column: str,
    threshold: float | None = None,
    row_errors: Mapping[int, str] | None = None,
    parts: bool = False,
) -> pd.DataFrame:
    """`frame` (same rows, order and index) with OUTPUT_COLUMNS appended; pure, no I/O.
    `parts`: also the `parts` column (each text's scored parts as JSON text).

    Texts are checked by `text_error` (the one rule) inside `predictor.score`; a row listed in
    `row_errors` (position in `frame` -> message, e.g. a ragged CSV line) is not scored and carries
    that message in `error`. An input column named like an output column is kept as `<name>_input`.
    """
    texts = chunk_texts(frame, text_column, row_errors)
    records = predictor.score(texts, threshold, parts=True) if parts else predictor.score(texts, threshold)
    return scored_frame(frame, records, predictor.labels, row_errors)


def chunk_texts(
    frame: pd.DataFrame, text_column: str, row_errors: Mapping[int, str] | None = None
) -> list[Any]:
    """The texts `score_chunk` hands to the model: rows with a read error become None (not scored).

    With `scored_frame` it lets a caller substitute its own scheduler for `predictor.score` (the
    API scores in slices on its event loop) and still produce exactly `score_chunk`'s output.
    """
    check_column(frame, text_column)
    errors = row_errors or {}
    return [None if i in errors else t for i, t in enumerate(frame[text_column].tolist())]


def scored_frame(
    frame: pd.DataFrame,
    records: list[dict[str, Any]],
    labels: Sequence[str],
    row_errors: Mapping[int, str] | None = None,
) -> pd.DataFrame:
    """`frame` with the records of its `chunk_texts` appended, read errors in place of "empty text"."""
    for i, message in (row_errors or {}).items():
        records[i] = {**records[i], "error": message}
    return records_to_frame(frame, records, labels)


def score_chunks(
    predictor: BasePredictor,
    chunks: Iterable[Chunk | pd.DataFrame],
    text_column: str,
    threshold: float | None = None,
) -> Iterator[pd.DataFrame]:
    """The streaming driver: `score_chunk` over each chunk, lazily, in order."""
    for chunk in chunks:
        if isinstance(chunk, pd.DataFrame):
            chunk = Chunk(chunk)
        yield score_chunk(predictor, chunk.frame, text_column, threshold, chunk.row_errors)


def score_table(
    backend: BasePredictor,
    table: Table | pd.DataFrame,
    text_column: str,
    threshold: float | None = None,
    progress_callback: ProgressCallback | None = None,
    chunk_rows: int = 5_000,
) -> pd.DataFrame:
    """Score a whole in-memory table (the app) with `score_chunks`, calling
    `progress_callback(done, total)` after each chunk; every row kept, in order."""
    if isinstance(table, pd.DataFrame):
        table = Table(table)
    check_column(table.frame, text_column)
    total = len(table.frame)
    parts: list[pd.DataFrame] = []
    for scored in score_chunks(backend, table.chunks(chunk_rows), text_column, threshold):
        parts.append(scored)
        if progress_callback is not None:
            progress_callback(sum(len(p) for p in parts), total)
    if not parts:
        return score_chunk(backend, table.frame, text_column, threshold)
    return pd.concat(parts)


# --- the CLI's file-to-file path ------------------------------------------------------------------
@dataclass
class FileResult:
    """What `score_file` did: rows written, rows flagged in `error`, notes for the user (renamed
    columns, ragged lines)."""

    rows: int
    flagged: int
    notes: list[str] = field(default_factory=list)


def score_file(
    predictor: BasePredictor,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = "text",
    chunk_rows: int = 20_000,
    threshold: float | None = None,
    formula_guard: str = DEFAULT_FORMULA_GUARD,
) -> FileResult:
    """Stream-score a CSV/TSV/XLSX file into a CSV at `output_path`, written atomically (a failed
    run leaves no output and an existing file untouched); refuses to write over the input.
    `formula_guard`: which cells get a ' (auto, all, off; `sentimentkit.io.formula`)."""
    inputs = ((input_path, "the input file"),)
    rows = flagged = 0
    with open_table(input_path) as table:  # first: a folder or missing input is the reader's to explain
        check_target(output_path, inputs=inputs)
        check_column(table.columns, text_column)
        with open_output(output_path, inputs=inputs) as out:
            for scored in score_chunks(predictor, table.chunks(chunk_rows), text_column, threshold):
                out.write(csv_text(scored, header=rows == 0, formula_guard=formula_guard))
                rows += len(scored)
                flagged += int(scored["error"].notna().sum())
            if rows == 0:
                raise BatchError(f"{input_path} has a header but no rows to score.")
        return FileResult(rows, flagged, table.notes)


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


__all__ = [
    "CLI_HINT",
    "DEFAULT_FORMULA_GUARD",
    "FORMULA_GUARDS",
    "NOT_SCORED",
    "OUTPUT_COLUMNS",
    "BatchError",
    "Chunk",
    "CsvTable",
    "apply_threshold",
    "check_column",
    "check_upload",
    "chunk_texts",
    "confidence_histogram",
    "detect_delimiter",
    "detect_encoding",
    "filter_results",
    "guess_text_column",
    "label_summary",
    "FileResult",
    "Table",
    "atomic_output",
    "csv_text",
    "neutralise_formulas",
    "open_table",
    "read_table",
    "result_csv_bytes",
    "score_chunk",
    "score_chunks",
    "score_file",
    "score_table",
    "scored_frame",
]
