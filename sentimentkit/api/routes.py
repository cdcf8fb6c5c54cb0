"""The API's routes: health, readiness, model info, single and batch prediction, CSV, feedback, metrics."""

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import Response

from sentimentkit.api.batcher import score_texts
from sentimentkit.api.csv_route import add_csv_route
from sentimentkit.api.errors import ApiError, json_response, only, text_api_error
from sentimentkit.api.feedback_route import add_feedback_route
from sentimentkit.api.schemas import (
    BatchPrediction,
    Health,
    ModelInfo,
    Prediction,
    Readiness,
    batch_request_model,
    predict_request_model,
)
from sentimentkit.api.service import (
    Service,
    batcher_of,
    note_records,
    prediction,
    predictor_of,
    remember_text,
    request_info,
)
from sentimentkit.config import Settings
from sentimentkit.serving.base import BasePredictor, error_record, text_error


def add_routes(app: FastAPI, settings: Settings, service: Service) -> None:
    """Register every route on `app`."""
    PredictRequest = predict_request_model(settings)
    BatchRequest = batch_request_model(settings)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> Response:
        """The process is alive (says nothing about the model; see /readyz)."""
        return json_response({"status": "ok"})

    @app.get("/readyz", response_model=Readiness, tags=["ops"],
             responses={503: {"model": Readiness, "description": "model not loaded"}})  # fmt: skip
    async def readyz(request: Request) -> Response:
        """Ready when the model is loaded and verified; 503 with the reason otherwise."""
        state = request.app.state
        if state.predictor is None:
            reason = state.load_error or "the model is still loading"
            return json_response({"status": "unavailable", "model_version": None, "reason": reason}, 503)
        return json_response({"status": "ready", "model_version": state.predictor.version, "reason": None},
                             scrub=True)  # fmt: skip

    @app.get("/v1/model", response_model=ModelInfo, responses=only(401, 503), tags=["model"])
    async def model_info(request: Request) -> Response:
        """The model card, the labels, the threshold and the limits this server enforces."""
        p = predictor_of(request)
        limits = {"max_chars": settings.max_chars, "max_batch": settings.max_batch,
                  "max_body_bytes": settings.max_body_bytes, "max_upload_bytes": service.upload_limit}  # fmt: skip
        return json_response({"model_version": p.version, "labels": list(p.labels), "threshold": p.threshold,
                              "can_explain": p.can_explain, "limits": limits, "card": p.card,
                              "registry": p.registry}, scrub=True)  # fmt: skip

    @app.post("/v1/predict", response_model=Prediction, responses=only(400, 401, 413, 422, 503),
              tags=["predict"])  # fmt: skip
    async def predict(
        body: PredictRequest,  # type: ignore[valid-type]
        request: Request,
        explain: Annotated[bool, Query(description="add per-word contributions")] = False,
        label: Annotated[str | None, Query(description="with explain=true: explain this label")] = None,
        parts: Annotated[bool, Query(description="add the text's scored parts (sentences, clauses)")] = False,
    ) -> Response:
        """Score one text."""
        p = predictor_of(request)
        text: str = body.text  # type: ignore[attr-defined]
        remember_text(request, settings, [text])
        error = text_error(text, settings.max_chars)
        if error is not None:
            record: dict[str, Any] = {"error": error}
        elif parts:  # opt-in: scored on its own, not through the micro-batcher
            record = (await score_texts(p, [text], settings.max_chars, parts=True))[0]
        else:
            record = await batcher_of(request.app, p).score(text)
        if record["error"]:
            raise text_api_error(record["error"], settings.max_chars)
        note_records(request_info(request), [record], [text], p)
        out = prediction(p, record)
        if explain:
            out["explanation"] = _explain(p, text, label)
        if parts:
            out["parts"] = record.get("parts")
        return json_response(out)

    @app.post("/v1/predict/batch", response_model=BatchPrediction, responses=only(400, 401, 413, 422, 503),
              tags=["predict"])  # fmt: skip
    async def predict_batch(
        body: BatchRequest,  # type: ignore[valid-type]
        request: Request,
        parts: Annotated[
            bool, Query(description="add each text's scored parts (sentences, clauses)")
        ] = False,
    ) -> Response:
        """Score up to `max_batch` texts; results keep the input order, bad items get their own error."""
        p = predictor_of(request)
        texts: list[Any] = body.texts  # type: ignore[attr-defined]
        remember_text(request, settings, texts)
        records = await score_texts(p, texts, settings.max_chars, parts=parts)
        for i, error in wrong_types(texts).items():
            records[i] = error_record(error, parts)
        note_records(request_info(request), records, texts, p)
        return json_response({"model_version": p.version, "results": records})

    add_csv_route(app, settings)
    add_feedback_route(app, settings)

    @app.get("/metrics", tags=["ops"], response_class=Response,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"}})  # fmt: skip
    async def metrics() -> Response:
        """Prometheus metrics: requests and latency by route and status, predictions by label,
        confidence histogram."""
        body, content_type = service.metrics.render()
        return Response(body, media_type=content_type)


# JSON's names for the Python types `json.loads` produces, for the per-item message.
_JSON_TYPES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
}


def wrong_types(items: list[Any]) -> dict[int, str]:
    """Position -> per-item error for the batch items that are not JSON strings (`text_error` would
    call a null "empty text"; the client sent the wrong type, and the message says so)."""
    return {
        i: f"text must be a string (got {_JSON_TYPES.get(type(item), type(item).__name__)})"
        for i, item in enumerate(items)
        if not isinstance(item, str)
    }


def _explain(p: BasePredictor, text: str, label: str | None) -> dict[str, Any]:
    if not p.can_explain:
        raise ApiError(400, "explain_unsupported", f"Model {p.version} does not provide explanations.")
    if label is not None and label not in p.labels:
        raise ApiError(422, "unknown_label", f"label must be one of {list(p.labels)}, got {label!r}.")
    return p.explain(text, label)
