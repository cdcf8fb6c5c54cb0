"""Teaching a model a domain (issue 22): the folded head, its safe loading, explanations, the
correction-only model selection and the review-queue strategies. Tiny inline data only."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from sentimentkit.data import near_duplicate_key
from sentimentkit.feedback.review import STRATEGIES, margins, select_for_review
from sentimentkit.models.card import ModelError, card_file
from sentimentkit.models.domain import DomainAdapted, class_balanced_weights, fit_head
from sentimentkit.models.pipeline import build_pipeline, load_model, sha256_file
from sentimentkit.serving.loader import load_verified
from sentimentkit.serving.predictor import Predictor
from sentimentkit.training.domain import ANCHOR_WEIGHT, anchor_sample, fit_domain_model, save_domain_model
from tests.conftest import TINY_LABELS, TINY_TEXTS

# A "domain" where the base model is wrong: stock talk, where "down" and "crash" are negative and
# "record high" positive, and plain news is neutral.
DOMAIN_TEXTS = [
    "$AAPL down 5% today, shares crash",
    "apple stock crash again, down big",
    "sold my $AAPL, it keeps going down",
    "$AAPL at a record high, great quarter",
    "apple shares record high after earnings beat",
    "record high for $AAPL, love it",
    "apple event scheduled for tuesday",
    "$AAPL earnings call at 5pm",
    "apple opens a store in the city centre",
] * 2
DOMAIN_LABELS = (["negative"] * 3 + ["positive"] * 3 + ["neutral"] * 3) * 2


@pytest.fixture(scope="module")
def base() -> Pipeline:
    return build_pipeline({"C": 10.0, "word_min_df": 1, "char_min_df": 1}).fit(TINY_TEXTS, TINY_LABELS)


@pytest.fixture(scope="module")
def adapted(base: Pipeline) -> tuple[Pipeline, dict]:
    corrections = pd.DataFrame({"text": DOMAIN_TEXTS, "label": DOMAIN_LABELS})
    return fit_domain_model(base, corrections, seed=0, grid=(0.1, 10.0))


@pytest.fixture()
def saved(adapted: tuple[Pipeline, dict], tmp_path: Path) -> Path:
    model, report = adapted
    path = tmp_path / "domain.pkl"
    save_domain_model(model, path, report)
    return path


# --- the folded head ---------------------------------------------------------------------------
def test_the_folded_model_equals_the_head_over_the_base_scores(base: Pipeline) -> None:
    """One linear model gives the head's probabilities exactly (the fold loses nothing)."""
    from scipy.special import softmax

    from sentimentkit.models.domain import base_scores, fit_head_on_features

    X = base.named_steps["features"].transform(DOMAIN_TEXTS)
    head = fit_head_on_features(base, X, DOMAIN_LABELS, C=1.0)
    folded = fit_head(base, DOMAIN_TEXTS, DOMAIN_LABELS, C=1.0)
    expected = softmax(head.logits(base_scores(base, X), X), axis=1)
    np.testing.assert_allclose(folded.predict_proba(DOMAIN_TEXTS), expected, atol=1e-9)
    assert type(folded.named_steps["clf"]) is DomainAdapted
    assert folded.named_steps["features"] is base.named_steps["features"]  # features not refitted
    # With no pull at all (C -> 0) the head is the base model itself.
    np.testing.assert_allclose(
        fit_head(base, DOMAIN_TEXTS, DOMAIN_LABELS, C=1e-9).predict_proba(DOMAIN_TEXTS),
        base.predict_proba(DOMAIN_TEXTS),
        atol=1e-6,
    )


def test_the_head_learns_the_domain(base: Pipeline, adapted: tuple[Pipeline, dict]) -> None:
    model, _ = adapted
    before = np.mean(np.asarray(base.predict(DOMAIN_TEXTS)) == np.asarray(DOMAIN_LABELS))
    after = np.mean(np.asarray(model.predict(DOMAIN_TEXTS)) == np.asarray(DOMAIN_LABELS))
    assert before < 0.8 and after == 1.0


