"""The prediction log: every scored text, recorded without slowing down or failing the caller.

`PredictionLog.submit` only puts one tuple on a bounded queue (no I/O, no hashing, no tokenising on
the caller's thread); when the queue is full the batch is dropped and counted, never waited for. A
writer thread turns queued batches into rows (`ROW_FIELDS`) and writes them as date-partitioned
Parquet files under the log URI, a local folder or `az://container/path`:

    <log>/date=2026-11-27/part-20261127T101500123456-<pid>-<n>.parquet

A file is written when `batch_rows` rows are waiting or `flush_s` seconds passed; `close()` writes
everything still queued. The text itself is stored only when `log_text` is on (privacy); otherwise
its SHA-256 and the hashes of its unknown words stand for it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sentimentkit.config import Settings
from sentimentkit.errors import DataError, NothingLoggedError, OptionError
from sentimentkit.io import storage
from sentimentkit.serving.remote import RemotePredictor
from sentimentkit.training.profile import model_vocabulary, text_stats, token_hash

ROW_FIELDS: tuple[str, ...] = (
    "ts", "request_id", "source", "model_name", "model_version", "label", "p_negative", "p_neutral",
    "p_positive", "confidence", "uncertain", "n_chars", "n_tokens", "unknown_share", "unknown_tokens",
    "text_sha256", "text", "language",
)  # fmt: skip
PARTITION = "date="
_STOP = object()
DRAIN_S = 0.1  # the writer wakes at most this often while requests arrive
Counted = Callable[[str, int], None]  # (outcome: "logged" | "dropped" | "failed", rows)


def model_identity(predictor: Any) -> tuple[str, str]:
    """(name, version) of the model: the registry's when it came from there, else the card's."""
    registry = getattr(predictor, "registry", None) or {}
    if registry.get("name"):
        return str(registry["name"]), str(registry.get("version"))
    card = getattr(predictor, "card", {}) or {}
    return str(card.get("name", "unknown")), str(card.get("version", "unknown"))


def partition_path(log_uri: str, day: date, name: str) -> str:
    """Where a file of `day`'s rows lives under the log."""
    return storage.join(storage.join(str(log_uri), f"{PARTITION}{day.isoformat()}"), name)


