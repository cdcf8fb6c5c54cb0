"""Score a large CSV or Parquet file with N worker processes, streaming, in input order.

The parent reads the input in chunks and hands each to a pool of worker processes, which score the
chunk and encode it for the output format (CSV text or an Arrow table), so both the scoring and the
encoding run in parallel. The parent writes the results strictly in input order. At most
`IN_FLIGHT_PER_JOB * jobs` chunks are in flight, so memory stays flat whatever the file size.

Where the model is loaded: on Linux, for a fork-safe backend (the pickled TF-IDF pipeline), the
parent loads it once through `load_predictor` (hash-verified) and then forks the workers before it
opens the input or starts any thread of its own, so the workers share the imported libraries and
the model copy-on-write instead of holding a copy each (about 265 MB per worker otherwise). Elsewhere
(no fork, or a backend with native thread pools such as onnxruntime) the workers are spawned and
each loads the model file itself. Either way no model object is pickled between processes.

Every input row comes out, in order, with its columns plus OUTPUT_COLUMNS; bad rows are flagged in
`error`. The output is written to a temporary file beside the target and renamed at the end, so an
interrupted run (Ctrl-C, SIGTERM, an error) leaves nothing under the final name.

Processes end together: a worker that dies (killed, out of memory) stops the run with
`WorkerDiedError` (the CLI's exit code 4), the other workers are stopped and the earlier output is
kept; a parent that dies takes its workers with it (Linux: the kernel's parent-death signal;
elsewhere: each worker checks every `PARENT_POLL_S` seconds that its parent is still there).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sentimentkit.errors import WorkerDiedError  # noqa: F401  (re-exported under its old name)
from sentimentkit.io.columns import PARTS_COLUMN
from sentimentkit.io.tables import (
    PARQUET_EXTENSIONS,
    BatchError,
    Chunk,
    ParquetTable,
    check_column,
    is_parquet,
    open_table,
)
from sentimentkit.io.write import Input, check_target, csv_text, open_output
from sentimentkit.serving.base import OUTPUT_COLUMNS, PROBA_COLUMNS, BasePredictor, input_column_renames
from sentimentkit.serving.batch import language_note, score_chunk
from sentimentkit.serving.loader import load_predictor
from sentimentkit.text.features import set_cache_limits

PARQUET_SUFFIXES = PARQUET_EXTENSIONS
# Two chunks per worker keep every worker busy while the parent reads and writes the next ones.
IN_FLIGHT_PER_JOB = 2
# After an error or interrupt, how long workers get to finish their chunk before they are killed.
WORKER_STOP_GRACE_S = 10.0
# Where the kernel cannot signal a worker when its parent dies: how often the worker looks.
PARENT_POLL_S = 1.0
# Per worker: the memoisation caches' bounds (`features.set_cache_limits`). On millions of
# distinct texts the default bounds let each worker grow to ~0.9 GB; these keep it small at a small
# cost in speed (benchmarks/million.md), and results do not depend on them.
WORKER_TOKEN_CACHE = 50_000
WORKER_CHUNK_CACHE = 50_000
# The Arrow types of the appended columns; fixed, so every Parquet row group has one schema.
OUTPUT_FIELDS: tuple[pa.Field, ...] = (
    pa.field("sentiment", pa.string()),
    pa.field("confidence", pa.float64()),
    *(pa.field(column, pa.float64()) for column in PROBA_COLUMNS),
    pa.field("uncertain", pa.bool_()),
    pa.field("error", pa.string()),
    pa.field("language", pa.string()),
    pa.field("mixed", pa.bool_()),
)
PARTS_FIELD = pa.field(PARTS_COLUMN, pa.string())  # with --parts: JSON text per row

__all__ = [
    "OUTPUT_FIELDS",
    "FileResult",
    "PARQUET_SUFFIXES",
    "WorkerDiedError",
    "can_fork",
    "default_jobs",
    "encode_chunk",
    "is_parquet",
    "open_chunks",
    "output_schema",
    "score_file",
    "sigterm_as_interrupt",
]


@dataclass
class FileResult:
    """What `score_file` did: rows written, rows flagged in `error`, notes for the user (renamed
    columns, ragged lines)."""

    rows: int
    flagged: int
    notes: list[str] = field(default_factory=list)


WORKER_DIED = (
    "a worker process died while scoring (killed from outside, or out of memory); nothing was written "
    "and an earlier output file is kept: run again, with fewer --jobs if memory is short"
)


def default_jobs() -> int:
    """The number of cores this process may run on (the default of `--jobs`)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def open_chunks(
    path: str | Path, chunk_rows: int
) -> Iterator[tuple[pa.Schema, Callable[[], list[str]], Iterator[Chunk]]]:
    """(Arrow schema of the input columns, the notes for the user once the rows are read, the rows in
    Chunks of `chunk_rows`), all from `tables.open_table`, the one reader (CSV/TSV/XLSX/Parquet, every
    rule: encodings, blank and ragged rows, renamed columns). CSV columns are text; Excel and Parquet
    cells keep their type."""
    with open_table(path) as table:
        yield table.schema, lambda: table.notes, table.chunks(chunk_rows)


