"""`retrain --learner domain`: the domain head over the champion, judged first on the user's domain
(by default out of fold over the corrections the champion was not fitted on; `--judge holdout`: the
held-out slices) with SemEval validation as a guard (`--guard-tolerance`), on a real
(throw-away SQLite) MLflow registry with the tiny champion of tests/mlops/test_retrain.py."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.data import near_duplicate_key
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL, registry, retrain
from sentimentkit.mlops.retrain import Gate, decide, paired_interval, paired_intervals
from tests.mlops.test_retrain import _scores, batch_frame, champion  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("registry_env")
THINGS = ["phone", "laptop", "tablet", "watch", "camera", "router"]
# Gadget talk the tiny champion has never seen: it calls nearly all of it one thing (AvgRec ~0.35).
GADGETS = {"negative": ["bricked", "laggy", "overheats", "drains", "freezes", "crashes"],
           "positive": ["snappy", "crisp", "flawless", "smooth", "speedy", "sleek"],
           "neutral": ["shipped", "announced", "listed", "released", "restocked", "unboxed"]}  # fmt: skip
# Slang where the champion's own words mean the opposite: learning it unlearns SemEval's sentiment.
SLANG = {"positive": ["terrible", "awful", "bad", "disgusting", "sad", "worst"],
         "negative": ["great", "wonderful", "fantastic", "happy", "good", "best"],
         "neutral": ["posted", "listed", "moved", "scheduled", "located", "noon"]}  # fmt: skip


def domain(words: dict[str, list[str]], template: str, n: int) -> pd.DataFrame:
    """`n` corrections, the classes taking turns."""
    per_class = {
        lab: [template.format(t=t, w=w) for w, t in itertools.product(ws, THINGS)]
        for lab, ws in words.items()
    }
    rows = [(text, lab) for group in zip(*per_class.values()) for text, lab in zip(group, per_class)]
    return pd.DataFrame(rows[:n], columns=["text", "label"])


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    """An empty incoming folder for batches."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def quiet(*args: object) -> None:
    pass


