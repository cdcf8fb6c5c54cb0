"""POST /v1/predict/csv: every row of an uploaded CSV, scored and streamed back in order.

Failures are made visible to the client at every stage:
- before the answer starts, the upload is read in full once without scoring, so that every error the
  file can cause (encoding, quoting, missing column, no rows) is a 4xx JSON error, and the first chunk
  is scored, so that a model that fails at once gives a JSON 500;
- after that, a failure ends the body with one line that starts with `STREAM_ERROR_MARKER` and the
  connection is closed without finishing the chunked body (an incomplete transfer for any HTTP client).
  The response announces both conventions in headers: `ROWS_HEADER` (the data rows of a complete
  answer) and `MARKER_HEADER` (the marker).
Rows are parsed and formatted in the thread pool and scored on the loop, chunk by chunk.

The reader's notes (renamed columns, ragged lines) can be thousands (a header with 1,500 trailing
commas names 1,500 columns), and HTTP clients refuse long headers (Python's http.client and requests
stop at 64 KB a line, many proxies at 8 KB in all). So the headers carry a bounded summary, at most
`NOTES_HEADER_MAX` bytes: the first notes, each cut to `NOTE_MAX` characters, and `NOTES_COUNT_HEADER`,
the number of notes; the full list is the JSON answer of POST /v1/predict/csv/notes for the same file
(stateless, so it works with any number of workers).
"""

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from sentimentkit.api.batcher import score_texts
from sentimentkit.api.errors import ApiError, StreamAbortedError, json_response, only
from sentimentkit.api.log import log_event
from sentimentkit.api.service import CSV_NOTES_ROUTE, CSV_ROUTE, note_records, predictor_of, request_info
from sentimentkit.config import Settings
from sentimentkit.errors import UserError
from sentimentkit.io.formula import FORMULA_GUARDS, check_formula_guard
from sentimentkit.io.tables import Chunk
from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.batch import (
    check_column,
    chunk_texts,
    csv_text,
    open_table,
    scored_frame,
)

STREAM_ERROR_MARKER = "#sentimentkit-error"
ROWS_HEADER = "X-Sentimentkit-Rows"
MARKER_HEADER = "X-Sentimentkit-Error-Marker"
NOTES_HEADER = "X-Input-Notes"
NOTES_COUNT_HEADER = "X-Input-Notes-Count"
NOTES_HEADER_MAX = 2000  # bytes of X-Input-Notes: with the other headers, far below 8 KB in all
NOTE_MAX = 300  # characters of one note in the header
NOTES_SHOWN = 5  # notes in the header at most


def add_csv_route(app: FastAPI, settings: Settings) -> None:
    """Register POST /v1/predict/csv on `app`."""

    @app.post(CSV_ROUTE, response_class=StreamingResponse, responses=_csv_responses(), tags=["predict"])
    async def predict_csv(
        request: Request,
        file: Annotated[
            UploadFile,
            File(description="CSV, TSV or .xlsx with a header row (CSV: UTF-8, UTF-16, cp1252...)"),
        ],
        text_column: Annotated[str, Form(description="name of the column that holds the text")] = "text",
        formula_guard: Annotated[
            str | None,
            Form(
                description="which cells get a leading ' so spreadsheets do not run them: auto (only real "
                "formulas: =..., +A1, -2+3, @SUM(...), DDE links), all (every cell starting with = + - @ "
                "TAB CR that is not a number), off (none); default: the server's SENTIMENTKIT_FORMULA_GUARD "
                f"({settings.formula_guard})",
                json_schema_extra={"enum": list(FORMULA_GUARDS)},
            ),
        ] = None,
    ) -> StreamingResponse:
        """Score every row of a CSV; the scored CSV streams back with every row, in order, with the
        original columns plus sentiment, confidence, p_negative, p_neutral, p_positive, uncertain, error.
        Cells a spreadsheet would run as formulas are prefixed with an apostrophe (`formula_guard`). If
        scoring fails part-way, the body ends with a line starting with `#sentimentkit-error` and the
        connection is closed before the chunked body is complete. Renamed columns and ragged lines are
        summarised in the X-Input-Notes header (the first notes; X-Input-Notes-Count says how many);
        POST the file to /v1/predict/csv/notes for all of them."""
        guard = _formula_guard(formula_guard, settings)
        p = predictor_of(request)
        name = file.filename or "upload.csv"
        rows, notes = await run_in_threadpool(
            _check_csv, file.file, name, text_column, settings.csv_chunk_rows
        )
        info = request_info(request)
        info["n_rows"] = rows
        parts = _stream_scored(
            request, p, file.file, name, text_column, settings.csv_chunk_rows, settings.max_chars, guard
        )
        first = await anext(parts)  # a model that fails at once still gets a JSON 500
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:80] or "upload"
        return StreamingResponse(
            _guarded(first, parts, rows, info.get("request_id")),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{stem}-scored.csv"',
                ROWS_HEADER: str(rows),
                MARKER_HEADER: STREAM_ERROR_MARKER,
                **_notes_header(notes),
            },
        )

    @app.post(CSV_NOTES_ROUTE, responses=only(400, 401, 413, 422), tags=["predict"])
    async def csv_notes(
        file: Annotated[UploadFile, File(description="the file you send (or sent) to /v1/predict/csv")],
        text_column: Annotated[str, Form(description="name of the column that holds the text")] = "text",
    ) -> Response:
        """Read a file as POST /v1/predict/csv reads it, without scoring, and answer every note of the
        reader (renamed columns, ragged lines), which the CSV answer's X-Input-Notes header can only
        summarise: `{"rows": data rows, "count": number of notes, "notes": [...]}`. The errors are the
        CSV route's (400 unreadable file, 422 missing column)."""
        name = file.filename or "upload.csv"
        rows, notes = await run_in_threadpool(
            _check_csv, file.file, name, text_column, settings.csv_chunk_rows
        )
        return json_response({"rows": rows, "count": len(notes), "notes": notes})