def count_rows(path: str | Path) -> int | None:
    """Rows in the file (Parquet: from its footer; CSV: an estimate from its line count), for the
    progress bar's ETA; None when unknown."""
    if is_parquet(path):
        with ParquetTable(path) as table:
            return table.count_rows()
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
        return max(lines - 1, 0)  # minus the header; quoted line breaks make it an estimate
    return None


def output_schema(inputs: pa.Schema, parts: bool = False) -> pa.Schema:
    """The Parquet schema of the output: the input columns (renamed as the CSV output renames
    them) with their Arrow types, then OUTPUT_FIELDS (and the parts column, with `parts`)."""
    renames = input_column_renames(inputs.names)
    fields = [pa.field(renames.get(f.name, f.name), f.type) for f in inputs]
    return pa.schema([*fields, *OUTPUT_FIELDS, *([PARTS_FIELD] if parts else [])])


@dataclass(frozen=True)
class ChunkJob:
    """What a worker needs besides the rows: the text column and the output encoding."""

    text_column: str
    schema: pa.Schema | None  # None: CSV output
    log: bool = False  # also send the scored rows back for the prediction log
    formula_guard: str = "auto"  # CSV output: which cells get a ' (sentimentkit.io.formula)
    parts: bool = False  # add the parts column (JSON text of each text's scored parts)


@dataclass(frozen=True)
class ChunkResult:
    """A scored chunk, encoded for the output file, with its row counts."""

    payload: str | pa.Table
    rows: int
    flagged: int
    scored: pd.DataFrame | None = None  # the text and output columns, only when the job logs
    languages: dict[str, int] = field(default_factory=dict)  # rows per detected language


def encode_chunk(predictor: BasePredictor, chunk: Chunk, job: ChunkJob, header: bool) -> ChunkResult:
    """Score a chunk (`batch.score_chunk`) and encode it: CSV text, exactly as `batch.csv_text`
    writes it (with the header when `header`), or an Arrow table of `job.schema`."""
    scored = score_chunk(
        predictor, chunk.frame, job.text_column, row_errors=chunk.row_errors, parts=job.parts
    )
    flagged = int(scored["error"].notna().sum())
    if job.schema is None:
        payload: str | pa.Table = csv_text(scored, header=header, formula_guard=job.formula_guard)
    else:
        payload = _arrow_table(scored, job.schema)
    logged = scored[[job.text_column, *OUTPUT_COLUMNS]] if job.log else None
    languages = scored["language"].value_counts().to_dict()
    return ChunkResult(payload, len(scored), flagged, logged, {str(k): int(v) for k, v in languages.items()})


def _arrow_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """`frame` as an Arrow table of `schema`; in a string column a value of another type (a number
    among texts in an Excel column of mixed types) is written as its text, so no value is lost."""
    try:
        return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    mixed = {
        name: frame[name].map(_as_text)
        for name, kind in zip(schema.names, schema.types)
        if pa.types.is_string(kind) and frame[name].dtype == object
    }
    return pa.Table.from_pandas(frame.assign(**mixed), schema=schema, preserve_index=False)


