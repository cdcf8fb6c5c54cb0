"""`load_predictor`: the one place that knows every backend and turns a model location into one;
`load_verified` adds the probe every server runs before it serves a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sentimentkit.config import Settings
from sentimentkit.errors import ProbeError
from sentimentkit.models.fetch import resolve
from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.ensemble import is_ensemble, load_ensemble_predictor
from sentimentkit.serving.predictor import Predictor
from sentimentkit.serving.transformer import load_transformer_predictor


def load_predictor(
    path: str | Path | None = None, threshold: float | None = None, settings: Settings | None = None
) -> BasePredictor:
    """Open whichever model `path` (default: SENTIMENTKIT_MODEL) names.

    A `.pkl` file is the TF-IDF pipeline; a directory holding `ensemble.json` is an ensemble of other
    models (the "accurate" mode, `models/accurate`); any other directory is a transformer artifact
    (served with onnxruntime when it holds `model.int8.onnx`, otherwise with torch). `models:/NAME@ALIAS` or
    `models:/NAME/VERSION` is a registered version, copied and verified first (`models.fetch`; the
    `mlops` extra).
    """
    settings = settings or Settings.from_env()
    predictor = _load(path, threshold, settings)
    predictor.find_mixed = settings.mixed
    return predictor


def _load(path: str | Path | None, threshold: float | None, settings: Settings) -> BasePredictor:
    if str(path or settings.model_path).startswith("models:/"):
        return load_registered(str(path or settings.model_path), threshold, settings)
    path = Path(path or settings.model_path)
    if is_ensemble(path):
        return load_ensemble_predictor(path, load_predictor, threshold=threshold, settings=settings)
    if path.is_dir():
        return load_transformer_predictor(path, threshold=threshold, settings=settings)
    return Predictor.load(path, threshold=threshold, settings=settings)


def load_registered(uri: str, threshold: float | None, settings: Settings) -> BasePredictor:
    """A registry version: resolved to a local copy verified against the registry's SHA-256s."""
    resolved = resolve(uri)
    predictor = load_predictor(resolved.path, threshold=threshold, settings=settings)
    predictor.registry = resolved.info()
    return predictor


def verify_predictor(predictor: BasePredictor) -> None:
    """A loaded model must answer a probe with finite probabilities that sum to 1 (else ValueError)."""
    proba = np.asarray(predictor.predict_proba(["the model is loaded and works"]))
    if proba.shape != (1, len(predictor.labels)) or not np.all(np.isfinite(proba)):
        raise ProbeError(f"the model answered a probe with an invalid result (shape {proba.shape})")
    if abs(float(proba.sum()) - 1.0) > 1e-3:
        raise ProbeError("the model's probabilities do not sum to 1")


def load_verified(
    path: str | Path | None = None, threshold: float | None = None, settings: Settings | None = None
) -> BasePredictor:
    """`load_predictor`, then `verify_predictor`: what the API does at start-up and on every reload."""
    predictor = load_predictor(path, threshold=threshold, settings=settings)
    verify_predictor(predictor)
    return predictor


def open_backend(settings: Settings | None = None) -> BasePredictor:
    """What the app uses: the REST API when SENTIMENTKIT_API_URL is set, else the local model."""
    settings = settings or Settings.from_env()
    if settings.api_url:
        # lazy: httpx, only for SENTIMENTKIT_API_URL; loading a local model (and --jobs workers) skips it
        from sentimentkit.serving.remote import RemotePredictor

        return RemotePredictor(settings.api_url, api_key=settings.api_key, timeout=settings.api_timeout_s)
    return load_predictor(settings=settings)