def test_gate_rule_with_the_guard_and_the_smallest_holdout() -> None:
    gate = Gate(margin=0.01, max_class_drop=0.5, guard_tolerance=0.03, min_heldout=10)
    better = {**_scores(0.9, (0.9, 0.9, 0.9)), "n": 20}
    worse = {**_scores(0.4, (0.4, 0.4, 0.4)), "n": 20}
    guard = {"champion": {"avg_recall": 0.70}, "challenger": {"avg_recall": 0.68}}  # a 2-point loss: allowed
    assert decide(worse, better, gate, guard)[0] is True
    guard["challenger"]["avg_recall"] = 0.60  # a 10-point loss: refused however good on the domain
    promote, reason = decide(worse, better, gate, guard)
    assert not promote and "guard refused" in reason and "loss +0.1000, tolerance 0.03" in reason
    # The cross-validated gate's rule with --domain-rule tolerance: not worse than the tolerance (3 points).
    slightly_worse = {**_scores(0.88, (0.88, 0.88, 0.88)), "n": 20}
    champion_scores = {**_scores(0.90, (0.9, 0.9, 0.9)), "n": 20}
    assert decide(champion_scores, slightly_worse, gate)[0] is False  # superiority: refused
    by_tolerance = Gate(max_class_drop=0.5, domain_rule="tolerance")
    promote, reason = decide(champion_scores, slightly_worse, by_tolerance, non_inferior=True)
    assert promote and "not worse than the tolerance" in reason and "tolerance 0.03" in reason
    clearly_worse = {**_scores(0.85, (0.85, 0.85, 0.85)), "n": 20}
    promote, reason = decide(champion_scores, clearly_worse, by_tolerance, non_inferior=True)
    assert not promote and "worse on the corrections by more than the tolerance" in reason
    # The default rule, by interval: kept only when the corrections show the challenger worse, the whole
    # 95% interval of its gain below 0, whatever the point estimate says.
    promote, reason = decide(
        champion_scores, clearly_worse, Gate(class_tolerance=0.5), non_inferior=True, interval=(-0.12, 0.01)
    )
    assert promote and "not shown worse on the corrections" in reason and "[-0.1200, +0.0100]" in reason
    promote, reason = decide(
        champion_scores, slightly_worse, Gate(), non_inferior=True, interval=(-0.05, -0.001)
    )
    assert not promote and "the corrections show it worse (its whole 95% interval is below 0)" in reason
    # An interval that is not a number keeps the champion (never a silent pass); a judged class missing
    # from the class intervals is a caller's error.
    promote, reason = decide(champion_scores, slightly_worse, Gate(), non_inferior=True,
                             interval=(float("nan"), float("nan")))  # fmt: skip
    assert not promote and "the interval of the gain could not be computed" in reason
    with pytest.raises(ValueError, match="needs each judged class's interval; none for"):
        decide(
            champion_scores,
            slightly_worse,
            Gate(),
            non_inferior=True,
            interval=(-0.1, 0.1),
            class_intervals={},
        )
    with pytest.raises(ValueError, match="needs the gain's interval"):
        decide(champion_scores, slightly_worse, Gate(), non_inferior=True, interval=())
    with pytest.raises(ValueError, match="needs the gain's interval"):  # the rule cannot be half applied
        decide(champion_scores, slightly_worse, Gate(), non_inferior=True)
    # With the class drops' intervals, a class is refused only when its drop is shown to pass the limit.
    f1_drop = {**_scores(0.91, (0.91, 0.91, 0.91), f1s=(0.9, 0.9, 0.8)), "n": 20}
    judged_champion = {**_scores(0.90, (0.9, 0.9, 0.9)), "n": 20}
    for cls in judged_champion["per_class"].values():
        cls["support"] = 60
    unsure = {"negative": [-0.1, 0.1], "neutral": [-0.1, 0.1], "positive": [-0.02, 0.2]}
    promote, reason = decide(judged_champion, f1_drop, Gate(), non_inferior=True, interval=(-0.1, 0.1),
                             class_intervals=unsure)  # fmt: skip
    assert promote and "no class's f1 is shown to drop by more than the limit" in reason
    shown = {**unsure, "positive": [0.06, 0.2]}
    promote, reason = decide(judged_champion, f1_drop, Gate(), non_inferior=True, interval=(-0.1, 0.1),
                             class_intervals=shown)  # fmt: skip
    assert not promote and "positive f1 is shown to drop by more than the limit" in reason
    assert "[+0.0600, +0.2000]" in reason
    # Two classes shown to drop: the message names the one with the larger proven drop.
    two = {**shown, "neutral": [0.09, 0.3]}
    promote, reason = decide(judged_champion, f1_drop, Gate(), non_inferior=True, interval=(-0.1, 0.1),
                             class_intervals=two)  # fmt: skip
    assert not promote and "kept the champion: neutral f1 is shown to drop" in reason
    nan_class = {**unsure, "positive": [float("nan"), float("nan")]}
    assert not decide(judged_champion, f1_drop, Gate(), non_inferior=True, interval=(-0.1, 0.1),
                      class_intervals=nan_class)[0]  # fmt: skip
    # The guard and the class rule still hold under the interval rule.
    promote, reason = decide(worse, better, Gate(), guard, non_inferior=True, interval=(0.1, 0.6))
    assert not promote and "guard refused" in reason
    assert decide(worse, better, Gate(), non_inferior=True, interval=(0.1, 0.6))[0] is True
    # A class's F1 may fall by up to Gate.class_tolerance (0.05) under the cross-validated rule,
    # by Gate.max_class_drop (0.02) under the held-out one.
    same = _scores(0.91, (0.91, 0.91, 0.91), f1s=(0.9, 0.9, 0.86))
    for scores in (champion_scores, same):
        for cls in scores["per_class"].values():
            cls["support"] = 60
    assert (
        decide(champion_scores, {**same, "n": 20}, Gate(), non_inferior=True, interval=(-0.1, 0.1))[0] is True
    )
    promote, reason = decide(champion_scores, {**_scores(0.91, (0.91, 0.91, 0.91), f1s=(0.9, 0.9, 0.8)), "n": 20},
                             Gate(), non_inferior=True, interval=(-0.1, 0.1))  # fmt: skip
    assert not promote and "positive f1 would drop too much" in reason and "(limit 0.05)" in reason
    promote, reason = decide(champion_scores, {**same, "n": 20}, Gate())
    assert not promote and "positive f1 would drop too much" in reason and "(limit 0.02)" in reason
    promote, reason = decide(worse, {**better, "n": 9}, gate)  # 9 held-out corrections: not enough
    assert not promote and "too few judged corrections (9; the gate needs 10)" in reason


