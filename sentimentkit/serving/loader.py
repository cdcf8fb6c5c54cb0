"""`load_predictor`: the one place that knows every backend and turns a model location into one."""

from __future__ import annotations

from pathlib import Path

from sentimentkit.config import Settings
from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.predictor import Predictor


def load_predictor(
    path: str | Path | None = None, threshold: float | None = None, settings: Settings | None = None
) -> BasePredictor:
    """Open whichever model `path` (default: SENTIMENTKIT_MODEL) names.

    A `.pkl` file is the TF-IDF pipeline; a directory is a transformer artifact (served with
    onnxruntime when it holds `model.int8.onnx`, otherwise with torch).
    """
    settings = settings or Settings.from_env()
    path = Path(path or settings.model_path)
    if path.is_dir():
        from sentimentkit.serving.transformer import load_transformer_predictor

        return load_transformer_predictor(path, threshold=threshold, settings=settings)
    return Predictor.load(path, threshold=threshold, settings=settings)


def open_backend(settings: Settings | None = None) -> BasePredictor:
    """What the app uses: the REST API when SENTIMENTKIT_API_URL is set, else the local model."""
    settings = settings or Settings.from_env()
    if settings.api_url:
        from sentimentkit.serving.remote import RemotePredictor

        return RemotePredictor(settings.api_url, api_key=settings.api_key, timeout=settings.api_timeout_s)
    return load_predictor(settings=settings)
