"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis, in-process ASGI).

Every operation gets valid and invalid inputs; the checks are: no 5xx ever, the status code and
content type are documented, and the body matches the documented schema. Examples are bounded so
the whole module runs in well under a minute.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sentimentkit.api import create_app
from sentimentkit.config import Settings
from sentimentkit.models.pipeline import build_pipeline
from sentimentkit.serving.predictor import Predictor
from tests.conftest import TINY_LABELS, TINY_TEXTS

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz_app() -> FastAPI:
    """The app on a tiny real pipeline (trained in a second on conftest's inline texts).

    Small limits so the fuzzer reaches them: long texts, big batches and bodies. Built when the module
    is collected because schemathesis needs the schema to generate the test cases.
    """
    pipeline = build_pipeline({"C": 10.0, "word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)
    predictor = Predictor(pipeline, {"version": "fuzz", "default_threshold": 0.5}, max_chars=300)
    store = tempfile.mkdtemp(prefix="sentimentkit-fuzz-feedback-")  # POST /v1/feedback writes real files
    atexit.register(shutil.rmtree, store, ignore_errors=True)
    settings = Settings(max_chars=300, max_batch=20, max_body_bytes=20_000, feedback=store)
    return create_app(settings, predictor=predictor)


schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_schema_conformant_answers(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(checks=CHECKS)
