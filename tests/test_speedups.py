"""The compiled inner loops (`sentimentkit/text/_speedups.c`) against the NumPy code they replace.

Both must give the same token ids and feature structure, and values equal up to float rounding
(the compiled loops sum in another order), on real tweets and on adversarial text. The NumPy code
is itself checked against scikit-learn in test_features.py, which runs every test on both.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sentimentkit.serving.predictor import Predictor
from sentimentkit.text import _lookup, preprocess
from tests.conftest import COMMITTED_MODEL

compiled = pytest.mark.skipif(_lookup._speedups is None, reason="the compiled loops are not built")

ODD_TEXTS = [
    "",
    "   ",
    "\u3000\x1c\x85\xa0",
    "not&#10;good &amp; not bad&nbsp;really",
    "can\u2019t \u2018wait\u2019 \u2019\u2019",
    "SOOOO GOOOD!!! #USA #Ⓐⓑ #日本 @bob http://x.co/a 12pm :) :-( 😡😡",
    "naïve ǅemal ĳssel İstanbul ß \ud800lone",
    "a" * 3000,
    " ".join(f"w{i}" for i in range(600)),
    "don't.like it, but never again... nothing: fine",
]


@pytest.fixture(scope="module")
def tweets(shared_data) -> list[str]:
    texts = pd.read_csv(shared_data / "test.csv", nrows=4000)["text"].tolist()
    unlabeled = shared_data.parent / "unlabeled" / "tweets.csv"
    if unlabeled.is_file():
        texts += pd.read_csv(unlabeled, nrows=4000, dtype=str, keep_default_na=False)["text"].tolist()
    return ODD_TEXTS + texts


@pytest.fixture(scope="module")
def committed() -> Predictor:
    return Predictor.load(COMMITTED_MODEL)


def _both(monkeypatch: pytest.MonkeyPatch, run):
    """`run(predictor)` on the compiled loops, then on the NumPy code, each on a fresh model."""
    compiled = run(Predictor.load(COMMITTED_MODEL))
    with monkeypatch.context() as patch:
        patch.setattr(_lookup, "_speedups", None)
        preprocess._chunk_cache.clear()
        numpy = run(Predictor.load(COMMITTED_MODEL))
    return compiled, numpy


def test_compiled_loops_are_built():
    """`pip install -e .` (README, scripts/setup-dev.sh) builds them; a silent build failure would
    make every speed figure here wrong, so the suite says so."""
    assert not os.environ.get("SENTIMENTKIT_PURE_PYTHON")
    assert _lookup._speedups is not None, (
        "the compiled loops (sentimentkit/text/_speedups.c) are not built: run pip install -e . with a C compiler"
    )


@compiled
def test_token_ids_and_matrices_equal_the_numpy_code(tweets, monkeypatch):
    def run(p: Predictor):
        vec = p._vectorizer
        table = vec._table()
        out = []
        for i in range(0, len(tweets), 1000):  # several calls: later ones meet cached chunks
            batch = tweets[i : i + 1000]
            tids, lengths = table.text_ids(batch)
            tokens = [
                [table_token(table, t) for t in tids[s : s + n]]
                for s, n in zip(np.cumsum(lengths) - lengths, lengths)
            ]
            out.append((tokens, vec.transform(batch)))
        return out

    compiled, numpy = _both(monkeypatch, run)
    for (tokens_c, X_c), (tokens_n, X_n) in zip(compiled, numpy):
        assert tokens_c == tokens_n
        assert np.array_equal(X_c.indptr, X_n.indptr)
        X_c.sort_indices()
        assert np.array_equal(X_c.indices, X_n.indices)  # the same features in every row
        np.testing.assert_allclose(X_c.data, X_n.data, rtol=5e-7, atol=0)  # a few float32 ulps


def table_token(table, tid: int) -> str:
    names = getattr(table, "_names_cache", None)
    if names is None or len(names) != len(table.index):
        names = table._names_cache = {v: k for k, v in table.index.items()}
    return names[int(tid)]


@compiled
def test_probabilities_equal_the_numpy_code(tweets, monkeypatch):
    compiled, numpy = _both(monkeypatch, lambda p: p.predict_proba(tweets))
    np.testing.assert_allclose(compiled, numpy, rtol=0, atol=1e-6)
    assert np.array_equal(compiled.argmax(axis=1), numpy.argmax(axis=1))


@compiled
def test_transform_dot_equals_the_matrix_product(tweets):
    p = Predictor.load(COMMITTED_MODEL)
    vec = p._vectorizer
    weights = np.random.default_rng(0).normal(size=(vec.n_features_, 4))
    X = vec.transform(tweets[:2000])
    np.testing.assert_allclose(vec.transform_dot(tweets[:2000], weights), X @ weights, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="weights must have shape"):
        vec.transform_dot(tweets[:3], weights[:-1])


@compiled
def test_char_gram_ids_equal_the_numpy_code(monkeypatch):
    vec = Predictor.load(COMMITTED_MODEL)._vectorizer
    grams = vec._char_grams()
    words = [
        "a",
        "ab",
        "naïve",
        "😡x",
        "#tag",
        "x",
        "<url>",
        "日本語",
        "\ud800lone",
        "",
        "abcdefghijklmnop" * 4,
    ]
    words *= 3  # more than the NumPy code's few-words threshold
    owners_c, ids_c = grams.ids(words)
    monkeypatch.setattr(_lookup, "_speedups", None)
    owners_n, ids_n = grams.ids(words)
    # the same (word, id) pairs; TweetVectorizer._token_entries orders them per word, stably
    order_c, order_n = np.argsort(owners_c, kind="stable"), np.argsort(owners_n, kind="stable")
    assert owners_c[order_c].tolist() == owners_n[order_n].tolist()
    assert ids_c[order_c].tolist() == ids_n[order_n].tolist()


@compiled
@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("aAbnot'’‘&;#@:.!? \t\n\u3000\x85\xa0😡éİ1")), max_size=40),
        max_size=8,
    )
)
def test_random_text_gives_the_numpy_codes_ids(committed, texts):
    vec = committed._vectorizer
    table = vec._table()
    tids, lengths = table.text_ids(texts)
    tokens, counts = preprocess.tokenize_many(texts)
    assert lengths.tolist() == counts
    assert tids.tolist() == table.ids(tokens).tolist()


_EMPTY2, _EMPTY32 = np.zeros((0, 2), np.int64), np.zeros(0, np.uint32)


@compiled
def test_bad_arguments_are_errors_not_crashes():
    from sentimentkit.text import _speedups

    with pytest.raises(TypeError):
        _speedups.chunk_lookup(
            ["ok", 3], preprocess.clean_text, np.zeros((4, 2), np.int64), _EMPTY2, _EMPTY32
        )
    with pytest.raises(ValueError, match="power of two"):
        _speedups.chunk_lookup(["ok"], preprocess.clean_text, np.zeros((3, 2), np.int64), _EMPTY2, _EMPTY32)
    with pytest.raises(TypeError):
        _speedups.lookup("not a list", {})
    grams = Predictor.load(COMMITTED_MODEL)._vectorizer._char_grams()
    small = np.empty(1, dtype=np.int64), np.empty(1, dtype=np.int32)
    with pytest.raises(ValueError, match="too small"):
        index = grams.index
        _speedups.char_gram_ids(
            ["abcdef"], grams.code_of, grams.bits, grams.length_shift, grams.min_n, grams.max_n,
            index.keys, index.values, index.bits, *small,
        )  # fmt: skip


@compiled
def test_a_single_text_scores_exactly_as_in_a_batch(tweets):
    """With the compiled loops one text takes the batch path's row computation: same numbers."""
    p = Predictor.load(COMMITTED_MODEL)
    texts = tweets[:300]
    assert np.array_equal(np.array([p.predict_proba(t) for t in texts]), p.predict_proba(texts))


