import io
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from sentimentkit.models.safe_pickle import _MOVED
from sentimentkit.text import _lookup, features, preprocess
from sentimentkit.text.features import TweetVectorizer, char_document, word_ngrams
from sentimentkit.text.preprocess import tokenize
from tests.conftest import COMMITTED_MODEL

TEXTS = [
    "I love this so much :)",
    "I do not love this at all!!!",
    "meeting at 10am with @user about http://x.co",
    "worst. day. EVER #fail",
    "love love love",
    "nothing to see here",
]


@pytest.fixture(autouse=True, params=["compiled", "numpy"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the compiled inner loops and on the NumPy code they replace."""
    if request.param == "numpy":
        monkeypatch.setattr(_lookup, "_speedups", None)
    elif _lookup._speedups is None:
        pytest.skip("the compiled loops are not built (see test_speedups.py)")
    return request.param


def test_two_lexicons_give_two_blocks():
    vec = _fitted(lexicons=("vader", "afinn"))
    X = vec.transform(["good"]).toarray()
    assert X.shape[1] == vec.n_word_ + vec.n_char_ + 14
    assert X[0, -14] > 0 and X[0, -7] > 0


def _fitted(**kw) -> TweetVectorizer:
    return TweetVectorizer(word_min_df=1, char_min_df=1, **kw).fit(TEXTS)


def test_fast_transform_equals_sklearn_tfidf_blocks():
    vec = _fitted(lexicons=(), char_weight=0.7)
    docs = [tokenize(t) for t in TEXTS + ["unseen words love"]]
    fast = vec.transform(TEXTS + ["unseen words love"]).toarray()
    word = vec.word_vectorizer_.transform(docs)
    char = vec.char_vectorizer_.transform([char_document(d) for d in docs])
    expected = sp.hstack([normalize(word), 0.7 * normalize(char)]).toarray()
    np.testing.assert_allclose(fast, expected, rtol=1e-5, atol=1e-6)


def test_lexicon_columns_follow_vader_valence_and_negation():
    vec = _fitted()
    X = vec.transform(["good", "not good", "bad"]).toarray()[:, -7:]  # the VADER block
    assert X[0, 0] > 0 and X[0, 1] == 0  # positive valence only
    assert X[1, 1] > 0 and X[1, 0] == 0  # negated "good" counts as negative
    assert X[2, 1] > 0


def test_empty_documents_give_zero_rows():
    vec = _fitted()
    X = vec.transform(["", "   "])
    assert X.shape == (2, vec.n_features_)
    assert X.nnz == 0


def test_pickle_drops_cache_and_round_trips():
    vec = _fitted()
    before = vec.transform(TEXTS).toarray()
    caches = ("_token_table", "_char_analyzer_fn", "_idf_all")  # built lazily by transform
    assert all(getattr(vec, name, None) is not None for name in caches)
    blob = pickle.dumps(vec)
    assert not any(name.encode() in blob for name in caches)
    np.testing.assert_allclose(pickle.loads(blob).transform(TEXTS).toarray(), before)


def _pickled_classes(blob: bytes) -> set[tuple[str, str]]:
    """(module, name) of every global a pickle asks for, with `safe_pickle`'s map of moved classes."""
    found: set[tuple[str, str]] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> object:
            where = _MOVED.get((module, name), (module, name))
            found.add(where)
            return super().find_class(*where)

    Recorder(io.BytesIO(blob), fix_imports=False).load()
    return found


def test_the_pickle_names_only_the_estimators_classes():
    """model.pkl pickles the estimator, never the look-up engine (`_lookup`, rebuilt lazily): the
    package classes that a used vectorizer's pickle, and the committed model's, ask for are the
    estimator's, where `features` defines them."""
    vec = _fitted(word_max_n=3)
    vec.transform(TEXTS), vec.row_dot("love it", np.ones((vec.n_features_, 1)))  # fill every cache
    for blob in (pickle.dumps(vec), COMMITTED_MODEL.read_bytes()):
        package = {(m, n) for m, n in _pickled_classes(blob) if m.startswith("sentimentkit")}
        assert package and package <= {
            (features.__name__, "TweetVectorizer"),
            (features.__name__, "_WordAnalyzer"),
        }
        assert all(getattr(features, n).__module__ == m for m, n in package)


def test_feature_names_cover_every_column():
    vec = _fitted()
    assert len(vec.get_feature_names_out()) == vec.n_features_ == vec.transform(["x"]).shape[1]


def test_word_ngrams():
    assert word_ngrams(["a", "b", "c"], 2) == ["a", "b", "c", "a b", "b c"]


def test_concurrent_transforms_of_new_texts_are_safe_and_exact():
    from concurrent.futures import ThreadPoolExecutor

    vec = _fitted(lexicons=("vader", "afinn"))
    batches = [[f"brand new word{i}x{j} love it {j}" for j in range(50)] for i in range(16)]
    expected = [_fitted(lexicons=("vader", "afinn")).transform(b).toarray() for b in batches]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda b: vec.transform(b).toarray(), batches))
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, rtol=1e-6)


