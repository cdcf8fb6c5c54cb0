"""The feedback store: people's corrections, kept as labelled batches that `retrain --incoming` reads.

A store is a folder (local path or `az://container/path`; the retrain incoming location). Every write
adds ONE NEW CSV file and never touches an existing one:

    <store>/feedback-20261206T101500123456Z-<pid>-<random>.csv

Columns (`COLUMNS`): `text`, `label` (negative/neutral/positive) and the provenance where it is known:
`user`, `when` (UTC, ISO 8601, microseconds), `source` (app, api, cli, or the imported tool's name),
`model_version`, `predicted`, `confidence`, `request_id`, `note`. The text is stored exactly as given
(no trimming, no formula neutralising: it is training data, not a spreadsheet for people).

Guarantees:
- Crash-safe and atomic (the one writer, `io.write.write_output`, exclusive): a local file is written to
  a hidden `.NAME.PID.RANDOM.part` beside it, flushed to disk and linked into place; a blob is uploaded
  whole (a block blob is committed in one step). A writer killed midway leaves at most a `.part` file,
  which no reader (nor `retrain`, which reads `*.csv`) sees, and which the writer cleans up later.
- Concurrent writers lose nothing: names are unique (time to the microsecond, process id, random
  bytes) and no file is ever appended to or replaced.
- Idempotent at read time (`read_feedback`): the same text with the same label counts once; the same
  text with different labels keeps the LATEST one: the row with the greatest `when`; on equal `when`
  the later file (by name, which starts with its write time) and then the later row wins. `retrain`
  follows the same rule across and within batches (see mlops/retrain.py).
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.data import load_labelled_csv
from sentimentkit.errors import LabelsError
from sentimentkit.io import storage
from sentimentkit.io.write import write_output

COLUMNS: tuple[str, ...] = (
    "text", "label", "user", "when", "source", "model_version", "predicted", "confidence", "request_id", "note",
)  # fmt: skip
PROVENANCE = COLUMNS[2:]
PREFIX = "feedback-"
SUFFIX = ".csv"
MAX_NOTE_CHARS = 2000


class FeedbackError(LabelsError):
    """A correction that cannot be stored (no text, unknown label...); the message says what to fix."""


@dataclass(frozen=True)
class Correction:
    """One person's label for one text, with what is known of where it came from."""

    text: str
    label: str
    user: str = ""
    source: str = ""
    model_version: str = ""
    predicted: str = ""
    confidence: float | None = None
    request_id: str = ""
    note: str = ""
    when: str = ""  # filled in by `write_corrections` when empty


def check_correction(text: Any, label: Any) -> str | None:
    """Why (`text`, `label`) cannot be stored, in one line; None when it can."""
    if not isinstance(text, str):
        return "text must be a string"
    if not text.strip():
        return "text is empty: give the text that was scored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "text holds characters that are not valid Unicode (lone surrogates); send it as UTF-8"
    if label not in LABELS:
        return f"label must be one of {', '.join(LABELS)}, got {label!r}"
    return None


