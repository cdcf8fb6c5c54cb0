"""`Predictor`: the pickled TF-IDF + LogisticRegression pipeline, in-process.

`explain` gives the exact additive contributions of the linear model, per token, that make up the
predicted class's logit. A domain-adapted model (`models.domain`) is the same kind of pipeline; its
explanation also carries `domain`: the base model's contributions and the domain head's adjustment.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from sentimentkit.config import Settings
from sentimentkit.errors import TextError
from sentimentkit.models.card import model_threshold
from sentimentkit.models.domain import DomainAdapted
from sentimentkit.models.pipeline import load_model
from sentimentkit.serving.base import BasePredictor, TokenContribution, text_error
from sentimentkit.serving.contributions import TermContributions, term_contributions
from sentimentkit.text.features import N_LEXICON_FEATURES, TweetVectorizer
from sentimentkit.text.language import Language, VocabularyTest, identify
from sentimentkit.text.preprocess import tokenize_with_spans

_BATCH = 2048  # texts vectorised at once by predict_proba (bounds its temporary memory)


class Predictor(BasePredictor):
    """The TF-IDF + LogisticRegression pipeline, loaded from a verified model.pkl."""

    fork_safe = True  # numpy/scipy/sklearn only; OpenBLAS re-creates its threads after a fork

    def __init__(
        self,
        pipeline: Pipeline,
        card: dict[str, Any],
        threshold: float | None = None,
        max_chars: int = Settings.max_chars,
    ) -> None:
        self.pipeline = pipeline
        self.card = card
        self.labels = tuple(str(c) for c in pipeline.classes_)
        self.threshold = model_threshold(card, threshold)
        self.max_chars = max_chars
        clf = pipeline.named_steps["clf"]
        self._vectorizer = pipeline.named_steps["features"]
        self._coef_t = np.ascontiguousarray(clf.coef_.T, dtype=np.float64)
        self._intercept = clf.intercept_.astype(np.float64)
        self._vocabulary_test: VocabularyTest | None = None

    @classmethod
    def load(
        cls, path: str | Path | None = None, threshold: float | None = None, settings: Settings | None = None
    ) -> Predictor:
        """Load and verify a model (default: settings' model path). Raises ModelError."""
        settings = settings or Settings.from_env()
        pipeline, card = load_model(path or settings.model_path, settings=settings)
        chosen = threshold if threshold is not None else settings.threshold
        return cls(pipeline, card, threshold=chosen, max_chars=settings.max_chars)

    @property
    def can_explain(self) -> bool:
        return True

    def predict_proba(self, texts: str | Sequence[str]) -> np.ndarray:
        """Class probabilities in `self.labels` order: shape (3,) for a string, (n, 3) for a list."""
        if isinstance(texts, str):
            return self._proba_one(texts)
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return self._proba(list(texts))

    def _proba_one(self, text: str) -> np.ndarray:
        logits = self._vectorizer.row_dot(text, self._coef_t) + self._intercept
        logits = np.exp(logits - logits.max())
        return logits / logits.sum()

    def _proba(self, texts: list[str]) -> np.ndarray:
        # Slices of _BATCH texts: feature extraction's temporaries grow with the batch (a 20,000-row
        # chunk peaks ~450 MB above the model), and every row's result is independent of the others.
        if len(texts) > _BATCH:
            return np.concatenate([self._proba(texts[i : i + _BATCH]) for i in range(0, len(texts), _BATCH)])
        # Same maths as pipeline.predict_proba (multinomial softmax), minus sklearn's per-call
        # input validation, which dominates the cost of a single short text.
        logits = self._vectorizer.transform_dot(texts, self._coef_t)
        logits += self._intercept
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=1, keepdims=True)
        return logits

    def proba_language(self, texts: Sequence[str]) -> tuple[np.ndarray, list[Language]]:
        """`predict_proba` of a list, and each text's `Language` (the language guard): the cheap
        vocabulary test reads the token ids the model has just read, and only suspect texts go to
        the detector (`sentimentkit.text.language`)."""
        texts = list(texts)
        if type(self).predict_proba is not Predictor.predict_proba:  # a subclass's own maths: use it
            return super().proba_language(texts)
        if not texts:
            return np.zeros((0, len(self.labels))), []
        if self._vocabulary_test is None:
            self._vocabulary_test = VocabularyTest(self._vectorizer.word_vectorizer_.vocabulary_)
        probas, languages = [], []
        for i in range(0, len(texts), _BATCH):
            chunk = texts[i : i + _BATCH]
            logits, table, tids, lengths = self._vectorizer.transform_dot_ids(chunk, self._coef_t)
            logits += self._intercept
            logits -= logits.max(axis=1, keepdims=True)
            np.exp(logits, out=logits)
            logits /= logits.sum(axis=1, keepdims=True)
            probas.append(logits)
            languages += identify(chunk, self._vocabulary_test.suspect(table, tids, lengths))
        return np.concatenate(probas), languages

    # --- explanation ---------------------------------------------------------------------
    def explain_batch(self, texts: Sequence[str]) -> TermContributions:
        """`explain` for many texts at once, summed per distinct token: every class's exact per-term
        contributions (see `sentimentkit.serving.contributions`). Texts must be scorable."""
        return term_contributions(self.pipeline, list(texts))

    def explain(self, text: str, label: str | None = None) -> dict[str, Any]:
        """Exact per-token contributions to the (centred) logit of `label` (default: predicted).

        The logit of each class minus the mean of the three logits equals `bias` plus the sum of
        the token weights; positive weights push toward `label`, negative ones against it.
        """
        error = text_error(text, self.max_chars)
        if error:
            raise TextError(error)
        spans = tokenize_with_spans(text)
        tokens = [t for t, _, _ in spans]
        vec: TweetVectorizer = self.pipeline.named_steps["features"]
        clf = self.pipeline.named_steps["clf"]
        proba = self.predict_proba(text)
        k = self.labels.index(label) if label else int(np.argmax(proba))
        coef = clf.coef_[k] - clf.coef_.mean(axis=0)
        bias = float(clf.intercept_[k] - clf.intercept_.mean())
        x = vec.transform_tokens([tokens]).toarray()[0]
        weights = _attribute(vec, tokens, x * coef)
        contributions = [
            TokenContribution(tok, s, e, float(w)).__dict__ for (tok, s, e), w in zip(spans, weights)
        ]
        out = {
            "label": self.labels[k],
            "probability": float(proba[k]),
            "bias": bias,
            "logit": bias + float(weights.sum()),
            "tokens": contributions,
        }
        if isinstance(clf, DomainAdapted):
            out["domain"] = _domain_split(vec, clf, tokens, x, k)
        return out