def test_paired_intervals_give_the_gain_and_each_class_drop_from_the_same_draws() -> None:
    """Hand cases: identical answers give zero-width intervals; a challenger that finds every
    positive the champion missed gains and its positive F1 drop is -1 in every replicate; the gain
    interval is `paired_interval`'s; re-posts are drawn together (a text and its re-post: one group)."""
    truth = ["positive"] * 4 + ["negative"] * 4 + ["neutral"] * 4
    texts = [f"tweet number {i}" for i in range(12)]
    same = paired_intervals(truth, truth, truth, texts)
    assert same == {
        "gain": [0.0, 0.0],
        "drops": {"negative": [0.0, 0.0], "neutral": [0.0, 0.0], "positive": [0.0, 0.0]},
    }
    missed = ["neutral"] * 4 + truth[4:]  # misses every positive
    found = paired_intervals(truth, missed, truth, texts)
    assert found["drops"]["positive"] == [-1.0, -1.0] and found["drops"]["negative"] == [0.0, 0.0]
    assert found["gain"][0] > 0 and found["gain"] == paired_interval(truth, missed, truth, texts)
    recall = paired_intervals(truth, missed, truth, texts, class_metric="recall")
    assert recall["drops"]["positive"] == [-1.0, -1.0] and recall["gain"] == found["gain"]
    assert paired_intervals([], [], [], []) == {"gain": [0.0, 0.0], "drops": {}}
    assert paired_intervals(["other"], ["other"], ["other"], ["x"]) == {"gain": [0.0, 0.0], "drops": {}}
    with pytest.raises(ValueError, match="same length"):
        paired_intervals(truth, missed[:3], truth, texts)
    with pytest.raises(ValueError, match="class_metric must be f1 or recall"):
        paired_intervals(truth, missed, truth, texts, class_metric="precision")


