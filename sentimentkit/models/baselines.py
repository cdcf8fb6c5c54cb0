"""Reference models every result is compared with: majority class, VADER, unigram prototype."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from sentimentkit.config import SEED


class MajorityBaseline:
    """Always predicts the most frequent training label."""

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> MajorityBaseline:
        values, counts = np.unique(np.asarray(labels), return_counts=True)
        self.label_ = str(values[np.argmax(counts)])
        return self

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.label_] * len(texts)


class VaderBaseline:
    """VADER (vaderSentiment) compound score with the usual +-0.05 thresholds. Nothing is learned."""

    def __init__(self, threshold: float = 0.05) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.threshold = threshold
        self.analyzer = SentimentIntensityAnalyzer()

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> VaderBaseline:
        return self

    def compound(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self.analyzer.polarity_scores(t)["compound"] for t in texts])

    def predict(self, texts: Sequence[str]) -> list[str]:
        c = self.compound(texts)
        return np.where(
            c >= self.threshold, "positive", np.where(c <= -self.threshold, "negative", "neutral")
        ).tolist()


def unigram_prototype() -> Pipeline:
    """The original prototype: lower-cased unigram TF-IDF + LogisticRegression, default settings."""
    return Pipeline([
        ("tfidf", TfidfVectorizer(lowercase=True)),
        ("clf", LogisticRegression(max_iter=1000, random_state=SEED)),
    ])  # fmt: skip