def _domain_split(vec: TweetVectorizer, clf: DomainAdapted, tokens: list[str], x: np.ndarray, k: int
                  ) -> dict[str, dict[str, Any]]:  # fmt: skip
    """A domain-adapted model's explanation split exactly in two: the base model's own contributions
    and the domain head's adjustment (per token, same order as `tokens`; the two add up to the
    explanation's weights, bias and logit)."""
    base_coef = clf.base_coef_ - clf.base_coef_.mean(axis=0)
    base_intercept = clf.base_intercept_ - clf.base_intercept_.mean()
    adj_coef, adj_intercept = clf.adjustment()
    out = {}
    for part, coef, intercept in (
        ("base", base_coef, base_intercept),
        ("adjustment", adj_coef, adj_intercept),
    ):
        weights = _attribute(vec, tokens, x * coef[k])
        out[part] = {
            "bias": float(intercept[k]),
            "logit": float(intercept[k]) + float(weights.sum()),
            "weights": [float(w) for w in weights],
        }
    return out


def _attribute(vec: TweetVectorizer, tokens: list[str], contrib: np.ndarray) -> np.ndarray:
    """Split each feature's contribution among the tokens that produced it (exactly)."""
    n_text = vec.n_word_ + vec.n_char_
    owners: dict[int, list[tuple[int, float]]] = {}
    valences = np.zeros((len(tokens), len(vec.lexicons)))
    for i, tok in enumerate(tokens):
        ids, valences[i] = vec.token_features(tok)
        for j in ids.tolist():
            owners.setdefault(j, []).append((i, 1.0))
    for start, n, j in vec.ngram_positions(tokens):
        owners.setdefault(j, []).extend((start + m, 1.0 / n) for m in range(n))
    weights = np.zeros(len(tokens))
    for j, shares in owners.items():
        total = sum(s for _, s in shares)
        for i, s in shares:
            weights[i] += contrib[j] * s / total
    for k in range(len(vec.lexicons) if len(tokens) else 0):
        start = n_text + k * N_LEXICON_FEATURES
        weights += _attribute_lexicon(valences[:, k], contrib[start : start + N_LEXICON_FEATURES])
    return weights


def _attribute_lexicon(valences: np.ndarray, lex: np.ndarray) -> np.ndarray:
    """Attribute the 7 lexicon-feature contributions to the tokens whose valence made them."""
    out = np.zeros(len(valences))
    pos, neg = np.clip(valences, 0, None), np.clip(-valences, 0, None)
    for share, value in ((pos, lex[0]), (neg, lex[1]), (valences > 0, lex[2]), (valences < 0, lex[3])):
        share = np.asarray(share, dtype=float)
        if share.sum() > 0:
            out += value * share / share.sum()
    if valences.max() > 0:
        out[int(np.argmax(valences))] += lex[4]
    if valences.min() < 0:
        out[int(np.argmin(valences))] += lex[5]
    nonzero = np.flatnonzero(valences)
    if len(nonzero):
        out[nonzero[-1]] += lex[6]
    return out
