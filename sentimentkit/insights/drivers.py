"""The words behind the sentiment.

- `driver_terms`: per label, the terms whose exact contributions (from the fast model, see
  `sentimentkit.serving.contributions`) pushed that label's texts toward it, summed over the texts.
- `distinctive_terms`: the terms most distinctive of negative versus positive texts, by the
  log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi & Quinn 2008, "Fightin'
  Words", section 3.5), ranked by its z-score so that rare words do not win by chance.
- `representative_examples`: per label, the most confident and the most uncertain texts.

Terms are the model's tokens: lower-cased words, hashtags, emoji and emoticons; a word inside a
negation ("not good") is its own term for the drivers, shown as "good (negated)", and folded into
"good" for the distinctive terms. Counts are texts, not tokens: a word repeated in one tweet
counts once. Stop words (`STOPWORDS`) and punctuation are never shown as terms.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from sentimentkit import LABELS
from sentimentkit.serving.contributions import TermContributions
from sentimentkit.text.preprocess import MARKERS, NEG_SUFFIX, base_token, tokenize

PRIOR_STRENGTH = 1000.0  # alpha_0: the prior weighs as much as 1,000 term occurrences of the file
MARKER_NAMES = {"<url>": "[link]", "@user": "[mention]", "<num>": "[number]", "<elong>": "[elongated word]",
                "<allcaps>": "[SHOUTING]"}  # fmt: skip


@dataclass
class TermMatrix:
    """Which terms occur in which text, and (with the fast model) their exact contributions."""

    terms: np.ndarray
    presence: sp.csr_matrix  # (texts, terms), 1 where the term occurs
    contributions: TermContributions | None = None

    def rows_with(self, term: str) -> np.ndarray:
        """Positions of the texts that contain `term`: a token, its display name, or its base word
        ("good" also finds "not good", as in the distinctive terms)."""
        names = [(display_name(str(t)), base_token(str(t))) for t in self.terms]
        matches = np.flatnonzero([term in (str(raw), *pair) for raw, pair in zip(self.terms, names)])
        if len(matches) == 0:
            return np.zeros(0, dtype=int)
        return np.flatnonzero(np.asarray(self.presence[:, matches].sum(axis=1)).ravel() > 0)


def display_name(token: str) -> str:
    """How a term is shown to people: markers in words, negated words marked."""
    if token in MARKER_NAMES:
        return MARKER_NAMES[token]
    if token.endswith(NEG_SUFFIX):
        return f"{token[: -len(NEG_SUFFIX)]} (negated)"
    return token


def display_names(terms: np.ndarray) -> np.ndarray:
    return np.asarray([display_name(str(t)) for t in terms], dtype=object)


# Function words ("to", "at", "do", "from") carry no sentiment of their own: scikit-learn's English stop
# words (the package has no list of its own), less the negations, which do carry it.
NEGATIONS = frozenset({"no", "not", "nor", "never", "nothing", "nobody", "none", "cannot", "neither"})
STOPWORDS = frozenset(ENGLISH_STOP_WORDS) - NEGATIONS


def _is_symbol(ch: str) -> bool:
    """A letter, digit, emoji or other symbol; not punctuation (curly quotes and dashes included)."""
    return ch.isalnum() or (ord(ch) > 0x2000 and not unicodedata.category(ch).startswith(("P", "Z", "C")))


def is_word(token: str) -> bool:
    """A term worth showing: not a marker, not punctuation (ASCII or Unicode), not a stop word."""
    if token in MARKERS or not any(_is_symbol(ch) for ch in token):
        return False
    return base_token(token).lower() not in STOPWORDS


def term_matrix(texts: Sequence[str], contributions: TermContributions | None = None) -> TermMatrix:
    """The presence matrix from the contributions when given, else from the model's tokenizer."""
    if contributions is not None:
        return TermMatrix(contributions.terms, contributions.presence().astype(np.int8), contributions)
    vocabulary: dict[str, int] = {}
    rows, cols = [], []
    for i, text in enumerate(texts):
        for token in set(tokenize(text)):
            cols.append(vocabulary.setdefault(token, len(vocabulary)))
            rows.append(i)
    presence = sp.csr_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)),
                             shape=(len(texts), len(vocabulary)))  # fmt: skip
    terms = np.empty(len(vocabulary), dtype=object)
    for token, j in vocabulary.items():
        terms[j] = token
    return TermMatrix(terms, presence)


