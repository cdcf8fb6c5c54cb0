"""The pieces of benchmarks/feedback_loop.py on tiny data (the loop itself runs through the CLI, which
tests/mlops/test_feedback_e2e.py covers): the split by near-duplicate group, the analyst's labels, the
group bootstrap and its pairing, the registry copy, the summary and its tables."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit.config import REPO_ROOT


def _load():
    spec = importlib.util.spec_from_file_location(
        "feedback_loop", REPO_ROOT / "benchmarks" / "feedback_loop.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fl = _load()


def test_split_keeps_every_near_duplicate_group_on_one_side() -> None:
    words = [
        "apple",
        "pear",
        "plum",
        "fig",
        "kiwi",
        "lime",
        "date",
        "sloe",
        "yuzu",
        "lemon",
        "melon",
        "grape",
        "mango",
        "guava",
        "olive",
        "peach",
        "quince",
        "cherry",
        "berry",
        "nut",
    ]
    texts = [f"RT @user{i % 7}: news about the {words[i // 3]} http://t.co/x{i}" for i in range(60)] + [
        "",
        "",
    ]
    keys = fl.group_keys(texts)
    assert len(set(keys[:60])) == 20  # re-posts (other mention, other URL) share a key
    assert keys[60] != keys[61]  # texts with no words are their own groups
    hold = fl.split_by_group(keys, seed=3)
    for key in set(keys):
        assert len(set(hold[keys == key])) == 1, key
    assert len(set(keys[hold])) == round(fl.HOLDOUT_FRACTION * len(set(keys)))
    assert (fl.split_by_group(keys, seed=3) == hold).all()  # the same split for the same seed
    assert not (fl.split_by_group(keys, seed=4) == hold).all()


def test_the_analyst_answers_by_digest_even_when_review_protected_the_text() -> None:
    answers = fl.analyst_answers(["=1+1 great", "ok", "ok", "ok", "bad"],
                                 ["positive", "neutral", "negative", "neutral", "negative"])  # fmt: skip
    assert answers[fl.text_sha256("ok")] == "neutral"  # the majority of the rows with that text
    sheet = pd.DataFrame({"text": ["'=1+1 great", "ok", "never seen"], "label": ["", "", ""],
                          "text_sha256": [fl.text_sha256(t) for t in ("=1+1 great", "ok", "never seen")]})  # fmt: skip
    filled, missing = fl.fill_labels(sheet, answers)
    assert filled["label"].tolist() == ["positive", "neutral", ""] and missing == 1
    assert filled["text"].tolist() == sheet["text"].tolist() and sheet["label"].eq("").all()  # a copy


def test_group_bootstrap_draws_whole_groups() -> None:
    groups = np.array([0, 0, 1, 2, 2, 2, 3])
    w = fl.boot_weights(groups, 200, np.random.default_rng(0))
    assert w.shape == (200, 7)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 5]).all()  # a group's rows move together
    per_group = w[:, [0, 2, 3, 6]]
    assert (per_group.sum(axis=1) == 4).all()  # as many draws as groups


def test_avg_recall_weighted_and_paired() -> None:
    y = np.array(["negative", "neutral", "positive", "neutral", "negative", "positive"], dtype=object)
    good = y.copy()
    bad = np.array(["neutral"] * 6, dtype=object)
    assert fl.avg_recall(y, good) == 1.0 and fl.avg_recall(y, bad) == pytest.approx(1 / 3)
    ones = np.ones((3, 6))
    assert np.allclose(fl.avg_recall(y, bad, ones), 1 / 3)
    w = fl.boot_weights(np.arange(6), 500, np.random.default_rng(1))
    same = fl.seed_mean({0: (y, bad, bad, w), 1: (y, good, good, w)})
    assert same == {"mean": 0.0, "ci": [0.0, 0.0], "per_seed": [0.0, 0.0]}  # paired: identical answers
    gain = fl.seed_mean({0: (y, good, bad, w)})
    assert gain["mean"] == pytest.approx(2 / 3) and gain["ci"][0] > 0
    alone = fl.seed_mean({0: (y, good, None, w), 1: (y, bad, None, w)})
    assert alone["mean"] == pytest.approx(2 / 3) and alone["per_seed"] == [1.0, round(1 / 3, 4)]


def test_clone_registry_moves_every_stored_path(tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "artifacts" / "run1").mkdir(parents=True)
    (template / "artifacts" / "run1" / "model.pkl").write_bytes(b"x")
    (template / "done").write_text("")
    with sqlite3.connect(template / "mlflow.db") as db:
        db.execute("CREATE TABLE model_versions (version INTEGER, source TEXT, note TEXT)")
        db.execute("INSERT INTO model_versions VALUES (1, ?, 'kept')", (f"{template}/artifacts/run1",))
    copy = fl.clone_registry(template, tmp_path / "copy")
    with sqlite3.connect(copy / "mlflow.db") as db:
        assert db.execute("SELECT version, source, note FROM model_versions").fetchall() == [
            (1, f"{copy}/artifacts/run1", "kept")
        ]
    assert (copy / "artifacts" / "run1" / "model.pkl").read_bytes() == b"x" and not (copy / "done").exists()


def test_the_default_strategy_is_the_clis() -> None:
    from sentimentkit.feedback import QUEUE_STRATEGIES

    assert fl.default_strategy() in QUEUE_STRATEGIES


def _result() -> dict:
    truth = "nnuuup" * 3
    base = "uuuuuu" * 3
    seeds = [{"seed": s, "truth": truth, "base": base, "groups": list(range(18))} for s in (0, 1)]
    runs = []
    for s in (0, 1):
        runs.append({"strategy": "default", "review_strategy": "uncertain", "k": 100, "seed": s, "promoted": True,
                     "challenger_pred": truth, "labels": {"negative": 3}, "decision": "promoted", "status": "done",
                     "domain": {"champion": 0.5, "challenger": 0.7, "gain": 0.2, "rows": 20, "interval95": [0.0, 0.4]},
                     "guard": {"champion": 0.73, "challenger": 0.71, "loss": 0.02}, "seconds": {"retrain": 60}})  # fmt: skip
        runs.append({"strategy": "random", "review_strategy": "random", "k": 100, "seed": s, "promoted": False,
                     "challenger_pred": "nnuuun" * 3, "labels": {}, "decision": "kept champion", "status": "done",
                     "domain": {"champion": 0.5, "challenger": 0.4, "gain": -0.1, "rows": 20},
                     "guard": {"champion": 0.73, "challenger": 0.72, "loss": 0.01}, "seconds": {"retrain": 50}})  # fmt: skip
    return {"seeds": seeds, "runs": runs}


def test_summary_compares_the_champion_with_base_and_random_paired() -> None:
    result = _result()
    summary = fl.summarise(result, n_boot=200)
    assert summary["base"]["mean"] == pytest.approx(1 / 3)
    default, rand = summary["cells"]
    assert (default["strategy"], rand["strategy"]) == ("default", "random")
    assert default["promoted"] == 2 and rand["promoted"] == 0
    assert default["holdout"]["mean"] == 1.0 and default["gain"]["mean"] == pytest.approx(2 / 3)
    # random was refused by its gate: its champion is the base model, whatever its challenger scored
    assert rand["holdout"]["mean"] == pytest.approx(1 / 3) and rand["gain"] == {"mean": 0.0, "ci": [0.0, 0.0], "per_seed": [0.0, 0.0]}  # fmt: skip
    assert rand["challenger_gain"]["mean"] > 0 and "minus_random" not in rand
    assert default["minus_random"]["mean"] == pytest.approx(2 / 3)
    assert default["domain_gain"] == pytest.approx(0.2) and default["guard_loss"] == pytest.approx(0.02)
    table = fl.render(result, summary)
    assert "| 100 | default (uncertain) | 2/2 | 100.0 [100.0, 100.0] | 66.7 [" in table
    assert (
        "| 100 | random | 0 | 0/0/0 | kept champion | 50.0 -> 40.0 (20) | - | 73.0 -> 72.0 | 33.3 -> 33.3 | 0.8 |"
        in table
    )


def test_label_codes_round_trip() -> None:
    labels = ["negative", "neutral", "positive", ""]
    assert "".join(fl.label_code(labels)) == "nupx"
    assert fl.label_decode("nupx").tolist() == labels
