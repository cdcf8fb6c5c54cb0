"""The REST API: `create_app()` builds a FastAPI app that serves one `BasePredictor`.

Endpoints: POST /v1/predict (?explain=true), POST /v1/predict/batch, POST /v1/predict/csv,
GET /healthz, /readyz, /v1/model, /metrics. The model is loaded once, in the lifespan; when it
cannot be loaded the process stays up, /readyz answers 503 with the reason and the prediction
endpoints answer 503 (no crash loop behind a load balancer).

One pure-ASGI middleware does the per-request work (request id, body-size limit before any
parsing, API key, Prometheus metrics, one JSON log line) because Starlette's BaseHTTPMiddleware
costs far more per request than the model itself on short texts.
"""

import asyncio
import gc
import hmac
import io
import json
import logging
import os
import random
import re
import sys
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Annotated, Any

import pandas as pd
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, create_model
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentimentkit.config import Settings
from sentimentkit.serving.base import BasePredictor, error_record, records_to_frame, text_error
from sentimentkit.serving.loader import load_predictor

logger = logging.getLogger("sentimentkit.api")

API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
CSV_ROUTE = "/v1/predict/csv"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# Every model call happens on the event loop's thread: predictors keep caches that are not safe to
# share between threads (and with the GIL, threads would not score any faster). Long jobs (big
# batches, CSV files) are scored in slices of this many texts, yielding to the loop in between so
# that single-text requests are not held up behind them.
MODEL_SLICE = 64
CONFIDENCE_BUCKETS = (0.34, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
# Known paths only; anything else is reported as "unmatched" so fuzzers cannot blow up label cardinality.
UNMATCHED = "unmatched"


# --- response models (documented in the OpenAPI schema) -------------------------------------------
class Scores(BaseModel):
    """Probability of each class; the three sum to 1."""

    negative: float
    neutral: float
    positive: float


class TokenWeight(BaseModel):
    token: str
    start: int = Field(description="character offset of the token in the text")
    end: int
    weight: float = Field(description="additive contribution to the explained label's centred logit")


class Explanation(BaseModel):
    label: str
    probability: float
    bias: float
    logit: float = Field(description="bias + sum of token weights")
    tokens: list[TokenWeight]


class Prediction(BaseModel):
    sentiment: str = Field(description="negative, neutral or positive")
    confidence: float = Field(description="probability of the predicted class")
    scores: Scores
    uncertain: bool = Field(description="confidence below the configured threshold")
    model_version: str
    explanation: Explanation | None = Field(None, description="present with ?explain=true")


class BatchItem(BaseModel):
    sentiment: str | None
    confidence: float | None
    scores: Scores | None
    uncertain: bool | None
    error: str | None = Field(description="why this item was not scored (empty or too long); else null")


class BatchPrediction(BaseModel):
    model_version: str
    results: list[BatchItem] = Field(description="one per input text, in input order")


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. text_too_long, body_too_large")
    message: str = Field(description="what was wrong and how to fix it")
    limit: int | None = Field(None, description="the limit that was exceeded, when one was")
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready or unavailable")
    model_version: str | None = None
    reason: str | None = Field(None, description="why the model is not available")


class Limits(BaseModel):
    max_chars: int
    max_batch: int
    max_body_bytes: int
    max_upload_bytes: int


class ModelInfo(BaseModel):
    model_version: str
    labels: list[str]
    threshold: float
    can_explain: bool
    limits: Limits
    card: dict[str, Any]


class ApiError(Exception):
    """An error a client caused (or 503 for a missing model); becomes a JSON ErrorBody."""

    def __init__(self, status: int, code: str, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.limit = status, code, message, limit


ERRORS = {
    400: {"model": ErrorBody, "description": "bad request (e.g. an unreadable CSV)"},
    401: {"model": ErrorBody, "description": "missing or wrong X-API-Key (only when a key is configured)"},
    413: {"model": ErrorBody, "description": "request body larger than the configured limit"},
    422: {"model": ErrorBody, "description": "invalid request: wrong types, empty text, or a limit exceeded"},
    503: {"model": ErrorBody, "description": "the model is not loaded (see /readyz)"},
}


# --- helpers ----------------------------------------------------------------------------------------
def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # ASCII-only output: nothing a client sent can make the answer unencodable.
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error_payload(exc: ApiError, request_id: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"error": exc.code, "message": exc.message, "request_id": request_id}
    if exc.limit is not None:
        out["limit"] = exc.limit
    return out


def _info(request: Request) -> dict[str, Any]:
    return request.scope.setdefault("sentimentkit", {})


def _note(info: dict[str, Any], texts: int, labels: list[str | None]) -> None:
    """Tell the middleware what this request scored (for the log line and the metrics)."""
    info["n_texts"] = info.get("n_texts", 0) + texts
    tally = info.setdefault("labels", Tally())
    tally.update(label for label in labels if label)


def _predictor(request: Request) -> BasePredictor:
    state = request.app.state
    if state.predictor is None:
        reason = state.load_error or "the model is still loading"
        raise ApiError(503, "model_unavailable", f"The model is not available: {reason}")
    return state.predictor


def _batcher(app: FastAPI, predictor: BasePredictor) -> "MicroBatcher":
    state = app.state
    batcher = state.batcher
    if batcher is None or batcher.predictor is not predictor:
        batcher = state.batcher = MicroBatcher(predictor)
    return batcher


def _prediction(predictor: BasePredictor, record: dict[str, Any]) -> dict[str, Any]:
    """The /v1/predict answer for one scored record."""
    return {
        "sentiment": record["sentiment"], "confidence": record["confidence"], "scores": record["scores"],
        "uncertain": record["uncertain"], "model_version": predictor.version,
    }  # fmt: skip


# --- middleware --------------------------------------------------------------------------------------
class ServiceMiddleware:
    """Request id, body-size limit, API key, metrics and one JSON log line per request."""

    def __init__(self, app: ASGIApp, service: "Service") -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        svc = self.service
        start = time.perf_counter()
        request_id = _request_id(scope)
        info: dict[str, Any] = {"request_id": request_id}
        scope["sentimentkit"] = info
        status_box = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            rejection = svc.reject(scope)
            if rejection is not None:
                await _json(_error_payload(rejection, request_id), rejection.status)(
                    scope, receive, send_wrapper
                )
                return
            limit = svc.body_limit(scope["path"])
            if svc.fast_path_applies(scope):
                body = await _read_body(receive, limit)
                if body is None:  # too large: answered like the slow path would
                    await _json(_error_payload(_too_large(limit), request_id), 413)(
                        scope, receive, send_wrapper
                    )
                    return
                if await svc.fast_predict(scope, body, info, send_wrapper):
                    return
                receive = _replay(body)
            await self.app(scope, _limited(receive, limit), send_wrapper)
        finally:
            svc.observe(scope, info, status_box[0], time.perf_counter() - start)


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate (JSON allows "\\ud83d"; the validated route rejects it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it exceeds `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # client went away; the slow path handles the rest
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    """A receive() that hands an already-read body to the app, then waits for the disconnect."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # never set: like a client that keeps the connection open
        return {"type": "http.disconnect"}

    return receive


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _REQUEST_ID_RE.match(candidate):
                return candidate
            break
    return f"{random.getrandbits(128):032x}"  # uuid4's randomness without its os.urandom syscall


def _limited(receive: Receive, limit: int) -> Receive:
    """Count body bytes as they arrive (chunked uploads have no Content-Length) and stop at `limit`."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise StarletteHTTPException(413, f"body_too_large:{limit}")
        return message

    return wrapped


class MicroBatcher:
    """Dynamic batching of single-text requests within one worker's event loop.

    Every request that reaches the model in the same loop iteration is scored in one
    `predictor.score` call; scoring n short texts together costs far less than n calls (the
    per-call sparse-matrix overhead dominates a single tweet). Nothing waits on a timer: with one
    request in flight the batch is just that request, so light load pays no extra latency.
    """

    def __init__(self, predictor: BasePredictor, max_size: int = 256) -> None:
        self.predictor = predictor
        self.max_size = max_size
        self._pending: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._scheduled = False
        self.batches = self.texts = 0  # how well batching works: texts / batches

    async def score(self, text: str) -> dict[str, Any]:
        """The `predictor.score` record of `text`, computed together with concurrent requests."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((text, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
        self._scheduled = bool(self._pending)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.batches += 1
        self.texts += len(batch)
        try:
            records = self.predictor.score([text for text, _ in batch])
        except Exception:  # a text that breaks the model must not fail the requests batched with it
            for text, future in batch:
                self._settle_alone(text, future)
            return
        for (_, future), record in zip(batch, records):
            if not future.done():  # the client may have gone away
                future.set_result(record)

    def _settle_alone(self, text: str, future: asyncio.Future[dict[str, Any]]) -> None:
        try:
            record = self.predictor.score([text])[0]
        except Exception as exc:  # handed to the waiting request, which reports it as a 500
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(record)


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
        except ValueError:
            return False
        if type(payload) is not dict or len(payload) != 1:
            return False
        text = payload.get("text")
        if type(text) is not str or not (0 < len(text) <= self.settings.max_chars) or not text.strip():
            return False
        if not text.isascii() and not _is_unicode(text):
            return False
        if self.settings.log_text:
            info["texts"] = [text]
        record = await _batcher(self.app, predictor).score(text)
        if record["error"]:
            return False
        info["route"] = "/v1/predict"
        _note_records(info, [record])
        body = json.dumps(_prediction(predictor, record), separators=(",", ":"), allow_nan=False).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    def body_limit(self, path: str) -> int:
        return self.upload_limit if path == CSV_ROUTE else self.settings.max_body_bytes

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
            return _too_large(limit)
        return None

    def observe(self, scope: Scope, info: dict[str, Any], status: int, seconds: float) -> None:
        path = info.get("route") or getattr(scope.get("route"), "path", None)
        route_name = path if path in self.routes else UNMATCHED
        labels: Tally = info.get("labels") or Tally()
        self.metrics.observe(route_name, scope["method"], status, seconds, labels, info.get("confidences"))
        line: dict[str, Any] = {
            "ts": round(time.time(), 3), "level": "info", "event": "request", "request_id": info["request_id"],
            "method": scope["method"], "route": route_name, "status": status,
            "latency_ms": round(seconds * 1000, 3), "n_texts": info.get("n_texts", 0), "labels": dict(labels),
            "worker": self.pid,
        }  # fmt: skip
        if self.settings.log_text and "texts" in info:
            line["texts"] = info["texts"]
        logger.info(json.dumps(line))


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413, "body_too_large",
        f"The request body is larger than the limit of {limit:,} bytes; send fewer or shorter texts.", limit,
    )  # fmt: skip


class Metrics:
    """Prometheus metrics in a registry of their own (several apps can live in one test process).

    With PROMETHEUS_MULTIPROC_DIR set (`serve --workers N` sets it), /metrics aggregates all workers.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("sentimentkit_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)  # fmt: skip
        self.latency = Histogram("sentimentkit_http_request_duration_seconds", "Request latency by route and status",
                                 ["route", "method", "status"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.predictions = Counter("sentimentkit_predictions", "Texts scored, by predicted label",
                                   ["label"], registry=r)  # fmt: skip
        self.confidence = Histogram("sentimentkit_prediction_confidence", "Confidence of the predicted label",
                                    buckets=CONFIDENCE_BUCKETS, registry=r)  # fmt: skip
        # Children cached by label values: `.labels()` takes a lock and builds a key on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._label_children: dict[str, Any] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, labels: Tally,
                confidences: list[float] | None) -> None:  # fmt: skip
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            code = str(status)
            children = (self.requests.labels(route, method, code), self.latency.labels(route, method, code))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        for label, count in labels.items():
            child = self._label_children.get(label)
            if child is None:
                child = self._label_children[label] = self.predictions.labels(label)
            child.inc(count)
        for value in confidences or ():
            self.confidence.observe(value)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# --- the app -----------------------------------------------------------------------------------------
def create_app(settings: Settings | None = None, predictor: BasePredictor | None = None) -> FastAPI:
    """Build the API. With `predictor` given it is served as is; otherwise the lifespan loads
    `settings.model_path` once (a failure is logged and reported by /readyz, never a crash)."""
    settings = settings or Settings.from_env()
    _configure_logging()
    service = Service(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if app.state.predictor is None:
            _load_into(app, settings)
        # The model's vocabularies are hundreds of thousands of long-lived objects: a full garbage
        # collection walking them stalls the worker for ~150 ms (measured), which is what p99 latency
        # would show. Freezing moves everything alive now out of the collector's reach.
        gc.collect()
        gc.freeze()
        yield

    app = FastAPI(
        title="sentimentkit", version="1.0.0", lifespan=lifespan,
        description="Three-class tweet sentiment (negative / neutral / positive).",
    )  # fmt: skip
    app.state.predictor = predictor
    app.state.load_error = None
    app.state.batcher = None
    app.state.settings = settings
    app.state.service = service
    if predictor is not None:
        _verify(predictor)
    _add_routes(app, settings, service)
    _add_error_handlers(app)
    service.routes = {getattr(r, "path", "") for r in app.routes}
    service.app = app
    app.add_middleware(ServiceMiddleware, service=service)
    if settings.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER, REQUEST_ID_HEADER], expose_headers=[REQUEST_ID_HEADER],
        )  # fmt: skip
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]
    return app


def _configure_logging() -> None:
    """JSON lines on stderr, whatever uvicorn's own logging config is."""
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _log_event(level: int, event: str, **fields: Any) -> None:
    payload = {
        "ts": round(time.time(), 3),
        "level": logging.getLevelName(level).lower(),
        "event": event,
        **fields,
    }
    logger.log(level, json.dumps(payload, default=str))


def _load_into(app: FastAPI, settings: Settings) -> None:
    """Load and verify the model; on failure keep serving and explain why via /readyz."""
    started = time.perf_counter()
    try:
        predictor = load_predictor(settings.model_path, settings=settings)
        _verify(predictor)
    except Exception as exc:  # any failure (corrupt pickle, missing card, bad folder) must not crash-loop
        reason = str(exc) or type(exc).__name__
        app.state.load_error = reason
        _log_event(logging.ERROR, "model_load_failed", model_path=str(settings.model_path), reason=reason)
        return
    app.state.predictor = predictor
    _log_event(logging.INFO, "model_loaded", model_path=str(settings.model_path), model_version=predictor.version,
               seconds=round(time.perf_counter() - started, 3))  # fmt: skip


def _verify(predictor: BasePredictor) -> None:
    """A loaded model must answer a probe with finite probabilities that sum to 1."""
    import numpy as np

    proba = np.asarray(predictor.predict_proba(["the model is loaded and works"]))
    if proba.shape != (1, len(predictor.labels)) or not np.all(np.isfinite(proba)):
        raise ValueError(f"the model answered a probe with an invalid result (shape {proba.shape})")
    if abs(float(proba.sum()) - 1.0) > 1e-3:
        raise ValueError("the model's probabilities do not sum to 1")


def _predict_request_model(settings: Settings) -> type[BaseModel]:
    return create_model(
        "PredictRequest",
        text=(
            str,
            Field(
                min_length=1,
                max_length=settings.max_chars,
                description=f"the text to score, 1 to {settings.max_chars} characters",
            ),
        ),
    )


def _batch_request_model(settings: Settings) -> type[BaseModel]:
    return create_model(
        "BatchRequest",
        texts=(
            list[str],
            Field(
                max_length=settings.max_batch,
                description=f"up to {settings.max_batch} texts; an empty or too long one "
                "gets its own error without failing the others",
            ),
        ),
    )


def _add_routes(app: FastAPI, settings: Settings, service: Service) -> None:
    PredictRequest = _predict_request_model(settings)
    BatchRequest = _batch_request_model(settings)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Response:
        """The process is alive (says nothing about the model; see /readyz)."""
        return _json({"status": "ok"})

    @app.get("/readyz", response_model=Readiness, tags=["ops"],
             responses={503: {"model": Readiness, "description": "model not loaded"}})  # fmt: skip
    async def readyz(request: Request) -> Response:
        """Ready when the model is loaded and verified; 503 with the reason otherwise."""
        state = request.app.state
        if state.predictor is None:
            reason = state.load_error or "the model is still loading"
            return _json({"status": "unavailable", "model_version": None, "reason": reason}, 503)
        return _json({"status": "ready", "model_version": state.predictor.version, "reason": None})

    @app.get("/v1/model", response_model=ModelInfo, responses=_only(401, 503), tags=["model"])
    async def model_info(request: Request) -> Response:
        """The model card, the labels, the threshold and the limits this server enforces."""
        p = _predictor(request)
        limits = {"max_chars": settings.max_chars, "max_batch": settings.max_batch,
                  "max_body_bytes": settings.max_body_bytes, "max_upload_bytes": service.upload_limit}  # fmt: skip
        return _json({"model_version": p.version, "labels": list(p.labels), "threshold": p.threshold,
                      "can_explain": p.can_explain, "limits": limits, "card": p.card})  # fmt: skip

    @app.post("/v1/predict", response_model=Prediction, responses=_only(400, 401, 413, 422, 503),
              tags=["predict"])  # fmt: skip
    async def predict(
        body: PredictRequest,  # type: ignore[valid-type]
        request: Request,
        explain: Annotated[bool, Query(description="add per-word contributions")] = False,
        label: Annotated[str | None, Query(description="with explain=true: explain this label")] = None,
    ) -> Response:
        """Score one text."""
        p = _predictor(request)
        text: str = body.text  # type: ignore[attr-defined]
        _remember_text(request, settings, [text])
        record = await _batcher(request.app, p).score(text)
        if record["error"]:  # only blank text gets here: pydantic already enforced the length limits
            raise ApiError(422, "empty_text", "text is blank; send at least one non-blank character.")
        _note_records(_info(request), [record])
        out = _prediction(p, record)
        if explain:
            out["explanation"] = _explain(p, text, label)
        return _json(out)

    @app.post("/v1/predict/batch", response_model=BatchPrediction, responses=_only(400, 401, 413, 422, 503),
              tags=["predict"])  # fmt: skip
    async def predict_batch(body: BatchRequest, request: Request) -> Response:  # type: ignore[valid-type]
        """Score up to `max_batch` texts; results keep the input order, bad items get their own error."""
        p = _predictor(request)
        texts: list[str] = body.texts  # type: ignore[attr-defined]
        _remember_text(request, settings, texts)
        records = await _score_texts(p, texts, settings.max_chars)
        _note_records(_info(request), records)
        return _json({"model_version": p.version, "results": records})

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
        p = _predictor(request)
        name = file.filename or "upload.csv"
        rows = _check_csv(file.file, name, text_column, settings.csv_chunk_rows)
        _info(request)["n_rows"] = rows
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem)[:80] or "upload"
        return StreamingResponse(
            _stream_scored(
                request, p, file.file, name, text_column, settings.csv_chunk_rows, settings.max_chars
            ),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{stem}-scored.csv"'},
        )

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"}})  # fmt: skip
    async def metrics() -> Response:
        """Prometheus metrics: requests and latency by route and status, predictions by label,
        confidence histogram."""
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)


def _only(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: ERRORS[code] for code in codes}


def _csv_responses() -> dict[int | str, dict[str, Any]]:
    out = _only(400, 401, 413, 422, 503)
    out[200] = {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the scored CSV"}
    return out


async def _score_texts(p: BasePredictor, texts: list[str], max_chars: int) -> list[dict[str, Any]]:
    """`p.score` in slices on the loop's thread, with this server's character limit (an injected
    predictor may have another); one record per text, in order."""
    errors = [text_error(t, max_chars) for t in texts]
    valid = [i for i, e in enumerate(errors) if e is None]
    records = [error_record(e) for e in errors]
    for start in range(0, len(valid), MODEL_SLICE):
        if start:
            await asyncio.sleep(0)  # let waiting requests run between slices
        part = valid[start : start + MODEL_SLICE]
        for i, record in zip(part, p.score([texts[i] for i in part])):
            records[i] = record
    return records


def _remember_text(request: Request, settings: Settings, texts: list[str]) -> None:
    if settings.log_text:
        _info(request)["texts"] = texts


def _note_records(info: dict[str, Any], records: list[dict[str, Any]]) -> None:
    _note(info, len(records), [r["sentiment"] for r in records])
    info.setdefault("confidences", []).extend(r["confidence"] for r in records if r["confidence"] is not None)


def _explain(p: BasePredictor, text: str, label: str | None) -> dict[str, Any]:
    if not p.can_explain:
        raise ApiError(400, "explain_unsupported", f"Model {p.version} does not provide explanations.")
    if label is not None and label not in p.labels:
        raise ApiError(422, "unknown_label", f"label must be one of {list(p.labels)}, got {label!r}.")
    return p.explain(text, label)


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
        records = await _score_texts(p, chunk[text_column].tolist(), max_chars)
        _note_records(_info(request), records)
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


def _add_error_handlers(app: FastAPI) -> None:
    def request_id(request: Request) -> str | None:
        return request.scope.get("sentimentkit", {}).get("request_id")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _json(_error_payload(exc, request_id(request)), exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        error = _validation_to_api_error(exc.errors())
        payload = _error_payload(error, request_id(request))
        payload["details"] = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
            for e in exc.errors()[:20]
        ]  # fmt: skip
        return _json(payload, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail)
        if exc.status_code == 413 and detail.startswith("body_too_large:"):
            error = _too_large(int(detail.split(":", 1)[1]))
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            error = ApiError(400, "invalid_body", "The request body could not be parsed: send UTF-8 JSON "
                             "(multipart/form-data with a file for the CSV endpoint).")  # fmt: skip
        else:
            error = ApiError(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), detail)
        return _json(
            _error_payload(error, request_id(request)), exc.status_code, getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        _log_event(logging.ERROR, "unhandled_error", request_id=request_id(request), error=type(exc).__name__)
        error = ApiError(
            500, "internal_error", "The server failed to answer; the error was logged with this request id."
        )
        return _json(_error_payload(error, request_id(request)), 500)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _validation_to_api_error(errors: list[dict[str, Any]]) -> ApiError:
    """Turn pydantic's first complaint into a message that names the field and the limit."""
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(loc) or "body"
    kind = first.get("type", "")
    ctx = first.get("ctx") or {}
    if kind == "json_invalid":
        return ApiError(422, "invalid_json", "The request body is not valid JSON.")
    if kind == "string_too_long" and field == "text":
        limit = int(ctx.get("max_length", 0))
        return ApiError(422, "text_too_long", f"text is too long; the limit is {limit:,} characters.", limit)
    if kind == "string_too_short" and field == "text":
        return ApiError(422, "empty_text", "text is empty; send at least one non-blank character.")
    if kind == "too_long" and field == "texts":
        limit = int(ctx.get("max_length", 0))
        return ApiError(422, "too_many_texts", f"texts holds too many items; the limit is {limit:,} per request.",
                        limit)  # fmt: skip
    if kind == "string_unicode":
        return ApiError(
            422, "invalid_text", f"{field} is not valid Unicode (a lone surrogate such as \\ud83d)."
        )
    if kind == "missing":
        return ApiError(422, "missing_field", f"{field} is required.")
    return ApiError(422, "invalid_request", f"{field}: {first.get('msg', 'invalid value')}.")


def _openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The generated schema, plus the X-API-Key security scheme when a key is configured."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    if settings.api_key:
        schema.setdefault("components", {})["securitySchemes"] = {
            "ApiKey": {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}
        }
        for path, operations in schema["paths"].items():
            if path.startswith("/v1/"):
                for operation in operations.values():
                    operation["security"] = [{"ApiKey": []}]
    app.openapi_schema = schema
    return schema


__all__ = ["ApiError", "create_app"]
