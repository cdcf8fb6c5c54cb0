"""Fast TF-IDF features for tweets: word n-grams, character n-grams and lexicon cues.

`TweetVectorizer` is a scikit-learn transformer. It is fitted with scikit-learn's own
`TfidfVectorizer` (word 1..n-grams over `preprocess.tokenize` tokens, `char_wb` n-grams over the
same tokens) so its vocabulary and IDF are exactly scikit-learn's. Transforming is the hot path
at serving time, so it avoids sklearn's per-n-gram Python loop: every distinct token's feature
ids are computed once and cached as a NumPy array, and a batch becomes one concatenation plus
vectorised TF-IDF weighting. `tests/test_features.py` checks the result equals sklearn's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from sentimentkit.text.lexicon import NEGATION_SCALAR, load_lexicons
from sentimentkit.text.preprocess import NEG_SUFFIX, base_token, tokenize

N_LEXICON_FEATURES = 7  # per lexicon
LEXICON_FEATURE_NAMES = ("pos_sum", "neg_sum", "n_pos", "n_neg", "max", "min", "last")
_TOKEN_CACHE_MAX = 500_000
_EMPTY = np.zeros(0, dtype=np.int32)


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
        return self.transform_tokens(self._tokenize_all(texts))

    def transform_tokens(self, docs: list[list[str]]) -> sp.csr_matrix:
        """Same as `transform`, for already tokenised documents."""
        counts, valences, lengths = self._count_features(docs)
        X = self._tfidf(counts)
        if self.lexicons:
            lex = _lexicon_features(valences, lengths)
            X = sp.hstack([X, sp.csr_matrix(lex * self.lexicon_weight)], format="csr")
        return X

    def sparse_row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(column indices, values) of one text's row: the numbers of `transform([text])`.

        The single-text serving path: small NumPy operations only, no scipy matrix to build,
        which costs more than the arithmetic for one short text.
        """
        tokens = tokenize(text)
        table = self._table()
        tids = table.ids(tokens)
        parts = [table.feats[i] for i in tids.tolist()]
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

    def _count_features(self, docs: list[list[str]]) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
        """Term counts (word + char blocks), per-token lexicon valences, and tokens per document.

        Vectorised across the batch: one pass of dict look-ups over all tokens, one concatenation,
        and bigrams matched by token-id pairs with a binary search instead of string joins.
        """
        table = self._table()
        n_docs = len(docs)
        tok_lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=n_docs)
        tids = table.ids([t for doc in docs for t in doc])
        feats = table.feats
        id_lengths = table.n_feats[tids]
        token_doc = np.repeat(np.arange(n_docs), tok_lengths)
        rows = [np.repeat(token_doc, id_lengths)]
        cols = [np.concatenate([feats[i] for i in tids.tolist()]) if len(tids) else _EMPTY]
        if self.word_max_n >= 2:
            for r, c in (table.bigrams(tids, token_doc), self._ngram_ids(docs, min_n=3)):
                rows.append(r)
                cols.append(c)
        indices = np.concatenate(cols)
        counts = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), (np.concatenate(rows), indices)),
            shape=(n_docs, self.n_word_ + self.n_char_),
        )  # duplicates are summed: counts
        return counts, table.valences[tids], tok_lengths

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
            np.log(X.data, out=X.data)
            X.data += 1.0
        X.data *= self._idf()[X.indices]
        is_char = X.indices >= self.n_word_
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        sq = X.data.astype(np.float64) ** 2
        n_rows = X.shape[0]
        word_norm = np.sqrt(np.bincount(rows, weights=sq * ~is_char, minlength=n_rows))
        char_norm = np.sqrt(np.bincount(rows, weights=sq * is_char, minlength=n_rows))
        word_norm[word_norm == 0] = 1.0
        char_norm[char_norm == 0] = 1.0
        scale = np.where(is_char, self.char_weight / char_norm[rows], 1.0 / word_norm[rows])
        X.data *= scale.astype(np.float32)
        return X

    # --- per-token work, done once per distinct token -----------------------------------
    def token_features(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Feature ids (unigram and char n-grams, repeated per occurrence) and lexicon valences."""
        table = self._table()
        tid = int(table.ids([token])[0])
        return table.feats[tid], table.valences[tid]

    def _table(self) -> _TokenTable:
        table = getattr(self, "_token_table", None)
        if table is None or len(table.index) > _TOKEN_CACHE_MAX:
            table = self._token_table = _TokenTable(self)  # bounded memory under adversarial input
        return table

    def token_entry(self, token: str) -> tuple[np.ndarray, np.ndarray]:
        """Compute (not cached) a token's feature ids and its valence in each lexicon."""
        word_vocab = self.word_vectorizer_.vocabulary_
        char_vocab = self.char_vectorizer_.vocabulary_
        ids = [word_vocab[token]] if token in word_vocab else []
        base = base_token(token)
        analyzer = self._char_analyzer()
        ids += [self.n_word_ + char_vocab[g] for g in analyzer(base) if g in char_vocab]
        lexicons = load_lexicons(tuple(self.lexicons))
        valence = np.array([lex.get(base, 0.0) for lex in lexicons], dtype=np.float32)
        if token.endswith(NEG_SUFFIX):
            valence *= NEGATION_SCALAR
        return np.asarray(ids, dtype=np.int32), valence

    def _char_analyzer(self) -> Callable[[str], list[str]]:
        analyzer = getattr(self, "_char_analyzer_fn", None)
        if analyzer is None:
            analyzer = self._char_analyzer_fn = self.char_vectorizer_.build_analyzer()
        return analyzer

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_token_table", "_char_analyzer_fn", "_idf_all"):
            state.pop(key, None)  # rebuilt lazily; keeps the pickle small
        return state

    @staticmethod
    def _tokenize_all(texts: Iterable[str | Sequence[str]]) -> list[list[str]]:
        return [tokenize(t) if isinstance(t, str) else list(t) for t in texts]


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


class _TokenTable:
    """Everything computed per distinct token, once: an integer id, its feature ids, its lexicon
    valences; plus the bigram vocabulary keyed by token-id pairs for vectorised look-up.
    Not pickled: rebuilt lazily (and dropped when it grows past _TOKEN_CACHE_MAX tokens)."""

    def __init__(self, vec: TweetVectorizer) -> None:
        self.vec = vec
        # Servers share one model across threads (Streamlit sessions, API thread pool): adding
        # tokens and snapshotting the arrays happen under this lock; look-ups need none.
        self._lock = threading.Lock()
        self.index: dict[str, int] = {}
        self.feats: list[np.ndarray] = []
        # Grown by doubling, so a new token costs O(1) amortised (single-text calls add tokens often).
        self._n_feats = np.zeros(1024, dtype=np.int64)
        self._vals = np.zeros((1024, len(vec.lexicons)), dtype=np.float32)
        keys, ids = [], []
        if vec.word_max_n >= 2:
            for gram, j in vec.word_vectorizer_.vocabulary_.items():
                parts = gram.split(" ")
                if len(parts) == 2:
                    a, b = self.ids(parts).tolist()
                    keys.append((a << 32) | b)
                    ids.append(j)
        order = np.argsort(np.asarray(keys, dtype=np.int64))
        self.bigram_keys = np.asarray(keys, dtype=np.int64)[order]
        self.bigram_ids = np.asarray(ids, dtype=np.int32)[order]

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids (new tokens get their entry computed now)."""
        get = self.index.get
        found = [get(t, -1) for t in tokens]
        if -1 in found:
            with self._lock:
                found = [i if i >= 0 else self._add(t) for t, i in zip(tokens, found)]
        return np.asarray(found, dtype=np.int64)

    def _add(self, token: str) -> int:
        tid = self.index.get(token)
        if tid is None:
            feats, vals = self.vec.token_entry(token)
            tid = len(self.feats)
            if tid == len(self._n_feats):
                self._n_feats = np.concatenate([self._n_feats, np.zeros_like(self._n_feats)])
                self._vals = np.concatenate([self._vals, np.zeros_like(self._vals)])
            self._n_feats[tid] = len(feats)
            self._vals[tid] = vals
            self.feats.append(feats)
            self.index[token] = tid  # last: readers without the lock only see complete entries
        return tid

    @property
    def n_feats(self) -> np.ndarray:
        return self._n_feats

    @property
    def valences(self) -> np.ndarray:
        return self._vals

    def bigrams(self, tids: np.ndarray, token_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document index, feature id) of in-vocabulary bigrams among consecutive tokens."""
        if len(tids) < 2 or len(self.bigram_keys) == 0:
            return np.zeros(0, dtype=np.int64), _EMPTY
        same_doc = token_doc[1:] == token_doc[:-1]
        keys = (tids[:-1] << 32) | tids[1:]
        pos = np.searchsorted(self.bigram_keys, keys)
        pos[pos == len(self.bigram_keys)] = 0
        hit = same_doc & (self.bigram_keys[pos] == keys)
        return token_doc[:-1][hit], self.bigram_ids[pos[hit]]


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