def test_the_report_records_the_choice_made_on_the_corrections(adapted: tuple[Pipeline, dict]) -> None:
    _, report = adapted
    assert report["n_corrections"] == len(DOMAIN_TEXTS)
    assert report["n_groups"] == 9  # each text twice: 9 near-duplicate groups
    assert set(report["cv_avg_recall"]) == {"0.1", "10.0"}
    best = max(report["cv_avg_recall"].values())
    assert report["chosen"]["cv_avg_recall"] == best
    assert report["cv_avg_recall"][str(report["chosen"]["C"])] == best
    assert "class-balanced" in report["weighting"]


def test_by_default_c_is_fixed_and_no_cross_validation_runs(base: Pipeline, monkeypatch) -> None:
    """The default fit is one fit at DEFAULT_C (chosen on development splits); a grid of several
    values brings the cross-validation back (the fixture above)."""
    from sentimentkit.training import domain

    monkeypatch.setattr(domain, "cross_validate", lambda *a, **k: pytest.fail("cross-validation ran"))
    model, report = fit_domain_model(base, pd.DataFrame({"text": DOMAIN_TEXTS, "label": DOMAIN_LABELS}))
    assert (
        report["chosen"] == {"C": domain.DEFAULT_C, "cv_avg_recall": None} and report["cv_avg_recall"] == {}
    )
    assert "fixed C" in report["selection"] and report["anchor"] == {"texts": 0, "weight": 0.0}
    assert list(model.predict(DOMAIN_TEXTS)) == DOMAIN_LABELS


def _kl_from_base(base: Pipeline, model: Pipeline, texts: list[str]) -> float:
    p, q = base.predict_proba(texts), model.predict_proba(texts)
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


def test_the_anchor_keeps_the_base_answers_on_general_text_and_still_learns_the_domain(
    base: Pipeline,
) -> None:
    """Anchored on general texts (here: the base's own training tweets), the head moves the base
    model's answers there much less, and still learns every correction."""
    corrections = pd.DataFrame({"text": DOMAIN_TEXTS, "label": DOMAIN_LABELS})
    free, _ = fit_domain_model(base, corrections, anchor_texts=None)
    anchored, report = fit_domain_model(base, corrections, anchor_texts=TINY_TEXTS + ["", "  "])
    assert report["anchor"] == {"texts": len(set(TINY_TEXTS)), "weight": ANCHOR_WEIGHT}
    assert _kl_from_base(base, anchored, TINY_TEXTS) < 0.5 * _kl_from_base(base, free, TINY_TEXTS)
    assert list(anchored.predict(DOMAIN_TEXTS)) == DOMAIN_LABELS
    # A zero weight is no anchor at all; the card records what was used.
    unweighted, _ = fit_domain_model(base, corrections, anchor_texts=TINY_TEXTS, anchor_weight=0.0)
    np.testing.assert_allclose(
        unweighted.predict_proba(TINY_TEXTS), free.predict_proba(TINY_TEXTS), atol=1e-9
    )


def test_out_of_fold_answers_each_judged_row_by_a_head_that_never_saw_it_or_its_reposts(
    base: Pipeline, monkeypatch
) -> None:
    """The retrain gate's cross-validation: every judged row is answered exactly once, by a head whose
    training rows hold neither it nor a re-post of it; unjudged rows only ever train; and the answers
    are that head's."""
    from sentimentkit.training import domain

    corrections = pd.DataFrame({"text": DOMAIN_TEXTS, "label": DOMAIN_LABELS})  # each text twice
    judged = np.array([i % 9 != 0 for i in range(len(DOMAIN_TEXTS))])  # both copies of text 0 unjudged
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
    real = domain._predict_fold

    def spy(base, X, y, groups, train, test, *rest):  # noqa: ANN001, ANN202 - the private signature
        answered = real(base, X, y, groups, train, test, *rest)
        seen.append((train, test, answered))
        return answered

    monkeypatch.setattr(domain, "_predict_fold", spy)
    answers, folds = domain.out_of_fold(base, corrections, judged, seed=0, n_folds=4)
    assert folds == 4 and len(seen) == 4 and len(answers) == judged.sum()
    tested = np.concatenate([test for _, test, _ in seen])
    assert sorted(tested.tolist()) == np.flatnonzero(judged).tolist()  # each judged row once
    keys = [near_duplicate_key(t) for t in DOMAIN_TEXTS]
    for train, test, _ in seen:
        assert not {keys[i] for i in train} & {keys[i] for i in test}  # no re-post on both sides
        assert {0, 9} <= set(train.tolist())  # the unjudged rows always train
    by_row = {int(i): str(a) for _, test, answered in seen for i, a in zip(test, answered)}
    assert answers == [by_row[i] for i in np.flatnonzero(judged)]
    # What a separately fitted model on one fold's training rows answers there (the same recipe).
    train, test, answered = seen[0]
    refit, _ = fit_domain_model(base, corrections.iloc[train], seed=0)
    assert list(refit.predict([DOMAIN_TEXTS[i] for i in test])) == list(answered)


