"""Retraining behind the promotion gate on a real (throw-away SQLite) MLflow registry: batch validation,
the gate's rule, the manifest (idempotence), crash safety, the watcher's polling, and Blob (Azurite)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit import LABELS
from sentimentkit.data import DataError
from sentimentkit.mlops import CHAMPION, TFIDF_MODEL, registry, retrain
from sentimentkit.mlops.retrain import Gate, decide, read_manifest, validate_batch, watch
from tests.conftest import TINY_LABELS, TINY_TEXTS, write_tiny_splits
from tests.mlops.conftest import make_container

pytestmark = pytest.mark.usefixtures("registry_env")

WORDS = {"positive": ["lovely", "great", "wonderful", "happy", "fantastic"],
         "negative": ["awful", "terrible", "sad", "horrible", "disgusting"],
         "neutral": ["scheduled", "posted", "located", "listed", "moved"]}  # fmt: skip
THINGS = ["concert", "match", "film", "update", "train", "meeting", "album", "show"]


def batch_frame(k: int, n_per_label: int = 8) -> pd.DataFrame:
    """Labelled texts unlike the tiny splits' (so none is a near-duplicate of the evaluation sets)."""
    rows = []
    for label, words in WORDS.items():
        for word, thing in itertools.islice(
            itertools.product(words, THINGS), k * n_per_label, (k + 1) * n_per_label
        ):
            rows.append({"text": f"the {thing} was {word} today batch{k}", "label": label})
    return pd.DataFrame(rows)


