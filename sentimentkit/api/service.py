"""Per-app state shared by the middleware and the routes (settings, metrics, the model's batcher),
the fast path for the common request, and the helpers routes use to report what they scored."""

import hmac
import json
import os
import time
from collections import Counter as Tally
from typing import Any

from fastapi import FastAPI, Request
from starlette.types import Scope, Send

from sentimentkit.api.batcher import MicroBatcher
from sentimentkit.api.errors import ApiError, too_large
from sentimentkit.api.log import logger
from sentimentkit.api.metrics import Metrics
from sentimentkit.config import Settings
from sentimentkit.redact import redact
from sentimentkit.serving.base import BasePredictor, text_error

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
CSV_ROUTE = "/v1/predict/csv"
CSV_NOTES_ROUTE = "/v1/predict/csv/notes"
# Known paths only; anything else is reported as "unmatched" so fuzzers cannot blow up label cardinality.
UNMATCHED = "unmatched"


# --- what a request did, for the middleware's log line and metrics ------------------------------------
def request_info(request: Request) -> dict[str, Any]:
    """The per-request dict the middleware logs and counts when the request ends."""
    return request.scope.setdefault("sentimentkit", {})


def _note(info: dict[str, Any], texts: int, labels: list[str | None]) -> None:
    """Tell the middleware what this request scored (for the log line and the metrics)."""
    info["n_texts"] = info.get("n_texts", 0) + texts
    tally = info.setdefault("labels", Tally())
    tally.update(label for label in labels if label)


def note_records(
    info: dict[str, Any], records: list[dict[str, Any]], texts: list[str], predictor: BasePredictor
) -> None:
    """Record the labels and confidences of scored records in `info`, and what the prediction log
    needs (written when the request ends)."""
    _note(info, len(records), [r["sentiment"] for r in records])
    info.setdefault("confidences", []).extend(r["confidence"] for r in records if r["confidence"] is not None)
    info.setdefault("scored", []).append((predictor, texts, records))


def remember_text(request: Request, settings: Settings, texts: list[str]) -> None:
    """Keep the raw texts for the log line, only when the settings allow logging text."""
    if settings.log_text:
        request_info(request)["texts"] = texts


# --- the model -----------------------------------------------------------------------------------------
def predictor_of(request: Request) -> BasePredictor:
    """The loaded predictor, or a 503 ApiError saying why there is none."""
    state = request.app.state
    if state.predictor is None:
        reason = state.load_error or "the model is still loading"
        raise ApiError(503, "model_unavailable", f"The model is not available: {redact(reason)}")
    return state.predictor


def batcher_of(app: FastAPI, predictor: BasePredictor) -> MicroBatcher:
    """The app's micro-batcher for `predictor` (a new one when the predictor changed)."""
    state = app.state
    batcher = state.batcher
    if batcher is None or batcher.predictor is not predictor:
        batcher = state.batcher = MicroBatcher(predictor)
    return batcher


def prediction(predictor: BasePredictor, record: dict[str, Any]) -> dict[str, Any]:
    """The /v1/predict answer for one scored record."""
    return {
        "sentiment": record["sentiment"], "confidence": record["confidence"], "scores": record["scores"],
        "uncertain": record["uncertain"], "language": record.get("language"),
        "language_confidence": record.get("language_confidence"), "mixed": record.get("mixed"),
        "model_version": predictor.version,
    }  # fmt: skip


class Service:
    """Per-app state shared by the middleware and the routes: settings, metrics, logging."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.upload_limit = settings.max_upload_mb * 1024 * 1024
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.metrics = Metrics()
        self.routes: set[str] = set()
        self.app: FastAPI | None = None
        self.pid = os.getpid()
        self.predlog: Any = None  # a PredictionLog while the app runs with SENTIMENTKIT_PREDICTION_LOG

    def fast_path_applies(self, scope: Scope) -> bool:
        """POST /v1/predict without query parameters (no explanation) and with a JSON body."""
        if scope["method"] != "POST" or scope["path"] != "/v1/predict" or scope["query_string"]:
            return False
        for name, value in scope["headers"]:
            if name == b"content-type":
                return value.split(b";")[0].strip().lower() == b"application/json"
        return False

    async def fast_predict(self, scope: Scope, body: bytes, info: dict[str, Any], send: Send) -> bool:
        """Answer the common case, one valid text, without FastAPI's routing and validation machinery
        (which costs about three times the model on a short tweet). Anything unusual (invalid JSON,
        extra fields, wrong types, blank or too long text, no model) returns False and goes through
        the FastAPI route, which gives the documented answer or error; the answer is the same either way.
        """
        predictor = self.app.state.predictor if self.app is not None else None
        if predictor is None:
            return False
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):  # deep nesting ("[[[[...") exhausts the parser's stack
            return False
        if type(payload) is not dict or len(payload) != 1:
            return False
        text = payload.get("text")
        if text_error(text, self.settings.max_chars) is not None:
            return False
        if self.settings.log_text:
            info["texts"] = [text]
        record = await batcher_of(self.app, predictor).score(text)
        if record["error"]:
            return False
        info["route"] = "/v1/predict"
        note_records(info, [record], [text], predictor)
        body = json.dumps(prediction(predictor, record), separators=(",", ":"), allow_nan=False).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    def body_limit(self, path: str) -> int:
        """The largest body this path accepts, in bytes."""
        return self.upload_limit if path in (CSV_ROUTE, CSV_NOTES_ROUTE) else self.settings.max_body_bytes

    def reject(self, scope: Scope) -> ApiError | None:
        """Refuse before reading the body: too large by Content-Length, or a missing/wrong API key."""
        path = scope["path"]
        length = key = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"x-api-key":
                key = value
        if self.api_key is not None and path.startswith("/v1/") and scope["method"] != "OPTIONS":
            if key is None:
                return ApiError(
                    401, "api_key_missing", f"This API needs a key: send it in the {API_KEY_HEADER} header."
                )
            if not hmac.compare_digest(key, self.api_key):
                return ApiError(
                    401, "api_key_invalid", f"The {API_KEY_HEADER} header does not hold a valid key."
                )
        limit = self.body_limit(path)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return too_large(limit)
        return None

    def observe(self, scope: Scope, info: dict[str, Any], status: int, seconds: float) -> None:
        """Count the finished request in the metrics and write its JSON log line."""
        path = info.get("route") or getattr(scope.get("route"), "path", None)
        route_name = path if path in self.routes else UNMATCHED
        labels: Tally = info.get("labels") or Tally()
        self.metrics.observe(route_name, scope["method"], status, seconds, labels, info.get("confidences"))
        if self.predlog is not None and status < 400:
            for predictor, texts, records in info.get("scored", ()):
                self.predlog.submit(
                    predictor, texts, records, source=route_name, request_id=info["request_id"]
                )
        line: dict[str, Any] = {
            "ts": round(time.time(), 3), "level": "info", "event": "request", "request_id": info["request_id"],
            "method": scope["method"], "route": route_name, "status": status,
            "latency_ms": round(seconds * 1000, 3), "n_texts": info.get("n_texts", 0), "labels": dict(labels),
            "worker": self.pid,
        }  # fmt: skip
        if self.settings.log_text and "texts" in info:
            line["texts"] = info["texts"]
        logger.info(json.dumps(line))
