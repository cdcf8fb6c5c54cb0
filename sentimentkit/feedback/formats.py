"""Labelled files in and review queues out: spreadsheets and the files of two labelling tools.

Files only (no server is contacted). Supported:

- **Tables**: CSV/TSV/XLSX/Parquet through the one reader (`io.tables`), e.g. a review file exported
  by `sentimentkit review` and labelled in Excel. Columns `text` and `label` (others with
  `--text-column/--label-column`); rows whose label is still empty are skipped (not labelled yet);
  `user`, `note`, `predicted`, `confidence`, `request_id` are kept when present. A text the review file
  protected from spreadsheet formulas (a leading `'`, see `io.formula`), or whose CRLF line ends an
  .xlsx file turned into LF, is restored when the row's `text_sha256` proves it: the text comes back
  byte-identical.
- **Label Studio** (1.x "JSON" export, a list of tasks): the text is `data.<text-column>` (default
  `text`); the label is `annotations[].result[].value.choices[0]` of a `choices` result, from the
  latest annotation that is not cancelled (by `updated_at`, then `created_at`, then order). Tasks
  without such an annotation are skipped. `completed_by` becomes `user`. Written for a review queue as
  tasks with the model's answer in `predictions` (labelling config: `LABEL_STUDIO_CONFIG`).
- **Argilla 2.x** (the records JSON of `Dataset.records.to_json()`, which is `records.json` inside a
  `Dataset.to_disk()` folder; a folder is read through its `records.json`): the text is
  `fields.<text-column>`, the label the latest response (`responses.<question>[-1].value`) of a label
  question whose values are the three labels (default name `sentiment`; responses with
  `status: discarded` skipped); `user_id` becomes `user`. Written with the model's answer as a
  suggestion (`agent`: the model version), for `dataset.records.from_json(...)` into a dataset with a
  `text` TextField and a `sentiment` LabelQuestion.

Labels are matched case-insensitively (`Positive` is `positive`); any other value is an error naming
the row.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from sentimentkit import LABELS
from sentimentkit.config import Settings
from sentimentkit.data import DataError
from sentimentkit.errors import OptionError
from sentimentkit.feedback import FORMATS
from sentimentkit.io.tables import BatchError, open_table, read_labelled
from sentimentkit.io.write import csv_text

KEPT_COLUMNS: tuple[str, ...] = ("user", "note", "predicted", "confidence", "request_id", "model_version")
ARGILLA_QUESTION = "sentiment"
LABEL_STUDIO_CONFIG = (
    '<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text" choice="single">'
    + "".join(f'<Choice value="{label}"/>' for label in LABELS)
    + "</Choices></View>"
)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# --- reading --------------------------------------------------------------------------------------
def detect_format(path: str | Path) -> str:
    """`label-studio`, `argilla` or `table`, from the file's name and (for JSON) its content."""
    local = Path(path)
    if local.is_dir():
        return "argilla"
    if local.suffix.lower() not in (".json", ".jsonl"):
        return "table"
    items = _json_list(local)
    first = next((i for i in items if isinstance(i, dict)), {})
    if "fields" in first or "responses" in first:
        return "argilla"
    if "data" in first or "annotations" in first:
        return "label-studio"
    raise DataError(
        f"{path}: a JSON file, but neither a Label Studio export (tasks with data/annotations) nor Argilla "
        "records (fields/responses); export JSON from the tool, or give a CSV/XLSX/Parquet file"
    )


def read_labelled_file(path: str | Path, text_column: str = "text", label_column: str = "label") -> tuple[pd.DataFrame, int]:  # fmt: skip
    """(rows with `text`, `label` and whatever provenance the file holds, rows skipped as unlabelled)."""
    kind = detect_format(path)
    if kind == "label-studio":
        return read_label_studio(path, text_column)
    if kind == "argilla":
        return read_argilla(path, text_column, None if label_column == "label" else label_column)
    return read_table_file(path, text_column, label_column)


def _json_list(path: Path) -> list[Any]:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); export it again from the tool") from None
    if isinstance(data, dict):  # some exports wrap the list
        data = data.get("tasks") or data.get("records") or data.get("items") or [data]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of tasks or records")
    return data


def _label(value: Any, where: str) -> str:
    label = str(value).strip().lower() if value is not None else ""
    if label not in LABELS:
        raise DataError(f"{where}: label {value!r} is not one of {', '.join(LABELS)}; fix it and try again")
    return label


