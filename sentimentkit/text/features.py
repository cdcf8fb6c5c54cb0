"""Fast TF-IDF features for tweets: word n-grams, character n-grams and lexicon cues.

`TweetVectorizer` is a scikit-learn transformer, pickled inside model.pkl. It is fitted with
scikit-learn's own `TfidfVectorizer` (word 1..n-grams over `preprocess.tokenize` tokens, `char_wb`
n-grams over the same tokens) so its vocabulary and IDF are exactly scikit-learn's. Transforming is
the hot path at serving time, so it avoids sklearn's per-n-gram Python loop: every distinct token's
feature ids are computed once (`_token_entries`) and cached, and a batch becomes one concatenation
plus vectorised TF-IDF weighting. The caches and their look-ups (token table, raw-text chunk ids,
hash tables, char n-gram keys) and the rules that make them safe to share between threads are the
engine in `_lookup.py`; this module is the estimator: parameters, fitting, and the TF-IDF and
lexicon arithmetic. `tests/test_features.py` checks the result equals sklearn's.

Compiled inner loops: `_speedups.c` (built by `pip install -e .`; optional) does the batch path's
per-element work in C: splitting texts into chunks and looking them up, the new tokens' char
n-gram ids, and the TF-IDF + lexicon rows, which it can multiply straight into the linear model's
weights (`transform_dot`, `row_dot`) without building the matrix. Without it (no C compiler, or
SENTIMENTKIT_PURE_PYTHON=1; the switch is `_lookup.compiled()`) the NumPy code below does the same;
the two agree to float rounding (`tests/test_speedups.py`; every test in `tests/test_features.py`
runs on both).

A fitted `TweetVectorizer` (and so one `Predictor`) may be shared by any number of threads: its only
mutable state is those caches (see `_lookup`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from itertools import repeat

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from sentimentkit.text._lookup import EMPTY, CharGrams, TokenTable, compiled, set_cache_limits
from sentimentkit.text.lexicon import NEGATION_SCALAR, load_lexicons
from sentimentkit.text.preprocess import NEG_SUFFIX, base_token, tokenize, tokenize_many

__all__ = [
    "LEXICON_FEATURE_NAMES",
    "N_LEXICON_FEATURES",
    "TweetVectorizer",
    "char_document",
    "set_cache_limits",  # the caches' bound, kept importable from here (scale/multiproc, users)
    "word_ngrams",
]

N_LEXICON_FEATURES = 7  # per lexicon
LEXICON_FEATURE_NAMES = ("pos_sum", "neg_sum", "n_pos", "n_neg", "max", "min", "last")


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
        self, table: TokenTable, tids: np.ndarray, lengths: np.ndarray, tokens: list[str] | None = None
    ) -> sp.csr_matrix:
        """`transform` of documents given as all their ids in `table` and each one's number of
        tokens (`tokens`, the same as strings, are needed only for word n-grams beyond bigrams)."""
        if compiled() is not None and self.word_max_n <= 2:
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
        if compiled() is not None and self.word_max_n <= 2 and all(isinstance(t, str) for t in texts):
            table = self._table()
            return self._featurize(table, *table.text_ids(texts), weights=weights)
        return np.asarray(self.transform(texts) @ weights)

    def transform_dot_ids(
        self, texts: list[str], weights: np.ndarray
    ) -> tuple[np.ndarray, TokenTable, np.ndarray, np.ndarray]:
        """`transform_dot`, plus what it read: the token table, every token id of `texts` in order
        and each text's number of tokens (the language guard's vocabulary test reuses them, so it
        tokenises nothing twice)."""
        table = self._table()
        tids, lengths = table.text_ids(texts)
        if compiled() is not None and self.word_max_n <= 2:
            return self._featurize(table, tids, lengths, weights=weights), table, tids, lengths
        return np.asarray(self.transform(texts) @ weights), table, tids, lengths

    def token_table(self) -> TokenTable:
        """The token cache the vectoriser reads (token -> id, per-id features); rebuilt when full."""
        return self._table()

    def row_dot(self, text: str, weights: np.ndarray) -> np.ndarray:
        """`transform([text])[0] @ weights` for one text (the single-text serving path): with the
        compiled loops exactly the batch path's row, else from `sparse_row`."""
        if compiled() is not None and self.word_max_n <= 2:
            table = self._table()
            tids = table.ids(tokenize(text))
            return self._featurize(table, tids, np.array([len(tids)]), weights=weights)[0]
        cols, vals = self.sparse_row(text)
        return vals @ np.asarray(weights)[cols]

    def _featurize(
        self, table: TokenTable, tids: np.ndarray, lengths: np.ndarray, weights: np.ndarray | None = None
    ) -> sp.csr_matrix | np.ndarray:
        """The compiled `_transform_ids` (a CSR matrix, columns in order of first occurrence within
        a row), or with `weights` the compiled `transform_dot`."""
        width = self.n_word_ + self.n_char_
        n_lex = len(self.lexicons)
        speedups = compiled()
        # the table's arrays as they are now: every id in `tids` is complete in any of their versions
        starts, n_feats, flat, valences = table.arrays()
        bigrams = table.bigram_index
        args = (
            np.ascontiguousarray(tids, dtype=np.int64),
            np.ascontiguousarray(lengths, dtype=np.int64),
            starts,
            n_feats,
            flat,
            bigrams.keys if bigrams is not None else EMPTY,
            bigrams.values if bigrams is not None else EMPTY,
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
            speedups.featurize(*args, weights, weights.shape[1], out, None, None, None)
            return out
        capacity = int(n_feats[tids].sum()) + len(tids) + N_LEXICON_FEATURES * n_lex * n_docs
        data = np.empty(capacity, dtype=np.float32)
        indices = np.empty(capacity, dtype=np.int32)
        indptr = np.empty(n_docs + 1, dtype=np.int64)
        nnz = speedups.featurize(*args, None, 0, None, data, indices, indptr)
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
        cols, counts = np.unique(np.concatenate(parts) if parts else EMPTY, return_counts=True)
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
        self, table: TokenTable, tids: np.ndarray, lengths: np.ndarray, tokens: list[str] | None = None
    ) -> tuple[sp.csr_matrix, np.ndarray]:
        """Term counts (word + char blocks) and per-token lexicon valences of documents given as
        all their token ids in one array and each one's number of tokens.

        Vectorised across the batch: one gather of the tokens' cached feature ids, bigrams matched
        by token-id pairs in a hash table (`KeyIndex`) instead of string joins, and duplicates
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

    def _table(self) -> TokenTable:
        table = getattr(self, "_token_table", None)
        if table is None or table.full:  # bounded memory under adversarial input
            bigram_vocabulary = self.word_vectorizer_.vocabulary_ if self.word_max_n >= 2 else {}
            table = self._token_table = TokenTable(self._token_entries, len(self.lexicons), bigram_vocabulary)
        return table

    def token_entry(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Compute (not cached) a token's feature ids and its valence in each lexicon."""
        ids, _, valences = self._token_entries([token])
        return ids, valences[0]

    def _token_entries(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature ids of `tokens` (concatenated), how many each, valences (tokens, lexicons).

        All new tokens of a call together: char n-grams are looked up as integer keys in one
        vectorised pass (`CharGrams`), the rest are a few dict look-ups per token.
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

    def _char_grams(self) -> CharGrams:
        grams = getattr(self, "_char_grams_index", None)
        if grams is None:
            grams = self._char_grams_index = CharGrams(self.char_vectorizer_, self._char_analyzer())
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
