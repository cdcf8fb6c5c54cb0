"""Sentiment toward named targets ("@united", "food"), from the parts of the texts that mention them.

A text often praises one thing and blames another ("the food was great but the service was slow"):
its overall label says nothing about either. For each target, `target_sentiment` finds the parts
(`serving.parts`: sentences and contrastive clauses) that mention it (case-insensitive, not inside
a longer word: "food" matches "Food!" but not "seafood") and counts their labels. Net sentiment is
(positive parts - negative parts) / parts mentioning the target, from -1 to 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from sentimentkit.serving.base import BasePredictor
from sentimentkit.serving.parts import score_parts


def parse_targets(raw: str) -> list[str]:
    """The comma-separated targets of `--targets "@united,food"` (blank ones dropped, order kept)."""
    return list(dict.fromkeys(t.strip() for t in raw.split(",") if t.strip()))


def _pattern(target: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(target)}(?!\w)", re.IGNORECASE)


def target_sentiment(
    texts: Sequence[str | None], targets: Sequence[str], predictor: BasePredictor
) -> list[dict[str, Any]]:
    """Per target, in order: texts and parts that mention it, the parts' label counts, net sentiment.

    `texts`: the rows that count (None for a row left out: an error, another language)."""
    patterns = [_pattern(t) for t in targets]
    rows = [i for i, t in enumerate(texts) if t and any(p.search(t) for p in patterns)]
    chosen = [str(texts[i]) for i in rows]
    labels = predictor.labels
    counts = [dict.fromkeys(labels, 0) for _ in targets]
    mentions, documents = [0] * len(targets), [0] * len(targets)
    if chosen:
        parted = score_parts(predictor.predict_proba, chosen, predictor.predict_proba(chosen))
        for text, spans, probas in zip(chosen, parted.spans, parted.probas):
            assert probas is not None
            for k, pattern in enumerate(patterns):
                found = False
                for span, row in zip(spans, probas):
                    if pattern.search(text[span.start : span.end]):
                        counts[k][labels[int(np.argmax(row))]] += 1
                        mentions[k] += 1
                        found = True
                documents[k] += found
    out = []
    for target, count, n, docs in zip(targets, counts, mentions, documents):
        net = (count.get("positive", 0) - count.get("negative", 0)) / n if n else None
        out.append({"target": target, "texts": docs, "mentions": n, "counts": count, "net": net})
    return out