def test_single_text_row_equals_batch_transform():
    vec = _fitted(lexicons=("vader", "afinn"), char_weight=0.8, lexicon_weight=2.0)
    for text in TEXTS + ["", "   ", "never seen before zzz", "not bad at all :)"]:
        cols, vals = vec.sparse_row(text)
        dense = np.zeros(vec.n_features_)
        dense[cols] = vals
        np.testing.assert_allclose(dense, vec.transform([text]).toarray()[0], rtol=1e-5, atol=1e-6)


WEIRD_WORDS = [
    "a",
    "ab",
    "é",
    "naïve",
    "😡",
    "#tag",
    "x_NEG",
    "<url>",
    "two words",
    "tab\tin",
    "\ud800lone",
    "",
]


def test_vectorised_char_ngrams_equal_sklearns_analyzer():

    vec = _fitted(char_ngram_range=(2, 5))
    analyzer = vec.char_vectorizer_.build_analyzer()
    vocab = vec.char_vectorizer_.vocabulary_
    words = [t for text in TEXTS for t in tokenize(text)] + WEIRD_WORDS
    owner, ids = _lookup.CharGrams(vec.char_vectorizer_, analyzer).ids(words)
    for i, word in enumerate(words):
        expected = sorted(vocab[g] for g in analyzer(word) if g in vocab)
        assert sorted(ids[owner == i].tolist()) == expected, word


def test_char_ngrams_of_words_shorter_than_the_smallest_n_follow_sklearn():

    vec = TweetVectorizer(word_min_df=1, char_min_df=1, char_ngram_range=(4, 5)).fit(TEXTS + ["a b c"])
    analyzer = vec.char_vectorizer_.build_analyzer()
    words = ["a", "b", "love"] + [w for t in TEXTS for w in tokenize(t)]  # enough for the vectorised path
    owner, ids = _lookup.CharGrams(vec.char_vectorizer_, analyzer).ids(words)
    vocab = vec.char_vectorizer_.vocabulary_
    assert ids[owner == 0].tolist() == [vocab[" a "]]  # sklearn keeps the padded word itself
    assert sorted(ids[owner == 2].tolist()) == sorted(vocab[g] for g in analyzer("love") if g in vocab)


def test_committed_model_features_equal_sklearns_own_blocks(predictor, shared_data):
    """The fast transform against sklearn's TfidfVectorizer.transform on 3,000 test tweets (float32
    features, so 1e-6): the optimised path computes the model's definition, not something close.
    (Bit-identity with the previous implementation was checked once, on all test tweets.)"""
    import pandas as pd

    texts = pd.read_csv(shared_data / "test.csv", nrows=3000)["text"].tolist()
    vec = predictor.pipeline.named_steps["features"]
    docs = [tokenize(t) for t in texts]
    word = normalize(vec.word_vectorizer_.transform(docs))
    char = vec.char_weight * normalize(vec.char_vectorizer_.transform([char_document(d) for d in docs]))
    fast = vec.transform(texts)
    n_text = vec.n_word_ + vec.n_char_
    assert abs(fast[:, :n_text] - sp.hstack([word, char]).tocsr()).max() < 1e-6


