"""Fast TF-IDF features for tweets: word n-grams, character n-grams and lexicon cues.

`TweetVectorizer` is a scikit-learn transformer. It is fitted with scikit-learn's own
`TfidfVectorizer` (word 1..n-grams over `preprocess.tokenize` tokens, `char_wb` n-grams over the
same tokens) so its vocabulary and IDF are exactly scikit-learn's. Transforming is the hot path
at serving time, so it avoids sklearn's per-n-gram Python loop: every distinct token's feature
ids are computed once and cached as a NumPy array, and a batch becomes one concatenation plus
vectorised TF-IDF weighting. A batch of raw strings never builds token strings for text it has
seen: each whitespace-free chunk of raw text maps to its cached token ids (`_TokenTable.text_ids`),
and the negation state carried between chunks is computed for the whole batch at once. New tokens
(unseen text) are entered together: their char n-grams are matched as integer keys in one
vectorised hash-table pass. `tests/test_features.py` checks the result
equals sklearn's.

Compiled inner loops: `_speedups.c` (built by `pip install -e .`; optional) does the batch path's
per-element work in C: splitting texts into chunks and looking them up, the new tokens' char
n-gram ids, and the TF-IDF + lexicon rows, which it can multiply straight into the linear model's
weights (`transform_dot`, `row_dot`) without building the matrix. Without it (no C compiler, or
SENTIMENTKIT_PURE_PYTHON=1) the NumPy code below does the same; the two agree to float rounding
(`tests/test_speedups.py`; every test in `tests/test_features.py` runs on both).

Threading: a fitted `TweetVectorizer` (and so one `Predictor`) may be shared by any number of
threads. Its only mutable state is caches: the per-token (and per-chunk) table grows under a lock and publishes a
token in the index only after its entry is complete, in arrays that are replaced (never shrunk or
rewritten) when they grow, so lock-free readers see complete entries; the lazily built pieces
(token table, char n-gram index, IDF vector) may be built twice by racing threads, each copy
complete and equal; preprocess's chunk cache is a dict used with single atomic operations. The
compiled loops hold the GIL for each call, read the tables only, and bounds-check every index they
follow, so a reader that meets an entry it cannot verify (arrays of different versions) treats the
chunk as missing and asks again under the lock. Each call's matrices are its own. This relies on
CPython's GIL making those dict and attribute operations atomic. `tests/test_features.py` checks
that 8 threads sharing one model on unseen texts give exactly the single-threaded probabilities.
Threads do not make scoring faster (the GIL); they make it safe to share one model between a
server's threads.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from itertools import chain, repeat

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from sentimentkit.text.lexicon import NEGATION_SCALAR, load_lexicons
from sentimentkit.text.preprocess import (
    NEG_SUFFIX,
    base_token,
    chunk_plain_tokens,
    chunk_tokens,
    clean_text,
    set_chunk_cache_limit,
    tokenize,
    tokenize_many,
)

try:  # the compiled inner loops (setup.py builds them; optional: the NumPy code below does the same)
    from sentimentkit.text import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None
if os.environ.get("SENTIMENTKIT_PURE_PYTHON"):  # force the NumPy code (tests compare the two)
    _speedups = None

N_LEXICON_FEATURES = 7  # per lexicon
LEXICON_FEATURE_NAMES = ("pos_sum", "neg_sum", "n_pos", "n_neg", "max", "min", "last")
_TOKEN_CACHE_MAX = 500_000
_CHUNK_IDS_MAX = 400_000
_FEW_WORDS = 8
_EMPTY = np.zeros(0, dtype=np.int32)
_WHITESPACE = re.compile(r"\s")  # the characters str.split() splits on (both use Py_UNICODE_ISSPACE)
_PASS, _CLEARS, _OPENS = 0, 1, 2  # how a chunk moves the negation scope state (see _ChunkIds)


def set_cache_limits(tokens: int | None = None, chunks: int | None = None) -> None:
    """Bound this process's memoisation caches: `tokens` new distinct tokens in a vectorizer's
    token table, `chunks` entries in the preprocessing chunk cache (None: leave as is). A full
    cache is dropped and refills, so a limit trades speed for memory and never changes a result
    (both caches are pure memoisation). For processes scoring millions of distinct texts."""
    global _TOKEN_CACHE_MAX
    if tokens is not None:
        if tokens < 1:
            raise ValueError("tokens must be at least 1")
        _TOKEN_CACHE_MAX = tokens
    if chunks is not None:
        set_chunk_cache_limit(chunks)
        global _CHUNK_IDS_MAX
        _CHUNK_IDS_MAX = chunks


def word_ngrams(tokens: Sequence[str], max_n: int) -> list[str]:
    """Word 1..max_n-grams of a token list, space-joined (the word-block analyzer)."""
    grams = list(tokens)
    for n in range(2, max_n + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


class _WordAnalyzer:
    """Picklable analyzer: token list -> word n-grams."""

    def __init__(self, max_n: int) -> None:
        self.max_n = max_n

    def __call__(self, tokens: Sequence[str]) -> list[str]:
        return word_ngrams(tokens, self.max_n)


def char_document(tokens: Sequence[str]) -> str:
    """The text the char block sees: base tokens (negation suffix removed), space-joined."""
    return " ".join(base_token(t) for t in tokens)


class TweetVectorizer(TransformerMixin, BaseEstimator):
    """TF-IDF word + char_wb n-grams (+ VADER lexicon cues) over `preprocess.tokenize` tokens.

    Each block is L2-normalised on its own, then scaled by its weight; lexicon features are
    appended as dense columns. Accepts raw strings (or pre-tokenised lists).
    """

    def __init__(
        self,
        word_max_n: int = 2,
        char_ngram_range: tuple[int, int] = (2, 5),
        word_min_df: int = 2,
        char_min_df: int = 3,
        sublinear_tf: bool = True,
        char_weight: float = 1.0,
        lexicons: tuple[str, ...] = ("vader",),
        lexicon_weight: float = 1.0,
    ) -> None:
        self.word_max_n = word_max_n
        self.char_ngram_range = char_ngram_range
        self.word_min_df = word_min_df
        self.char_min_df = char_min_df
        self.sublinear_tf = sublinear_tf
        self.char_weight = char_weight
        self.lexicons = lexicons
        self.lexicon_weight = lexicon_weight

    # --- fitting -------------------------------------------------------------------------
    def fit(self, texts: Iterable[str | Sequence[str]], y: object = None) -> TweetVectorizer:
        """Learn vocabularies and IDF weights (on training texts only)."""
        docs = self._tokenize_all(texts)
        self.word_vectorizer_ = TfidfVectorizer(
            analyzer=_WordAnalyzer(self.word_max_n),
            min_df=self.word_min_df,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float32,
        ).fit(docs)
        self.char_vectorizer_ = TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=self.char_ngram_range,
            min_df=self.char_min_df,
            lowercase=False,
            sublinear_tf=self.sublinear_tf,
            dtype=np.float32,
        ).fit([char_document(d) for d in docs])
        for vec in (self.word_vectorizer_, self.char_vectorizer_):
            vec.stop_words_ = None  # the pruned terms: large, and not needed to transform
        self.n_word_ = len(self.word_vectorizer_.vocabulary_)
        self.n_char_ = len(self.char_vectorizer_.vocabulary_)
        self._token_table = None
        self._idf_all = None
        return self

    @property
    def n_features_(self) -> int:
        return self.n_word_ + self.n_char_ + N_LEXICON_FEATURES * len(self.lexicons)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Feature names: word n-grams, then `char:` n-grams, then `lex:` cues."""
        names = list(self.word_vectorizer_.get_feature_names_out())
        names += ["char:" + g for g in self.char_vectorizer_.get_feature_names_out()]
        names += [f"lex:{lex}:{n}" for lex in self.lexicons for n in LEXICON_FEATURE_NAMES]
        return np.asarray(names, dtype=object)

    # --- transforming --------------------------------------------------------------------
    def transform(self, texts: Iterable[str | Sequence[str]]) -> sp.csr_matrix:
        """TF-IDF matrix for `texts`, identical to sklearn's TfidfVectorizer blocks."""
        texts = texts if isinstance(texts, list) else list(texts)
        if all(isinstance(t, str) for t in texts):
            if self.word_max_n <= 2:  # token ids straight from the chunk table: no token strings
                table = self._table()
                return self._transform_ids(table, *table.text_ids(texts))
            tokens, counts = tokenize_many(texts)  # one flat list: see tokenize_many
            return self._transform_flat(tokens, np.array(counts, dtype=np.int64))
        return self.transform_tokens(self._tokenize_all(texts))

    def transform_tokens(self, docs: list[list[str]]) -> sp.csr_matrix:
        """Same as `transform`, for already tokenised documents."""
        lengths = np.fromiter(map(len, docs), dtype=np.int64, count=len(docs))
        return self._transform_flat([t for doc in docs for t in doc], lengths)

    def _transform_flat(self, tokens: list[str], lengths: np.ndarray) -> sp.csr_matrix:
        """`transform` of documents given as all their tokens in one list and each one's count."""
        table = self._table()
        return self._transform_ids(table, table.ids(tokens), lengths, tokens)

    def _transform_ids(
        self, table: _TokenTable, tids: np.ndarray, lengths: np.ndarray, tokens: list[str] | None = None
    ) -> sp.csr_matrix:
        """`transform` of documents given as all their ids in `table` and each one's number of
        tokens (`tokens`, the same as strings, are needed only for word n-grams beyond bigrams)."""
        if _speedups is not None and self.word_max_n <= 2:
            return self._featurize(table, tids, lengths)
        counts, valences = self._count_features(table, tids, lengths, tokens)
        X = self._tfidf(counts)
        if self.lexicons:
            lex = _lexicon_features(valences, lengths)
            X = sp.hstack([X, sp.csr_matrix(lex * self.lexicon_weight)], format="csr")
        return X

    def transform_dot(self, texts: list[str], weights: np.ndarray) -> np.ndarray:
        """`transform(texts) @ weights` (float64, shape (texts, weights' columns)).

        With the compiled loops, computed row by row without building the matrix; the same
        numbers up to float rounding (summation order).
        """
        if _speedups is not None and self.word_max_n <= 2 and all(isinstance(t, str) for t in texts):
            table = self._table()
            return self._featurize(table, *table.text_ids(texts), weights=weights)
        return np.asarray(self.transform(texts) @ weights)

    def row_dot(self, text: str, weights: np.ndarray) -> np.ndarray:
        """`transform([text])[0] @ weights` for one text (the single-text serving path): with the
        compiled loops exactly the batch path's row, else from `sparse_row`."""
        if _speedups is not None and self.word_max_n <= 2:
            table = self._table()
            tids = table.ids(tokenize(text))
            return self._featurize(table, tids, np.array([len(tids)]), weights=weights)[0]
        cols, vals = self.sparse_row(text)
        return vals @ np.asarray(weights)[cols]

    def _featurize(
        self, table: _TokenTable, tids: np.ndarray, lengths: np.ndarray, weights: np.ndarray | None = None
    ) -> sp.csr_matrix | np.ndarray:
        """The compiled `_transform_ids` (a CSR matrix, columns in order of first occurrence within
        a row), or with `weights` the compiled `transform_dot`."""
        width = self.n_word_ + self.n_char_
        n_lex = len(self.lexicons)
        # the table's arrays as they are now: every id in `tids` is complete in any of their versions
        starts, n_feats, flat, valences = table._starts, table._n_feats, table._flat, table._vals
        bigrams = table.bigram_index
        args = (
            np.ascontiguousarray(tids, dtype=np.int64),
            np.ascontiguousarray(lengths, dtype=np.int64),
            starts,
            n_feats,
            flat,
            bigrams.keys if bigrams is not None else _EMPTY,
            bigrams.values if bigrams is not None else _EMPTY,
            bigrams.bits if bigrams is not None else 0,
            self._idf(),
            self.n_word_,
            float(self.char_weight),
            int(bool(self.sublinear_tf)),
            valences,
            n_lex,
            float(self.lexicon_weight),
            table.scratch(width),
        )
        n_docs = len(lengths)
        if weights is not None:
            weights = np.ascontiguousarray(weights, dtype=np.float64)
            if weights.ndim != 2 or weights.shape[0] != self.n_features_:
                raise ValueError(f"weights must have shape ({self.n_features_}, k); got {weights.shape}")
            out = np.empty((n_docs, weights.shape[1]), dtype=np.float64)
            _speedups.featurize(*args, weights, weights.shape[1], out, None, None, None)
            return out
        capacity = int(n_feats[tids].sum()) + len(tids) + N_LEXICON_FEATURES * n_lex * n_docs
        data = np.empty(capacity, dtype=np.float32)
        indices = np.empty(capacity, dtype=np.int32)
        indptr = np.empty(n_docs + 1, dtype=np.int64)
        nnz = _speedups.featurize(*args, None, 0, None, data, indices, indptr)
        X = sp.csr_matrix((data[:nnz], indices[:nnz], indptr), shape=(n_docs, self.n_features_))
        X.has_sorted_indices = False
        return X

    def sparse_row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, values) of one text's row: the numbers of `transform([text])`.

        The single-text serving path: small NumPy operations only, no scipy matrix to build,
        which costs more than the arithmetic for one short text.
        """
        tokens = tokenize(text)
        table = self._table()
        tids = table.ids(tokens)
        parts = [table.gather(tids)]
        if self.word_max_n >= 2 and len(tids) > 1:
            parts.append(table.bigrams(tids, np.zeros(len(tids), dtype=np.int64))[1])
            if self.word_max_n >= 3:
                parts.append(self._ngram_ids([tokens], min_n=3)[1])
        cols, counts = np.unique(np.concatenate(parts) if parts else _EMPTY, return_counts=True)
        vals = counts.astype(np.float64)
        if self.sublinear_tf:
            vals = 1.0 + np.log(vals)
        vals *= self._idf()[cols]
        is_char = cols >= self.n_word_
        word_norm = np.sqrt(np.dot(vals[~is_char], vals[~is_char])) or 1.0
        char_norm = np.sqrt(np.dot(vals[is_char], vals[is_char])) or 1.0
        vals = np.where(is_char, vals * (self.char_weight / char_norm), vals / word_norm)
        if self.lexicons:
            lex = _lexicon_row(table.valences[tids]) * self.lexicon_weight
            cols = np.concatenate([cols, self.n_word_ + self.n_char_ + np.arange(len(lex))])
            vals = np.concatenate([vals, lex])
        return cols, vals

    def _idf(self) -> np.ndarray:
        idf = getattr(self, "_idf_all", None)
        if idf is None:
            idf = np.concatenate([self.word_vectorizer_.idf_, self.char_vectorizer_.idf_]).astype(np.float32)
            self._idf_all = idf
        return idf

    def _count_features(
        self, table: _TokenTable, tids: np.ndarray, lengths: np.ndarray, tokens: list[str] | None = None
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """Term counts (word + char blocks) and per-token lexicon valences of documents given as
        all their token ids in one array and each one's number of tokens.

        Vectorised across the batch: one gather of the tokens' cached feature ids, bigrams matched
        by token-id pairs in a hash table (`_KeyIndex`) instead of string joins, and duplicates
        counted by sorting (document, feature) keys.
        """
        n_docs = len(lengths)
        token_doc = np.repeat(np.arange(n_docs), lengths)
        rows, cols = [np.repeat(token_doc, table.n_feats[tids])], [table.gather(tids)]
        if self.word_max_n >= 2:
            rows_2, cols_2 = table.bigrams(tids, token_doc)
            rows.append(rows_2)
            cols.append(cols_2)
        if self.word_max_n >= 3:
            if tokens is None:
                raise ValueError("word n-grams beyond bigrams need the token strings")
            ends = np.cumsum(lengths).tolist()
            docs = [tokens[end - n : end] for end, n in zip(ends, lengths.tolist())]
            rows_3, cols_3 = self._ngram_ids(docs, min_n=3)
            rows.append(rows_3)
            cols.append(cols_3)
        counts = _count_matrix(
            np.concatenate(rows), np.concatenate(cols), n_docs, self.n_word_ + self.n_char_
        )
        return counts, table.valences[tids]

    def _ngram_ids(self, docs: list[list[str]], min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """(document index, feature id) of every in-vocabulary word n-gram with n >= min_n."""
        found = [(i, j) for i, doc in enumerate(docs) for _, _, j in self.ngram_positions(doc, min_n)]
        pairs = np.asarray(found, dtype=np.int64).reshape(len(found), 2)
        return pairs[:, 0], pairs[:, 1].astype(np.int32)

    def ngram_positions(self, doc: Sequence[str], min_n: int = 2) -> list[tuple[int, int, int]]:
        """(start, n, feature id) of every in-vocabulary word n-gram with n >= min_n in `doc`."""
        vget = self.word_vectorizer_.vocabulary_.get
        found: list[tuple[int, int, int]] = []
        for n in range(min_n, self.word_max_n + 1):
            for i in range(len(doc) - n + 1):
                j = vget(" ".join(doc[i : i + n]))
                if j is not None:
                    found.append((i, n, j))
        return found

    def _tfidf(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        X = counts
        if self.sublinear_tf:
            # 1 + log(1) is 1; most counts are 1, so only the others go through log
            several = np.flatnonzero(X.data != 1.0)
            X.data[several] = np.log(X.data[several]) + np.float32(1.0)
        X.data *= self._idf()[X.indices]
        n_rows = X.shape[0]
        rows = np.repeat(np.arange(n_rows), np.diff(X.indptr))
        # One bincount over (row, block) pairs: bin 2r is row r's word block, 2r + 1 its char block.
        bins = 2 * rows
        bins += X.indices >= self.n_word_
        sq = X.data.astype(np.float64)
        sq *= sq
        norms = np.sqrt(np.bincount(bins, weights=sq, minlength=2 * n_rows))
        norms[norms == 0] = 1.0
        inverse = 1.0 / norms  # word blocks
        inverse[1::2] = self.char_weight / norms[1::2]
        X.data *= inverse.astype(np.float32)[bins]
        return X

    # --- per-token work, done once per distinct token -----------------------------------
    def token_features(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids (unigram and char n-grams, repeated per occurrence) and lexicon valences."""
        table = self._table()
        tid = int(table.ids([token])[0])
        return table.feats(tid), table.valences[tid]

    def _table(self) -> _TokenTable:
        table = getattr(self, "_token_table", None)
        # Bounded memory under adversarial input: count only the tokens added since the table was
        # built (it starts with the bigram vocabulary's tokens), so a small limit cannot rebuild it
        # on every call.
        if table is None or len(table.index) - table.base > _TOKEN_CACHE_MAX:
            table = self._token_table = _TokenTable(self)
        return table

    def token_entry(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Compute (not cached) a token's feature ids and its valence in each lexicon."""
        ids, _, valences = self._token_entries([token])
        return ids, valences[0]

    def _token_entries(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature ids of `tokens` (concatenated), how many each, valences (tokens, lexicons).

        All new tokens of a call together: char n-grams are looked up as integer keys in one
        vectorised pass (`_CharGrams`), the rest are a few dict look-ups per token.
        """
        word_get = self.word_vectorizer_.vocabulary_.get
        lexicons = load_lexicons(tuple(self.lexicons))
        bases = list(map(base_token, tokens))
        owner, char_ids = self._char_grams().ids(bases)
        word_ids = np.fromiter(map(word_get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
        in_vocab = np.flatnonzero(word_ids >= 0)
        owner = np.concatenate([in_vocab, owner])
        order = np.argsort(owner, kind="stable")  # per token: its word id, then its char n-grams
        ids = np.concatenate([word_ids[in_vocab], char_ids + self.n_word_])[order].astype(np.int32)
        lengths = np.bincount(owner, minlength=len(tokens))
        vals = np.zeros((len(tokens), len(lexicons)), dtype=np.float32)
        for k, lex in enumerate(lexicons):
            vals[:, k] = np.fromiter(map(lex.get, bases, repeat(0.0)), dtype=np.float64, count=len(bases))
        vals[[i for i, t in enumerate(tokens) if t.endswith(NEG_SUFFIX)]] *= NEGATION_SCALAR
        return ids, lengths, vals

    def _char_grams(self) -> _CharGrams:
        grams = getattr(self, "_char_grams_index", None)
        if grams is None:
            grams = self._char_grams_index = _CharGrams(self.char_vectorizer_, self._char_analyzer())
        return grams

    def _char_analyzer(self) -> Callable[[str], list[str]]:
        analyzer = getattr(self, "_char_analyzer_fn", None)
        if analyzer is None:
            analyzer = self._char_analyzer_fn = self.char_vectorizer_.build_analyzer()
        return analyzer

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_token_table", "_char_analyzer_fn", "_idf_all", "_char_grams_index"):
            state.pop(key, None)  # rebuilt lazily; keeps the pickle small
        return state

    @staticmethod
    def _tokenize_all(texts: Iterable[str | Sequence[str]]) -> list[list[str]]:
        return [tokenize(t) if isinstance(t, str) else list(t) for t in texts]


def _lookup(keys: list[str], index: dict[str, int]) -> np.ndarray:
    """`index[key]` of each key as an int64 array, -1 where a key is missing."""
    if _speedups is not None:
        return np.frombuffer(_speedups.lookup(keys, index), dtype=np.int64)
    get = index.get
    return np.fromiter([get(k, -1) for k in keys], dtype=np.int64, count=len(keys))


def _count_matrix(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """CSR matrix of how often each (row, col) pair occurs, columns sorted within each row.

    What `csr_matrix((ones, (rows, cols)))` computes, without its per-row sort and duplicate pass:
    one sort of integer keys (rows arrive in order), then run lengths.
    """
    # 32-bit keys where they fit (batches up to ~10k texts): half the memory to sort, twice as fast
    key_type = np.int32 if n_rows * n_cols < 2**31 else np.int64
    keys = rows.astype(key_type) * key_type(n_cols) + cols.astype(key_type, copy=False)
    keys.sort()
    first = np.ones(len(keys), dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    counts = np.diff(starts, append=len(keys)).astype(np.float32)
    unique = keys[starts]
    row_of = unique // n_cols
    indptr = np.zeros(n_rows + 1, dtype=np.int32 if len(unique) < 2**31 else np.int64)
    np.cumsum(np.bincount(row_of, minlength=n_rows), out=indptr[1:])
    indices = (unique - row_of * n_cols).astype(indptr.dtype, copy=False)
    return sp.csr_matrix((counts, indices, indptr), shape=(n_rows, n_cols))


def _lexicon_features(valences: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-document lexicon cues from per-token valences (tokens, lexicons), grouped by `lengths`.

    Columns, for each lexicon in turn: positive sum, negative sum, log(1+#positive),
    log(1+#negative), max (>= 0), min (<= 0), last non-zero valence; valences scaled by 1/4.
    """
    n_docs, n_lex = len(lengths), valences.shape[1]
    out = np.zeros((n_docs, n_lex, N_LEXICON_FEATURES), dtype=np.float32)
    has = lengths > 0
    if not has.any():
        return out.reshape(n_docs, -1)
    starts = (np.cumsum(lengths) - lengths)[has]  # reduceat needs non-empty groups
    v = valences.astype(np.float64)
    out[has, :, 0] = np.add.reduceat(np.clip(v, 0, None), starts) / 4
    out[has, :, 1] = -np.add.reduceat(np.clip(v, None, 0), starts) / 4
    out[has, :, 2] = np.log1p(np.add.reduceat((v > 0).astype(np.float64), starts))
    out[has, :, 3] = np.log1p(np.add.reduceat((v < 0).astype(np.float64), starts))
    out[has, :, 4] = np.maximum(np.maximum.reduceat(v, starts), 0) / 4
    out[has, :, 5] = np.minimum(np.minimum.reduceat(v, starts), 0) / 4
    doc = np.repeat(np.arange(n_docs), lengths)
    for k in range(n_lex):
        nz = np.flatnonzero(v[:, k])
        out[doc[nz], k, 6] = v[nz, k] / 4  # later tokens overwrite earlier: the last cue wins
    return out.reshape(n_docs, -1)


def _gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`flat[starts[i] : starts[i] + lengths[i]]` for every i, concatenated (one vectorised gather)."""
    total = int(lengths.sum())
    if total == 0:
        return flat[:0]
    ends = np.cumsum(lengths)
    # Position k of the output reads flat[starts[i] + (k - first output position of piece i)].
    shift = np.repeat(starts - (ends - lengths), lengths)
    shift += np.arange(total)
    return flat[shift]


class _KeyIndex:
    """Non-negative int64 keys -> int32 values, looked up many at a time: an open-addressing hash
    table (multiplicative hashing, linear probing, at most a quarter full) probed with whole-array
    NumPy operations, one round per probe step (after the first, only over the queries still
    probing). About 2.5 times as fast as sorting the queries and binary searching a sorted key
    array, its predecessor here (15k queries, 80k keys); costs 12 bytes per slot."""

    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd
    _EMPTY = -1

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.bits = max(4, int(len(keys) * 4 - 1).bit_length())  # 2^bits >= 4 * len(keys)
        self.mask = (1 << self.bits) - 1
        self.keys = np.full(1 << self.bits, self._EMPTY, dtype=np.int64)
        self.values = np.zeros(1 << self.bits, dtype=np.int32)
        slot = self._slots(keys)
        pending = np.arange(len(keys))
        while len(pending):  # each round, every free slot asked for takes one of its askers
            wanted = slot[pending]
            free = self.keys[wanted] == self._EMPTY
            taken, first = np.unique(wanted[free], return_index=True)
            winners = pending[free][first]
            self.keys[taken], self.values[taken] = keys[winners], values[winners]
            pending = np.setdiff1d(pending, winners, assume_unique=True)
            slot[pending] = (slot[pending] + 1) & self.mask

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MULTIPLIER) >> np.uint64(64 - self.bits)).astype(np.int64)

    def get(self, queries: np.ndarray) -> np.ndarray:
        """The value of each query key, -1 where it is not a key."""
        slot = self._slots(queries)
        found = self.keys[slot]
        hit = found == queries
        out = np.where(hit, self.values[slot], -1).astype(np.int64)
        active = np.flatnonzero(~hit & (found != self._EMPTY))  # collided: probe the next slots
        while len(active):
            slot_a = (slot[active] + 1) & self.mask
            slot[active] = slot_a
            found = self.keys[slot_a]
            hit = found == queries[active]
            out[active[hit]] = self.values[slot_a[hit]]
            active = active[~hit & (found != self._EMPTY)]
        return out


def _grown(array: np.ndarray, needed: int) -> np.ndarray:
    """A copy of `array` at least twice as long (and longer than `needed`), zero-filled at the end."""
    out = np.zeros((max(2 * len(array), needed + 1), *array.shape[1:]), dtype=array.dtype)
    out[: len(array)] = array
    return out


class _CharGrams:
    """scikit-learn's `char_wb` n-gram ids of many words at once, without a Python loop per n-gram.

    Every vocabulary n-gram becomes an integer key (its length, then each character's index in the
    vocabulary's alphabet in a few bits), indexed once. A batch of words is encoded the same way,
    window by window, and matched in a hash table (`_KeyIndex`). For a word without whitespace the char_wb
    n-grams are the windows of " word " of every size in the range up to its padded length (sklearn
    stops at the padded word itself); words with whitespace, and vocabularies whose alphabet is too
    large for the keys, or (without the compiled loops) batches of only a few words, go through
    sklearn's own analyzer. With the compiled loops, `_speedups.char_gram_ids` does the windows and
    the hash-table probes word by word. `tests/test_features.py` checks the ids against sklearn's
    analyzer.
    """

    def __init__(self, char_vectorizer: TfidfVectorizer, analyzer: Callable[[str], list[str]]) -> None:
        self.vocabulary = char_vectorizer.vocabulary_
        self.analyzer = analyzer
        self.min_n, self.max_n = char_vectorizer.ngram_range
        alphabet = sorted(set("".join(self.vocabulary)))
        self.bits = max(1, len(alphabet).bit_length())  # codes 1..len(alphabet); 0 = not in it
        self.length_shift = self.bits * self.max_n
        self.vectorised = self.length_shift + self.max_n.bit_length() <= 63
        self.code_of = np.zeros(max(map(ord, alphabet), default=0) + 1, dtype=np.int64)
        self.code_of[[ord(c) for c in alphabet]] = np.arange(1, len(alphabet) + 1)
        grams = list(self.vocabulary)
        if not self.vectorised:
            return
        codes, starts, lengths = self._encode(grams)
        keys = np.zeros(len(grams), dtype=np.int64)
        for n in range(1, self.max_n + 1):
            of_n = lengths == n
            keys[of_n] = self._keys(codes, starts[of_n], n)
        self.vectorised = len(keys) > 0
        self.index = _KeyIndex(keys, np.fromiter(map(self.vocabulary.__getitem__, grams), dtype=np.int32))

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alphabet codes of the texts joined, each text's start, each text's length."""
        joined = "".join(texts).encode("utf-32-le", "surrogatepass")  # one code point per 4 bytes
        points = np.frombuffer(joined, dtype=np.uint32).astype(np.int64)
        codes = self.code_of[np.minimum(points, len(self.code_of) - 1)]
        codes[points >= len(self.code_of)] = 0
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return codes, np.cumsum(lengths) - lengths, lengths

    def _keys(self, codes: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
        """Keys of the n-character windows at `starts`; a window with a code-0 character has a
        zero in its key where every vocabulary key of that length has a non-zero code."""
        key = np.full(len(starts), n << self.length_shift, dtype=np.int64)
        for k in range(n):
            key |= codes[starts + k] << (self.bits * k)
        return key

    def ids(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(index into `words`, n-gram id) of every in-vocabulary char_wb n-gram of the words."""
        if not self.vectorised or (len(words) <= _FEW_WORDS and _speedups is None):
            plain = []  # a few words (single-text calls): the analyzer's loop costs less than the set-up
        elif _WHITESPACE.search("".join(words)) is None:  # no word has whitespace (str.split's)
            plain = [i for i, w in enumerate(words) if w and len(w) + 2 >= self.min_n]
        else:
            plain = [i for i, w in enumerate(words) if w.split() == [w] and len(w) + 2 >= self.min_n]
        owners, ids = [], []
        if plain and _speedups is not None:
            chosen = [words[i] for i in plain]
            windows = (self.max_n - self.min_n + 1) * (sum(map(len, chosen)) + 2 * len(chosen))
            owner, found = np.empty(windows, dtype=np.int64), np.empty(windows, dtype=np.int32)
            index = self.index
            n = _speedups.char_gram_ids(
                chosen, self.code_of, self.bits, self.length_shift, self.min_n, self.max_n,
                index.keys, index.values, index.bits, owner, found,
            )  # fmt: skip
            owners.append(np.asarray(plain)[owner[:n]])
            ids.append(found[:n])
        elif plain:
            codes, starts, lengths = self._encode([f" {words[i]} " for i in plain])
            owner_of_char = np.repeat(np.arange(len(plain)), lengths)
            ends = starts + lengths
            for n in range(self.min_n, self.max_n + 1):
                # every window of size n inside one padded word; sizes above the word's stop there
                first = np.flatnonzero(ends[owner_of_char] - np.arange(len(codes)) >= n)
                found = self.index.get(self._keys(codes, first, n))
                hit = found >= 0
                owners.append(np.asarray(plain)[owner_of_char[first[hit]]])
                ids.append(found[hit].astype(np.int32))
        rest = np.ones(len(words), dtype=bool)
        rest[plain] = False
        for i in np.flatnonzero(rest).tolist():
            found = [self.vocabulary[g] for g in self.analyzer(words[i]) if g in self.vocabulary]
            owners.append(np.full(len(found), i, dtype=np.int64))
            ids.append(np.asarray(found, dtype=np.int32))
        if not ids:
            return np.zeros(0, dtype=np.int64), _EMPTY
        return np.concatenate(owners), np.concatenate(ids)


class _ChunkIds:
    """Per whitespace-free chunk of raw text, the ids (in one `_TokenTable`) of its tokens when
    entered outside a negation scope, when entered inside one (computed when first needed: start
    -1), and how it leaves the scope state (_PASS, _CLEARS, _OPENS). Grown under the token table's
    lock with the same rules: arrays replaced when they grow, an entry published in `index` (or, for
    a negated variant, by its start) only when complete. Dropped whole when it grows too large."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.start = np.zeros((1024, 2), dtype=np.int64)
        self.length = np.zeros((1024, 2), dtype=np.int64)
        self.kind = np.zeros(1024, dtype=np.int8)
        self.flat = np.zeros(16384, dtype=np.int64)
        self.used = 0
        # With the compiled loops, `index` is mirrored in a table they can read without making a
        # string per chunk (see chunk_lookup in _speedups.c): (hash, id + 1) slots, at most half
        # full, over the chunks' code points in one arena; `where` is each id's (offset, length).
        self.compiled = _speedups  # kept for this object's life (tests switch the module's off)
        self.slots = np.zeros((1024, 2), dtype=np.int64)
        self.where = np.zeros((1024, 2), dtype=np.int64)
        self.points = np.zeros(16384, dtype=np.uint32)
        self.n_points = 0

    def add(self, table: _TokenTable, chunks: list[str], looked_up: int) -> None:
        """Enter new chunks with their plain token ids (the negated ones wait until needed);
        `looked_up` is how many chunks there were when they were found missing."""
        new = list(dict.fromkeys(chunks))
        entries = [chunk_plain_tokens(c) for c in new]
        plain = [tokens for tokens, _ in entries]
        tids = table.ids(list(chain.from_iterable(plain)))  # enters new tokens (takes the lock)
        lengths = np.fromiter(map(len, plain), dtype=np.int64, count=len(plain))
        kinds = [_PASS if after is None else _OPENS if after else _CLEARS for _, after in entries]
        with table._lock:
            # chunks entered by another thread since `looked_up` was read are dropped from `new`
            keep = range(len(new))
            if len(self.names) != looked_up:
                keep = [i for i, c in enumerate(new) if c not in self.index]
            if len(keep) < len(new):
                tids = _gather(tids, (np.cumsum(lengths) - lengths)[keep], lengths[keep])
                lengths, new, kinds = lengths[keep], [new[i] for i in keep], [kinds[i] for i in keep]
            if not new:
                return
            first, stop = len(self.names), len(self.names) + len(new)
            if stop > len(self.kind):
                self.start = _grown(self.start, stop)
                self.length = _grown(self.length, stop)
                self.kind = _grown(self.kind, stop)
            at = self._append(tids)
            self.start[first:stop, 0] = at + np.cumsum(lengths) - lengths
            self.length[first:stop, 0] = lengths
            self.start[first:stop, 1] = -1
            self.kind[first:stop] = kinds
            self.names.extend(new)
            if self.compiled is not None:
                self._mirror(new, first)
            self.index.update(zip(new, range(first, stop)))  # last: readers see whole entries

    def _mirror(self, new: list[str], first: int) -> None:
        """Enter new chunks (ids from `first`) in the compiled loops' table; the caller holds the
        lock. Arrays are filled before the slots that point into them; a grown slot array is
        filled whole before it replaces the old one."""
        stop = first + len(new)
        points = np.frombuffer("".join(new).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter(map(len, new), dtype=np.int64, count=len(new))
        at, end = self.n_points, self.n_points + len(points)
        if end > len(self.points):
            self.points = _grown(self.points, end)
        self.points[at:end] = points
        self.n_points = end
        if stop > len(self.where):
            self.where = _grown(self.where, stop)
        self.where[first:stop, 0] = at + np.cumsum(lengths) - lengths
        self.where[first:stop, 1] = lengths
        if 2 * stop > len(self.slots):
            slots = np.zeros((1 << (4 * stop - 1).bit_length(), 2), dtype=np.int64)  # a quarter full
            self.compiled.chunk_insert(self.names[:first], 0, slots)
            self.compiled.chunk_insert(new, first, slots)
            self.slots = slots
        else:
            self.compiled.chunk_insert(new, first, self.slots)

    def add_negated(self, table: _TokenTable, cids: list[int]) -> None:
        """Fill in the token ids of chunks as entered inside a negation scope."""
        negated = [chunk_tokens(self.names[c])[1] for c in cids]
        tids = table.ids(list(chain.from_iterable(negated)))
        lengths = np.fromiter(map(len, negated), dtype=np.int64, count=len(negated))
        with table._lock:
            at = self._append(tids)
            self.length[cids, 1] = lengths
            self.start[cids, 1] = at + np.cumsum(lengths) - lengths  # last: the start publishes

    def _append(self, tids: np.ndarray) -> int:
        """Append token ids to the flat buffer (the caller holds the lock); where they start."""
        start, end = self.used, self.used + len(tids)
        if end > len(self.flat):
            self.flat = _grown(self.flat, end)
        self.flat[start:end] = tids
        self.used = end
        return start


class _TokenTable:
    """Everything computed per distinct token, once: an integer id, its feature ids, its lexicon
    valences; plus the bigram vocabulary keyed by token-id pairs for vectorised look-up.
    Not pickled: rebuilt lazily (and dropped when it grows past _TOKEN_CACHE_MAX tokens)."""

    def __init__(self, vec: TweetVectorizer) -> None:
        self.vec = vec
        # Servers share one model across threads (Streamlit sessions, API thread pool): adding
        # tokens happens under this lock; look-ups need none (see the module docstring).
        self._lock = threading.Lock()
        self.index: dict[str, int] = {}
        # Per token id: where its feature ids start in the flat buffer, how many, its valences.
        # All grown by doubling, so a new token costs O(1) amortised (single-text calls add tokens
        # often); a grown array is a new copy, so a reader's older reference stays valid.
        self._starts = np.zeros(1024, dtype=np.int64)
        self._n_feats = np.zeros(1024, dtype=np.int64)
        self._vals = np.zeros((1024, len(vec.lexicons)), dtype=np.float32)
        self._flat = np.zeros(16384, dtype=np.int32)
        self._used = 0
        self.chunks = _ChunkIds()  # raw-text chunks -> token ids of this table (see text_ids)
        pairs, ids = [], []
        if vec.word_max_n >= 2:
            for gram, j in vec.word_vectorizer_.vocabulary_.items():
                parts = gram.split(" ")
                if len(parts) == 2:
                    pairs += parts
                    ids.append(j)
        tids = self.ids(pairs)
        keys = (tids[0::2] << 32) | tids[1::2]
        self.bigram_index = _KeyIndex(keys, np.asarray(ids, dtype=np.int32)) if len(ids) else None
        self.base = len(self.index)  # tokens entered for the bigram vocabulary, before any text

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids (new tokens get their entries computed now, all together)."""
        found = _lookup(tokens, self.index)
        missing = np.flatnonzero(found < 0).tolist()
        if missing:
            new = [tokens[k] for k in missing]
            with self._lock:
                self._add(new)
            found[missing] = _lookup(new, self.index)
        return found

    def _add(self, tokens: list[str]) -> None:
        """Enter the tokens that are not in the index yet (the caller holds the lock)."""
        new = [t for t in dict.fromkeys(tokens) if t not in self.index]  # another thread's, maybe
        if not new:
            return
        feats, lengths, vals = self.vec._token_entries(new)
        first, stop = len(self.index), len(self.index) + len(new)
        if stop > len(self._n_feats):
            self._starts = _grown(self._starts, stop)
            self._n_feats = _grown(self._n_feats, stop)
            self._vals = _grown(self._vals, stop)
        end = self._used + len(feats)
        if end > len(self._flat):
            self._flat = _grown(self._flat, end)
        self._flat[self._used : end] = feats
        self._starts[first:stop] = self._used + np.cumsum(lengths) - lengths
        self._n_feats[first:stop] = lengths
        self._vals[first:stop] = vals
        self._used = end
        self.index.update(zip(new, range(first, stop)))  # last: lock-free readers see whole entries

    def text_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All token ids of `texts` in order, and each text's number of tokens: the ids of
        `preprocess.tokenize` of each text, without building token strings.

        Texts are split into whitespace-free chunks once (as `tokenize` does); each distinct chunk's
        token ids are cached (`_ChunkIds`), in both negation variants, with the way it moves the
        scope state. The state entering each chunk is then computed for the whole batch at once: it
        is set by the last chunk before it in the same text that opens or clears a scope.
        """
        chunks = self.chunks
        if len(chunks.index) > _CHUNK_IDS_MAX:  # bounded memory: start a new one (tokens stay)
            chunks = self.chunks = _ChunkIds()
        looked_up = len(chunks.names)
        if _speedups is not None and chunks.compiled is not None:  # the same, compiled
            found, counts, new = _speedups.chunk_lookup(
                texts, clean_text, chunks.slots, chunks.where, chunks.points
            )
            cids, n_chunks = np.frombuffer(found, dtype=np.int64), np.frombuffer(counts, dtype=np.int64)
            missing = np.flatnonzero(cids < 0)
        else:
            cleaned = [clean_text(t) for t in texts]
            # no list per text: lists that stay alive make the cyclic GC run (see tokenize_many)
            n_chunks = np.fromiter(map(len, map(str.split, cleaned)), dtype=np.int64, count=len(cleaned))
            flat = " ".join(cleaned).split()
            cids = _lookup(flat, chunks.index)
            missing = np.flatnonzero(cids < 0)
            new = [flat[k] for k in missing.tolist()]
        if len(missing):
            chunks.add(self, new, looked_up)
            cids[missing] = _lookup(new, chunks.index)
        kinds = chunks.kind[cids]
        position = np.arange(len(cids))
        last_setter = np.maximum.accumulate(np.where(kinds != _PASS, position, -1)) if len(cids) else cids
        before = np.concatenate([[-1], last_setter[:-1]]) if len(cids) else cids
        chunk_end = np.cumsum(n_chunks)
        first_of_doc = np.repeat(chunk_end - n_chunks, n_chunks)
        negated = (before >= first_of_doc) & (kinds[before] == _OPENS)
        variant = negated.astype(np.int64)
        lazy = np.flatnonzero(chunks.start[cids, variant] < 0)
        if len(lazy):
            chunks.add_negated(self, np.unique(cids[lazy]).tolist())
        starts, lengths = chunks.start[cids, variant], chunks.length[cids, variant]
        tids = _gather(chunks.flat, starts, lengths)
        ends = np.concatenate([[0], np.cumsum(lengths)])
        return tids, ends[chunk_end] - ends[chunk_end - n_chunks]

    def scratch(self, width: int) -> np.ndarray:
        """An all-zero int32 array of `width` for the compiled loops to count in (they leave it all
        zero, and hold the GIL while they use it, so threads can share it)."""
        counts = getattr(self, "_scratch", None)
        if counts is None or len(counts) != width:
            counts = self._scratch = np.zeros(width, dtype=np.int32)
        return counts

    def feats(self, tid: int) -> np.ndarray:
        """The unigram and char n-gram feature ids of one token id."""
        start = self._starts[tid]
        return self._flat[start : start + self._n_feats[tid]]

    def gather(self, tids: np.ndarray) -> np.ndarray:
        """The feature ids of every token in `tids`, concatenated in order (one vectorised gather)."""
        return _gather(self._flat, self._starts[tids], self._n_feats[tids])

    @property
    def n_feats(self) -> np.ndarray:
        return self._n_feats

    @property
    def valences(self) -> np.ndarray:
        return self._vals

    def bigrams(self, tids: np.ndarray, token_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document index, feature id) of in-vocabulary bigrams among consecutive tokens."""
        first, ids = self.bigram_hits(tids, token_doc)
        return token_doc[first], ids

    def bigram_hits(self, tids: np.ndarray, token_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position of the bigram's first token, feature id) of in-vocabulary bigrams among
        consecutive tokens of the same document."""
        if len(tids) < 2 or self.bigram_index is None:
            return np.zeros(0, dtype=np.int64), _EMPTY
        found = self.bigram_index.get((tids[:-1] << 32) | tids[1:])
        first = np.flatnonzero((found >= 0) & (token_doc[1:] == token_doc[:-1]))
        return first, found[first].astype(np.int32)


def _lexicon_row(valences: np.ndarray) -> np.ndarray:
    """`_lexicon_features` of one document; `valences` is (tokens, lexicons). Lexicon-major order.

    A separate single-document version because the grouped one's reduceat machinery costs more
    than the arithmetic for one tweet (single-text calls/s: 11k with this, 7k without).
    """
    n_lex = valences.shape[1]
    if len(valences) == 0:
        return np.zeros(N_LEXICON_FEATURES * n_lex, dtype=np.float32)
    v = valences.astype(np.float64)
    last = np.zeros(n_lex)
    for k in range(n_lex):
        nonzero = np.flatnonzero(v[:, k])
        if len(nonzero):
            last[k] = v[nonzero[-1], k]
    out = np.stack([
        np.clip(v, 0, None).sum(axis=0) / 4,
        -np.clip(v, None, 0).sum(axis=0) / 4,
        np.log1p((v > 0).sum(axis=0)),
        np.log1p((v < 0).sum(axis=0)),
        np.maximum(v.max(axis=0), 0) / 4,
        np.minimum(v.min(axis=0), 0) / 4,
        last / 4,
    ])  # fmt: skip
    return out.T.ravel().astype(np.float32)
