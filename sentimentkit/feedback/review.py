"""Which texts a person should label first: review-queue strategies as pure functions.

Every strategy takes the texts and the model's class probabilities for them (rows in `LABELS` order,
as any predictor's `predict_proba` gives) and returns the positions of the `k` texts to review, most
useful first. Nothing is read or written and no model is called.

- `uncertain`: lowest margin first (top probability minus the runner-up): the texts the model is least
  sure about.
- `diverse` (the default): uncertain, but one text per near-duplicate group (re-posts and retweets of
  one tweet share `data.near_duplicate_key`; the least certain one represents the group) and spread
  over vocabulary: among the `CANDIDATE_FACTOR * k` least certain representatives, each next pick
  maximises (1 - margin) - `DIVERSITY` * (highest cosine similarity of its words to those already
  picked), so the queue does not spend its labels on many texts saying the same thing.
- `random`: a uniform sample without replacement (seeded): the baseline a strategy must beat.

Ties are broken by position, so every strategy is deterministic for a given input (and seed).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from sentimentkit.data import near_duplicate_key
from sentimentkit.errors import OptionError
from sentimentkit.feedback import DEFAULT_STRATEGY
from sentimentkit.text.preprocess import MARKERS, base_token, tokenize

__all__ = ["CANDIDATE_FACTOR", "DEFAULT_STRATEGY", "DIVERSITY", "STRATEGIES", "margins", "select_for_review"]

STRATEGIES = ("diverse", "uncertain", "random")
CANDIDATE_FACTOR = 3  # diverse: picks come from the CANDIDATE_FACTOR * k least certain groups
DIVERSITY = 1.0  # diverse: weight of the similarity to texts already picked against uncertainty


def margins(proba: np.ndarray) -> np.ndarray:
    """Top probability minus the second one, per row (0: a tie, 1: certain)."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] < 2:
        raise ValueError(f"probabilities must be an (n, classes) array with 2+ classes, got {proba.shape}")
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def select_uncertain(proba: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` rows with the lowest margin, lowest first."""
    return np.argsort(margins(proba), kind="stable")[: max(k, 0)]


def select_random(n: int, k: int, seed: int = 0) -> np.ndarray:
    """`k` positions out of `n`, uniformly without replacement."""
    return np.random.default_rng(seed).choice(n, size=min(max(k, 0), n), replace=False)


def _word_vectors(texts: Sequence[str]) -> sp.csr_matrix:
    """Rows of L2-normalised binary bags of words (negation marks and markers such as <url> dropped)."""
    vocab: dict[str, int] = {}
    indptr, indices = [0], []
    for text in texts:
        words = {base_token(t) for t in tokenize(text) if t not in MARKERS}
        indices.extend(vocab.setdefault(w, len(vocab)) for w in sorted(words))
        indptr.append(len(indices))
    data = np.ones(len(indices))
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(texts), max(len(vocab), 1)))
    norms = np.sqrt(np.asarray(matrix.sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ matrix)


def select_diverse(texts: Sequence[str], proba: np.ndarray, k: int) -> np.ndarray:
    """Uncertain, one per near-duplicate group, spread over vocabulary (see the module doc)."""
    margin = margins(proba)
    order = np.argsort(margin, kind="stable")
    seen: set[str] = set()
    reps = []
    for i in order.tolist():  # the least certain text of each near-duplicate group
        key = near_duplicate_key(texts[i]) or f"\x00{i}"  # a text with no words is its own group
        if key not in seen:
            seen.add(key)
            reps.append(i)
    k = min(max(k, 0), len(reps))
    candidates = np.asarray(reps[: max(CANDIDATE_FACTOR * k, k)], dtype=np.int64)
    if k == 0:
        return candidates[:0]
    vectors = _word_vectors([texts[i] for i in candidates.tolist()])
    gain = 1.0 - margin[candidates]
    closest = np.zeros(len(candidates))  # each candidate's highest similarity to the picks so far
    taken = np.zeros(len(candidates), dtype=bool)
    picks = []
    for _ in range(k):
        score = np.where(taken, -np.inf, gain - DIVERSITY * closest)
        best = int(np.argmax(score))
        picks.append(best)
        taken[best] = True
        closest = np.maximum(closest, np.asarray((vectors @ vectors[best].T).todense()).ravel())
    return candidates[picks]


def select_for_review(
    texts: Sequence[str], proba: np.ndarray, k: int, strategy: str = DEFAULT_STRATEGY, seed: int = 0
) -> np.ndarray:
    """Positions (into `texts`) of the `k` texts to label first under `strategy` (see the module doc).

    Fewer than `k` come back only when there are fewer texts (or, for `diverse`, fewer distinct
    near-duplicate groups). Raises ValueError for an unknown strategy or mismatched inputs.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if len(texts) != len(proba):
        raise ValueError(f"{len(texts)} texts but {len(proba)} rows of probabilities")
    if strategy == "uncertain":
        return select_uncertain(proba, k)
    if strategy == "diverse":
        return select_diverse(list(texts), proba, k)
    if strategy == "random":
        return select_random(len(texts), k, seed)
    raise OptionError(f"unknown review strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