def _as_text(value: Any) -> str | None:
    if isinstance(value, str) or value is None:
        return value
    return None if value is pd.NA or (isinstance(value, float) and value != value) else str(value)


# --- worker processes ---------------------------------------------------------------------------
_worker_state: dict[str, Any] = {}


def _init_worker(model_path: str, threshold: float | None, parent: int) -> None:
    """A spawned worker: loads the model itself (an error is re-raised by its first chunk)."""
    _die_with_parent(parent)  # first: loading the model takes a while
    try:
        _init_forked(load_predictor(model_path, threshold=threshold), parent)
    except Exception as exc:  # re-raised by the first chunk, so the parent prints its one line
        _worker_state["error"] = exc


def _die_with_parent(parent: int) -> None:
    """End this worker when the process `parent` that started it ends, even by SIGKILL (which runs
    no clean-up there): otherwise the workers score on, or wait forever for chunks.

    Linux: the kernel sends SIGKILL on the parent's death (prctl PR_SET_PDEATHSIG). Elsewhere, or
    if that call fails, a daemon thread checks every PARENT_POLL_S seconds whether the parent changed.
    """
    if _worker_state.get("parent") == parent:
        return  # a spawned worker set it up before loading its model
    _worker_state["parent"] = parent
    armed = False
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) == 0
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)  # orphaned: nobody reads the results


def _init_forked(predictor: BasePredictor, parent: int) -> None:
    """A worker given its predictor (a forked one inherits the parent's, not pickled)."""
    _die_with_parent(parent)
    # The parent owns Ctrl-C: it stops the pool and removes the partial output. A forked worker
    # also inherits the parent's SIGTERM handler (`sigterm_as_interrupt`), under which the pool
    # would catch the KeyboardInterrupt and the parent's terminate() would not stop the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    set_cache_limits(tokens=WORKER_TOKEN_CACHE, chunks=WORKER_CHUNK_CACHE)
    _worker_state["predictor"] = predictor


def _worker_encode(chunk: Chunk, job: ChunkJob, header: bool) -> ChunkResult:
    if "error" in _worker_state:
        raise _worker_state["error"]
    return encode_chunk(_worker_state["predictor"], chunk, job, header)


def _encoded_in_process(
    chunks: Iterator[Chunk], job: ChunkJob, predictor: BasePredictor
) -> Iterator[ChunkResult]:
    for i, chunk in enumerate(chunks):
        yield encode_chunk(predictor, chunk, job, header=i == 0)


@contextlib.contextmanager
def _pool(
    jobs: int, method: str, initializer: Callable[..., None], initargs: tuple
) -> Iterator[ProcessPoolExecutor]:
    """`jobs` worker processes started with `method`; on an error or interrupt inside the block the
    chunks not started are cancelled, and each worker stops after the chunk it is on."""
    before = set(multiprocessing.active_children())
    pool = ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context(method), initializer=initializer, initargs=initargs
    )
    try:
        yield pool
    except BaseException:
        _stop_workers(pool, set(multiprocessing.active_children()) - before)
        raise
    pool.shutdown()


def _stop_workers(pool: ProcessPoolExecutor, workers: set, grace_s: float = WORKER_STOP_GRACE_S) -> None:
    """Shut down an abandoned pool (chunks not started are cancelled) and stop its workers
    without leaving this process to hang at exit.

    A worker killed while it writes a result leaves half a message in the pool's result pipe; the
    pool's manager thread then waits for the rest forever (this process holds the pipe's write end
    too, so no end of file comes), and the interpreter joins that thread at exit: the run would
    never end (seen: 1 interrupted run in 6). So the workers first get `grace_s` to finish the chunk
    they are on and exit (the shut-down pool sends each its stop signal once its chunk is done); any
    still running then are terminated and this process closes its write end of the result pipe, so
    the manager thread reads an end of file, marks the pool broken and ends.
    """
    result_writer = pool._result_queue._writer  # CPython internals (3.11-3.13), used below
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
    late = [process for process in workers if process.is_alive()]
    for process in late:
        process.terminate()
    if late:
        for process in late:
            process.join(5)
        result_writer.close()


