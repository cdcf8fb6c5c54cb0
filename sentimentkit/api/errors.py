"""Every error the API answers is JSON (`ErrorBody`): the error class, the OpenAPI error table,
the JSON helpers and the exception handlers that map FastAPI's and Starlette's errors onto it, and the
one handler of the user-error family (`sentimentkit.errors.UserError`: its `http_status` and `code`)."""

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from sentimentkit.api.log import log_event
from sentimentkit.api.schemas import ErrorBody
from sentimentkit.errors import UserError
from sentimentkit.redact import redact
from sentimentkit.serving.base import EMPTY_TEXT, TOO_LONG


class ApiError(Exception):
    """An error a client caused (or 503 for a missing model); becomes a JSON ErrorBody."""

    def __init__(self, status: int, code: str, message: str, limit: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.limit = status, code, message, limit


class StreamAbortedError(Exception):
    """A streamed answer failed after its 200 status went out: the middleware ends the request without
    finishing the body, so the server closes the connection and the client sees an incomplete transfer."""


ERRORS = {
    400: {"model": ErrorBody, "description": "bad request (e.g. an unreadable CSV)"},
    401: {"model": ErrorBody, "description": "missing or wrong X-API-Key (only when a key is configured)"},
    413: {"model": ErrorBody, "description": "request body larger than the configured limit"},
    422: {"model": ErrorBody, "description": "invalid request: wrong types, empty text, or a limit exceeded"},
    503: {"model": ErrorBody, "description": "the model is not loaded (see /readyz)"},
}

_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def only(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries of these error statuses."""
    return {code: ERRORS[code] for code in codes}


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None, scrub: bool = False
) -> Response:
    """A compact JSON response. Errors (status >= 400) and `scrub` answers (model info, readiness,
    reload) are redacted (`sentimentkit.redact`); predictions are not (they echo no configuration)."""
    # ASCII-only output: nothing a client sent can make the answer unencodable.
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    if scrub or status >= 400:
        text = redact(text)
    return Response(text.encode(), status_code=status, media_type="application/json", headers=headers)


def error_payload(exc: ApiError, request_id: str | None) -> dict[str, Any]:
    """The ErrorBody of `exc`."""
    out: dict[str, Any] = {"error": exc.code, "message": redact(exc.message), "request_id": request_id}
    if exc.limit is not None:
        out["limit"] = exc.limit
    return out


def too_large(limit: int) -> ApiError:
    """The 413 for a body over `limit` bytes."""
    return ApiError(
        413, "body_too_large",
        f"The request body is larger than the limit of {limit:,} bytes; send fewer or shorter texts.", limit,
    )  # fmt: skip


def add_error_handlers(app: FastAPI) -> None:
    """Answer ApiError, the user-error family, validation errors, Starlette's HTTP errors and anything
    unexpected as JSON."""

    def request_id(request: Request) -> str | None:
        return request.scope.get("sentimentkit", {}).get("request_id")

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return json_response(error_payload(exc, request_id(request)), exc.status)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> Response:
        error = ApiError(exc.http_status, exc.code, str(exc))  # the message is redacted (twice)
        return json_response(error_payload(error, request_id(request)), exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        error = validation_to_api_error(exc.errors())
        payload = error_payload(error, request_id(request))
        payload["details"] = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
            for e in exc.errors()[:20]
        ]  # fmt: skip
        return json_response(payload, error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = str(exc.detail)
        if exc.status_code == 413 and detail.startswith("body_too_large:"):
            error = too_large(int(detail.split(":", 1)[1]))
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            error = ApiError(400, "invalid_body", "The request body could not be parsed: send UTF-8 JSON "
                             "(multipart/form-data with a file for the CSV endpoint).")  # fmt: skip
        else:
            error = ApiError(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), detail)
        return json_response(
            error_payload(error, request_id(request)), exc.status_code, getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log_event(logging.ERROR, "unhandled_error", request_id=request_id(request), error=type(exc).__name__)
        error = ApiError(
            500, "internal_error", "The server failed to answer; the error was logged with this request id."
        )
        return json_response(error_payload(error, request_id(request)), 500)


def text_api_error(error: str, max_chars: int) -> ApiError:
    """The 422 for a text that `text_error` (the one rule for every front end) refuses."""
    if error == EMPTY_TEXT:
        return ApiError(
            422, "empty_text", "text is empty, blank or invisible; send at least one visible character."
        )
    if error.startswith(TOO_LONG):
        return ApiError(
            422, "text_too_long", f"text is too long; the limit is {max_chars:,} characters.", max_chars
        )
    return ApiError(422, "invalid_text", f"text cannot be scored: {error}.")


def validation_to_api_error(errors: list[dict[str, Any]]) -> ApiError:
    """Turn pydantic's first complaint into a message that names the field and the limit."""
    first = errors[0] if errors else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body"]
    field = ".".join(loc) or "body"
    kind = first.get("type", "")
    ctx = first.get("ctx") or {}
    if kind == "json_invalid":
        return ApiError(422, "invalid_json", "The request body is not valid JSON.")
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
