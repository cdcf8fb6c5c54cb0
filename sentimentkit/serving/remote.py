"""`RemotePredictor`: the REST API (sentimentkit.api) as a `BasePredictor`, over HTTP with httpx.

The Streamlit app gets one from `predict.open_backend()` when SENTIMENTKIT_API_URL is set, and
uses it exactly like the in-process model. Every failure (server down, timeout, unexpected
answer) becomes a `BackendError` whose message says what happened and what to check.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from sentimentkit.errors import TextError
from sentimentkit.serving.base import BackendError, BasePredictor, text_error

# Leave headroom under the server's body limit for the JSON envelope.
_BODY_HEADROOM = 1024


class RemotePredictor(BasePredictor):
    """Client of a running sentimentkit API with the same interface as the local `Predictor`.

    With `connect=True` (the default) the constructor fetches GET /v1/model, so an unreachable or
    misconfigured API is reported at once, as a BackendError; the answer (model card, labels,
    threshold, limits) is cached.
    """

    def __init__(
        self, url: str, api_key: str | None = None, timeout: float = 30.0, connect: bool = True,
        client: httpx.Client | None = None,
    ) -> None:  # fmt: skip
        self.url = url.rstrip("/")
        headers = {"X-API-Key": api_key} if api_key else {}
        self._client = client or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._info: dict[str, Any] | None = None
        self._lock = threading.Lock()
        if connect:
            self.info()

    # --- what the server says about itself ------------------------------------------------
    def info(self) -> dict[str, Any]:
        """GET /v1/model (cached): model_version, labels, threshold, can_explain, limits, card."""
        if self._info is None:
            with self._lock:
                if self._info is None:
                    self._info = self._call("GET", "/v1/model")
        return self._info

    def refresh(self) -> None:
        """Forget the cached model info (e.g. after the server was restarted with a new model)."""
        self._info = None

    @property
    def card(self) -> dict[str, Any]:  # type: ignore[override]
        return dict(self.info()["card"])

    @property
    def version(self) -> str:
        return str(self.info()["model_version"])

    @property
    def labels(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.info()["labels"])

    @property
    def threshold(self) -> float:  # type: ignore[override]
        return float(self.info()["threshold"])

    @property
    def max_chars(self) -> int:  # type: ignore[override]
        return int(self.info()["limits"]["max_chars"])

    @property
    def can_explain(self) -> bool:
        return bool(self.info()["can_explain"])

    def ready(self) -> dict[str, Any]:
        """GET /readyz as a dict (status 'ready' or 'unavailable' with a reason); never raises for 503."""
        return self._call("GET", "/readyz", accept=(200, 503))

    # --- scoring ----------------------------------------------------------------------------
    def score_valid(self, texts: list[str], threshold: float, parts: bool = False) -> list[dict[str, Any]]:
        """Records for texts that passed `text_error` (with the server's limit, from GET /v1/model),
        via POST /v1/predict/batch in chunks the server accepts; `uncertain` uses `threshold`.
        With `parts`, the server is asked for each text's parts (`?parts=true`)."""
        results: list[dict[str, Any]] = []
        for chunk in self._chunks(texts):
            path = "/v1/predict/batch?parts=true" if parts else "/v1/predict/batch"
            answer = self._call("POST", path, body={"texts": [texts[i] for i in chunk]})
            records = answer.get("results")
            if not isinstance(records, list) or len(records) != len(chunk):
                raise self._unexpected("POST /v1/predict/batch", "a result list of the wrong length")
            results += records
        return [_with_threshold(r, threshold) for r in results]

    def _chunks(self, texts: list[str]) -> list[list[int]]:
        """Index groups that respect the server's max_batch and max_body_bytes."""
        limits = self.info()["limits"]
        max_items, max_bytes = int(limits["max_batch"]), int(limits["max_body_bytes"]) - _BODY_HEADROOM
        chunks: list[list[int]] = []
        current: list[int] = []
        size = 0
        for i, text in enumerate(texts):
            item = len(json.dumps(text, ensure_ascii=False).encode()) + 1
            if current and (len(current) >= max_items or size + item > max_bytes):
                chunks.append(current)
                current, size = [], 0
            current.append(i)
            size += item
        if current:
            chunks.append(current)
        return chunks

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities in `self.labels` order; raises ValueError for a text the API refuses."""
        single = isinstance(texts, str)
        records = self.score([texts] if single else list(texts))
        rows = []
        for i, record in enumerate(records):
            if record["error"]:
                raise TextError(f"text {i} cannot be scored: {record['error']}")
            rows.append([record["scores"][label] for label in self.labels])
        proba = np.asarray(rows, dtype=float).reshape(len(rows), len(self.labels))
        return proba[0] if single else proba

    def explain(self, text: str, label: str | None = None) -> dict[str, Any]:
        """POST /v1/predict?explain=true: per-token contributions computed by the server."""
        error = text_error(text, self.max_chars)
        if error:
            raise TextError(error)
        params: dict[str, str] = {"explain": "true"}
        if label is not None:
            params["label"] = label
        answer = self._call("POST", "/v1/predict", body={"text": text}, params=params)
        explanation = answer.get("explanation")
        if not isinstance(explanation, dict):
            raise self._unexpected("POST /v1/predict?explain=true", "no explanation")
        return explanation

    # --- HTTP -------------------------------------------------------------------------------
    def _call(
        self, method: str, path: str, body: Any = None, params: dict[str, str] | None = None,
        accept: tuple[int, ...] = (200,),
    ) -> dict[str, Any]:  # fmt: skip
        content = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._client.request(method, path, content=content, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise BackendError(
                f"the sentiment API at {self.url} did not answer {method} {path} in time ({exc!r}); "
                "is it overloaded? (SENTIMENTKIT_API_TIMEOUT_S sets the limit)"
            ) from None
        except httpx.HTTPError as exc:
            raise BackendError(
                f"cannot reach the sentiment API at {self.url}: {exc} — is it running? "
                "(check SENTIMENTKIT_API_URL)"
            ) from None
        return self._decode(response, f"{method} {path}", accept)

    def _decode(self, response: httpx.Response, what: str, accept: tuple[int, ...]) -> dict[str, Any]:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code in accept and isinstance(payload, dict):
            return payload
        message = payload.get("message") if isinstance(payload, dict) else None
        if response.status_code == 401:
            raise BackendError(
                f"the sentiment API at {self.url} refused the request: {message or 'unauthorised'} "
                "(set SENTIMENTKIT_API_KEY to the server's key)"
            )
        if response.status_code == 503:
            raise BackendError(
                f"the sentiment API at {self.url} has no model loaded: {message or 'see /readyz'}"
            )
        if message:
            raise BackendError(
                f"the sentiment API at {self.url} answered {what} with {response.status_code}: {message}"
            )
        raise self._unexpected(what, f"HTTP {response.status_code} with a non-JSON body")

    def _unexpected(self, what: str, detail: str) -> BackendError:
        return BackendError(
            f"unexpected answer from {self.url} to {what}: {detail}. Is SENTIMENTKIT_API_URL a sentimentkit API?"
        )

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def __enter__(self) -> RemotePredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _with_threshold(record: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The server judged `uncertain` against its own threshold; re-judge against the caller's."""
    if record.get("confidence") is None:
        return record
    return {**record, "uncertain": bool(record["confidence"] < threshold)}


__all__ = ["RemotePredictor"]
