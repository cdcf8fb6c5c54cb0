"""Score a large CSV or Parquet file with N worker processes, streaming, in input order.

The parent reads the input in chunks and hands each to a pool of worker processes. Each worker
loads the model once, itself, through `load_predictor` (the hash-verified model file: no model
object crosses a process boundary), scores the chunk and encodes it for the output format (CSV
text or an Arrow table), so both the scoring and the encoding run in parallel. The parent writes
the results strictly in input order. At most `IN_FLIGHT_PER_JOB * jobs` chunks are in flight, so
memory stays flat whatever the file size.

Every input row comes out, in order, with its columns plus OUTPUT_COLUMNS; bad rows are flagged in
`error`. The output is written to a temporary file beside the target and renamed at the end, so an
interrupted run (Ctrl-C, SIGTERM, an error) leaves nothing under the final name.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sentimentkit.serving.base import PROBA_COLUMNS, BasePredictor, keep_input_columns
from sentimentkit.serving.batch import BatchError, check_column, read_csv_chunks

PARQUET_SUFFIXES = (".parquet", ".pq")
# Two chunks per worker keep every worker busy while the parent reads and writes the next ones.
IN_FLIGHT_PER_JOB = 2
# The Arrow types of the appended columns; fixed, so every Parquet row group has one schema.
OUTPUT_FIELDS: tuple[pa.Field, ...] = (
    pa.field("sentiment", pa.string()),
    pa.field("confidence", pa.float64()),
    *(pa.field(column, pa.float64()) for column in PROBA_COLUMNS),
    pa.field("uncertain", pa.bool_()),
    pa.field("error", pa.string()),
)

__all__ = [
    "OUTPUT_FIELDS",
    "PARQUET_SUFFIXES",
    "atomic_output",
    "default_jobs",
    "is_parquet",
    "output_schema",
    "read_chunks",
    "score_chunk",
    "score_file",
    "sigterm_as_interrupt",
]


def is_parquet(path: str | Path) -> bool:
    """True when `path` names a Parquet file (by its extension); anything else is read as CSV."""
    return str(path).lower().endswith(PARQUET_SUFFIXES)


def default_jobs() -> int:
    """The number of cores this process may run on (the default of `--jobs`)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