def _word_mask(terms: np.ndarray) -> np.ndarray:
    return np.fromiter((is_word(str(t)) for t in terms), dtype=bool, count=len(terms))


def top_terms(weights: np.ndarray, counts: np.ndarray, terms: np.ndarray, top: int) -> list[dict]:
    """The `top` words (see `is_word`) with the largest positive weight, as [{term, weight, n_texts}]."""
    positive = np.flatnonzero(weights > 0)
    best = []
    # Checking words only down the sorted list: far cheaper than testing every term of a big file.
    for j in positive[np.argsort(-weights[positive], kind="stable")]:
        if is_word(str(terms[j])):
            best.append(j)
            if len(best) == top:
                break
    return [{"term": display_name(str(terms[j])), "weight": round(float(weights[j]), 4),
             "n_texts": int(counts[j])} for j in best]  # fmt: skip


def driver_terms(matrix: TermMatrix, labels: pd.Series, top: int = 15,
                 label_order: Sequence[str] = LABELS) -> dict[str, list[dict]]:  # fmt: skip
    """Per label: the terms that pushed its texts toward it the most (exact contributions to the
    label's centred logit, summed over the texts with that label)."""
    everything = np.zeros(len(labels), dtype=np.int64)
    return driver_terms_by(matrix, labels, everything, 1, top, label_order).get(0, {})


def driver_terms_by(matrix: TermMatrix, labels: pd.Series, group: np.ndarray, n_groups: int, top: int = 15,
                    label_order: Sequence[str] = LABELS) -> dict[int, dict[str, list[dict]]]:  # fmt: skip
    """`driver_terms` for every group at once: `group[i]` is row i's group number (-1: none).

    One sparse product per label (group indicator x contributions) instead of a slice per group.
    """
    contributions = matrix.contributions
    if contributions is None:
        return {}
    values = labels.to_numpy()
    out: dict[int, dict[str, list[dict]]] = {g: {} for g in range(n_groups)}
    for label in label_order:
        rows = np.flatnonzero((values == label) & (group >= 0))
        indicator = sp.csr_matrix((np.ones(len(rows)), (group[rows], rows)), shape=(n_groups, len(values)))
        weights = (indicator @ contributions.weights[contributions.labels.index(label)]).toarray()
        counts = (indicator @ matrix.presence).toarray()
        for g in range(n_groups):
            out[g][label] = top_terms(weights[g], counts[g], matrix.terms, top)
    return out