def now_iso() -> str:
    """The current UTC time as `when` records it."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def new_name(at: datetime | None = None) -> str:
    """A file name no other writer (thread, process or machine) will choose: time, pid, random."""
    stamp = (at or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{PREFIX}{stamp}-{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"


def to_frame(corrections: Iterable[Correction | Mapping[str, Any]], when: str | None = None) -> pd.DataFrame:
    """The corrections as a frame in `COLUMNS` order (validated; `when` filled in where empty).

    Within one write the same text twice keeps its last label (latest wins, as everywhere)."""
    stamp = when or now_iso()
    rows = []
    for i, item in enumerate(corrections):
        row = dict(item.__dict__) if isinstance(item, Correction) else dict(item)
        problem = check_correction(row.get("text"), row.get("label"))
        if problem:
            raise FeedbackError(f"correction {i + 1}: {problem}")
        row["when"] = row.get("when") or stamp
        row["note"] = str(row.get("note") or "")[:MAX_NOTE_CHARS]
        rows.append({c: _cell(row.get(c)) for c in COLUMNS} | {"text": row["text"]})
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.drop_duplicates("text", keep="last").reset_index(drop=True)


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV, every cell quoted where needed; CRLF line ends so a lone CR inside a text is quoted
    too (Python's csv writer quotes only the characters of its line end). Texts stay byte-identical."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\r\n")
    return buffer.getvalue().encode("utf-8")


def write_corrections(store: str | Path, corrections: Iterable[Correction | Mapping[str, Any]],
                      when: str | None = None) -> tuple[str, int]:  # fmt: skip
    """Add the corrections to the store as one new file; (its URI or path, rows written).

    Nothing is written when there are no corrections (returns ("", 0)). Raises FeedbackError for an
    invalid correction (nothing written) and StorageError when the store cannot be written."""
    frame = to_frame(corrections, when)
    if frame.empty:
        return "", 0
    target = storage.join(str(store), new_name())
    write_new_file(target, csv_bytes(frame))
    return target, len(frame)


def write_new_file(target: str, data: bytes) -> None:
    """Create `target` with `data` in one step through the one writer (`io.write`, exclusive: never
    replaces a file; a local file is written beside it, flushed and linked into place; a blob is
    uploaded whole)."""
    if not storage.is_remote(target):
        Path(target).parent.mkdir(parents=True, exist_ok=True)  # a new store is created on first write
    write_output(target, data, exclusive=True)


# --- reading ---------------------------------------------------------------------------------------
def list_files(store: str | Path) -> list[str]:
    """Every complete `*.csv` file directly in the store (what `retrain` reads too), by name."""
    # lazy: mlops.retrain loads training and scikit-learn (seconds); adding or reading corrections needs
    # only this listing (the same rule as retrain's)
    from sentimentkit.mlops.retrain import list_batches

    return list_batches(str(store))


def read_feedback(store: str | Path, *, all_rows: bool = False) -> pd.DataFrame:
    """The store's corrections with the rules applied: one row per text, its latest label (see the
    module docstring), ordered by `when`. Columns: `COLUMNS` plus `file`. `all_rows=True` gives every
    row of every file instead (the history). Files other than feedback files (e.g. a plain `text,label`
    CSV dropped in the folder) are read too; their missing columns are empty. A missing store: no rows."""
    frames = []
    for order, uri in enumerate(list_files(store)):
        frame = _read_one(uri)
        frame["file"] = Path(str(uri)).name
        frame["_order"] = order
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*COLUMNS, "file"])
    rows = pd.concat(frames, ignore_index=True)
    rows["_row"] = range(len(rows))
    rows = rows.sort_values(["when", "_order", "_row"], kind="stable")
    if not all_rows:
        rows = rows.drop_duplicates("text", keep="last")
    return rows.drop(columns=["_order", "_row"]).reset_index(drop=True)


def _read_one(uri: str) -> pd.DataFrame:
    with storage.local_input(uri) as local:
        labelled = load_labelled_csv(local)
        extra = pd.read_csv(
            local, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace"
        )
    frame = pd.DataFrame({"text": labelled["text"].to_numpy(), "label": labelled["label"].to_numpy()})
    for column in PROVENANCE:
        values = extra[column] if column in extra.columns and len(extra) == len(frame) else ""
        frame[column] = values if isinstance(values, str) else values.to_numpy()
    return frame


def summary(store: str | Path) -> dict[str, Any]:
    """{"texts": distinct texts, "rows": rows written, "by_label": {...}} of the store."""
    history = read_feedback(store, all_rows=True)  # in the rule's order: the last of a text wins
    latest = history.drop_duplicates("text", keep="last")
    counts = latest["label"].value_counts()
    return {"texts": len(latest), "rows": len(history),
            "by_label": {label: int(counts.get(label, 0)) for label in LABELS}}  # fmt: skip
