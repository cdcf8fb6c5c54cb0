"""Batch scoring of tables: one chunk function, one streaming driver, one CSV writer.

- `score_chunk(predictor, frame, text_column)` is pure: a pandas frame in, the same rows with
  OUTPUT_COLUMNS appended out. It has no I/O and no state, so it runs as well in a worker process or
  a Spark `mapInPandas` as here.
- `score_chunks` streams chunks (from `tables.open_table(...).chunks(n)` or plain frames) through it.
- `csv_text` is the only way a scored frame becomes CSV (CLI, app download, API): every cell that
  a spreadsheet would run as a formula is neutralised first (`neutralise_formulas`; the guard's
  mode, auto by default, is a parameter of every writer).
- File to file (the CLI) is `sentimentkit.scale.multiproc.score_file` (`jobs=1`: in this process), built
  on these pieces; the app's summaries of a scored table live in `sentimentkit.ui`.

Guarantees: every input row comes out, in order, with its original columns plus OUTPUT_COLUMNS;
rows that cannot be scored are flagged in `error`, never dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

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
from sentimentkit.io.write import atomic_output, csv_text, result_csv_bytes
from sentimentkit.serving.base import OUTPUT_COLUMNS, BasePredictor, records_to_frame
from sentimentkit.text.language import MODEL_LANGUAGE

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


def language_note(rows: Mapping[Any, int]) -> str | None:
    """The note for rows the language guard found in a language the model does not read (None: none).
    `rows`: rows per value of the `language` column (`value_counts()`; rows not scored have none)."""
    counts = Counter(
        {c: int(k) for c, k in rows.items() if isinstance(c, str) and c and c != MODEL_LANGUAGE and k}
    )
    if not counts:
        return None
    n = sum(counts.values())
    listed = ", ".join(f"{code} {k:,}" for code, k in counts.most_common(5))
    more = ", ..." if len(counts) > 5 else ""
    return (
        f"{n:,} row{'s' if n != 1 else ''} look{'' if n != 1 else 's'} like {'languages' if len(counts) > 1 else 'a language'} "
        f"the model does not read ({listed}{more}): scored, but do not trust {'their' if n != 1 else 'its'} "
        "labels; the 'language' column says which rows."
    )


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


__all__ = [
    "CLI_HINT",
    "DEFAULT_FORMULA_GUARD",
    "FORMULA_GUARDS",
    "OUTPUT_COLUMNS",
    "BatchError",
    "Chunk",
    "CsvTable",
    "check_column",
    "check_upload",
    "chunk_texts",
    "detect_delimiter",
    "detect_encoding",
    "guess_text_column",
    "Table",
    "atomic_output",
    "csv_text",
    "neutralise_formulas",
    "open_table",
    "read_table",
    "result_csv_bytes",
    "score_chunk",
    "score_chunks",
    "score_table",
    "scored_frame",
]
