import pickle

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from sentimentkit.text.features import TweetVectorizer, char_document, word_ngrams
from sentimentkit.text.preprocess import tokenize

TEXTS = [
    "I love this so much :)",
    "I do not love this at all!!!",
    "meeting at 10am with @user about http://x.co",
    "worst. day. EVER #fail",
    "love love love",
    "nothing to see here",
]


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