def test_out_of_fold_with_one_group_to_judge_uses_one_fold_and_an_unfittable_fold_answers_none(
    base: Pipeline,
) -> None:
    from sentimentkit.training.domain import out_of_fold

    corrections = pd.DataFrame({"text": DOMAIN_TEXTS, "label": DOMAIN_LABELS})
    judged = np.array([i in (1, 10) for i in range(len(DOMAIN_TEXTS))])  # one text and its copy
    answers, folds = out_of_fold(base, corrections, judged)
    others, _ = fit_domain_model(base, corrections[~judged])  # the recipe on every other correction
    assert folds == 1 and answers == list(others.predict([DOMAIN_TEXTS[1], DOMAIN_TEXTS[10]]))
    assert out_of_fold(base, corrections, np.zeros(len(DOMAIN_TEXTS), bool)) == ([], 0)
    # Judging every negative at once: the fold's training rows hold no negative, nothing can answer.
    negatives = corrections["label"].eq("negative").to_numpy()
    answers, folds = out_of_fold(base, corrections, negatives, n_folds=1)
    assert folds == 1 and answers == [None] * int(negatives.sum())


def test_the_anchor_sample_is_seeded_distinct_and_capped() -> None:
    texts = [f"tweet {i}" for i in range(50)] * 2 + ["", None]
    first = anchor_sample(texts, seed=3, n=10)
    assert first == anchor_sample(texts, seed=3, n=10) and len(set(first)) == 10
    assert first != anchor_sample(texts, seed=4, n=10)
    assert anchor_sample(texts, n=1000) == sorted({f"tweet {i}" for i in range(50)})


