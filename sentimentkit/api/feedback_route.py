"""POST /v1/feedback: people's corrections, stored in the feedback store (SENTIMENTKIT_FEEDBACK).

Each item names its text directly or by the request id of an earlier /v1/predict answer (looked up in
the prediction log, which must keep texts). Items are checked one by one, like the batch route: a bad
item gets its own error in its position and the others are stored, all in ONE new file of the store
(sentimentkit/feedback/store.py). Off (503 with what to set) when no store is configured.
"""

from typing import Any

from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from sentimentkit.api.batcher import score_texts
from sentimentkit.api.errors import ApiError, json_response, only
from sentimentkit.api.schemas import FeedbackItem, FeedbackResponse, feedback_request_model
from sentimentkit.config import Settings
from sentimentkit.feedback.queue import TEXT_SETTING, resolve_request_ids
from sentimentkit.feedback.store import Correction, check_correction, write_corrections
from sentimentkit.redact import redact
from sentimentkit.serving.base import text_error

ROUTE = "/v1/feedback"


def add_feedback_route(app: FastAPI, settings: Settings) -> None:
    """Register POST /v1/feedback on `app`."""
    FeedbackRequest = feedback_request_model(settings)

    @app.post(
        ROUTE, response_model=FeedbackResponse, responses=only(400, 401, 413, 422, 503), tags=["feedback"]
    )
    async def feedback(body: FeedbackRequest, request: Request) -> Any:  # type: ignore[valid-type]
        """Store corrections (text or request_id, label, note, user). Stores the text itself."""
        if not settings.feedback:
            raise ApiError(503, "feedback_off", "Feedback is not stored on this server: set SENTIMENTKIT_FEEDBACK "
                           "to a folder or az:// URI (normally the retrain --incoming location).")  # fmt: skip
        items, results = _parse(body.items)  # type: ignore[attr-defined]
        await _resolve(items, results, settings)
        await _predictions(request, items, results, settings)
        corrections = [c for c in items if isinstance(c, Correction)]
        try:
            target, _ = await run_in_threadpool(write_corrections, settings.feedback, corrections)
        except OSError as exc:
            raise ApiError(
                503, "feedback_store_unavailable", f"The feedback store cannot be written: {exc}"
            ) from None
        stored = sum(1 for r in results if r["stored"])
        name = target.rstrip("/").rsplit("/", 1)[-1] if target else None
        return json_response({"stored": stored, "file": name, "results": results})


def _parse(raw: list[Any]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Each item validated on its own: a FeedbackItem, or its error in `results`."""
    items: list[Any] = []
    results: list[dict[str, Any]] = []
    for value in raw:
        try:
            item = FeedbackItem.model_validate(value)
        except ValidationError as exc:
            items.append(None)
            results.append({"stored": False, "error": _first_error(exc), "text_source": None})
            continue
        if (item.text is None) == (item.request_id is None):
            items.append(None)
            results.append({"stored": False, "error": "give either text or request_id (one of them)",
                            "text_source": None})  # fmt: skip
            continue
        items.append(item)
        results.append(
            {"stored": False, "error": None, "text_source": "text" if item.text is not None else "request_id"}
        )
    return items, results


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "item"
    if first.get("type") == "model_type":
        return "each item must be an object with text or request_id and label"
    if first.get("type") == "string_unicode":
        return f"{field} is not valid Unicode (a lone surrogate such as \\ud83d)"
    return f"{field}: {first.get('msg', 'invalid value')}"


async def _resolve(items: list[Any], results: list[dict[str, Any]], settings: Settings) -> None:
    """Replace each request_id item by a Correction carrying the logged text and prediction."""
    ids = [item.request_id for item in items if isinstance(item, FeedbackItem) and item.request_id]
    if not ids:
        return
    reason = None
    if not settings.prediction_log:
        reason = "request_id needs the prediction log (SENTIMENTKIT_PREDICTION_LOG), which is off here; send the text"
    elif not settings.prediction_log_text:
        reason = f"request_id cannot be resolved: the prediction log does not keep texts ({TEXT_SETTING}); send the text"
    found: dict[str, list[dict[str, Any]]] = {}
    if reason is None:
        try:
            found = await run_in_threadpool(resolve_request_ids, settings.prediction_log, ids)
        except (OSError, ValueError) as exc:
            reason = redact(f"request_id cannot be resolved: the prediction log cannot be read ({exc})")
    for i, item in enumerate(items):
        if not isinstance(item, FeedbackItem) or not item.request_id:
            continue
        rows = found.get(item.request_id, [])
        error = reason or _row_problem(item.request_id, rows)
        if error:
            items[i], results[i]["error"] = None, error
            continue
        row = rows[0]
        items[i] = Correction(text=row["text"], label=item.label, user=item.user or "", source="api",
                              model_version=row["model_version"] or "", predicted=row["label"] or "",
                              confidence=row["confidence"], request_id=item.request_id, note=item.note or "")  # fmt: skip


def _row_problem(request_id: str, rows: list[dict[str, Any]]) -> str | None:
    if not rows:
        return (f"request_id {request_id!r} is not in the prediction log (the log is written a few seconds "
                "after the answer: retry shortly, or send the text)")  # fmt: skip
    if len({r["text"] for r in rows}) > 1:
        return f"request_id {request_id!r} scored {len(rows)} texts: send each text itself"
    if rows[0]["text"] is None:
        return f"request_id cannot be resolved: that prediction was logged without its text ({TEXT_SETTING}); send the text"
    return None


async def _predictions(
    request: Request, items: list[Any], results: list[dict[str, Any]], settings: Settings
) -> None:
    """Check each text item and record what the served model predicts for it (when a model is loaded)."""
    predictor = request.app.state.predictor
    pending = [i for i, item in enumerate(items) if isinstance(item, FeedbackItem)]
    for i in pending:
        item = items[i]
        problem = check_correction(item.text, item.label) or text_error(item.text, settings.max_chars)
        if problem:
            items[i], results[i]["error"] = None, problem
    valid = [i for i in pending if items[i] is not None]
    records = (
        await score_texts(predictor, [items[i].text for i in valid], settings.max_chars)
        if predictor and valid
        else []
    )
    for n, i in enumerate(valid):
        item, record = items[i], records[n] if records else {}
        items[i] = Correction(text=item.text, label=item.label, user=item.user or "", source="api",
                              model_version=predictor.version if predictor else "",
                              predicted=record.get("sentiment") or "", confidence=record.get("confidence"),
                              note=item.note or "")  # fmt: skip
    for item, result in zip(items, results):
        result["stored"] = isinstance(item, Correction)