class PredictionLog:
    """A bounded, asynchronous, batched Parquet writer of scored texts (see the module docstring)."""

    def __init__(
        self, uri: str | Path, *, log_text: bool = False, max_queue: int = 10_000, batch_rows: int = 5_000,
        flush_s: float = 5.0, on_count: Counted | None = None,
        on_written: Callable[[Any], None] | None = None,
    ) -> None:  # fmt: skip
        self.uri = str(uri)
        self.log_text = log_text
        self.batch_rows = batch_rows
        self.flush_s = flush_s
        self.on_count = on_count
        self.on_written = on_written  # gets each written pyarrow Table (the API's live monitor), same thread
        self.counts = {"logged": 0, "dropped": 0, "failed": 0}
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._rows: list[tuple[Any, ...]] = []  # in ROW_FIELDS order: tuples, turned into columns at write
        self._vocabularies: dict[int, tuple[Any, frozenset[str] | None]] = {}
        self._files = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    # --- the caller's side: never blocks, never raises ---------------------------------------
    def submit(self, predictor: Any, texts: Sequence[str], records: Sequence[dict[str, Any]], *,
               source: str, request_id: str | None = None, at: float | None = None) -> bool:  # fmt: skip
        """Queue the scored `texts` for writing; False (and counted as dropped) when the queue is full.

        `at` (a Unix time) backdates the rows, for replaying recorded traffic; default: now."""
        try:
            self._queue.put_nowait((at or time.time(), request_id, source, predictor, texts, records))
        except queue.Full:
            self._count("dropped", sum(1 for r in records if not r.get("error")))
            return False
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Write everything queued, then stop the writer (waits; nothing queued is lost)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)  # blocking: the writer is draining, so room appears
            self._thread.join(timeout)

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        last = time.monotonic()
        while True:
            try:
                items = [self._queue.get(timeout=max(0.05, self.flush_s - (time.monotonic() - last)))]
            except queue.Empty:
                items = []
            if items:
                # Wake up at most every DRAIN_S and take everything waiting: a wake-up per request (thread
                # switch, GIL hand-over) would cost the serving loop more than the rows themselves.
                time.sleep(DRAIN_S)
                with contextlib.suppress(queue.Empty):
                    while len(items) < self._queue.maxsize:
                        items.append(self._queue.get_nowait())
            stop = any(item is _STOP for item in items)
            for item in items:
                if item is not _STOP:
                    self._add_rows(*item)
            if stop:
                self._flush()
                return
            if self._rows and (len(self._rows) >= self.batch_rows or time.monotonic() - last >= self.flush_s):
                self._flush()
                last = time.monotonic()
            elif not self._rows:
                last = time.monotonic()

    def _vocabulary(self, predictor: Any) -> frozenset[str] | None:
        # Keyed by id with the predictor kept alive beside it, so an id is never reused wrongly.
        entry = self._vocabularies.get(id(predictor))
        if entry is None:
            entry = self._vocabularies[id(predictor)] = (predictor, model_vocabulary(predictor))
        return entry[1]

    def _add_rows(self, ts: float, request_id: str | None, source: str, predictor: Any,
                  texts: Sequence[str], records: Sequence[dict[str, Any]]) -> None:  # fmt: skip
        # Tuples, not dicts, and columns built once per file: this thread's CPU is the log's whole cost.
        name, version = model_identity(predictor)
        vocabulary = self._vocabulary(predictor)
        when = datetime.fromtimestamp(ts, UTC)
        add = self._rows.append
        for text, record in zip(texts, records):
            if record.get("error"):
                continue  # nothing was predicted
            n_chars, n_tokens, unknown_share, unknown = text_stats(text, vocabulary)
            scores = record["scores"]
            add((when, request_id, source, name, version, record["sentiment"], scores.get("negative"),
                 scores.get("neutral"), scores.get("positive"), record["confidence"], bool(record["uncertain"]),
                 n_chars, n_tokens, unknown_share, sorted({token_hash(w) for w in unknown}),
                 hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
                 text if self.log_text else None, record.get("language")))  # fmt: skip

    def _flush(self) -> None:
        rows, self._rows = self._rows, []
        by_day: dict[date, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_day.setdefault(row[0].date(), []).append(row)
        for day, part in by_day.items():
            try:
                table = self._write(day, part)
            except Exception:  # a storage outage loses this file's rows (counted), never the process
                self._count("failed", len(part))
            else:
                self._count("logged", len(part))
                if self.on_written is not None:
                    with contextlib.suppress(Exception):  # monitoring must never stop the log
                        self.on_written(table)

    def _write(self, day: date, rows: list[tuple[Any, ...]]) -> Any:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._files += 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{os.getpid()}-{self._files}-{uuid.uuid4().hex[:6]}.parquet"
        schema = SCHEMA()
        columns = [pa.array(list(values), type=field.type) for values, field in zip(zip(*rows), schema)]
        table = pa.Table.from_arrays(columns, schema=schema)
        target = partition_path(self.uri, day, name)
        if storage.is_remote(target):
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, compression="zstd")
            storage.write_bytes(target, sink.getvalue().to_pybytes())
            return table
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        partial = Path(target).with_suffix(".partial")  # readers skip it until it is complete
        pq.write_table(table, partial, compression="zstd")
        os.replace(partial, target)
        return table

    def _count(self, outcome: str, rows: int) -> None:
        self.counts[outcome] += rows
        if self.on_count is not None and rows:
            self.on_count(outcome, rows)


def SCHEMA() -> Any:  # noqa: N802 - a constant built lazily (pyarrow is imported only when used)
    """The Parquet schema of the log's rows."""
    import pyarrow as pa

    return pa.schema([
        ("ts", pa.timestamp("us", tz="UTC")), ("request_id", pa.string()), ("source", pa.string()),
        ("model_name", pa.string()), ("model_version", pa.string()), ("label", pa.string()),
        ("p_negative", pa.float64()), ("p_neutral", pa.float64()), ("p_positive", pa.float64()),
        ("confidence", pa.float64()), ("uncertain", pa.bool_()), ("n_chars", pa.int32()),
        ("n_tokens", pa.int32()), ("unknown_share", pa.float64()), ("unknown_tokens", pa.list_(pa.string())),
        ("text_sha256", pa.string()), ("text", pa.string()),
        # the language guard's ISO 639-1 code (null in logs written before it)
        ("language", pa.string()),
    ])  # fmt: skip


def log_frame(log: PredictionLog, predictor: Any, scored: Any, text_column: str, source: str) -> None:
    """Queue a scored table (input columns + OUTPUT_COLUMNS, as `score_frame` returns) for the log."""
    texts = scored[text_column].tolist()
    languages = scored["language"] if "language" in scored.columns else [None] * len(scored)
    records = [
        {"sentiment": s, "confidence": c, "uncertain": u, "error": e,
         "scores": {"negative": n, "neutral": m, "positive": p}, "language": g}
        for s, c, u, e, n, m, p, g in zip(scored["sentiment"], scored["confidence"], scored["uncertain"],
                                          scored["error"], scored["p_negative"], scored["p_neutral"],
                                          scored["p_positive"], languages)
    ]  # fmt: skip
    while not log.submit(predictor, texts, records, source=source):
        time.sleep(0.05)  # a batch job may wait for room (an API request never does)


