"""One pure-ASGI middleware does the per-request work (request id, body-size limit before any
parsing, API key, metrics, one JSON log line): Starlette's BaseHTTPMiddleware costs far more per
request than the model itself on short texts."""

import asyncio
import random
import re
import time
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentimentkit.api.errors import StreamAbortedError, error_payload, json_response, too_large
from sentimentkit.api.service import Service

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class ServiceMiddleware:
    """Request id, body-size limit, API key, metrics and one JSON log line per request."""

    def __init__(self, app: ASGIApp, service: Service) -> None:
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
                await json_response(error_payload(rejection, request_id), rejection.status)(
                    scope, receive, send_wrapper
                )
                return
            limit = svc.body_limit(scope["path"])
            if svc.fast_path_applies(scope):
                body = await _read_body(receive, limit)
                if body is None:  # too large: answered like the slow path would
                    await json_response(error_payload(too_large(limit), request_id), 413)(
                        scope, receive, send_wrapper
                    )
                    return
                if await svc.fast_predict(scope, body, info, send_wrapper):
                    return
                receive = _replay(body)
            await self.app(scope, _limited(receive, limit), send_wrapper)
        except StreamAbortedError:
            # The client got a 200 header but an incomplete body: count it as the server error it is.
            # Returning without the final body message makes the server close the connection.
            status_box[0] = 500
        finally:
            svc.observe(scope, info, status_box[0], time.perf_counter() - start)


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