def log_odds_dirichlet(y_a: np.ndarray, y_b: np.ndarray, background: np.ndarray,
                       prior_strength: float = PRIOR_STRENGTH) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(delta, z) of each term, corpus a against corpus b (Monroe et al. 2008, eq. 16, 18-19).

    alpha_w = prior_strength * background_w / sum(background);
    delta_w = log((y_a + alpha_w) / (n_a + alpha_0 - y_a - alpha_w))
            - log((y_b + alpha_w) / (n_b + alpha_0 - y_b - alpha_w));
    var(delta_w) ~ 1 / (y_a + alpha_w) + 1 / (y_b + alpha_w); z = delta / sqrt(var).
    """
    y_a, y_b, background = (np.asarray(v, dtype=float) for v in (y_a, y_b, background))
    alpha = prior_strength * background / background.sum()
    alpha0 = alpha.sum()
    n_a, n_b = y_a.sum(), y_b.sum()
    delta = np.log((y_a + alpha) / (n_a + alpha0 - y_a - alpha)) - np.log(
        (y_b + alpha) / (n_b + alpha0 - y_b - alpha)
    )
    z = delta / np.sqrt(1.0 / (y_a + alpha) + 1.0 / (y_b + alpha))
    return delta, z


def distinctive_terms(matrix: TermMatrix, labels: pd.Series, top: int = 15, a: str = "negative",
                      b: str = "positive") -> dict[str, list[dict]]:  # fmt: skip
    """The terms most distinctive of label `a` texts and of label `b` texts (by log-odds z-score).

    The prior is the whole file's term distribution (all labelled texts, neutral included).
    """
    values = labels.to_numpy()
    terms, presence = _merge_negated(matrix)
    words = np.flatnonzero(_word_mask(terms))
    presence = presence[:, words]
    y_a = np.asarray(presence[values == a].sum(axis=0)).ravel()
    y_b = np.asarray(presence[values == b].sum(axis=0)).ravel()
    background = np.asarray(presence[pd.notna(values)].sum(axis=0)).ravel()
    if y_a.sum() == 0 or y_b.sum() == 0:
        return {a: [], b: []}
    delta, z = log_odds_dirichlet(y_a, y_b, background)
    out = {}
    for label, sign, counts in ((a, 1.0, y_a), (b, -1.0, y_b)):
        best = np.argsort(-sign * z, kind="stable")[:top]
        out[label] = [{"term": display_name(str(terms[words[j]])), "z": round(float(sign * z[j]), 3),
                       "log_odds": round(float(sign * delta[j]), 4), "n_texts": int(counts[j])}
                      for j in best if sign * z[j] > 0]  # fmt: skip
    return out


def _merge_negated(matrix: TermMatrix) -> tuple[np.ndarray, sp.csr_matrix]:
    """Terms with "good (negated)" folded into "good": for word counts the negation scope only
    splits a word's texts in two (and makes "the (negated)" look distinctive of negative texts)."""
    base, column = np.unique([base_token(str(t)) for t in matrix.terms], return_inverse=True)
    merge = sp.csr_matrix((np.ones(len(column), dtype=np.int32), (np.arange(len(column)), column)),
                          shape=(len(column), len(base)))  # fmt: skip
    merged = (matrix.presence.astype(np.int32) @ merge) > 0  # a text counts once per word
    return base.astype(object), merged.astype(np.int32).tocsr()


def representative_examples(scored: pd.DataFrame, text_column: str, n: int = 3,
                            label_order: Sequence[str] = LABELS) -> dict[str, dict[str, list[dict]]]:  # fmt: skip
    """Per label: the `n` most confident and `n` most uncertain texts (distinct texts, with row numbers)."""
    out: dict[str, dict[str, list[dict]]] = {}
    scored = scored.assign(_row=np.arange(len(scored)))
    for label in label_order:
        column = f"p_{label}"
        if column not in scored.columns:
            return {}
        rows = scored[scored["sentiment"] == label]
        probability = pd.to_numeric(rows[column], errors="coerce")
        rows = rows.assign(_p=probability).dropna(subset=["_p"]).drop_duplicates(subset=[text_column])
        out[label] = {
            "most_confident": _examples(rows.nlargest(n, "_p"), text_column),
            "most_uncertain": _examples(rows.nsmallest(n, "_p"), text_column),
        }
    return out


def _examples(rows: pd.DataFrame, text_column: str) -> list[dict]:
    return [{"row": int(pos) + 1, "text": str(text), "probability": round(float(p), 4)}
            for pos, text, p in zip(rows["_row"], rows[text_column], rows["_p"])]  # fmt: skip


def excess_terms(matrix: TermMatrix, period: np.ndarray, baseline: np.ndarray, label: str = "negative",
                 top: int = 5) -> list[dict]:  # fmt: skip
    """Terms that pushed the texts of `period` (a mask) toward `label` more than the `baseline`
    texts did, per text: sum over the period minus the baseline's sum scaled to the period's size.

    Without the fast model's contributions, the count of `label` texts containing the term is used.
    """
    if matrix.contributions is not None:
        k = matrix.contributions.labels.index(label)
        values = matrix.contributions.weights[k]
    else:
        values = matrix.presence
    in_period = np.asarray(values[period].sum(axis=0)).ravel()
    in_baseline = np.asarray(values[baseline].sum(axis=0)).ravel()
    scale = period.sum() / max(int(baseline.sum()), 1)
    counts = np.asarray(matrix.presence[period].sum(axis=0)).ravel()
    return top_terms(in_period - scale * in_baseline, counts, matrix.terms, top)