@contextlib.contextmanager
def batch_logger(predictor: Any, text_column: str, source: str,
                 settings: Settings | None = None) -> Iterator[Callable[[Any], None] | None]:  # fmt: skip
    """For batch scoring (CLI, app): a function taking each scored table, or None when the log is
    off or the predictor is the REST API (which logs what it scores itself). Waits for the writes
    when the block ends."""
    settings = settings or Settings.from_env()
    if not settings.prediction_log or isinstance(predictor, RemotePredictor):
        yield None
        return
    with PredictionLog(settings.prediction_log, log_text=settings.prediction_log_text) as log:
        yield lambda scored: log_frame(log, predictor, scored, text_column, source)


# --- reading the log back -------------------------------------------------------------------
MAX_AGE = timedelta(days=100 * 366)  # longer is a typo: no log or schedule spans a century


def parse_age(text: str, option: str = "") -> timedelta:
    """'7d', '12h', '30m', '90s' or '2w' as a timedelta, longer than 0 and at most MAX_AGE (100
    years); ValueError (one line, with the accepted forms, naming `option` when given) otherwise."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    text = str(text).strip().lower()
    try:
        return _parse_age(text, units)
    except ValueError as exc:
        raise OptionError(f"{option} {exc}" if option else str(exc)) from None


def _parse_age(text: str, units: dict[str, str]) -> timedelta:
    if len(text) < 2 or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise OptionError(f"{text!r} is not a duration: use a number and a unit, e.g. 30m, 12h, 7d or 2w")
    amount = float(text[:-1])
    if amount <= 0:
        raise OptionError(f"{text!r} is not a duration longer than 0: e.g. 30m, 12h, 7d or 2w")
    seconds = amount * timedelta(**{units[text[-1]]: 1}).total_seconds()
    if seconds > MAX_AGE.total_seconds():
        raise OptionError(f"{text!r} is longer than 100 years: e.g. 30m, 12h, 7d or 2w")
    return timedelta(seconds=seconds)


def read_log(uri: str | Path, since: datetime | None = None) -> Any:
    """The log's rows (a pandas DataFrame, oldest first), only from `since` on when given.

    Only the date partitions that can hold such rows are read. A missing or empty log (or none since
    `since`) is a NothingLoggedError (a FileNotFoundError) saying so and what to do.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    every = _log_files(str(uri))
    files = [f for f in every if since is None or _partition_day(f) >= since.date()]
    if not every:
        raise NothingLoggedError(
            f"no prediction log files under {uri}: nothing logged yet; score some texts with "
            f"SENTIMENTKIT_PREDICTION_LOG={uri} set (the API, `predict` or the app's batch tab), then try again"
        )
    if not files:
        latest = max(_partition_day(f) for f in every)
        raise NothingLoggedError(
            f"no prediction log files under {uri} since {since:%Y-%m-%d}: the latest are from {latest}; "
            "look further back (--since) or score some texts",
            latest,
        )
    tables = []
    for path in files:
        with storage.local_input(path) as local:
            tables.append(pq.read_table(local, schema=SCHEMA()))
    import pyarrow as pa

    frame: pd.DataFrame = pa.concat_tables(tables).to_pandas()
    if since is not None:
        frame = frame[frame["ts"] >= pd.Timestamp(since)]
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def _partition_day(path: str) -> date:
    """The day of a log file's `date=YYYY-MM-DD` folder; ValueError naming the folder if it is not one."""
    part = next((p for p in path.replace("\\", "/").split("/") if p.startswith(PARTITION)), None)
    if part is None:
        return date.min
    try:
        return date.fromisoformat(part[len(PARTITION) :])
    except ValueError:
        folder = path.replace("\\", "/").rsplit("/", 1)[0]
        raise DataError(
            f"the prediction log folder {folder} is not named {PARTITION}YYYY-MM-DD with a real date: "
            "rename it or move it out of the log"
        ) from None


def _log_files(uri: str) -> list[str]:
    """Every complete Parquet file under the log, local or remote."""
    if not storage.is_remote(uri):
        root = Path(uri)
        return sorted(str(p) for p in root.glob(f"{PARTITION}*/*.parquet")) if root.is_dir() else []
    fs, path = storage.filesystem(uri)
    protocol = storage.protocol_of(uri)
    with storage.translated(uri):
        if not fs.exists(path):
            return []
        found = fs.glob(f"{path.rstrip('/')}/{PARTITION}*/*.parquet")
    return sorted(f"{protocol}://{f}" for f in found)
