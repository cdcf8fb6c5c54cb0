"""POST /v1/predict/csv: every row of an uploaded CSV, scored and streamed back in order.

The upload is checked in full before the first byte of the answer (so that every error the file can
cause is a 4xx), then parsed and formatted in the thread pool and scored on the loop, chunk by chunk.
"""

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Annotated, Any

import pandas as pd
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from sentimentkit.api.batcher import score_texts
from sentimentkit.api.errors import ApiError, only
from sentimentkit.api.service import CSV_ROUTE, note_records, predictor_of, request_info
from sentimentkit.config import Settings
from sentimentkit.serving.base import BasePredictor, records_to_frame


def add_csv_route(app: FastAPI, settings: Settings) -> None:
    """Register POST /v1/predict/csv on `app`."""

    @app.post(CSV_ROUTE, response_class=StreamingResponse, responses=_csv_responses(), tags=["predict"])
    def predict_csv(
        request: Request,
        file: Annotated[
            UploadFile, File(description="CSV or TSV with a header row (UTF-8, UTF-16 or Latin-1)")
        ],
        text_column: Annotated[str, Form(description="name of the column that holds the text")] = "text",
    ) -> StreamingResponse:
        """Score every row of a CSV; the scored CSV streams back with every row, in order, with the
        original columns plus sentiment, confidence, p_negative, p_neutral, p_positive, uncertain, error.
        Cells a spreadsheet would run as formulas are prefixed with an apostrophe."""
        p = predictor_of(request)
        name = file.filename or "upload.csv"
        rows = _check_csv(file.file, name, text_column, settings.csv_chunk_rows)
        request_info(request)["n_rows"] = rows
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:80] or "upload"
        return StreamingResponse(
            _stream_scored(
                request, p, file.file, name, text_column, settings.csv_chunk_rows, settings.max_chars
            ),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{stem}-scored.csv"'},
        )


def _csv_responses() -> dict[int | str, dict[str, Any]]:
    out = only(400, 401, 413, 422, 503)
    out[200] = {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the scored CSV"}
    return out


def _check_csv(stream: IO[bytes], name: str, text_column: str, chunk_rows: int) -> int:
    """Read the whole upload once without scoring, so that every error the file can cause (encoding,
    quoting, missing column, no rows) is a 4xx before the first byte of the answer is streamed."""
    from sentimentkit.serving.batch import BatchError, check_column, read_csv_chunks

    rows = 0
    try:
        for chunk in read_csv_chunks(stream, name, chunk_rows=chunk_rows):
            if rows == 0:
                check_column(chunk, text_column)
            rows += len(chunk)
    except BatchError as exc:
        code = "missing_column" if "not found" in str(exc) else "invalid_csv"
        raise ApiError(422 if code == "missing_column" else 400, code, str(exc)) from None
    except (ValueError, OSError) as exc:  # pandas' lower-level complaints about a malformed file
        raise ApiError(400, "invalid_csv", f"The file could not be read as CSV: {exc}") from None
    finally:
        stream.seek(0)
    if rows == 0:
        raise ApiError(400, "invalid_csv", f"{name} has a header but no rows to score.")
    return rows


async def _stream_scored(request: Request, p: BasePredictor, stream: IO[bytes], name: str, text_column: str,
                         chunk_rows: int, max_chars: int) -> AsyncIterator[bytes]:  # fmt: skip
    """Parse and format in the thread pool, score on the loop (see MODEL_SLICE), one chunk at a time."""
    from sentimentkit.serving.batch import read_csv_chunks

    chunks = read_csv_chunks(stream, name, chunk_rows=chunk_rows)
    first = True
    while (chunk := await run_in_threadpool(next, chunks, None)) is not None:
        texts = chunk[text_column].tolist()
        records = await score_texts(p, texts, max_chars)
        note_records(request_info(request), records, texts, p)
        yield await run_in_threadpool(_scored_csv, chunk, records, p.labels, first)
        first = False


def _scored_csv(
    chunk: pd.DataFrame, records: list[dict[str, Any]], labels: tuple[str, ...], header: bool
) -> bytes:
    """The CSV text of a scored chunk, with formula-like cells neutralised."""
    from sentimentkit.serving.batch import neutralise_formulas

    buffer = io.StringIO()
    neutralise_formulas(records_to_frame(chunk, records, labels)).to_csv(buffer, index=False, header=header)
    return buffer.getvalue().encode("utf-8")