def read_chunks(path: str | Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The rows of a CSV (cells as strings, exactly as written) or Parquet file (cells keep their
    Arrow type) in frames of at most `chunk_rows` rows."""
    if not is_parquet(path):
        yield from read_csv_chunks(path, chunk_rows=chunk_rows)
        return
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise BatchError(f"{path} is not a readable Parquet file ({exc}).") from None
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        # ArrowDtype keeps every input type exactly, so the output round-trips it unchanged.
        yield batch.to_pandas(types_mapper=pd.ArrowDtype)


def count_rows(path: str | Path) -> int | None:
    """Rows in the file (Parquet: from its footer; CSV: an estimate from its line count), for the
    progress bar's ETA; None when unknown."""
    if is_parquet(path):
        return pq.ParquetFile(path).metadata.num_rows
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
        return max(lines - 1, 0)  # minus the header; quoted line breaks make it an estimate
    return None


def output_schema(first_chunk: pd.DataFrame) -> pa.Schema:
    """The Parquet schema of the output: the input columns (renamed as the CSV output renames
    them) with their Arrow types, then OUTPUT_FIELDS."""
    inputs = pa.Schema.from_pandas(keep_input_columns(first_chunk), preserve_index=False)
    fields = [pa.field(f.name, pa.string()) if pa.types.is_null(f.type) else f for f in inputs]
    return pa.schema([*fields, *OUTPUT_FIELDS])


def score_chunk(predictor: BasePredictor, frame: pd.DataFrame, text_column: str) -> pd.DataFrame:
    """One chunk scored: every row, in order, with OUTPUT_COLUMNS appended."""
    check_column(frame, text_column)
    texts = frame[text_column]
    if texts.hasnans:
        # Arrow-typed (Parquet) and Spark columns hold missing texts as pd.NA / NaN; as None they are
        # flagged "empty text" like an empty CSV cell, not "not text (got NAType)".
        frame = frame.assign(**{text_column: texts.astype(object).where(texts.notna(), None)})
    return predictor.score_frame(frame, text_column)


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs besides the rows: the text column and the output encoding."""

    text_column: str
    schema: pa.Schema | None  # None: CSV output


@dataclass(frozen=True)
class ChunkResult:
    """A scored chunk, encoded for the output file, with its row counts."""

    payload: bytes | pa.Table
    rows: int
    flagged: int


def encode_chunk(predictor: BasePredictor, frame: pd.DataFrame, job: ChunkJob, header: bool) -> ChunkResult:
    """Score `frame` and encode it: CSV bytes (with the header when `header`) or an Arrow table."""
    scored = score_chunk(predictor, frame, job.text_column)
    flagged = int(scored["error"].notna().sum())
    if job.schema is None:
        payload: bytes | pa.Table = scored.to_csv(index=False, header=header).encode("utf-8")
    else:
        payload = pa.Table.from_pandas(scored, schema=job.schema, preserve_index=False)
    return ChunkResult(payload, len(scored), flagged)


# --- worker processes ---------------------------------------------------------------------------
_worker_state: dict[str, Any] = {}


def _init_worker(model_path: str, threshold: float | None) -> None:
    # The parent owns Ctrl-C: it stops the pool and removes the partial output.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from sentimentkit.serving.loader import load_predictor

    try:
        _worker_state["predictor"] = load_predictor(model_path, threshold=threshold)
    except Exception as exc:  # re-raised by the first chunk, so the parent prints its one line
        _worker_state["error"] = exc


def _worker_encode(frame: pd.DataFrame, job: ChunkJob, header: bool) -> ChunkResult:
    if "error" in _worker_state:
        raise _worker_state["error"]
    return encode_chunk(_worker_state["predictor"], frame, job, header)


def _encoded_in_process(
    chunks: Iterator[pd.DataFrame], job: ChunkJob, model_path: str, threshold: float | None
) -> Iterator[ChunkResult]:
    from sentimentkit.serving.loader import load_predictor  # here: a pool's parent never needs the model

    predictor = load_predictor(model_path, threshold=threshold)
    for i, frame in enumerate(chunks):
        yield encode_chunk(predictor, frame, job, header=i == 0)


def _encoded_in_pool(
    chunks: Iterator[pd.DataFrame], job: ChunkJob, model_path: str, threshold: float | None, jobs: int
) -> Iterator[ChunkResult]:
    """Results in input order from `jobs` spawned workers, with a bounded number in flight."""
    # spawn, not fork: a forked child would inherit the parent's threads' locks (tqdm, Arrow).
    context = multiprocessing.get_context("spawn")
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(model_path, threshold)
    )
    try:
        pending: deque = deque()
        for i, frame in enumerate(chunks):
            pending.append(pool.submit(_worker_encode, frame, job, i == 0))
            if len(pending) >= jobs * IN_FLIGHT_PER_JOB:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BaseException:
        # Interrupted or failed: stop now rather than let the workers finish their chunks.
        pool.shutdown(wait=False, cancel_futures=True)
        for process in set(multiprocessing.active_children()) - before:
            process.terminate()
        raise
    pool.shutdown()


# --- output ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed to `path` when the block succeeds and removed when
    it does not: readers never see a partial file under the final name."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block SIGTERM raises KeyboardInterrupt like Ctrl-C, so clean-up code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _writer(path: str | Path, schema: pa.Schema | None) -> Iterator[Callable[[bytes | pa.Table], None]]:
    """A function appending encoded chunks to `path` (CSV when `schema` is None), atomically."""
    with atomic_output(path) as temporary:
        if schema is None:
            with open(temporary, "wb") as fh:
                yield fh.write
        else:
            with pq.ParquetWriter(temporary, schema) as parquet:
                yield parquet.write_table


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit=" rows", unit_scale=True, disable=not enabled, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)  # fmt: skip


def score_file(
    model_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = "text",
    jobs: int | None = None,
    chunk_rows: int = 20_000,
    threshold: float | None = None,
    progress: bool | None = None,
) -> tuple[int, int]:
    """Score every row of a CSV/Parquet file into a CSV/Parquet file. Returns (rows, flagged rows).

    `jobs` worker processes (default: the cores; 1 scores in this process). `progress`: a progress
    bar with rows/s and ETA on stderr (default: only when stderr is a terminal).
    """
    jobs = jobs or default_jobs()
    if jobs < 1 or chunk_rows < 1:
        raise BatchError("--jobs and --chunk-rows must be at least 1.")
    show = sys.stderr.isatty() if progress is None else progress
    chunks = read_chunks(input_path, chunk_rows)
    first = next(chunks, None)
    if first is None or first.empty:
        raise BatchError(f"{input_path} has a header but no rows to score.")
    check_column(first, text_column)
    job = ChunkJob(text_column, output_schema(first) if is_parquet(output_path) else None)
    second = next(chunks, None)
    rows = itertools.chain([first] if second is None else [first, second], chunks)
    if jobs == 1 or second is None:  # one chunk: starting workers would cost more than it saves
        results = _encoded_in_process(rows, job, str(model_path), threshold)
    else:
        results = _encoded_in_pool(rows, job, str(model_path), threshold, jobs)
    total = flagged = 0
    bar = _progress(count_rows(input_path) if show else None, show)
    with sigterm_as_interrupt(), contextlib.closing(results), bar, _writer(output_path, job.schema) as write:
        for result in results:
            write(result.payload)
            total += result.rows
            flagged += result.flagged
            bar.update(result.rows)
    return total, flagged