@compiled
def test_the_chunk_table_verifies_every_match_and_bounds():
    """chunk_lookup trusts no hash: a slot whose chunk text differs (a collision), or points past
    the arrays it was given (a reader holding an older version of them), reads as missing."""
    from sentimentkit.text import _speedups

    chunks = _lookup.ChunkIds()
    chunks.names += ["abc", "déf"]
    chunks._mirror(["abc", "déf"], 0)

    def look(texts, where=None, points=None):
        ids, counts, missing = _speedups.chunk_lookup(
            texts,
            preprocess.clean_text,
            chunks.slots,
            chunks.where if where is None else where,
            chunks.points if points is None else points,
        )
        return (
            np.frombuffer(ids, dtype=np.int64).tolist(),
            np.frombuffer(counts, dtype=np.int64).tolist(),
            missing,
        )

    assert look(["abc déf x", "", " déf\u3000abc "]) == ([0, 1, -1, 1, 0], [3, 0, 2], ["x"])
    assert look(["abc\u2019s &amp; déf"]) == ([-1, -1, 1], [3], ["abc's", "&"])  # cleaned first
    other = chunks.points.copy()
    other[:3] = np.frombuffer("abd".encode("utf-32-le"), dtype=np.uint32)  # same hash slot, other text
    assert look(["abc"], points=other) == ([-1], [1], ["abc"])
    assert look(["abc déf"], where=chunks.where[:1].copy()) == ([0, -1], [2], ["déf"])
    assert look(["déf"], points=chunks.points[:4].copy()) == ([-1], [1], ["déf"])


@compiled
def test_the_chunk_table_grows_and_finds_every_chunk():

    chunks = _lookup.ChunkIds()
    names = [f"w{i}é" if i % 3 else f"w{i}" for i in range(5000)]
    for start in range(0, len(names), 700):  # several growths of the slots
        part = names[start : start + 700]
        chunks.names += part
        chunks._mirror(part, start)
    from sentimentkit.text import _speedups

    ids, _, missing = _speedups.chunk_lookup(
        [" ".join(names + ["nope"])], preprocess.clean_text, chunks.slots, chunks.where, chunks.points
    )
    assert np.frombuffer(ids, dtype=np.int64).tolist() == [*range(5000), -1] and missing == ["nope"]
    assert len(chunks.slots) >= 4 * 5000 // 2
