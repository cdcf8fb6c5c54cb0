"""`create_app()` builds a FastAPI app that serves one `BasePredictor`.

Endpoints: POST /v1/predict (?explain=true), POST /v1/predict/batch, POST /v1/predict/csv,
GET /healthz, /readyz, /v1/model, /metrics. The model is loaded once, in the lifespan; when it
cannot be loaded the process stays up, /readyz answers 503 with the reason and the prediction
endpoints answer 503 (no crash loop behind a load balancer).

The package's modules: `schemas` (request/response models), `errors` (ApiError, JSON errors and
handlers), `middleware` (the ASGI middleware), `service` (shared state and the fast path), `batcher`
(how the model is called), `metrics` (Prometheus), `routes` and `csv_route`, `log` (JSON log lines).
"""

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from sentimentkit.api.errors import ApiError, add_error_handlers
from sentimentkit.api.log import configure_logging, log_event
from sentimentkit.api.middleware import ServiceMiddleware
from sentimentkit.api.reload import add_reload_route, follow_model
from sentimentkit.api.routes import add_routes
from sentimentkit.api.service import API_KEY_HEADER, REQUEST_ID_HEADER, Service
from sentimentkit.config import Settings
from sentimentkit.mlops.monitor import LiveMonitor
from sentimentkit.mlops.predlog import PredictionLog, model_identity
from sentimentkit.redact import redact, register_settings
from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.loader import load_verified, verify_predictor
from sentimentkit.training.profile import model_reference


def create_app(settings: Settings | None = None, predictor: BasePredictor | None = None) -> FastAPI:
    """Build the API. With `predictor` given it is served as is; otherwise the lifespan loads
    `settings.model_path` once (a failure is logged and reported by /readyz, never a crash)."""
    settings = settings or Settings.from_env()
    register_settings(settings)  # its API key and signing key are redacted from everything printed
    configure_logging()
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
        async with follow_model(app, settings), prediction_log(service, settings):
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
        verify_predictor(predictor)
    add_routes(app, settings, service)
    add_reload_route(app, settings)
    add_error_handlers(app)
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


@asynccontextmanager
async def prediction_log(service: Service, settings: Settings) -> AsyncIterator[None]:
    """While the app runs, record its predictions (SENTIMENTKIT_PREDICTION_LOG); on shutdown write
    everything still queued (in a thread: it may upload to Blob storage)."""
    if not settings.prediction_log:
        yield
        return

    live = LiveMonitor(lambda: model_reference(service.app.state.predictor, settings.data_dir)[0])
    if service.app is not None and service.app.state.predictor is not None:  # before serving: see prime()
        await asyncio.to_thread(live.prime, model_identity(service.app.state.predictor)[1])
    service.metrics.add_live_monitor(live)
    service.predlog = PredictionLog(settings.prediction_log, log_text=settings.prediction_log_text,
                                    on_count=service.metrics.count_prediction_log, on_written=live.update)  # fmt: skip
    log_event(
        logging.INFO, "prediction_log_on", uri=settings.prediction_log, text=settings.prediction_log_text
    )
    try:
        yield
    finally:
        predlog, service.predlog = service.predlog, None
        await asyncio.to_thread(predlog.close)
        log_event(logging.INFO, "prediction_log_closed", **predlog.counts)


def _load_into(app: FastAPI, settings: Settings) -> None:
    """Load and verify the model; on failure keep serving and explain why via /readyz."""
    started = time.perf_counter()
    try:
        predictor = load_verified(settings.model_path, settings=settings)
    except Exception as exc:  # any failure (corrupt pickle, missing card, bad folder) must not crash-loop
        reason = redact(str(exc)) or type(exc).__name__
        app.state.load_error = reason
        log_event(logging.ERROR, "model_load_failed", model_path=str(settings.model_path), reason=reason)
        return
    app.state.predictor = predictor
    log_event(logging.INFO, "model_loaded", model_path=str(settings.model_path), model_version=predictor.version,
              seconds=round(time.perf_counter() - started, 3))  # fmt: skip


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
