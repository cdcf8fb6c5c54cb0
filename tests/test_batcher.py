"""`api.batcher.score_texts`: the API's batch scoring is `BasePredictor.score` in slices, with the
server's character limit checked before the predictor's own; which texts reach each model call is
what it was before score_texts reused `score` (base commit a441a18 gives the same results here)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np

from sentimentkit.api.batcher import MODEL_SLICE, score_texts
from sentimentkit.serving.base import BasePredictor, error_record, text_error

SERVER_LIMIT, OWN_LIMIT = 30, 40


class Recording(BasePredictor):
    """Probabilities from the text's length; remembers the texts of every model call."""

    def __init__(self) -> None:
        self.card = {"version": "test"}
        self.max_chars = OWN_LIMIT
        self.calls: list[list[str]] = []

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        assert not isinstance(texts, str)
        self.calls.append(list(texts))
        n = np.array([len(t) for t in texts], dtype=float)
        return np.stack([1 / (n + 3), 1 / (n + 3), (n + 1) / (n + 3)], axis=1)


def _texts() -> list[object]:
    """300 items: texts within both limits, between the server's and the predictor's, over both,
    empty ones and non-strings, interleaved irregularly."""
    kinds = [
        lambda i: f"text {i}",
        lambda i: "",
        lambda i: "b" * 35 + str(i % 10),  # over the server's limit only
        lambda i: f"good {i} " * 2,
        lambda i: "c" * 50,  # over both
        lambda i: None,
        lambda i: 7,
    ]
    return [kinds[(i * i + i // 3) % len(kinds)](i) for i in range(300)]


def test_batch_records_and_model_calls_are_as_before() -> None:
    texts = _texts()
    p = Recording()
    records = asyncio.run(score_texts(p, texts, SERVER_LIMIT))  # type: ignore[arg-type]

    server_ok = [t for t in texts if text_error(t, SERVER_LIMIT) is None]
    assert len(server_ok) > 2 * MODEL_SLICE  # several slices
    # Before: the server's valid texts in slices of MODEL_SLICE, each through p.score (own limit too).
    expected_calls = [
        [t for t in server_ok[i : i + MODEL_SLICE] if text_error(t, OWN_LIMIT) is None]
        for i in range(0, len(server_ok), MODEL_SLICE)
    ]
    assert p.calls == expected_calls
    expected = []
    for t in texts:
        error = text_error(t, SERVER_LIMIT)
        if error is None:
            expected.append(p.score([t])[0])
        else:
            expected.append(error_record(error))
    assert records == expected
    assert any("the limit is 30" in (r["error"] or "") for r in records)


def test_small_batches_and_batches_without_valid_texts() -> None:
    p = Recording()
    assert asyncio.run(score_texts(p, [], SERVER_LIMIT)) == []
    bad = ["", "x" * 31] * 100
    records = asyncio.run(score_texts(p, bad, SERVER_LIMIT))  # type: ignore[arg-type]
    assert [r["error"] for r in records] == [text_error(t, SERVER_LIMIT) for t in bad]
    assert p.calls == []  # no model call for nothing to score
    assert [r["sentiment"] for r in asyncio.run(score_texts(p, ["hi", ""], SERVER_LIMIT))] == [
        "positive",
        None,
    ]
