"""`sentimentkit review` and `sentimentkit feedback add`: the round trip through a spreadsheet, Label
Studio and Argilla files, byte-identical texts, and one clear line for each mistake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit.cli import main
from sentimentkit.feedback.queue import review_queue, select_disagreeing
from sentimentkit.feedback.store import read_feedback
from sentimentkit.mlops.predlog import PredictionLog
from sentimentkit.serving.predictor import Predictor

TEXTS = ["=HYPERLINK(\"http://x\")", "=1+1 is two", "I love it, great", "meh, the train was late", "tab\tand\r\nnewline",
         "+44 call me", "awful awful day", "the meeting is at noon", "so-so film", "@bob fine I guess", "  spaced  "]  # fmt: skip


def make_log(folder: Path, predictor: Predictor, texts: list[str], log_text: bool = True) -> Path:
    with PredictionLog(folder, log_text=log_text, flush_s=0.1) as log:
        log.submit(predictor, texts, predictor.score(texts), source="test", request_id="req-1")
    return folder


@pytest.fixture
def log(tmp_path: Path, tiny_predictor: Predictor) -> Path:
    return make_log(tmp_path / "log", tiny_predictor, TEXTS)


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def label_all(frame: pd.DataFrame) -> dict[str, str]:
    return {t: ["negative", "neutral", "positive"][i % 3] for i, t in enumerate(frame["text"])}


def test_review_csv_labelled_in_excel_comes_back_byte_identical(log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "review.csv"
    n = len(TEXTS)  # all of them: the formulas are in the file
    code, _, err = run(["review", "--log", str(log), "--n", str(n), "--output", str(out)], capsys)
    assert code == 0 and f"wrote {n} text(s)" in err
    sheet = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(sheet.columns)[:5] == ["text", "predicted", "confidence", "request_id", "label"]
    assert (sheet["label"] == "").all() and (sheet["request_id"] == "req-1").all()
    assert not sheet["text"].str.startswith("=").any()  # the spreadsheet will not run them
    assert sheet["text"].str.startswith("'=").sum() == 2
    originals = review_queue(log, n)["text"].tolist()
    wanted = label_all(pd.DataFrame({"text": originals}))
    sheet["label"] = [wanted[t] for t in originals]
    sheet.loc[n - 1, "label"] = ""  # not labelled yet
    sheet.to_excel(tmp_path / "labelled.xlsx", index=False)
    store = tmp_path / "store"
    code, out_line, _ = run(
        ["feedback", "add", "--input", str(tmp_path / "labelled.xlsx"), "--incoming", str(store)], capsys
    )
    assert (
        code == 0 and f"stored {n - 1} correction(s)" in out_line and "1 row(s) not labelled yet" in out_line
    )
    stored = read_feedback(store)
    assert dict(zip(stored["text"], stored["label"])) == {t: wanted[t] for t in originals[:-1]}
    assert set(stored["source"]) == {"cli"} and set(stored["request_id"]) == {"req-1"}
    # the labelled texts are left out of the next queue
    code, _, err = run(["review", "--log", str(log), "--n", "20", "--output", str(tmp_path / "next.csv"),
                        "--incoming", str(store)], capsys)  # fmt: skip
    assert code == 0 and f"{n - 1} already labelled left out" in err
    assert len(pd.read_csv(tmp_path / "next.csv")) == 1


def test_label_studio_round_trip(log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "tasks.json"
    assert (
        run(
            ["review", "--log", str(log), "--n", "4", "--output", str(out), "--format", "label-studio"],
            capsys,
        )[0]
        == 0
    )
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert tasks[0]["predictions"][0]["result"][0]["value"]["choices"][0] in (
        "negative",
        "neutral",
        "positive",
    )
    # what Label Studio's JSON export adds: annotations (a cancelled one, an older one, the latest)
    for i, task in enumerate(tasks):
        task["annotations"] = [
            {"was_cancelled": True, "result": [{"type": "choices", "value": {"choices": ["Positive"]}}]},
            {"updated_at": "2026-12-01T10:00:00Z", "completed_by": 7,
             "result": [{"type": "choices", "value": {"choices": ["Neutral"]}}]},
            {"updated_at": "2026-12-02T10:00:00Z", "completed_by": {"id": 8, "email": "ann@example.com"},
             "result": [{"type": "choices", "value": {"choices": ["Negative"]}}]},
        ] if i else []  # fmt: skip
    out.write_text(json.dumps(tasks), encoding="utf-8")
    store = tmp_path / "store"
    code, line, _ = run(["feedback", "add", "--input", str(out), "--incoming", str(store)], capsys)
    assert code == 0 and "stored 3 correction(s)" in line and "1 row(s) not labelled yet" in line
    stored = read_feedback(store)
    assert sorted(stored["text"]) == sorted(t["data"]["text"] for t in tasks[1:])
    assert set(stored["label"]) == {"negative"} and set(stored["user"]) == {"ann@example.com"}
    assert set(stored["source"]) == {"label-studio"}


def test_argilla_records_and_to_disk_folder(log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "records.json"
    assert (
        run(["review", "--log", str(log), "--n", "3", "--output", str(out), "--format", "argilla"], capsys)[0]
        == 0
    )
    records = json.loads(out.read_text(encoding="utf-8"))
    assert records[0]["suggestions"]["sentiment"]["value"] in ("negative", "neutral", "positive")
    records[0]["responses"] = {"sentiment": [{"value": "positive", "user_id": "u1"}]}
    records[1]["responses"] = {"sentiment": [{"value": "neutral", "user_id": "u2", "status": "discarded"}]}
    records[2]["responses"] = {"sentiment": [{"value": "negative", "user_id": "u3"}]}
    folder = tmp_path / "dataset"  # what Dataset.to_disk writes: records.json + .argilla/
    (folder / ".argilla").mkdir(parents=True)
    (folder / ".argilla" / "settings.json").write_text("{}")
    (folder / "records.json").write_text(json.dumps(records), encoding="utf-8")
    store = tmp_path / "store"
    for given in (out, folder):
        if given == out:
            out.write_text(json.dumps(records), encoding="utf-8")
        code, line, _ = run(
            ["feedback", "add", "--input", str(given), "--incoming", str(store), "--source", "argilla-team"],
            capsys,
        )
        assert code == 0 and "stored 2 correction(s)" in line
    stored = read_feedback(store)
    texts = [r["fields"]["text"] for r in records]
    assert dict(zip(stored["text"], stored["label"])) == {texts[0]: "positive", texts[2]: "negative"}
    assert set(stored["user"]) == {"u1", "u3"} and set(stored["source"]) == {"argilla-team"}


def test_feedback_add_csv_with_other_columns_and_bad_labels(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.csv"
    pd.DataFrame({"tweet": ["a, b", "c"], "gold": ["Positive", " negative "]}).to_csv(good, index=False)
    store = tmp_path / "store"
    code, line, _ = run(["feedback", "add", "--input", str(good), "--incoming", str(store),
                         "--text-column", "tweet", "--label-column", "gold", "--user", "ann"], capsys)  # fmt: skip
    assert code == 0 and "stored 2" in line
    assert dict(zip(read_feedback(store)["text"], read_feedback(store)["label"])) == {
        "a, b": "positive",
        "c": "negative",
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,positive\nodd,great\n")
    code, _, err = run(["feedback", "add", "--input", str(bad), "--incoming", str(store)], capsys)
    assert (
        code == 2 and err.count("\n") == 1 and "label 'great' is not one of" in err and "Traceback" not in err
    )
    code, _, err = run(
        ["feedback", "add", "--input", str(tmp_path / "nope.csv"), "--incoming", str(store)], capsys
    )
    assert code == 2 and "not found" in err
    code, _, err = run(
        ["feedback", "add", "--input", str(good), "--incoming", str(store), "--text-column", "x"], capsys
    )
    assert code == 2 and "no column(s)" in err
    assert len(read_feedback(store, all_rows=True)) == 2  # nothing stored by the failed runs


def test_review_says_so_when_the_log_has_no_text_and_for_other_mistakes(tmp_path: Path, tiny_predictor: Predictor,
                                                                        capsys, monkeypatch) -> None:  # fmt: skip
    hidden = make_log(tmp_path / "hidden", tiny_predictor, TEXTS, log_text=False)
    code, _, err = run(
        ["review", "--log", str(hidden), "--n", "3", "--output", str(tmp_path / "r.csv")], capsys
    )
    assert code == 2 and "SENTIMENTKIT_PREDICTION_LOG_TEXT=true" in err and not (tmp_path / "r.csv").exists()
    log = make_log(tmp_path / "log", tiny_predictor, TEXTS)
    code, _, err = run(["review", "--log", str(log), "--n", "3", "--output", str(log / "x.csv")], capsys)
    assert code == 2 and "inside the prediction log" in err
    code, _, err = run(
        ["review", "--log", str(tmp_path / "empty"), "--n", "3", "--output", str(tmp_path / "r.csv")], capsys
    )
    assert code == 2 and "nothing logged yet" in err
    monkeypatch.setenv("SENTIMENTKIT_ACCURATE_MODEL", str(tmp_path / "no-such-model"))
    code, _, err = run(
        [
            "review",
            "--log",
            str(log),
            "--n",
            "3",
            "--strategy",
            "disagree",
            "--output",
            str(tmp_path / "r.csv"),
        ],
        capsys,
    )
    assert code == 2 and err.count("\n") == 1 and "disagree strategy needs the accurate model" in err


def test_disagree_puts_different_top_labels_first() -> None:
    fast = np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8], [0.34, 0.33, 0.33]])
    accurate = np.array([[0.55, 0.35, 0.1], [0.3, 0.4, 0.3], [0.1, 0.2, 0.7], [0.1, 0.1, 0.8]])
    assert select_disagreeing(fast, accurate, 3).tolist() == [3, 1, 2]


def test_review_queue_disagree_with_a_second_model(log: Path, tiny_predictor: Predictor) -> None:
    flipped = lambda texts: tiny_predictor.predict_proba(texts)[:, ::-1]  # noqa: E731 - a model that disagrees
    queue = review_queue(log, 3, "disagree", accurate=flipped)
    assert len(queue) == 3 and list(queue.columns) == [
        "text",
        "predicted",
        "confidence",
        "request_id",
        "label",
    ]


@pytest.mark.parametrize(
    "strategy", ["balanced", "representative", "uncertain", "diverse", "random", "frequent"]
)
def test_every_strategy_gives_a_queue_of_distinct_logged_texts(log: Path, strategy: str) -> None:
    queue = review_queue(log, 4, strategy)
    assert len(queue) == 4 and queue["text"].is_unique and set(queue["text"]) <= set(TEXTS)
    assert (queue["label"] == "").all()


def test_frequent_puts_the_texts_logged_most_often_first_and_leaves_out_labelled_ones(
    tmp_path: Path, tiny_predictor: Predictor, capsys: pytest.CaptureFixture[str]
) -> None:
    # "b" logged 3 times, "c" twice, "a" and "d" once (ties: the log's order of their latest rows)
    log = make_log(tmp_path / "log", tiny_predictor, ["a", "b", "c", "b", "d", "c", "b"])
    queue = review_queue(log, 3, "frequent")
    assert queue["text"].tolist() == ["b", "c", "a"]
    assert review_queue(log, 2, "frequent", exclude=["b"])["text"].tolist() == ["c", "a"]
    out = tmp_path / "review.csv"
    code, _, err = run(["review", "--log", str(log), "--n", "2", "--strategy", "frequent", "--output", str(out)],
                       capsys)  # fmt: skip
    assert code == 0 and "(frequent)" in err
    assert pd.read_csv(out)["text"].tolist() == ["b", "c"]


def test_one_default_review_strategy_everywhere(log: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """The CLI's `review`, the app's Review tab, `review_queue`, `select_for_review` and the docs
    name the same default strategy (they once differed: `uncertain` in the CLI and the app,
    `diverse` in `select_for_review`)."""
    import inspect

    from sentimentkit import ui
    from sentimentkit.config import REPO_ROOT
    from sentimentkit.feedback import DEFAULT_STRATEGY, queue, review
    from sentimentkit.feedback.store import write_corrections

    assert DEFAULT_STRATEGY == "balanced"
    defaults = {
        "select_for_review": inspect.signature(review.select_for_review).parameters["strategy"].default,
        "review_queue": inspect.signature(queue.review_queue).parameters["strategy"].default,
    }
    assert defaults == dict.fromkeys(defaults, DEFAULT_STRATEGY)
    # The command line, without --strategy: the queue it writes is the default strategy's.
    out = tmp_path / "q.csv"
    code, _, err = run(["review", "--log", str(log), "--n", "5", "--output", str(out)], capsys)
    assert code == 0 and f"({DEFAULT_STRATEGY})" in err
    expected = review_queue(log, 5, DEFAULT_STRATEGY)
    # (a leading ' is the formula guard's mark in a CSV a spreadsheet opens)
    written = pd.read_csv(out, keep_default_na=False)["text"].str.removeprefix("'")
    assert written.tolist() == expected["text"].tolist()
    # The app's Review tab asks the queue for the same strategy.
    asked = []
    real = queue.review_queue  # patched where the app looks it up (ui imports it at its top)
    monkeypatch.setattr(ui, "review_queue", lambda *a, **k: asked.append(a[2]) or real(*a, **k))
    store = tmp_path / "store"
    write_corrections(str(store), [{"text": TEXTS[2], "label": "positive"}])
    round_ = ui.review_round(str(log), True, str(store), n=3)
    assert asked == [DEFAULT_STRATEGY] and len(round_["queue"]) == 3
    # The docs say so.
    page = (REPO_ROOT / "docs" / "teach_your_domain.md").read_text()
    assert f"`{DEFAULT_STRATEGY}` (default" in page and "`uncertain` (default" not in page