@pytest.fixture
def champion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tiny splits as the data directory and a champion trained on them, registered (version 1)."""
    from sentimentkit.training.train import train

    data = write_tiny_splits(tmp_path / "data")
    monkeypatch.setenv("SENTIMENTKIT_DATA_DIR", str(data))
    card = train(data, tmp_path / "champion" / "model.pkl", params={"C": 10.0}, log=lambda *a: None)
    registry.register(tmp_path / "champion" / "model.pkl", card, {"train": "tiny"})
    return data


def test_validate_batch_counts_what_it_drops_and_holds_out_a_slice(tmp_path: Path) -> None:
    frame = batch_frame(0)
    extra = pd.DataFrame({"text": ["", frame["text"][0], "already known", "@fan I love this, it is great and wonderful http://t.co/x"],
                          "label": ["neutral", frame["label"][0], "neutral", "positive"]})  # fmt: skip
    path = tmp_path / "b.csv"
    pd.concat([frame, extra]).to_csv(path, index=False)
    evaluation = pd.DataFrame({"text": TINY_TEXTS, "label": TINY_LABELS})
    train, held, record = validate_batch(str(path), "abc", {"already known"}, evaluation, 0.25)
    assert (record["blank"], record["duplicates"], record["already_in_training"]) == (1, 1, 1)
    assert record["near_duplicates_of_evaluation"] == 1  # a re-post (mention + URL) of an eval text
    assert len(train) + len(held) == len(frame) and len(held) == record["heldout_rows"] > 0
    assert set(train["batch_sha256"]) == {"abc"} and set(train["batch"]) == {"b.csv"}  # provenance
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,maybe\n")
    with pytest.raises(DataError, match="labels outside"):
        validate_batch(str(bad), "x", set(), evaluation, 0.2)


def _scores(avg: float, recalls: tuple[float, float, float], f1s: tuple[float, ...] | None = None) -> dict:
    """Gate input: AvgRec and per-class recall and F1 (F1 = recall unless given)."""
    return {
        "avg_recall": avg,
        "per_class": {c: {"recall": r, "f1": f} for c, r, f in zip(LABELS, recalls, f1s or recalls)},
    }


def test_gate_rule() -> None:
    gate = Gate(margin=0.01, max_class_drop=0.02)
    champion = _scores(0.60, (0.6, 0.6, 0.6))
    assert decide(champion, _scores(0.63, (0.63, 0.63, 0.63)), gate)[0] is True
    promote, reason = decide(champion, _scores(0.605, (0.61, 0.6, 0.605)), gate)
    assert not promote and "not better by the margin" in reason and "0.6000 -> 0.6050" in reason
    promote, reason = decide(champion, _scores(0.65, (0.55, 0.7, 0.7)), gate)
    assert not promote and "negative f1 would drop too much" in reason


def test_retrain_registers_a_challenger_decides_records_and_is_idempotent(
    champion: Path, tmp_path: Path
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch_frame(0).to_csv(incoming / "2026-11-01.csv", index=False)
    (incoming / "2026-11-02.csv").write_text("words,stars\nhello,5\n")  # wrong schema: rejected whole
    report = retrain.retrain(str(incoming), log=lambda *a: None)
    assert report["challenger_version"] == "2" and report["decision"] in ("promoted", "kept champion")
    assert registry.current_version(TFIDF_MODEL, "challenger") == "2"
    expected_champion = "2" if report["decision"] == "promoted" else "1"
    assert registry.current_version(TFIDF_MODEL, CHAMPION) == expected_champion
    tags = registry.client().get_model_version(TFIDF_MODEL, "2").tags
    assert tags["gate.decision"] == report["decision"] and "avg_recall" in tags["gate.reason"]
    manifest = read_manifest(str(incoming / "_sentimentkit"))["batches"]
    assert sorted(r["status"] for r in manifest.values()) == ["accepted", "rejected"]
    assert "no column(s)" in next(r["reason"] for r in manifest.values() if r["status"] == "rejected")
    assert list((incoming / "_sentimentkit" / "reports").glob("*.json"))
    again = retrain.retrain(str(incoming), log=lambda *a: None)  # nothing new: nothing happens
    assert again["status"] == "nothing new" and len(registry.list_versions()) == 2
    # The next batch trains on both (the first batch's rows are kept with their provenance).
    batch_frame(1).to_csv(incoming / "2026-11-03.csv", index=False)
    third = retrain.retrain(str(incoming), log=lambda *a: None)
    assert third["challenger_version"] == "3" and third["added_rows"] > report["added_rows"]


def test_a_crash_midway_leaves_the_champion_and_the_manifest_untouched(
    champion: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch_frame(0).to_csv(incoming / "b1.csv", index=False)

    def crash(*args: object) -> None:
        raise RuntimeError("power cut after registering the challenger")

    with monkeypatch.context() as patched, pytest.raises(RuntimeError, match="power cut"):
        patched.setattr(retrain, "decide", crash)
        retrain.retrain(str(incoming), log=lambda *a: None)
    assert registry.current_version(TFIDF_MODEL, CHAMPION) == "1"
    assert read_manifest(str(incoming / "_sentimentkit"))["batches"] == {}
    report = retrain.retrain(str(incoming), log=lambda *a: None)  # the rerun does the work
    assert report["status"] == "done" and len(read_manifest(str(incoming / "_sentimentkit"))["batches"]) == 1


def test_watch_polls_and_retrains_only_when_enough_rows_wait(champion: Path, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    drops = iter([lambda: batch_frame(0).to_csv(incoming / "late.csv", index=False)])

    def sleep(seconds: float) -> None:  # a batch lands while the watcher sleeps after its first look
        assert seconds == 0.5
        next(drops, lambda: None)()

    reports = watch(str(incoming), 0.5, cycles=3, sleep=sleep, log=lambda *a: None)
    assert len(reports) == 1 and reports[0]["status"] == "done"  # picked up once, then nothing new
    batch_frame(1).to_csv(incoming / "small.csv", index=False)
    assert watch(str(incoming), 0.5, cycles=1, min_rows=10_000, sleep=sleep, log=lambda *a: None) == []


@pytest.mark.slow
def test_retrain_from_blob_storage(champion: Path, blob_env: str) -> None:
    from sentimentkit.io import storage

    make_container("incoming")
    storage.write_bytes("az://incoming/labelled/b1.csv", batch_frame(0).to_csv(index=False).encode())
    reports = watch("az://incoming/labelled", 0.1, cycles=2, sleep=lambda s: None, log=lambda *a: None)
    assert len(reports) == 1 and reports[0]["challenger_version"] == "2"
    manifest = json.loads(storage.read_bytes("az://incoming/labelled/_sentimentkit/manifest.json"))
    assert [r["file"] for r in manifest["batches"].values()] == ["b1.csv"]


def test_cli_retrain_and_watch(champion: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sentimentkit.cli import main

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch_frame(0).to_csv(incoming / "b1.csv", index=False)
    # --margin is the superiority rule of --judge holdout (the cross-validated gate's is --domain-tolerance)
    assert main(["retrain", "--incoming", str(incoming), "--judge", "holdout", "--margin", "0.5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (
        out["decision"] == "kept champion" and "not better by the margin" in out["reason"]
    )  # margin 0.5: never
    assert registry.current_version(TFIDF_MODEL, CHAMPION) == "1"
    batch_frame(1).to_csv(incoming / "b2.csv", index=False)
    assert main(["watch", "--incoming", str(incoming), "--every", "1s", "--cycles", "1"]) == 0
    assert len(read_manifest(str(incoming / "_sentimentkit"))["batches"]) == 2


def test_watch_retrains_on_few_rows_when_the_monitor_alerts(
    champion: Path, tmp_path: Path, predictor
) -> None:
    """min_rows is not reached, but the served traffic has drifted (all-negative predictions): ALERT."""
    from sentimentkit.mlops.predlog import PredictionLog

    texts = [f"worst awful terrible day number {k}, I hate it" for k in range(300)]
    with PredictionLog(tmp_path / "log") as log:
        log.submit(predictor, texts, predictor.score(texts), source="api")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    batch_frame(0).to_csv(incoming / "b1.csv", index=False)
    quiet = watch(str(incoming), 0.1, cycles=1, min_rows=10_000, sleep=lambda s: None, log=lambda *a: None)
    assert quiet == []  # too few rows and no monitor: wait
    reports = watch(str(incoming), 0.1, cycles=1, min_rows=10_000, monitor_log=str(tmp_path / "log"),
                    sleep=lambda s: None, log=lambda *a: None)  # fmt: skip
    assert len(reports) == 1 and reports[0]["status"] == "done"


def test_gate_judges_each_class_by_f1_so_a_class_no_longer_over_predicted_is_not_a_loss() -> None:
    """Apple tweets: the base calls many neutral tweets positive (positive precision 0.15-0.36); the
    domain head trades some positive recall for much better precision, so positive F1 rises. By
    recall alone (`class_metric="recall"`, the rule before) that challenger is refused."""
    champion = _scores(0.60, (0.60, 0.55, 0.70), f1s=(0.62, 0.60, 0.30))
    better = _scores(0.68, (0.65, 0.80, 0.60), f1s=(0.66, 0.78, 0.50))  # positive recall -10, F1 +20
    for cls in (*champion["per_class"].values(), *better["per_class"].values()):
        cls["support"] = 100
    promote, reason = decide(champion, better, Gate())
    assert promote and "largest f1 drop" in reason, reason
    promote, reason = decide(champion, better, Gate(class_metric="recall"))
    assert not promote and "positive recall would drop too much" in reason
    worse = _scores(0.66, (0.65, 0.80, 0.53), f1s=(0.66, 0.78, 0.25))  # positive F1 falls 5 points
    for cls in worse["per_class"].values():
        cls["support"] = 100
    promote, reason = decide(champion, worse, Gate())
    assert not promote and "positive f1 would drop too much" in reason


def test_gate_judges_class_drops_only_on_classes_with_enough_judged_rows() -> None:
    """With 5 held-out positives one text is 20 points of recall: the 2-point rule would only measure
    chance (the feedback-loop benchmark saw it refuse every domain challenger), so such a class's drop
    is reported, not judged; a class with 50 rows or more is judged as before."""
    gate = Gate(margin=0.01, max_class_drop=0.02)

    def scores(avg: float, recalls: tuple[float, float, float], support: tuple[int, int, int]) -> dict:
        out = _scores(avg, recalls)
        for cls, n in zip(out["per_class"].values(), support):
            cls["support"] = n
        return out

    champion = scores(0.60, (0.6, 0.6, 0.6), (60, 60, 5))
    promote, reason = decide(champion, scores(0.66, (0.7, 0.7, 0.4), (60, 60, 5)), gate)
    assert promote and "not judged for classes with under 50 judged rows (positive 5)" in reason
    promote, reason = decide(champion, scores(0.66, (0.55, 0.7, 0.8), (60, 60, 5)), gate)
    assert not promote and "negative f1 would drop too much" in reason
    tiny = scores(0.60, (0.6, 0.6, 0.6), (5, 5, 5))
    assert decide(tiny, scores(0.66, (0.2, 0.9, 0.9), (5, 5, 5)), gate)[0] is True


@pytest.mark.parametrize("judge", ["cv", "holdout"])
def test_a_first_run_whose_only_batch_is_rejected_trains_nothing_and_says_why(
    champion: Path, tmp_path: Path, judge: str
) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "bad.csv").write_text("words,stars\nhello,5\n")
    report = retrain.retrain(str(incoming), log=lambda *a: None, gate=Gate(judge=judge))
    assert report["status"] == "no new rows" and len(registry.list_versions()) == 1
    assert [b["status"] for b in report["batches"].values()] == ["rejected"]


def test_a_repost_lands_in_the_same_slice_as_its_original(tmp_path: Path) -> None:
    """The held-out slice is chosen by near-duplicate key, so `--judge holdout` never trains on a
    re-post of a text it judges."""
    from sentimentkit.data import near_duplicate_key

    texts = [f"@user{i} my new phone is laggy http://t.co/x{i}" for i in range(20)]
    texts += [f"RT @fan{i}: loving the new {w} so much" for i in range(10) for w in ("watch", "tablet")]
    path = tmp_path / "b.csv"
    pd.DataFrame({"text": texts, "label": "negative"}).to_csv(path, index=False)
    evaluation = pd.DataFrame({"text": ["unrelated"], "label": ["neutral"]})
    train, held, _ = validate_batch(str(path), "abc", set(), evaluation, 0.5)
    keys = lambda frame: {near_duplicate_key(t) for t in frame["text"]}  # noqa: E731
    assert len(held) and len(train) and not keys(train) & keys(held)
