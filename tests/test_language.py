"""The language guard (sentimentkit/text/language.py): texts the model cannot read are flagged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit.config import Settings
from sentimentkit.insights.build import build_insights
from sentimentkit.serving.base import BasePredictor
from sentimentkit.text import _lookup
from sentimentkit.text import language as lang_id
from sentimentkit.text.preprocess import chunk_plain_tokens

MIXED_SET = Path(__file__).parent / "data" / "mixed.csv"  # real tweets among them
GERMAN = "Der Flug war eine Katastrophe"
CHINESE = "这家餐厅的菜很难吃，服务也很差"
SPANISH = "La comida estaba muy buena pero el servicio fue lento y caro"
ENGLISH = [
    "I love this so much, best day ever!",
    "The food was great but the service was painfully slow",
    "@user can't believe the game last night #lakers",
    "Sunrise. @ Miami South Beach,Florida",
    "Relaxing after thanksgiving, but back at it after lunch @ Buffalo Wild Wings",
    "Fall River Lake sunset @ Fall River State Park",
]


def test_german_and_chinese_are_flagged_with_their_language(predictor) -> None:
    records = predictor.score([GERMAN, CHINESE, SPANISH])
    assert [r["language"] for r in records] == ["de", "zh", "es"]
    assert all(r["language_confidence"] > 0.5 for r in records)
    assert all(r["sentiment"] is not None for r in records)  # still scored


def test_english_tweets_are_english(predictor) -> None:
    records = predictor.score(ENGLISH)
    assert [r["language"] for r in records] == ["en"] * len(ENGLISH)


def test_every_backend_gets_a_language_from_the_function_word_test() -> None:
    class Constant(BasePredictor):
        card = {"version": "test"}

        def predict_proba(self, texts):
            return np.tile([0.2, 0.5, 0.3], (len(texts), 1))

    records = Constant().score([GERMAN, "I love it, thanks for everything", ""])
    assert [r["language"] for r in records] == ["de", "en", None]
    assert records[1]["language_confidence"] is None  # cleared by the cheap test: detector not asked


def test_cheap_test_sends_few_english_texts_and_catches_foreign_ones(predictor) -> None:
    vocab_test = lang_id.VocabularyTest(predictor._vectorizer.word_vectorizer_.vocabulary_)
    texts = [*ENGLISH, GERMAN, CHINESE, SPANISH]
    _, table, tids, lengths = predictor._vectorizer.transform_dot_ids(texts, predictor._coef_t)
    suspect = vocab_test.suspect(table, tids, lengths)
    assert suspect.tolist() == [False] * len(ENGLISH) + [True, True, True]


def test_short_names_are_not_sent_to_the_detector() -> None:
    assert lang_id.detect("#firstselfie2018 @ Murrieta, California") == lang_id.ENGLISH_UNCHECKED
    assert lang_id.detect(CHINESE).code == "zh"  # one "word", but not Latin script


def test_non_latin_share() -> None:
    assert lang_id.non_latin_share("hello") == 0.0
    assert lang_id.non_latin_share("Café naïve Việt") == 0.0
    assert lang_id.non_latin_share("好的 ok") == 0.5
    assert lang_id.non_latin_share("😀😀") == 0.0


def test_languages_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().languages == ("en",)
    monkeypatch.setenv("SENTIMENTKIT_LANGUAGES", "en, DE")
    assert Settings.from_env().languages == ("en", "de")


def _scored(languages: list[str | None]) -> pd.DataFrame:
    n = len(languages)
    return pd.DataFrame({
        "text": [f"text number {i}" for i in range(n)],
        "sentiment": ["positive"] * (n - 1) + ["negative"],
        "confidence": [0.9] * n, "p_negative": [0.05] * n, "p_neutral": [0.05] * n, "p_positive": [0.9] * n,
        "uncertain": [False] * n, "error": [None] * n, "language": languages,
    })  # fmt: skip


def test_insights_leave_other_languages_out_by_default() -> None:
    scored = _scored(["en", "en", "de", "zh", "en"])
    ins = build_insights(scored, "text", date_column=None, group_column=None, languages=("en",))
    assert ins.counts == {"negative": 1, "neutral": 0, "positive": 2}
    assert any("2 rows are in languages the model does not read (de 1, zh 1)" in n for n in ins.notes)
    assert not ins.warnings
    counted = build_insights(
        scored, "text", date_column=None, group_column=None, languages=("en", "de", "zh")
    )
    assert counted.counts == {"negative": 1, "neutral": 0, "positive": 4}


def test_compiled_token_flags_equal_the_python_ones(predictor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The compiled `token_flags` and the Python maps give the same six flags, on real tweet tokens
    and on the odd ones (negation marks, @/#/<, digits, other scripts, accents, emoji, empty)."""
    speedups = _lookup.compiled()
    if speedups is None or not hasattr(speedups, "token_flags"):
        pytest.skip("the compiled loops are not built")
    vocabulary = predictor._vectorizer.word_vectorizer_.vocabulary_
    texts = [*pd.read_csv(MIXED_SET)["text"].astype(str), GERMAN, CHINESE, SPANISH, *ENGLISH]
    tokens = sorted({t for text in texts for chunk in text.split() for t in chunk_plain_tokens(chunk)[0]})
    tokens += ["good_NEG", "_NEG", "", "#", "@user", "#tag", "<url>", "x2", "2x", "½", "²", "_", "café",
               "Việt", "好的", "Привет", "ok好", "😀", "a😀", "der", "und_NEG", "the", "i'm", "#好"]  # fmt: skip
    test = lang_id.VocabularyTest(vocabulary)
    fast = test._token_flags(tokens)
    monkeypatch.setattr(_lookup, "_speedups", None)
    slow = test._token_flags(tokens)
    assert fast.shape == slow.shape == (6, len(tokens))
    mismatched = [tokens[i] for i in np.flatnonzero((fast != slow).any(axis=0))]
    assert not mismatched
    assert fast[1].sum() > len(tokens) // 2 and fast[2].sum() > 0 and fast[3].sum() >= 3  # it saw words