def _formula_guard(value: str | None, settings: Settings) -> str:
    """The request's formula guard, or the server's default; a wrong value is a 422."""
    if value is None or not value.strip():
        return settings.formula_guard
    try:
        return check_formula_guard(value)
    except ValueError as exc:
        raise ApiError(422, "invalid_formula_guard", f"formula_guard: {exc}") from None


def _csv_responses() -> dict[int | str, dict[str, Any]]:
    out = only(400, 401, 413, 422, 503)
    out[200] = {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the scored CSV"}
    return out


def _check_csv(stream: IO[bytes], name: str, text_column: str, chunk_rows: int) -> tuple[int, list[str]]:
    """Read the whole upload once without scoring, so that every error the file can cause (encoding,
    quoting, missing column, no rows) is a 4xx before the first byte of the answer is streamed.
    Returns the row count and the reader's notes (renamed columns, ragged lines)."""
    rows = 0
    try:
        table = open_table(stream, name)
        check_column(table.columns, text_column)
        for chunk in table.chunks(chunk_rows):
            rows += len(chunk.frame)
    except UserError:
        raise  # the family's one handler answers it (BatchError 400 invalid_csv, 422 missing_column)
    except (ValueError, OSError) as exc:  # lower-level complaints about a malformed file
        raise ApiError(400, "invalid_csv", f"The file could not be read as CSV: {exc}") from None
    finally:
        stream.seek(0)
    if rows == 0:
        raise ApiError(400, "invalid_csv", f"{name} has a header but no rows to score.")
    return rows, table.notes


def _notes_header(notes: list[str]) -> dict[str, str]:
    """A bounded summary of the reader's notes as ASCII header lines (non-ASCII characters escaped):
    X-Input-Notes holds the first notes (at most NOTES_SHOWN, each cut to NOTE_MAX characters, in all
    at most NOTES_HEADER_MAX bytes) and says how to get the rest; X-Input-Notes-Count, how many."""
    if not notes:
        return {}
    shown = [_ascii(note) for note in notes[:NOTES_SHOWN]]
    cut = any(len(text) > NOTE_MAX for text in shown)
    shown = [text[: NOTE_MAX - 3] + "..." if len(text) > NOTE_MAX else text for text in shown]
    summary = " | ".join(shown)  # at most 5 * 303 bytes: with the sentence below, < NOTES_HEADER_MAX
    if cut or len(shown) < len(notes):
        what = f"{len(notes):,} notes in all, the first {len(shown)} here" if len(shown) < len(notes) else ""
        what += ", " if what and cut else ""
        what += f"cut to {NOTE_MAX} characters" if cut else ""
        summary += f" | ({what}; POST the file to {CSV_NOTES_ROUTE} for every note in full)"
    return {NOTES_HEADER: summary[:NOTES_HEADER_MAX], NOTES_COUNT_HEADER: str(len(notes))}


def _ascii(text: str) -> str:
    """`text` with every non-ASCII character and control character escaped, fit for a header."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else repr(c)[1:-1] for c in escaped)


async def _stream_scored(request: Request, p: BasePredictor, stream: IO[bytes], name: str, text_column: str,
                         chunk_rows: int, max_chars: int, guard: str) -> AsyncIterator[tuple[bytes, int]]:  # fmt: skip
    """The shared batch path (`open_table` chunks, `chunk_texts`, `scored_frame`, `csv_text`), with the
    model called in slices on the loop (see MODEL_SLICE), parsing and formatting in the thread pool;
    yields each chunk's CSV text and its number of rows."""
    chunks = (await run_in_threadpool(open_table, stream, name)).chunks(chunk_rows)
    first = True
    while (chunk := await run_in_threadpool(next, chunks, None)) is not None:
        texts = chunk_texts(chunk.frame, text_column, chunk.row_errors)
        records = await score_texts(p, texts, max_chars)
        note_records(request_info(request), records, texts, p)
        yield await run_in_threadpool(_scored_csv, chunk, records, p.labels, first, guard), len(chunk.frame)
        first = False


async def _guarded(
    first: tuple[bytes, int], rest: AsyncIterator[tuple[bytes, int]], rows: int, request_id: str | None
) -> AsyncIterator[bytes]:
    """The body: the scored chunks, or, when scoring fails part-way, the chunks scored so far, then the
    marker line, then StreamAbortedError (the middleware ends the request without finishing the body)."""
    body, sent = first
    yield body
    try:
        async for body, n in rest:
            yield body
            sent += n
    except Exception as exc:  # the 200 is already out: say so in the body, the log and the transfer
        log_event(logging.ERROR, "csv_stream_failed", request_id=request_id, rows_sent=sent, rows=rows,
                  error=type(exc).__name__)  # fmt: skip
        yield _marker_line(sent, rows, request_id)
        raise StreamAbortedError from exc


def _marker_line(sent: int, rows: int, request_id: str | None) -> bytes:
    """One CSV field without commas or quotes, so that the line starts with the marker verbatim."""
    return (
        f"{STREAM_ERROR_MARKER}: scoring failed after {sent} of {rows} rows; this file is incomplete."
        f" The error was logged with request id {request_id}.\n"
    ).encode()


def _scored_csv(
    chunk: Chunk, records: list[dict[str, Any]], labels: tuple[str, ...], header: bool, guard: str
) -> bytes:
    """The CSV text of a scored chunk, with formula-like cells neutralised as `guard` says."""
    scored = scored_frame(chunk.frame, records, labels, chunk.row_errors)
    return csv_text(scored, header=header, formula_guard=guard).encode("utf-8")