def read_label_studio(path: str | Path, text_key: str = "text") -> tuple[pd.DataFrame, int]:
    """Rows of a Label Studio JSON export (see the module docstring)."""
    rows, skipped = [], 0
    for n, task in enumerate(_json_list(Path(path)), start=1):
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get(text_key), str):
            raise DataError(
                f"{path}: task {n} has no data.{text_key} text; name the text key with --text-column"
            )
        annotation = _latest_annotation(task.get("annotations") or [])
        choice = _choice(annotation) if annotation else None
        if choice is None:
            skipped += 1
            continue
        user = annotation.get("completed_by")
        if isinstance(user, dict):
            user = user.get("email") or user.get("id")
        rows.append({"text": data[text_key], "label": _label(choice, f"{path}: task {n}"),
                     "user": "" if user is None else str(user), "request_id": str(data.get("request_id") or ""),
                     "predicted": str(data.get("predicted") or ""), "confidence": data.get("confidence"),
                     "note": str(data.get("note") or "")})  # fmt: skip
    return pd.DataFrame(
        rows, columns=["text", "label", "user", "request_id", "predicted", "confidence", "note"]
    ), skipped


def _latest_annotation(annotations: list[Any]) -> dict[str, Any] | None:
    kept = [(str(a.get("updated_at") or a.get("created_at") or ""), i, a) for i, a in enumerate(annotations)
            if isinstance(a, dict) and not a.get("was_cancelled") and _choice(a) is not None]  # fmt: skip
    return max(kept, key=lambda t: (t[0], t[1]))[2] if kept else None


def _choice(annotation: dict[str, Any]) -> str | None:
    for result in annotation.get("result") or []:
        value = result.get("value") if isinstance(result, dict) else None
        choices = value.get("choices") if isinstance(value, dict) else None
        if choices:
            return str(choices[0])
    return None


def read_argilla(path: str | Path, text_field: str = "text", question: str | None = None) -> tuple[pd.DataFrame, int]:  # fmt: skip
    """Rows of Argilla 2.x records JSON, or of a `Dataset.to_disk` folder (see the module docstring)."""
    source = Path(path)
    if source.is_dir():
        source = source / "records.json"
        if not source.is_file():
            raise DataError(f"{path} is a folder without records.json: give Dataset.to_disk(...)'s folder")
    rows, skipped = [], 0
    for n, record in enumerate(_json_list(source), start=1):
        fields = record.get("fields") if isinstance(record, dict) else None
        if not isinstance(fields, dict) or not isinstance(fields.get(text_field), str):
            raise DataError(
                f"{path}: record {n} has no fields.{text_field} text; name the field with --text-column"
            )
        responses = _argilla_responses(record.get("responses") or {}, question)
        if not responses:
            skipped += 1
            continue
        answer = responses[-1]
        suggestion = (record.get("suggestions") or {}).get(question or ARGILLA_QUESTION) or {}
        metadata = record.get("metadata") or {}
        rows.append({"text": fields[text_field], "label": _label(answer.get("value"), f"{path}: record {n}"),
                     "user": str(answer.get("user_id") or ""), "request_id": str(metadata.get("request_id") or ""),
                     "predicted": str(suggestion.get("value") or ""), "confidence": suggestion.get("score"),
                     "model_version": str(suggestion.get("agent") or "")})  # fmt: skip
    return pd.DataFrame(rows, columns=["text", "label", "user", "request_id", "predicted", "confidence", "model_version"]), skipped  # fmt: skip


def _argilla_responses(responses: dict[str, Any], question: str | None) -> list[dict[str, Any]]:
    names = [question] if question else [ARGILLA_QUESTION, *sorted(responses)]
    for name in names:
        answers = [
            a for a in responses.get(name) or [] if isinstance(a, dict) and a.get("status") != "discarded"
        ]
        if answers and all(str(a.get("value", "")).strip().lower() in LABELS for a in answers):
            return answers
    return []


