"""Swapping the served model while the API runs: `POST /v1/admin/reload` and, for a
`models:/NAME@ALIAS` model, a background task that follows the alias.

A swap is one assignment of `app.state.predictor`: every request took its predictor at its start
(`predictor_of`) and finishes on it, and the new model is loaded and verified in a worker thread
before it is assigned, so no request fails or waits because of a reload. A failed load keeps the
model that was serving and is reported (logs, the reload answer), never a crash.
"""

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from sentimentkit.api.errors import ApiError, json_response, only
from sentimentkit.api.log import log_event
from sentimentkit.api.schemas import ErrorBody
from sentimentkit.config import Settings
from sentimentkit.models.fetch import current_version, parse_uri
from sentimentkit.redact import redact
from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.loader import load_verified

RELOAD_ROUTE = "/v1/admin/reload"


def followed_alias(settings: Settings) -> tuple[str, str] | None:
    """(name, alias) when the configured model is `models:/NAME@ALIAS`, else None."""
    location = str(settings.model_path)
    if not location.startswith("models:/"):
        return None
    name, _, alias = parse_uri(location)
    return (name, alias) if alias else None


def _alias_moved(app: FastAPI, settings: Settings) -> bool:
    """True when the alias now names another version than the one served (or nothing is served)."""
    followed = followed_alias(settings)
    current: BasePredictor | None = app.state.predictor
    if followed is None or current is None or current.registry is None:
        return True
    return current_version(*followed) != current.registry.get("version")


async def reload_model(app: FastAPI, settings: Settings, force: bool = False) -> dict[str, Any]:
    """Load the configured model again if it changed (an alias moved) or `force`; swap it in.

    Returns {"reloaded", "model_version", "registry"}; raises the load error, keeping the old model.
    """
    async with app.state.reload_lock:  # one reload at a time: the poller and the endpoint may race
        if not force and not await asyncio.to_thread(_alias_moved, app, settings):
            return _answer(app.state.predictor, reloaded=False)
        started = time.perf_counter()
        old = app.state.predictor
        predictor = await asyncio.to_thread(load_verified, settings.model_path, settings=settings)
        app.state.predictor, app.state.load_error = predictor, None
        gc.freeze()  # as at start-up: keep the new model's objects out of the collector's full passes
        log_event(logging.INFO, "model_reloaded", model_path=str(settings.model_path),
                  old_version=getattr(old, "version", None), model_version=predictor.version,
                  registry=predictor.registry, seconds=round(time.perf_counter() - started, 3))  # fmt: skip
        return _answer(predictor, reloaded=True)


def _answer(predictor: BasePredictor | None, reloaded: bool) -> dict[str, Any]:
    return {"reloaded": reloaded, "model_version": getattr(predictor, "version", None),
            "registry": getattr(predictor, "registry", None)}  # fmt: skip


def add_reload_route(app: FastAPI, settings: Settings) -> None:
    """POST /v1/admin/reload: only with an API key configured (the middleware checks X-API-Key)."""
    app.state.reload_lock = asyncio.Lock()

    disabled = {"model": ErrorBody, "description": "reloading is off: no SENTIMENTKIT_API_KEY is configured"}

    @app.post(RELOAD_ROUTE, responses={**only(401, 503), 403: disabled}, tags=["ops"])
    async def admin_reload(request: Request) -> Response:
        """Load the configured model again now (for `models:/NAME@ALIAS`: the version the alias names)
        and swap it in without dropping requests. Needs SENTIMENTKIT_API_KEY and the X-API-Key header."""
        if not settings.api_key:
            raise ApiError(403, "reload_disabled", "Reloading needs an API key: set SENTIMENTKIT_API_KEY.")
        try:
            return json_response(await reload_model(request.app, settings, force=True), scrub=True)
        except Exception as exc:
            raise ApiError(
                503,
                "reload_failed",
                f"The model was not reloaded (still serving the old one): {redact(str(exc))}",
            ) from None


async def _poll(app: FastAPI, settings: Settings) -> None:
    """Check the alias every `model_poll_s` seconds; a failed check or load is logged and retried."""
    while True:
        await asyncio.sleep(settings.model_poll_s)
        try:
            await reload_model(app, settings)
        except Exception as exc:  # the registry or the store being down must not stop the API
            log_event(
                logging.WARNING,
                "model_poll_failed",
                model_path=str(settings.model_path),
                reason=redact(str(exc)),
            )


@contextlib.asynccontextmanager
async def follow_model(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """While the app runs, follow a `models:/NAME@ALIAS` model (when polling is on)."""
    task = None
    with contextlib.suppress(Exception):  # a bad URI already failed the load and shows in /readyz
        if settings.model_poll_s > 0 and followed_alias(settings) is not None:
            task = asyncio.create_task(_poll(app, settings))
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