def test_concurrent_scoring_of_unseen_texts_equals_single_threaded(shared_data):
    """One Predictor shared by 8 threads (batch and single-text calls mixed, frequent GIL switches)
    on distinct tweets it has never seen gives exactly what a fresh Predictor gives on one thread."""
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from sentimentkit.serving.predictor import Predictor

    unlabeled = shared_data.parent / "unlabeled" / "tweets.csv"
    if not unlabeled.is_file():
        pytest.skip(f"{unlabeled} not found")
    texts = pd.read_csv(unlabeled, nrows=3200, dtype=str, keep_default_na=False)["text"].tolist()[2400:]
    fresh = Predictor.load(COMMITTED_MODEL)
    # (single-text path, batch path): they differ in the last bits (float64 vs float32 features)
    expected = (np.array([fresh.predict_proba(t) for t in texts]), fresh.predict_proba(texts))
    shared = Predictor.load(COMMITTED_MODEL)
    preprocess._chunk_cache.clear()  # the threads must tokenise these texts anew, concurrently
    slices = [range(i, len(texts), 8) for i in range(8)]

    def score(rows: range) -> list[tuple[int, int, np.ndarray]]:
        out = []
        for k, i in enumerate(rows):
            if k % 3:
                out.append((0, i, shared.predict_proba(texts[i])))
            else:
                batch = [j for j in rows if i <= j < i + 40]
                out += [(1, j, p) for j, p in zip(batch, shared.predict_proba([texts[j] for j in batch]))]
        return out

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = [pair for part in pool.map(score, slices) for pair in part]
    finally:
        sys.setswitchinterval(interval)
    assert len(results) >= len(texts)
    assert {path for path, _, _ in results} == {0, 1}
    for path, i, proba in results:
        np.testing.assert_array_equal(proba, expected[path][i])


@pytest.mark.parametrize("word_max_n", [1, 2, 3])
def test_strings_pretokenised_and_mixed_batches_give_identical_matrices(word_max_n):
    """`transform` of raw strings (one flat token list for the batch), of token lists, and of a
    mix of both are the same matrix, bit for bit, empty documents included."""
    vec = _fitted(word_max_n=word_max_n)
    texts = TEXTS + ["", "love this at all", "   "]
    docs = [tokenize(t) for t in texts]
    from_strings = vec.transform(texts)
    for other in (vec.transform_tokens(docs), vec.transform([docs[0], *texts[1:]])):
        assert (from_strings != other).nnz == 0
        assert np.array_equal(from_strings.indptr, other.indptr)


def test_chunk_table_ids_equal_the_ids_of_tokenize():
    """The batch path's token ids (per-chunk ids, negation state carried across chunks for the
    whole batch at once, negated variants filled in when first needed) equal the ids of
    `tokenize`'s tokens: chunks first met inside and outside a scope, scopes crossing chunks,
    entities that unescape to whitespace, empty and blank texts, repeats in one batch."""
    from sentimentkit.text.preprocess import tokenize_many

    vec = _fitted()
    batches = [
        ["not  very good, but fine", "", "   ", "never brandnew... wow", "brandnew wow"],
        ["don't.like it", "not&#10;good &amp; not bad", "I can't! stand it", "not", "but not"],
        ["brandnew wow not brandnew", "nothing brandnew: wow", "love love love", "not good " * 30],
        TEXTS * 3,
    ]
    table = vec._table()
    for texts in batches:
        tokens, counts = tokenize_many(texts)
        tids, lengths = table.text_ids(texts)
        assert lengths.tolist() == counts
        assert tids.tolist() == table.ids(tokens).tolist()