def read_table_file(path: str | Path, text_column: str = "text", label_column: str = "label") -> tuple[pd.DataFrame, int]:  # fmt: skip
    """Rows of a labelled CSV/TSV/XLSX/Parquet file through the one reader; unlabelled rows skipped."""
    try:
        frame = read_labelled(path, text_column, label_column)
        with open_table(path) as table:
            kept = [
                c
                for c in (*KEPT_COLUMNS, "text_sha256")
                if c in table.columns and c not in (text_column, label_column)
            ]
            extra = pd.concat([c.frame for c in table.chunks(50_000)], ignore_index=True) if kept else None
    except BatchError as exc:
        raise DataError(str(exc)) from None
    if extra is not None:
        extra = extra[(_cells(extra[text_column]) != "") | (_cells(extra[label_column]) != "")].reset_index(
            drop=True
        )
        for column in kept:
            frame[column] = _cells(extra[column]).to_numpy()
    if "text_sha256" in frame.columns:
        frame["text"] = [_unprotected(t, h) for t, h in zip(frame["text"], frame.pop("text_sha256"))]
    unlabelled = frame["label"].str.strip() == ""
    empty = (frame["text"] == "") & ~unlabelled
    if empty.any():
        raise DataError(f"{path}: data row {int(empty.idxmax()) + 1} has a label but no text; fix that row")
    frame = frame[~unlabelled].reset_index(drop=True)
    frame["label"] = [_label(v, f"{path}: labelled row {i + 1}") for i, v in enumerate(frame["label"])]
    return frame, int(unlabelled.sum())


def _cells(values: pd.Series) -> pd.Series:
    return values.map(
        lambda v: "" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
    )


def _unprotected(text: str, digest: str) -> str:
    """The text as the review file gave it, when its hash proves what a spreadsheet changed: the
    formula guard's leading `'`, and line ends (an .xlsx cell cannot hold CR: Excel and openpyxl save
    CRLF as LF). A text the person edited matches no candidate and is kept as it is."""
    if not digest or text_sha256(text) == digest:
        return text
    bare = text[1:] if text.startswith("'") else text
    for candidate in (bare, bare.replace("\n", "\r\n"), text.replace("\n", "\r\n")):
        if text_sha256(candidate) == digest:
            return candidate
    return text


# --- writing a review queue -----------------------------------------------------------------------
def review_table(queue: pd.DataFrame) -> pd.DataFrame:
    """The queue as a CSV for people: `text`, `predicted`, `confidence`, `request_id`, `label` (empty)
    and `text_sha256` (so `feedback add` restores a text the formula guard prefixed with `'`)."""
    out = queue.copy()
    out["text_sha256"] = out["text"].map(text_sha256)
    return out


def label_studio_tasks(queue: pd.DataFrame) -> list[dict[str, Any]]:
    """The queue as Label Studio tasks (import them; config `LABEL_STUDIO_CONFIG`)."""
    tasks = []
    for row in queue.itertuples(index=False):
        task: dict[str, Any] = {"data": {"text": row.text, "predicted": row.predicted,
                                         "confidence": _number(row.confidence), "request_id": row.request_id}}  # fmt: skip
        if row.predicted in LABELS:
            task["predictions"] = [{"model_version": str(getattr(row, "model_version", "") or "sentimentkit"),
                                    "score": _number(row.confidence),
                                    "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                                                "value": {"choices": [row.predicted]}}]}]  # fmt: skip
        tasks.append(task)
    return tasks


def argilla_records(queue: pd.DataFrame) -> list[dict[str, Any]]:
    """The queue as Argilla 2.x records JSON (`dataset.records.from_json(path)`)."""
    records = []
    for row in queue.itertuples(index=False):
        suggestions = {}
        if row.predicted in LABELS:
            suggestions[ARGILLA_QUESTION] = {
                "value": row.predicted,
                "score": _number(row.confidence),
                "agent": "sentimentkit",
            }
        records.append({"id": row.request_id or text_sha256(row.text)[:16], "fields": {"text": row.text},
                        "metadata": {"request_id": row.request_id}, "suggestions": suggestions, "responses": {},
                        "vectors": {}, "_server_id": None})  # fmt: skip
    return records


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def review_bytes(queue: pd.DataFrame, fmt: str, formula_guard: str | None = None) -> bytes:
    """The review file's content in `fmt` (csv, label-studio, argilla); a CSV's cells that a spreadsheet
    would run are prefixed with `'` as `formula_guard` says (default: SENTIMENTKIT_FORMULA_GUARD)."""
    if fmt == "csv":
        guard = formula_guard or Settings.from_env().formula_guard
        return csv_text(review_table(queue), formula_guard=guard).encode("utf-8")
    if fmt == "label-studio":
        return (json.dumps(label_studio_tasks(queue), ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    if fmt == "argilla":
        return (json.dumps(argilla_records(queue), ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    raise OptionError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
