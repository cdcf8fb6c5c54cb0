"""Which texts a person should label first: review-queue strategies as pure functions.

Every strategy takes the texts and the model's class probabilities for them (rows in `LABELS` order,
as any predictor's `predict_proba` gives) and returns the positions of the `k` texts to review, most
useful first. Nothing is read or written and no model is called.

- `balanced` (the default, `feedback.DEFAULT_STRATEGY`): `representative`, with each near-duplicate
  group weighing its size times how unsure the model is of it (1 - margin): the clusters, and so the
  labels, lean towards what the domain talks about *and* the model gets wrong (the weighted clustering
  of Zhdanov 2019, "Diverse mini-batch active learning"). Chosen on development splits of the Apple
  tweets over `representative` and random, through the whole retrain gate, by rules stated before
  each run; the gate itself changed between them (benchmarks/gate_bias_dev.md, sections 5-7).
- `representative` (the default before): texts that stand for the pool. One text
  per near-duplicate group (re-posts and retweets share `data.near_duplicate_key`), embedded as TF-IDF
  of its words reduced to `EMBED_DIMS` dimensions (truncated SVD); k-means with k clusters, each group
  weighing as many texts as it holds; from each cluster the text nearest its centre, biggest clusters
  first. The labels then cover what the domain talks about, in proportion, without re-posts. A pool
  of more than `MAX_CLUSTERED` groups is clustered on a seeded sample of them (a few seconds per
  20,000). Chosen on development splits of the Apple tweets over `diverse`, `uncertain`, `random` and
  variants (benchmarks/domain_learning.md, "How the choices were made").
- `uncertain`: lowest margin first (top probability minus the runner-up): the texts the model is least
  sure about.
- `diverse`: uncertain, but one text per near-duplicate group (re-posts and retweets of
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

__all__ = [
    "CANDIDATE_FACTOR",
    "DEFAULT_STRATEGY",
    "DIVERSITY",
    "EMBED_DIMS",
    "MAX_CLUSTERED",
    "STRATEGIES",
    "margins",
    "select_for_review",
]

STRATEGIES = ("balanced", "representative", "diverse", "uncertain", "random")
EMBED_DIMS = 100  # balanced, representative: dimensions of the reduced TF-IDF the clusters are found in
MAX_CLUSTERED = 20_000  # balanced, representative: a bigger pool is clustered on a sample of its groups
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


def _group_representatives(texts: Sequence[str], margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the least certain text of each near-duplicate group, the group's size), groups in the order of
    their least certain text."""
    order = np.argsort(margin, kind="stable")
    reps: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for i in order.tolist():
        key = near_duplicate_key(texts[i]) or f"\x00{i}"  # a text with no words is its own group
        reps.setdefault(key, i)
        sizes[key] = sizes.get(key, 0) + 1
    return np.asarray(list(reps.values()), dtype=np.int64), np.asarray(list(sizes.values()), dtype=np.float64)


def _embed(texts: Sequence[str], seed: int) -> np.ndarray:
    """Rows of unit length: sublinear TF-IDF of the texts' words (markers dropped), reduced to
    EMBED_DIMS dimensions by truncated SVD when there are more."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    docs = [" ".join(base_token(t) for t in tokenize(x) if t not in MARKERS) for x in texts]
    try:
        tfidf = TfidfVectorizer(token_pattern=r"\S+", sublinear_tf=True).fit_transform(docs)
    except ValueError:  # not one word in any text: nothing to tell them apart by
        return np.zeros((len(docs), 1))
    dims = min(EMBED_DIMS, tfidf.shape[0] - 1, tfidf.shape[1] - 1)
    if dims < 2:
        return normalize(tfidf.toarray())
    return normalize(TruncatedSVD(dims, random_state=seed).fit_transform(tfidf))


def select_representative(texts: Sequence[str], proba: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """One text per near-duplicate group, the one nearest each of k k-means centres (module doc)."""
    return representative_picks(texts, proba, k, seed)[0]


def representative_picks(
    texts: Sequence[str], proba: np.ndarray, k: int, seed: int = 0, uncertainty: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """`select_representative`'s picks and, for each, how many texts of the pool it stands for (its
    cluster's size, each near-duplicate group counted by the texts it holds). With `uncertainty`
    (`balanced`), each group weighs its size times (1 - margin), and the weights are those masses."""
    from sklearn.cluster import KMeans

    margin = margins(proba)
    reps, sizes = _group_representatives(texts, margin)
    unsure = 1.0 - margin[reps]
    if uncertainty and unsure.any():  # (a model sure of every text: representative's weights)
        sizes = sizes * unsure + 1e-9  # the floor keeps a group the model is sure of in its cluster
    k = min(max(k, 0), len(reps))
    if k == 0:
        return reps[:0], sizes[:0]
    if k == len(reps):
        order = np.argsort(-sizes, kind="stable")
        return reps[order], sizes[order]
    if len(reps) > MAX_CLUSTERED:  # a few seconds per 20,000 groups; a sample stands for a big log
        keep = np.sort(np.random.default_rng(seed).choice(len(reps), MAX_CLUSTERED, replace=False))
        reps, sizes = reps[keep], sizes[keep]
        k = min(k, len(reps))
    emb = _embed([texts[i] for i in reps.tolist()], seed)
    km = KMeans(k, n_init=1, random_state=seed).fit(emb, sample_weight=sizes)
    picks, weights = [], []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            picks.append(reps[members[np.argmax(emb[members] @ km.cluster_centers_[c])]])
            weights.append(sizes[members].sum())
    order = np.argsort(-np.asarray(weights), kind="stable")
    return np.asarray(picks, dtype=np.int64)[order], np.asarray(weights, dtype=np.float64)[order]


def select_for_review(
    texts: Sequence[str], proba: np.ndarray, k: int, strategy: str = DEFAULT_STRATEGY, seed: int = 0
) -> np.ndarray:
    """Positions (into `texts`) of the `k` texts to label first under `strategy` (see the module doc).

    Fewer than `k` come back only when there are fewer texts (or, for `balanced`, `representative` and `diverse`,
    fewer distinct near-duplicate groups). Raises ValueError for an unknown strategy or mismatched inputs.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if len(texts) != len(proba):
        raise ValueError(f"{len(texts)} texts but {len(proba)} rows of probabilities")
    if proba.size and not (np.isfinite(proba).all() and (proba >= 0).all()):
        raise ValueError("the probabilities must be finite and not negative (a model's predict_proba)")
    if strategy == "balanced":
        return representative_picks(list(texts), proba, k, seed, uncertainty=True)[0]
    if strategy == "representative":
        return select_representative(list(texts), proba, k, seed)
    if strategy == "uncertain":
        return select_uncertain(proba, k)
    if strategy == "diverse":
        return select_diverse(list(texts), proba, k)
    if strategy == "random":
        return select_random(len(texts), k, seed)
    raise OptionError(f"unknown review strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