def test_class_balanced_weights_count_classes_and_reposts_once() -> None:
    w = class_balanced_weights(["a", "a", "a", "b"], groups=["x", "x", "y", "z"])
    assert w.mean() == pytest.approx(1.0)
    assert w[:3].sum() == pytest.approx(w[3])  # each class the same total
    assert w[0] == pytest.approx(w[1]) and w[0] + w[1] == pytest.approx(w[2])  # a group counts as one


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"text": ["a"]}), "no label column"),
        (pd.DataFrame({"text": ["good", "bad"], "label": ["positive", "great"]}), "row 2 has label 'great'"),
        (pd.DataFrame({"text": ["good", " "], "label": ["positive", "negative"]}), "row 2 has no text"),
        (
            pd.DataFrame({"text": DOMAIN_TEXTS[:6], "label": DOMAIN_LABELS[:6]}),
            "too few corrections of neutral",
        ),
    ],
)
def test_unusable_corrections_get_one_clear_line(base: Pipeline, frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        fit_domain_model(base, frame)
    assert "\n" not in str(info.value)


# --- saving, safe loading, serving -------------------------------------------------------------
def test_it_round_trips_through_the_safe_loader_and_serves(
    adapted: tuple[Pipeline, dict], saved: Path, base: Pipeline
) -> None:
    model, report = adapted
    loaded, card = load_model(saved)
    assert type(loaded.named_steps["clf"]) is DomainAdapted
    predictor = load_verified(saved)
    assert isinstance(predictor, Predictor)  # served by the same predictor as the default model
    np.testing.assert_allclose(
        predictor.predict_proba(DOMAIN_TEXTS), model.predict_proba(DOMAIN_TEXTS), atol=1e-9
    )
    assert predictor.predict(DOMAIN_TEXTS) == DOMAIN_LABELS
    # The card says what it is.
    assert card["training_data"]["base_model"]["sha256"] == report["base_model_sha256"]
    assert (
        report["base_model_sha256"]
        == __import__("hashlib").sha256(pickle.dumps(base, protocol=5)).hexdigest()
    )
    assert card["training_data"]["corrections"]["rows"] == len(DOMAIN_TEXTS)
    assert card["hyperparameters"]["C"] == report["chosen"]["C"]
    assert card["files"]["domain.pkl"] == sha256_file(saved)


def test_the_base_model_is_recorded_by_the_sha256_of_its_file(tiny_model_path: Path) -> None:
    _, report = fit_domain_model(tiny_model_path, pd.DataFrame({"text": DOMAIN_TEXTS, "label": DOMAIN_LABELS}),
                                 grid=(1.0,))  # fmt: skip
    assert report["base_model_sha256"] == sha256_file(tiny_model_path)


def _plant(model: Path, blob: bytes) -> None:
    """Replace the pickle and update its card's SHA-256 (an attacker who can write the folder)."""
    model.write_bytes(blob)
    card = json.loads(card_file(model).read_text())
    card["files"] = {model.name: sha256_file(model)}
    card_file(model).write_text(json.dumps(card))


class NotAllowed(DomainAdapted):
    """A subclass defined here: same state, but a class the allow-list does not name."""


def test_unknown_classes_are_still_refused(adapted: tuple[Pipeline, dict], saved: Path) -> None:
    model, _ = adapted
    sneaky = pickle.loads(pickle.dumps(model))
    sneaky.named_steps["clf"].__class__ = NotAllowed
    _plant(saved, pickle.dumps(sneaky, protocol=5))
    with pytest.raises(ModelError, match="tests.test_domain.NotAllowed"):
        load_model(saved)


def test_a_tampered_domain_classifier_is_refused(adapted: tuple[Pipeline, dict], saved: Path) -> None:
    model, _ = adapted
    # Changed bytes without updating the card: the SHA-256 check refuses first.
    saved.write_bytes(saved.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelError, match="does not match the card"):
        load_model(saved)
    # Allowed classes, card updated, but base weights that do not fit the model: not served.
    broken = pickle.loads(pickle.dumps(model))
    broken.named_steps["clf"].base_coef_ = np.ascontiguousarray(broken.named_steps["clf"].base_coef_[:, :3])
    _plant(saved, pickle.dumps(broken, protocol=5))
    with pytest.raises(ModelError, match="base weights do not fit"):
        load_model(saved)
    broken.named_steps["clf"].base_coef_ = np.full_like(model.named_steps["clf"].base_coef_, np.nan)
    _plant(saved, pickle.dumps(broken, protocol=5))
    with pytest.raises(ModelError, match="base weights are not all finite"):
        load_model(saved)


# --- explanations -----------------------------------------------------------------------------
def test_explain_splits_exactly_into_base_and_domain_adjustment(saved: Path, base: Pipeline) -> None:
    predictor = Predictor.load(saved)
    text = "$AAPL down 5% today, shares crash"
    out = predictor.explain(text)
    assert out["label"] == "negative"
    weights = np.array([t["weight"] for t in out["tokens"]])
    assert out["logit"] == pytest.approx(out["bias"] + weights.sum())
    base_part, adjustment = out["domain"]["base"], out["domain"]["adjustment"]
    np.testing.assert_allclose(np.add(base_part["weights"], adjustment["weights"]), weights, atol=1e-9)
    assert base_part["bias"] + adjustment["bias"] == pytest.approx(out["bias"])
    assert base_part["logit"] + adjustment["logit"] == pytest.approx(out["logit"])
    # The base part is exactly what the base model itself explains.
    base_path = saved.parent / "base.pkl"
    from sentimentkit.models.pipeline import save_model

    save_model(base, base_path, {"version": "base"})
    plain = Predictor.load(base_path).explain(text, label="negative")
    np.testing.assert_allclose(base_part["weights"], [t["weight"] for t in plain["tokens"]], atol=1e-9)
    assert base_part["bias"] == pytest.approx(plain["bias"])
    assert "domain" not in plain
    # Many texts at once (insights): the folded model's exact per-term contributions still add up.
    batch = predictor.explain_batch([text])
    k = predictor.labels.index("negative")
    assert batch.weights[k].sum() + batch.bias[k] == pytest.approx(out["logit"])


# --- review strategies ------------------------------------------------------------------------
POOL = [
    "RT @a: apple stock news http://t.co/x",
    "RT @b: apple stock news http://t.co/y",  # a re-post of the first
    "apple stock news!",  # the same words again
    "new iphone battery lasts all day",
    "my mac is fine",
    "tim cook speaks at the event",
]
PROBA = np.array(
    [
        [0.34, 0.33, 0.33],  # most uncertain
        [0.35, 0.33, 0.32],
        [0.36, 0.32, 0.32],
        [0.40, 0.35, 0.25],
        [0.05, 0.90, 0.05],  # confident
        [0.50, 0.30, 0.20],
    ]
)


def test_margins() -> None:
    np.testing.assert_allclose(margins(PROBA), [0.01, 0.02, 0.04, 0.05, 0.85, 0.20])
    with pytest.raises(ValueError, match="probabilities"):
        margins(np.array([0.2, 0.8]))


def test_uncertain_takes_the_lowest_margins() -> None:
    assert select_for_review(POOL, PROBA, 3, "uncertain").tolist() == [0, 1, 2]


def test_diverse_collapses_reposts_and_spreads_over_words() -> None:
    picked = select_for_review(POOL, PROBA, 3, "diverse").tolist()
    assert picked[0] == 0  # the least certain first
    assert 1 not in picked  # a re-post of a pick (same near-duplicate key) is never picked
    assert 2 not in picked  # the same words as a pick lose to different, nearly as uncertain texts
    assert picked == [0, 3, 5]
    # 6 texts, 5 near-duplicate groups (the re-post joins its original; "news!" differs by its "!").
    assert sorted(select_for_review(POOL, PROBA, 10, "diverse").tolist()) == [0, 2, 3, 4, 5]


def test_representative_takes_one_text_per_topic_nearest_its_centre_biggest_first() -> None:
    """Three topics (battery, stock, store) with re-posts: k = 3 gives one text of each topic, the
    most re-posted topic first, never two copies of one text, and the same picks run after run."""
    battery = ["battery dies fast", "battery dies so fast", "the battery dies fast again"]
    stock = ["$AAPL stock up today", "$AAPL stock up again today"]
    store = ["new store opens downtown"]
    texts = battery + ["@a battery dies fast http://t.co/x"] * 3 + stock + store
    proba = np.tile([0.2, 0.5, 0.3], (len(texts), 1))
    picked = select_for_review(texts, proba, 3, "representative").tolist()
    assert picked == select_for_review(texts, proba, 3, "representative").tolist()
    topics = [
        "battery" if "battery" in texts[i] else "stock" if "AAPL" in texts[i] else "store" for i in picked
    ]
    assert topics == ["battery", "stock", "store"]  # by the weight of each cluster: re-posts count
    # More than there are near-duplicate groups: each group once (the re-posts join their original).
    everything = select_for_review(texts, proba, 99, "representative").tolist()
    assert len(everything) == 6 and len({near_duplicate_key(texts[i]) for i in everything}) == 6
    # Texts without a single word: still one pick per text, no error.
    assert len(select_for_review(["!!!", "???"], proba[:2], 1, "representative")) == 1


def test_balanced_leans_to_the_topics_the_model_is_unsure_of() -> None:
    """The same three topics: the model is sure of the much re-posted battery texts and unsure of the
    rest. `representative` puts battery first (by weight, re-posts count); `balanced` weighs each text
    by how unsure the model is, so with k = 2 it spends neither label on battery, and with uniform
    uncertainty it picks what `representative` picks. Deterministic; one text per near-duplicate group."""
    battery = ["battery dies fast", "battery dies so fast", "the battery dies fast again"]
    stock = ["$AAPL stock up today", "$AAPL stock up again today"]
    store = ["new store opens downtown", "new store opens downtown soon"]
    texts = battery + ["@a battery dies fast http://t.co/x"] * 3 + stock + store
    sure, unsure = [0.98, 0.01, 0.01], [0.3, 0.4, 0.3]
    proba = np.asarray([sure if "battery" in t else unsure for t in texts])

    def topics(picked: list[int]) -> list[str]:
        return [
            "battery" if "battery" in texts[i] else "stock" if "AAPL" in texts[i] else "store" for i in picked
        ]

    assert topics(select_for_review(texts, proba, 3, "representative").tolist())[0] == "battery"
    picked = select_for_review(texts, proba, 2, "balanced").tolist()
    assert picked == select_for_review(texts, proba, 2, "balanced").tolist()
    assert sorted(topics(picked)) == ["stock", "store"]
    uniform = np.tile([0.2, 0.5, 0.3], (len(texts), 1))
    assert (select_for_review(texts, uniform, 3, "balanced").tolist()
            == select_for_review(texts, uniform, 3, "representative").tolist())  # fmt: skip
    everything = select_for_review(texts, proba, 99, "balanced").tolist()
    assert len({near_duplicate_key(texts[i]) for i in everything}) == len(everything) == 7
    # Probabilities no model gives: one line, whatever the strategy.
    for broken in (np.where(np.arange(len(texts))[:, None] == 2, np.nan, proba), -proba):
        with pytest.raises(ValueError, match="must be finite and not negative"):
            select_for_review(texts, broken, 2, "balanced")
    # A model sure of everything (margin 1): representative's picks (re-posts count, battery first).
    certain = np.tile([1.0, 0.0, 0.0], (len(texts), 1))
    assert (select_for_review(texts, certain, 3, "balanced").tolist()
            == select_for_review(texts, certain, 3, "representative").tolist())  # fmt: skip
    assert "battery" in texts[select_for_review(texts, certain, 3, "balanced")[0]]


def test_random_is_seeded_and_without_replacement() -> None:
    a = select_for_review(POOL, PROBA, 4, "random", seed=1)
    assert a.tolist() == select_for_review(POOL, PROBA, 4, "random", seed=1).tolist()
    assert len(set(a.tolist())) == 4
    assert len(select_for_review(POOL, PROBA, 99, "random")) == len(POOL)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_handles_empty_and_zero(strategy: str) -> None:
    assert len(select_for_review([], np.zeros((0, 3)), 5, strategy)) == 0
    assert len(select_for_review(POOL, PROBA, 0, strategy)) == 0


def test_bad_strategy_or_inputs_get_one_line() -> None:
    with pytest.raises(
        ValueError, match="unknown review strategy 'best'; choose one of balanced, representative, diverse"
    ):
        select_for_review(POOL, PROBA, 2, "best")
    with pytest.raises(ValueError, match="6 texts but 2 rows"):
        select_for_review(POOL, PROBA[:2], 2)


def test_representative_samples_a_big_pool(monkeypatch) -> None:
    """Past MAX_CLUSTERED near-duplicate groups, the clusters are found on a seeded sample: k picks,
    distinct, the same run after run."""
    from sentimentkit.feedback import review

    monkeypatch.setattr(review, "MAX_CLUSTERED", 5)
    texts = [f"topic {w} number {i}" for i, w in enumerate(["red", "green", "blue", "cyan"] * 3)]
    proba = np.tile([0.2, 0.5, 0.3], (len(texts), 1))
    picked = select_for_review(texts, proba, 3, "representative", seed=2).tolist()
    assert (
        len(set(picked)) == 3
        and picked == select_for_review(texts, proba, 3, "representative", seed=2).tolist()
    )