@pytest.mark.parametrize("odd", ["love\n", "\tlove", "lo\u3000ve", "\u3000", "", "lo\x1cve"])
def test_char_ngrams_of_pretokenised_words_with_whitespace_follow_sklearn(odd):
    """Token lists may hold whitespace or empty strings; a batch big enough for the vectorised
    char n-gram pass gives such a token exactly sklearn's char_wb n-grams."""
    vec = _fitted(lexicons=())
    docs = [[odd, *(f"zq{i}x" for i in range(9))], ["this\u3000at", "\u3000", *(f"qz{i}x" for i in range(9))]]
    fast = sp.vstack([vec.transform_tokens([doc]) for doc in docs])  # each call's new tokens together
    expected = sp.hstack([
        normalize(vec.word_vectorizer_.transform(docs)),
        normalize(vec.char_vectorizer_.transform([char_document(d) for d in docs])),
    ]).tocsr()  # fmt: skip
    np.testing.assert_allclose(fast.toarray(), expected.toarray(), rtol=1e-5, atol=1e-6)


def test_chunk_ids_are_bounded_without_rebuilding_the_token_table():
    """A chunk limit drops the chunk ids alone: the token table (and its bigram index) stays."""
    saved = _lookup._CHUNK_IDS_MAX
    try:
        _lookup._CHUNK_IDS_MAX = 5
        vec = _fitted()
        table = vec._table()
        for text in ["one two three four five six seven", "eight nine ten eleven twelve", "love it"]:
            vec.transform([text])
            assert vec._table() is table and len(table.chunks.index) <= 5 + 7
    finally:
        _lookup._CHUNK_IDS_MAX = saved


def test_key_index_finds_every_key_and_only_keys():
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(0, 2**62, 5000))
    values = rng.permutation(len(keys)).astype(np.int32)
    index = _lookup.KeyIndex(keys, values)
    queries = np.concatenate([keys, rng.integers(0, 2**62, 5000), keys[:100] + 1])
    expected = dict(zip(keys.tolist(), values.tolist()))
    assert index.get(queries).tolist() == [expected.get(q, -1) for q in queries.tolist()]
    assert _lookup.KeyIndex(keys[:0], values[:0]).get(keys[:3]).tolist() == [-1, -1, -1]


@pytest.mark.parametrize("n_cols", [50, 2**31 // 40 + 1])  # 32-bit sort keys, then 64-bit ones
def test_count_matrix_counts_pairs_like_scipy(n_cols):
    from sentimentkit.text.features import _count_matrix

    rng = np.random.default_rng(0)
    rows = np.sort(rng.integers(0, 40, 2000))
    cols = rng.integers(0, 50, 2000).astype(np.int32) * (n_cols // 50)
    fast = _count_matrix(rows, cols, 40, n_cols)
    expected = sp.csr_matrix((np.ones(2000, dtype=np.float32), (rows, cols)), shape=(40, n_cols))
    expected.sum_duplicates()
    assert fast.has_sorted_indices and (fast != expected).nnz == 0


def test_small_cache_limits_give_identical_probabilities_and_bound_the_caches(shared_data):
    """Caches bounded to a few entries (dropped and refilled many times, as a worker's are on
    millions of distinct texts) change no probability, bit for bit, and stay within their bound;
    and one call on more texts than predict_proba's slice equals calls of 100 texts."""
    import pandas as pd

    from sentimentkit.serving.loader import load_predictor
    from sentimentkit.serving.predictor import _BATCH
    from sentimentkit.text.features import set_cache_limits

    texts = pd.read_csv(shared_data / "test.csv", nrows=_BATCH + 500)["text"].tolist()
    expected = load_predictor(COMMITTED_MODEL).predict_proba(texts)
    saved = (_lookup._TOKEN_CACHE_MAX, preprocess._CHUNK_CACHE_MAX)
    try:
        set_cache_limits(tokens=50, chunks=40)
        bounded = load_predictor(COMMITTED_MODEL)
        got = np.concatenate([bounded.predict_proba(texts[i : i + 100]) for i in range(0, len(texts), 100)])
        table = bounded._vectorizer._token_table
        assert len(table.index) - table.base <= 50 + 100 * 40  # at most one call's new tokens past the bound
        assert len(preprocess._chunk_cache) <= 40
        assert len(table.chunks.index) <= 40 + 100 * 40  # the batch path's chunk ids, likewise
    finally:
        set_cache_limits(tokens=saved[0], chunks=saved[1])
    assert got.tobytes() == expected.tobytes()
    with pytest.raises(ValueError):
        set_cache_limits(tokens=0)