def test_domain_learner_promotes_on_100_corrections_and_the_model_serves_and_explains(
    champion: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from sentimentkit.models.domain import DomainAdapted
    from sentimentkit.serving.loader import load_predictor
    from sentimentkit.training.domain import ANCHOR_WEIGHT, DEFAULT_C, N_ANCHOR, WEIGHTING_RULE

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    corrections = domain(GADGETS, "my new {t} {w} #gadget", 100)
    corrections.to_csv(incoming / "feedback-1.csv", index=False)
    report = retrain.retrain(str(incoming), log=quiet)  # the default learner is `domain`
    assert report["decision"] == "promoted", report["reason"]
    assert report["learner"]["name"] == "domain" and report["learner"]["weighting"] == WEIGHTING_RULE
    # Judged by 5-fold cross-validation on all 100 (none fitted into the base champion), fitted on all 100.
    assert report["learner"]["rows"] == report["domain"]["rows"] == 100
    assert report["domain"]["folds"] == 5 and report["domain"]["not_judged"] == 0
    assert "5-fold cross-validation" in report["domain"]["method"]
    assert (
        report["domain"]["rule"]
        == "non-inferiority: kept only when the whole 95% interval of the gain is below 0"
    )
    assert "tolerance" not in report["domain"] and report["domain"]["class_limit"] == 0.05
    assert report["domain"]["interval"].endswith("; gated on")
    # Each class's F1 drop with its interval, from the same bootstrap (the class rule by interval).
    drops = report["domain"]["f1_drop_interval95"]
    assert set(drops) == set(report["domain"]["labels"]) and all(low <= high for low, high in drops.values())
    # Anchored on the base training split's texts (the tiny champion's train.csv: fewer than N_ANCHOR).
    train_texts = pd.read_csv(champion / "train.csv")["text"]
    assert report["learner"]["anchor"] == {
        "texts": min(N_ANCHOR, train_texts.nunique()),
        "weight": ANCHOR_WEIGHT,
    }
    assert report["learner"]["C"] == DEFAULT_C
    held = report["domain"]
    assert held["rows"] >= Gate().min_heldout and held["challenger"] - held["champion"] == pytest.approx(
        held["gain"], abs=1e-3
    )
    assert held["gain"] > 0.3 and len(held["interval95"]) == 2 and held["interval95"][0] <= held["gain"]
    guard = report["guard"]
    assert guard["set"] == "validation.csv" and guard["tolerance"] == 0.03 and guard["passed"] is True
    assert "guard (validation) avg_recall" in report["reason"]
    tags = registry.client().get_model_version(TFIDF_MODEL, "2").tags
    assert (
        json.loads(tags["gate.domain"])["gain"] == held["gain"] and json.loads(tags["gate.guard"])["passed"]
    )
    assert registry.current_version(TFIDF_MODEL, CHAMPION) == "2"
    served = load_predictor(f"models:/{TFIDF_MODEL}@{CHAMPION}")  # the verified registry loader
    assert isinstance(served.pipeline.named_steps["clf"], DomainAdapted)
    assert served.card["retraining"]["learner"] == "domain"
    assert served.predict(["my old phone freezes #gadget", "my old camera is snappy #gadget"]) == [
        "negative",
        "positive",
    ]
    explained = served.explain("my old phone freezes #gadget")
    assert explained["label"] == "negative" and "domain" in explained
    # A later refit starts from the base model's recipe (the domain card keeps it), not the head's C.
    batch_frame(0).to_csv(incoming / "feedback-2.csv", index=False)
    later = retrain.retrain(str(incoming), log=quiet, learner="refit")
    assert later["status"] == "done" and later["learner"]["name"] == "refit"
    assert registry.client().get_model_version(TFIDF_MODEL, "3").tags["gate.decision"] == later["decision"]


def test_a_later_batch_is_judged_on_what_the_champion_never_saw_and_holdout_judging_is_an_option(
    champion: Path,  # noqa: F811
    tmp_path: Path,
    incoming: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from sentimentkit.cli import main
    from sentimentkit.serving.loader import load_predictor

    domain(GADGETS, "my new {t} {w} #gadget", 100).to_csv(incoming / "feedback-1.csv", index=False)
    assert retrain.retrain(str(incoming), log=quiet)["decision"] == "promoted"
    card = load_predictor(f"models:/{TFIDF_MODEL}@{CHAMPION}").card
    assert card["retraining"]["slices"] == ["train", "heldout"] and card["retraining"]["added_rows"] == 100
    later = domain(GADGETS, "got a {t} today and it is {w} #gadget", 60)
    later.to_csv(incoming / "feedback-2.csv", index=False)
    report = retrain.retrain(str(incoming), log=quiet)
    # Fitted on all 160; judged only on the 60 the champion (fitted on the first 100) never saw.
    assert report["learner"]["rows"] == 160 and report["added_rows"] == 160
    assert report["domain"]["rows"] == 60 and report["domain"]["not_judged"] == 100
    # --judge holdout (another state folder, so both batches count as new): the held-out slices only,
    # less those the champion was fitted on; the same batches, so the same slices.
    batches = json.loads((incoming / "_sentimentkit" / "manifest.json").read_text())["batches"]
    held = {b["file"]: b["heldout_rows"] for b in batches.values()}
    assert main(["retrain", "--incoming", str(incoming), "--state", str(tmp_path / "held"),
                 "--judge", "holdout"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["domain"]["set"] == "held-out corrections" and "folds" not in out["domain"]
    assert out["domain"]["rows"] + out["domain"]["not_judged"] == sum(held.values())
    assert out["learner"]["rows"] == 160 - sum(held.values())
    assert out["gate"]["judge"] == "holdout" and out["domain"]["rule"] == "superiority: gain >= 0.002"
    assert out["domain"]["margin"] == 0.002 and out["domain"]["class_limit"] == 0.02
    # --domain-rule tolerance brings the point-estimate rule back, and the report says which ran (the
    # champion has learnt all 160 by now: nothing to judge, the rule and its limits still reported).
    assert main(["retrain", "--incoming", str(incoming), "--state", str(tmp_path / "tol"),
                 "--domain-rule", "tolerance", "--domain-tolerance", "0.04"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["domain"]["rule"] == "non-inferiority: gain >= -0.04" and out["domain"]["tolerance"] == 0.04
    assert "interval" not in out["domain"]["rule"]
    # --domain-tolerance under the default rule would do nothing: refused in one line, exit 2.
    assert main(["retrain", "--incoming", str(incoming), "--state", str(tmp_path / "t2"),
                 "--domain-tolerance", "0.05"]) == 2  # fmt: skip
    assert "--domain-tolerance applies with --domain-rule tolerance" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["retrain", "--incoming", str(incoming), "--domain-rule", "vibes"])
    assert stopped.value.code == 2 and "invalid choice: 'vibes'" in capsys.readouterr().err
    assert main(["retrain", "--incoming", str(incoming), "--state", str(tmp_path / "x"), "--folds", "1"]) == 2
    assert "at least 2 folds" in capsys.readouterr().err
    bad_values = {("--domain-tolerance", "-0.1"): "--domain-tolerance must be 0 or more",
                  ("--class-tolerance", "nan"): "--class-tolerance must be a number, not nan",
                  ("--guard-tolerance", "inf"): "--guard-tolerance must be a number",
                  ("--holdout-share", "1.5"): "--holdout-share must be at least 0 and below 1",
                  ("--holdout-share", "-0.5"): "--holdout-share must be at least 0 and below 1"}  # fmt: skip
    for command in ("retrain", "watch"):  # watch refuses at once, not at its first batch
        for option, message in bad_values.items():
            args = [command, "--incoming", str(tmp_path / "empty"), *option]
            (tmp_path / "empty").mkdir(exist_ok=True)
            assert main([*args, *(["--cycles", "1"] if command == "watch" else [])]) == 2, option
            assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["retrain", "--incoming", str(incoming), "--judge", "none"])
    assert stopped.value.code == 2 and "invalid choice: 'none'" in capsys.readouterr().err


def test_the_guard_refuses_a_domain_model_that_unlearns_semeval_and_the_cli_options(
    champion: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sentimentkit.cli import main
    from sentimentkit.training import domain as domain_training

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    domain(SLANG, "that {t} was {w} lol #slang", 108).to_csv(incoming / "slang.csv", index=False)
    # Without its anchor on the base training texts the head learns the slang at SemEval's expense
    # (with the anchor it keeps SemEval's sentiment: test_the_anchor_keeps_the_guard below).
    monkeypatch.setattr(domain_training, "anchor_sample", lambda texts, seed=0, n=0: [])
    assert main(["retrain", "--incoming", str(incoming), "--learner", "domain"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "kept champion" and "the guard refused it" in out["reason"], out["reason"]
    assert out["domain"]["gain"] > 0 and out["guard"]["loss"] > 0.03 and out["guard"]["passed"] is False
    assert registry.current_version(TFIDF_MODEL, CHAMPION) == "1"
    # The same corrections, a tolerant guard (another state folder, so they count as new): promoted.
    assert main(["retrain", "--incoming", str(incoming), "--state", str(tmp_path / "tolerant"),
                 "--guard-tolerance", "1.0"]) == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["decision"] == "promoted" and out["gate"]["guard_tolerance"] == 1.0, out["reason"]
    assert registry.current_version(TFIDF_MODEL, CHAMPION) == "3"
    with pytest.raises(SystemExit) as bad:
        main(["retrain", "--incoming", str(incoming), "--learner", "bigger"])
    assert bad.value.code == 2 and "invalid choice: 'bigger'" in capsys.readouterr().err


def test_the_anchor_keeps_the_guard(champion: Path, tmp_path: Path) -> None:  # noqa: F811
    """The same slang with the default learner: anchored on the base training texts, the head learns
    the domain and keeps SemEval's sentiment, so the default guard lets it through."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    domain(SLANG, "that {t} was {w} lol #slang", 108).to_csv(incoming / "slang.csv", index=False)
    report = retrain.retrain(str(incoming), log=quiet)
    assert report["learner"]["anchor"]["texts"] > 0
    assert report["domain"]["gain"] > 0 and report["guard"]["passed"] is True, report["reason"]
    assert report["guard"]["loss"] <= Gate().guard_tolerance and report["decision"] == "promoted"


def test_too_few_corrections_of_a_label_train_nothing_and_say_so(
    champion: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    one_sided = domain(GADGETS, "my new {t} {w} #gadget", 60)
    one_sided[one_sided["label"] != "neutral"].to_csv(incoming / "b.csv", index=False)
    report = retrain.retrain(str(incoming), log=quiet)
    assert (
        report["status"] == "too few corrections" and "too few corrections of neutral (0)" in report["reason"]
    )
    assert len(registry.list_versions()) == 1  # no challenger registered
    with pytest.raises(ValueError, match="unknown learner 'big'"):
        retrain.retrain(str(incoming), log=quiet, learner="big")


def _spy(monkeypatch: pytest.MonkeyPatch) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """(the corrections each domain fit saw, the rows each gate judged)."""
    fits: list[pd.DataFrame] = []
    judged: list[pd.DataFrame] = []
    real_fit, real_judge = retrain.fit_domain_model, retrain._judge

    def fit(base, corrections, **kw):  # noqa: ANN001, ANN003, ANN202 - pass-through
        fits.append(corrections.copy())
        return real_fit(base, corrections, **kw)

    def judge(model, rows, *rest, **options):  # noqa: ANN001, ANN002, ANN003, ANN202 - pass-through
        judged.append(rows.copy())
        return real_judge(model, rows, *rest, **options)

    monkeypatch.setattr(retrain, "fit_domain_model", fit)
    monkeypatch.setattr(retrain, "_judge", judge)
    return fits, judged


X = "my phone is laggy and i am not sure what to think #gadget"


def _label_of(frame: pd.DataFrame, text: str) -> list[str]:
    return frame.loc[frame["text"] == text, "label"].tolist()


@pytest.mark.parametrize("judge", ["cv", "holdout"])
def test_the_latest_label_wins_whichever_slice_a_changed_holdout_share_puts_a_text_in(
    champion: Path,  # noqa: F811
    incoming: Path,
    monkeypatch: pytest.MonkeyPatch,
    judge: str,
) -> None:
    fits, judged = _spy(monkeypatch)

    def batch(name: str, template: str, n: int, label: str) -> None:
        extra = pd.DataFrame({"text": [X], "label": [label]})
        pd.concat([domain(GADGETS, template, n), extra]).to_csv(incoming / name, index=False)

    # X's place in the slice order: a share up to it trains X, a share just above holds it out.
    position = int(hashlib.sha256((near_duplicate_key(X) or X).encode()).hexdigest()[:8], 16) / 16**8
    trains, held_out = (
        Gate(judge=judge, holdout_share=position),
        Gate(judge=judge, holdout_share=position + 1e-9),
    )
    batch("b1.csv", "my new {t} {w} #gadget", 60, "negative")
    retrain.retrain(str(incoming), log=quiet, gate=trains)
    assert _label_of(fits[-1], X) == ["negative"]
    batch("b2.csv", "got a {t} today and it is {w} #gadget", 30, "positive")
    second = retrain.retrain(str(incoming), log=quiet, gate=held_out)
    assert [b["relabelled"] for b in second["batches"].values()] == [1]
    if judge == "holdout":  # X is judged with its new label and not fitted with its old one
        assert _label_of(judged[-1], X) == ["positive"] and not _label_of(fits[-1], X)
    else:
        assert _label_of(fits[-1], X) == ["positive"]
    batch("b3.csv", "the {t} i bought is {w} #gadget", 30, "negative")  # and back again
    third = retrain.retrain(str(incoming), log=quiet, gate=trains)
    assert [b["relabelled"] for b in third["batches"].values()] == [1], third["batches"]
    assert _label_of(fits[-1], X) == ["negative"]
    assert third["gate"]["judge"] == judge


def test_a_relabel_back_to_what_the_champion_learnt_is_not_judged_and_refit_records_holdout(
    champion: Path,  # noqa: F811
    incoming: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, judged = _spy(monkeypatch)
    first = domain(GADGETS, "my new {t} {w} #gadget", 100)
    text, label = first["text"][0], first["label"][0]
    first.to_csv(incoming / "b1.csv", index=False)
    assert retrain.retrain(str(incoming), log=quiet)["decision"] == "promoted"
    other = "neutral" if label != "neutral" else "positive"
    pd.DataFrame({"text": [text], "label": [other]}).to_csv(incoming / "b2.csv", index=False)
    flip_back = pd.concat([domain(GADGETS, "got a {t} today and it is {w} #gadget", 30),
                           pd.DataFrame({"text": [text], "label": [label]})])  # fmt: skip
    flip_back.to_csv(incoming / "b3.csv", index=False)
    report = retrain.retrain(str(incoming), log=quiet)
    # The champion learnt (text, label): judged are the 30 new texts only.
    assert report["domain"]["rows"] == 30 and text not in set(judged[-1]["text"])
    assert report["domain"]["not_judged"] == 100 and report["learner"]["rows"] == 130
    # One new group of 12 re-posts: one fold, answered by the recipe fitted on every other correction.
    reposts = [f"@user{i} my new phone is so snappy http://t.co/x{i}" for i in range(12)]
    pd.DataFrame({"text": reposts, "label": "positive"}).to_csv(incoming / "b4.csv", index=False)
    report = retrain.retrain(str(incoming), log=quiet)
    assert report["domain"]["folds"] == 1 and report["domain"]["rows"] == 12, report["domain"]
    assert report["domain"]["unanswered"] == 0
    # The refit learner judges on held-out slices whatever --judge says, and the report says so.
    batch_frame(2).to_csv(incoming / "b5.csv", index=False)
    refit = retrain.retrain(str(incoming), log=quiet, learner="refit")
    assert refit["gate"]["judge"] == "holdout" and refit["domain"]["set"] == "held-out corrections"
