"""Exact per-term contributions of the TF-IDF + LogisticRegression model for many texts at once.

`Predictor.explain` splits each feature's contribution among the tokens that produced it, for one
text. `term_contributions` does the same arithmetic for a whole batch with array operations, and
sums each text's token weights per distinct token (a "term"). For every text and class the term
weights plus the class bias add up to the class's centred logit (its logit minus the mean of the
three), exactly as in `explain`: a unigram or character n-gram feature goes to the tokens that
contain it (split by occurrence), a word bigram half to each of its words, and the lexicon cues to
the tokens whose valence made them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline

from sentimentkit.text.features import N_LEXICON_FEATURES, TweetVectorizer, _lexicon_features
from sentimentkit.text.preprocess import tokenize

CHUNK_DOCS = 4096  # bounds the per-occurrence arrays (about 260 feature occurrences per tweet)
SCRATCH_ROWS = 16  # documents per dense scratch block (16 x 200k features x 4 bytes = 13 MB)


@dataclass
class TermContributions:
    """Per-text, per-term exact contributions to each class's centred logit.

    `weights[k]` is an (n_texts, n_terms) CSR matrix for class `labels[k]`; all three share one
    sparsity pattern: entry (i, t) is stored when term `terms[t]` occurs in text i.
    """

    labels: tuple[str, ...]
    terms: np.ndarray
    weights: list[sp.csr_matrix]
    bias: np.ndarray

    def presence(self) -> sp.csr_matrix:
        """Boolean (n_texts, n_terms) matrix: which terms occur in which text."""
        pattern = self.weights[0].copy()
        pattern.data = np.ones_like(pattern.data, dtype=bool)
        return pattern


def term_contributions(pipeline: Pipeline, texts: list[str]) -> TermContributions:
    """Exact per-term contributions for `texts` (strings that can be scored) under `pipeline`."""
    vec: TweetVectorizer = pipeline.named_steps["features"]
    clf = pipeline.named_steps["clf"]
    coef = clf.coef_.T.astype(np.float64)
    coef -= coef.mean(axis=1, keepdims=True)  # centred: each class against the mean of the three
    bias = clf.intercept_.astype(np.float64) - clf.intercept_.mean()
    docs = [tokenize(t) for t in texts]
    table = vec._table()
    tids = table.ids([t for doc in docs for t in doc])  # one look-up pass; ids stay valid below
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    occ_weights = np.zeros((len(tids), coef.shape[1]))
    for lo in range(0, len(docs), CHUNK_DOCS):
        hi = min(lo + CHUNK_DOCS, len(docs))
        a, b = starts[lo], starts[hi]
        occ_weights[a:b] = _chunk_weights(vec, table, coef, docs[lo:hi], tids[a:b], lengths[lo:hi])
    return _to_terms(table, pipeline.classes_, tids, lengths, occ_weights, bias)


def _chunk_weights(vec: TweetVectorizer, table, coef: np.ndarray, docs: list[list[str]],
                   tids: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # fmt: skip
    """(occurrences, classes) weights of every token occurrence in one chunk of documents."""
    n_docs, n_occ = len(docs), len(tids)
    token_doc = np.repeat(np.arange(n_docs), lengths)
    # Every feature occurrence: (owning token occurrence, feature id, share of it).
    owner = [np.repeat(np.arange(n_occ), table.n_feats[tids])]
    cols = [table.gather(tids) if n_occ else np.zeros(0, np.int32)]
    share = [np.ones(len(owner[0]))]
    for o, c, s in _ngram_owners(vec, table, docs, tids, token_doc, lengths):
        owner.append(o)
        cols.append(c)
        share.append(s)
    owner_a, cols_a, share_a = np.concatenate(owner), np.concatenate(cols), np.concatenate(share)
    rows = token_doc[owner_a]
    value = _tfidf_per_share(vec, rows, cols_a, share_a, n_docs)
    by_class = np.ascontiguousarray(coef.T)  # one contiguous row per class: a cheaper gather
    weights = np.stack(
        [np.bincount(owner_a, weights=value * c[cols_a], minlength=n_occ) for c in by_class], axis=1
    )
    if vec.lexicons:
        n_text = vec.n_word_ + vec.n_char_
        weights += _lexicon_weights(vec, table.valences[tids], lengths, token_doc, coef[n_text:])
    return weights


def _tfidf_per_share(vec: TweetVectorizer, rows: np.ndarray, cols: np.ndarray, share: np.ndarray,
                     n_docs: int) -> np.ndarray:  # fmt: skip
    """Each feature occurrence's part of its TF-IDF value: X[row, col] * share / count[row, col].

    The same weighting as `TweetVectorizer._tfidf` (sublinear TF, IDF, each block L2-normalised
    and scaled), computed per occurrence so that no (row, col) join is needed afterwards.
    """
    count = _occurrence_counts(rows, cols, share, n_docs, vec.n_word_ + vec.n_char_)
    tf = 1.0 + np.log(count) if vec.sublinear_tf else count
    value = tf * vec._idf()[cols]
    is_char = cols >= vec.n_word_
    block = rows * 2 + is_char
    # Each distinct (row, col) appears `count` times in shares summing to `count`: weight share/count.
    squares = np.bincount(block, weights=share / count * value**2, minlength=2 * n_docs)
    norm = np.sqrt(squares)
    norm[norm == 0] = 1.0
    scale = np.where(is_char, vec.char_weight, 1.0) / norm[block]
    return value * scale * share / count


def _occurrence_counts(rows: np.ndarray, cols: np.ndarray, share: np.ndarray, n_docs: int, width: int
                       ) -> np.ndarray:  # fmt: skip
    """count[rows[i], cols[i]] for every occurrence i (the shares summed per (row, col)).

    A dense scratch row block instead of a sparse matrix: building and sorting a CSR matrix and
    then finding each occurrence in it cost three times as much.
    """
    order = np.argsort(rows, kind="stable")  # a few sorted runs: timsort merges them in linear time
    rows_s, cols_s, share_s = rows[order], cols[order].astype(np.int64), share[order].astype(np.float32)
    bounds = np.searchsorted(rows_s, np.arange(0, n_docs + SCRATCH_ROWS, SCRATCH_ROWS))
    scratch = np.zeros(SCRATCH_ROWS * width, dtype=np.float32)  # counts are multiples of 1/2: exact
    counts = np.empty(len(rows))
    for block, r0 in enumerate(range(0, n_docs, SCRATCH_ROWS)):
        lo, hi = bounds[block], bounds[block + 1]
        keys = (rows_s[lo:hi] - r0) * width + cols_s[lo:hi]
        np.add.at(scratch, keys, share_s[lo:hi])
        counts[lo:hi] = scratch[keys]
        scratch[keys] = 0.0
    out = np.empty(len(rows))
    out[order] = counts
    return out


def _ngram_owners(vec: TweetVectorizer, table, docs: list[list[str]], tids: np.ndarray,
                  token_doc: np.ndarray, lengths: np.ndarray):  # fmt: skip
    """Yield (owner occurrences, feature ids, shares) of the word n-grams with n >= 2."""
    if vec.word_max_n < 2:
        return
    first, ids = table.bigram_hits(tids, token_doc)
    for m in range(2):  # each word of a bigram owns half of it
        yield first + m, ids, np.full(len(first), 0.5)
    if vec.word_max_n >= 3:
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        found = [
            (offsets[i] + s, n, j) for i, doc in enumerate(docs) for s, n, j in vec.ngram_positions(doc, 3)
        ]
        for start, n, j in found:
            yield start + np.arange(n), np.full(n, j, dtype=np.int32), np.full(n, 1.0 / n)


def _lexicon_weights(vec: TweetVectorizer, valences: np.ndarray, lengths: np.ndarray,
                     token_doc: np.ndarray, lex_coef: np.ndarray) -> np.ndarray:  # fmt: skip
    """Token weights from the lexicon cues, split as `predictor._attribute_lexicon` does."""
    n_docs, n_occ = len(lengths), len(token_doc)
    features = _lexicon_features(valences, lengths).astype(np.float64) * vec.lexicon_weight
    out = np.zeros((n_occ, lex_coef.shape[1]))
    for k in range(valences.shape[1]):
        v = valences[:, k].astype(np.float64)
        block = slice(k * N_LEXICON_FEATURES, (k + 1) * N_LEXICON_FEATURES)
        per_cue = features[:, block][:, :, None] * lex_coef[block][None, :, :]  # (docs, 7 cues, classes)
        for cue, part in enumerate((np.clip(v, 0, None), np.clip(-v, 0, None), v > 0, v < 0)):
            out += _share(part.astype(np.float64), token_doc, n_docs)[:, None] * per_cue[token_doc, cue]
        for cue, pick in ((4, _first_extreme(v, token_doc, n_docs, np.max, v > 0)),
                          (5, _first_extreme(v, token_doc, n_docs, np.min, v < 0)),
                          (6, _last_nonzero(v, token_doc))):  # fmt: skip
            out[pick] += per_cue[token_doc[pick], cue]
    return out


def _share(part: np.ndarray, token_doc: np.ndarray, n_docs: int) -> np.ndarray:
    """Each token's part of its document's total (0 where the document's total is 0)."""
    total = np.bincount(token_doc, weights=part, minlength=n_docs)[token_doc]
    return np.divide(part, total, out=np.zeros_like(part), where=total > 0)


def _first_extreme(v: np.ndarray, token_doc: np.ndarray, n_docs: int, reduce, eligible: np.ndarray
                   ) -> np.ndarray:  # fmt: skip
    """Occurrence index of each document's first max (or min) valence, where it is non-zero."""
    extreme = np.full(n_docs, np.nan)
    candidates = np.flatnonzero(eligible)
    if len(candidates) == 0:
        return candidates
    ufunc = np.fmax if reduce is np.max else np.fmin
    ufunc.at(extreme, token_doc[candidates], v[candidates])
    hits = candidates[v[candidates] == extreme[token_doc[candidates]]]
    _, first = np.unique(token_doc[hits], return_index=True)
    return hits[first]


def _last_nonzero(v: np.ndarray, token_doc: np.ndarray) -> np.ndarray:
    """Occurrence index of each document's last token with a non-zero valence."""
    nonzero = np.flatnonzero(v)[::-1]
    _, first = np.unique(token_doc[nonzero], return_index=True)
    return nonzero[first]


def _to_terms(table, classes: np.ndarray, tids: np.ndarray, lengths: np.ndarray,
              occ_weights: np.ndarray, bias: np.ndarray) -> TermContributions:  # fmt: skip
    """Sum occurrence weights per (text, distinct token) into one CSR matrix per class."""
    used, column = np.unique(tids, return_inverse=True)
    names = np.empty(len(table.index), dtype=object)
    for token, tid in table.index.items():
        if tid < len(names):
            names[tid] = token
    rows = np.repeat(np.arange(len(lengths)), lengths)
    shape = (len(lengths), len(used))
    weights = []
    for k in range(occ_weights.shape[1]):
        matrix = sp.csr_matrix((occ_weights[:, k], (rows, column)), shape=shape)
        matrix.sum_duplicates()
        weights.append(matrix)
    return TermContributions(tuple(str(c) for c in classes), names[used], weights, bias)
