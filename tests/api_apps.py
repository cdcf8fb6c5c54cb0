"""API apps for tests that need a real predictor which fails on purpose (no mock: the real tiny
pipeline, with one text that makes it raise)."""

from fastapi import FastAPI

from sentimentkit.api import create_app
from sentimentkit.config import Settings
from sentimentkit.serving.predictor import Predictor

BOOM = "boom"


class ExplodingPredictor(Predictor):
    """A real predictor that fails on one specific text, to prove a bug never leaks a traceback."""

    def predict_proba(self, texts):  # type: ignore[no-untyped-def]
        if not isinstance(texts, str) and BOOM in list(texts):
            raise RuntimeError("internal detail /secret/path.py line 42")
        return super().predict_proba(texts)


def create_exploding_app() -> FastAPI:
    """`uvicorn --factory tests.api_apps:create_exploding_app`: the API over SENTIMENTKIT_MODEL, which
    fails on every batch that holds the text "boom"."""
    settings = Settings.from_env()
    return create_app(settings, predictor=ExplodingPredictor.load(settings=settings))
