"""Request and response models: they document the API in its OpenAPI schema.

The request models are built per app (`predict_request_model`, `batch_request_model`) because their
limits come from the settings.
"""

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from sentimentkit.config import Settings


class Scores(BaseModel):
    """Probability of each class; the three sum to 1."""

    negative: float
    neutral: float
    positive: float


class TokenWeight(BaseModel):
    token: str
    start: int = Field(description="character offset of the token in the text")
    end: int
    weight: float = Field(description="additive contribution to the explained label's centred logit")


class Explanation(BaseModel):
    label: str
    probability: float
    bias: float
    logit: float = Field(description="bias + sum of token weights")
    tokens: list[TokenWeight]


class Part(BaseModel):
    text: str = Field(description="the part, exactly text[start:end]")
    start: int = Field(description="offset of the part in the text, in Unicode code points")
    end: int
    sentiment: str
    scores: Scores


_LANGUAGE = "ISO 639-1 code of the text's language; the model reads English (en): other languages are scored but flagged"
_LANGUAGE_CONFIDENCE = (
    "the language detector's probability; null when a cheap test found the text plainly English"
)
_MIXED = "one part of the text is confidently positive and another confidently negative"
_PARTS = "present with ?parts=true: the text's sentences and contrastive clauses, each scored"


class Prediction(BaseModel):
    sentiment: str = Field(description="negative, neutral or positive")
    confidence: float = Field(description="probability of the predicted class")
    scores: Scores
    uncertain: bool = Field(description="confidence below the configured threshold")
    language: str | None = Field(None, description=_LANGUAGE)
    language_confidence: float | None = Field(None, description=_LANGUAGE_CONFIDENCE)
    mixed: bool | None = Field(None, description=_MIXED)
    model_version: str
    explanation: Explanation | None = Field(None, description="present with ?explain=true")
    parts: list[Part] | None = Field(None, description=_PARTS)


class BatchItem(BaseModel):
    sentiment: str | None
    confidence: float | None
    scores: Scores | None
    uncertain: bool | None
    error: str | None = Field(
        description="why this item was not scored (not a string, empty, too long); else null"
    )
    language: str | None = Field(None, description=_LANGUAGE)
    language_confidence: float | None = Field(None, description=_LANGUAGE_CONFIDENCE)
    mixed: bool | None = Field(None, description=_MIXED)
    parts: list[Part] | None = Field(None, description=_PARTS)


class BatchPrediction(BaseModel):
    model_version: str
    results: list[BatchItem] = Field(description="one per input text, in input order")


class ErrorBody(BaseModel):
    error: str = Field(description="machine-readable code, e.g. text_too_long, body_too_large")
    message: str = Field(description="what was wrong and how to fix it")
    limit: int | None = Field(None, description="the limit that was exceeded, when one was")
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready or unavailable")
    model_version: str | None = None
    reason: str | None = Field(None, description="why the model is not available")


class Limits(BaseModel):
    max_chars: int
    max_batch: int
    max_body_bytes: int
    max_upload_bytes: int


class ModelInfo(BaseModel):
    model_version: str
    labels: list[str]
    threshold: float
    can_explain: bool
    limits: Limits
    card: dict[str, Any]
    registry: dict[str, str | None] | None = None  # {name, version, alias} when served from the registry


def predict_request_model(settings: Settings) -> type[BaseModel]:
    """The body of POST /v1/predict, with this server's character limit."""
    return create_model(
        "PredictRequest",
        text=(
            str,
            Field(
                description=f"the text to score, 1 to {settings.max_chars} characters, not all blank or invisible",
                # Documented here, enforced by `text_error` in the route (one rule for every front end).
                json_schema_extra={"minLength": 1, "maxLength": settings.max_chars},
            ),
        ),
    )


def batch_request_model(settings: Settings) -> type[BaseModel]:
    """The body of POST /v1/predict/batch, with this server's batch limit.

    The items are any JSON values, as the server accepts them: one that is not a string gets its own
    error in its position (like an empty or too long text), so one bad item never fails the others.
    Only the body's shape (texts not a list, too many items) is a request-level 422.
    """
    return create_model(
        "BatchRequest",
        texts=(
            list[Any],
            Field(
                max_length=settings.max_batch,
                description=f"up to {settings.max_batch} texts (strings); an item that is not a string, "
                "is empty or is too long gets its own error without failing the others",
                json_schema_extra={"items": {"description": "a text to score (a string)"}},
            ),
        ),
    )


class FeedbackItem(BaseModel):
    """One correction: the text (or the request id of a logged prediction) and the right label."""

    model_config = {"extra": "forbid"}

    text: str | None = Field(None, description="the text that was scored (or give request_id)")
    request_id: str | None = Field(
        None, max_length=200, description="X-Request-ID of a /v1/predict answer, resolved through the "
        "prediction log (needs SENTIMENTKIT_PREDICTION_LOG_TEXT=true); the request must have scored one text",
    )  # fmt: skip
    label: Literal["negative", "neutral", "positive"] = Field(description="the right label")
    note: str | None = Field(None, max_length=2000, description="why, or anything worth keeping")
    user: str | None = Field(None, max_length=200, description="who labelled it")


class FeedbackResult(BaseModel):
    stored: bool
    error: str | None = Field(description="why this item was not stored; else null")
    text_source: str | None = Field(None, description="text or request_id: where the text came from")


class FeedbackResponse(BaseModel):
    stored: int = Field(description="items stored (the same text twice in one request counts once)")
    file: str | None = Field(description="the new file in the feedback store (null when nothing was stored)")
    results: list[FeedbackResult] = Field(description="one per item, in input order")


def feedback_request_model(settings: Settings) -> type[BaseModel]:
    """The body of POST /v1/feedback: up to `max_batch` items, each checked on its own (a bad item gets
    its own error in its position and does not fail the others)."""
    return create_model(
        "FeedbackRequest",
        items=(
            list[Any],
            Field(
                min_length=1,
                max_length=settings.max_batch,
                description=f"1 to {settings.max_batch} corrections: objects with text or request_id, "
                "label (negative/neutral/positive), optional note and user",
                json_schema_extra={"items": FeedbackItem.model_json_schema()},
            ),
        ),
    )