def _ordered(
    pool: ProcessPoolExecutor, chunks: Iterator[Chunk], job: ChunkJob, jobs: int
) -> Iterator[ChunkResult]:
    """Results in input order, with at most `jobs * IN_FLIGHT_PER_JOB` chunks in flight.

    Raises WorkerDiedError when a worker process ends mid-run (the pool is then broken)."""
    pending: deque = deque()
    try:
        for i, chunk in enumerate(chunks):
            pending.append(pool.submit(_worker_encode, chunk, job, i == 0))
            if len(pending) >= jobs * IN_FLIGHT_PER_JOB:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    except BrokenProcessPool:
        raise WorkerDiedError(WORKER_DIED) from None


def _encoded_in_spawned_pool(
    chunks: Iterator[Chunk], job: ChunkJob, model_path: str, threshold: float | None, jobs: int
) -> Iterator[ChunkResult]:
    """Results in input order from `jobs` spawned workers, each loading the model itself."""
    with _pool(jobs, "spawn", _init_worker, (model_path, threshold, os.getpid())) as pool:
        yield from _ordered(pool, chunks, job, jobs)


def can_fork(predictor: BasePredictor) -> bool:
    """Whether workers may be forked from a process holding `predictor`: the platform forks safely
    (Linux) and the backend has no native thread pool a child would inherit without its threads."""
    return sys.platform.startswith("linux") and predictor.fork_safe


@contextlib.contextmanager
def _forked_pool(predictor: BasePredictor, jobs: int) -> Iterator[ProcessPoolExecutor]:
    """`jobs` workers forked now (call it before this process starts threads: tqdm, Arrow, the
    pool's own) that share `predictor` and the imports copy-on-write."""
    # Frozen objects are left alone by the collector, whose passes would otherwise write to (and so
    # copy) every page holding a container object, in each worker and here. Undone at the end
    # unless the process had frozen objects already (the API freezes its model at start-up).
    thawed = gc.get_freeze_count() == 0
    gc.collect()
    gc.freeze()
    try:
        with _pool(jobs, "fork", _init_forked, (predictor, os.getpid())) as pool:
            pool.submit(os.getpid)  # with fork, the first submit starts every worker, now
            yield pool
    finally:
        if thawed:
            gc.unfreeze()


class _Scorers:
    """Where chunks are scored: in this process (`jobs` 1 or a single chunk), in forked workers
    (started on entering, before the input is opened) or in spawned workers (started lazily)."""

    def __init__(self, model_path: str, threshold: float | None, jobs: int) -> None:
        self.model_path, self.threshold, self.jobs = model_path, threshold, jobs
        self.predictor: BasePredictor | None = None
        self.forked: ProcessPoolExecutor | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _Scorers:
        if self.jobs > 1:
            predictor = self._load()
            if can_fork(predictor):
                self.forked = self._stack.enter_context(_forked_pool(predictor, self.jobs))
            else:
                self.predictor = None  # spawned workers load their own; this copy would only cost memory
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)

    def _load(self) -> BasePredictor:
        if self.predictor is None:
            self.predictor = load_predictor(self.model_path, threshold=self.threshold)
        return self.predictor

    def results(self, chunks: Iterator[Chunk], job: ChunkJob, single: bool) -> Iterator[ChunkResult]:
        """Every chunk's encoded result, in input order."""
        if self.jobs == 1 or single:  # one chunk: workers would cost more than they save
            return _encoded_in_process(chunks, job, self._load())
        if self.forked is not None:
            return _ordered(self.forked, chunks, job, self.jobs)
        return _encoded_in_spawned_pool(chunks, job, self.model_path, self.threshold, self.jobs)


# --- output ---------------------------------------------------------------------------------------
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
def _writer(
    path: str | Path, schema: pa.Schema | None, inputs: tuple[Input, ...]
) -> Iterator[Callable[[str | pa.Table], Any]]:
    """A function appending encoded chunks to `path` (CSV when `schema` is None), written through
    `io.write.open_output` (refuses `inputs`; a file appears under `path` only once every chunk was
    written; `-`, a FIFO or a device is streamed)."""
    with open_output(path, inputs=inputs) as handle:
        if schema is None:
            yield handle.write
        else:
            with pq.ParquetWriter(handle.buffer, schema) as parquet:  # binary side of the same file
                yield parquet.write_table


PROGRESS_SIZE = (80, 24)  # columns, rows assumed where the terminal reports no size (0 x 0, or none)


def _terminal_columns() -> int | None:
    """The width of the terminal on stderr, or None where it reports none (a pty without a size
    reports 0 x 0, on which tqdm would draw nothing at all)."""
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return None
    return columns or None


def _progress(total: int | None, enabled: bool) -> Any:
    from tqdm import tqdm

    sized = _terminal_columns() is not None  # else a fixed size: tqdm's would be 0 x 0 (nothing drawn)
    ncols, nrows = (None, None) if sized else PROGRESS_SIZE
    return tqdm(total=total, unit=" rows", unit_scale=True, disable=not enabled, file=sys.stderr,
                dynamic_ncols=sized, ncols=ncols, nrows=nrows, smoothing=0.1)  # fmt: skip


def _finish(bar: Any, rows: int) -> None:
    """End the bar at 100%: the total was an estimate (quoted line breaks and blank lines make a
    CSV's line count differ from its rows), so it becomes the rows actually written."""
    if bar.total != rows:
        bar.total = rows
        bar.refresh()


def score_file(
    model_path: str | Path,
    input_path: str | Path,
    output_path: str | Path,
    text_column: str = "text",
    jobs: int | None = None,
    chunk_rows: int = 20_000,
    threshold: float | None = None,
    progress: bool | None = None,
    on_scored: Callable[[pd.DataFrame], None] | None = None,
    formula_guard: str = "auto",
    parts: bool = False,
) -> FileResult:
    """Score every row of a CSV/TSV/XLSX/Parquet file into a CSV or Parquet file (by extension).

    `jobs` worker processes (default: the cores; 1, or an input of one chunk, scores in this
    process; forked after this process loaded the model where `can_fork`, else spawned). `progress`: a bar with rows/s and ETA on stderr (default: only on a terminal).
    `on_scored` (the prediction log) gets each chunk's text and output columns, in input order.
    `formula_guard`: which cells of a CSV output get a ' (auto, all, off; `sentimentkit.io.formula`).
    `parts`: add a `parts` column, each text's scored parts as JSON text (`serving.parts`).
    """
    jobs = jobs or default_jobs()
    if jobs < 1 or chunk_rows < 1:
        raise BatchError("--jobs and --chunk-rows must be at least 1.")
    inputs: tuple[Input, ...] = ((input_path, "the input file"), (model_path, "the model"))
    if not Path(input_path).is_dir():  # a folder given as input is the reader's to explain
        check_target(output_path, inputs=inputs)
    show = sys.stderr.isatty() if progress is None else progress
    with (
        sigterm_as_interrupt(),
        _Scorers(str(model_path), threshold, jobs) as scorers,  # forks first, before any thread starts
        open_chunks(input_path, chunk_rows) as (schema, notes, chunks),
    ):
        check_column(schema.names, text_column)
        job = ChunkJob(
            text_column,
            output_schema(schema, parts) if is_parquet(output_path) else None,
            on_scored is not None,
            formula_guard,
            parts,
        )
        ahead = [c for c in (next(chunks, None), next(chunks, None)) if c is not None]
        if not ahead:
            raise BatchError(f"{input_path} has a header but no rows to score.")
        results = scorers.results(itertools.chain(ahead, chunks), job, single=len(ahead) == 1)
        total = flagged = 0
        languages: Counter[str] = Counter()
        bar = _progress(count_rows(input_path) if show else None, show)
        with contextlib.closing(results), bar, _writer(output_path, job.schema, inputs) as write:
            for result in results:
                if on_scored is not None and result.scored is not None:
                    on_scored(result.scored)
                write(result.payload)
                total += result.rows
                flagged += result.flagged
                languages.update(result.languages)
                bar.update(result.rows)
            _finish(bar, total)
        note = language_note(languages)
        return FileResult(total, flagged, [*notes(), *([note] if note else [])])
