"""Parts and `mixed` (sentimentkit/serving/parts.py) and long texts scored by parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sentimentkit.config import Settings
from sentimentkit.errors import ConfigError
from sentimentkit.serving import parts
from sentimentkit.serving.loader import load_predictor
from tests.conftest import COMMITTED_MODEL

GREAT_BUT_SLOW = "The food was great but the service was painfully slow"


def _texts(text: str) -> list[str]:
    return [text[s.start : s.end] for s in parts.split_parts(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GREAT_BUT_SLOW, ["The food was great", "but the service was painfully slow"]),
        ("Although the staff were lovely, the room was filthy.", ["Although the staff were lovely,", "the room was filthy."]),
        ("Really enjoyed the show even though the seats were awful", ["Really enjoyed the show", "even though the seats were awful"]),
        ("He says he is sorry, yet he keeps doing it. I'm done.", ["He says he is sorry,", "yet he keeps doing it.", "I'm done."]),
        ("Nice place. However, the beds were awful", ["Nice place.", "However, the beds were awful"]),
        ("I still haven't watched it yet, no spoilers please", ["I still haven't watched it yet, no spoilers please"]),
        ("It was good though", ["It was good though"]),
        ("Loved it! 😍 But the price… ugh", ["Loved it! 😍", "But the price…", "ugh"]),
        ("line one\nline two", ["line one", "line two"]),
    ],
)  # fmt: skip
def test_split_parts(text: str, expected: list[str]) -> None:
    assert _texts(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        GREAT_BUT_SLOW,
        "Loved it 👨‍👩‍👧! But the 🍕 was cold, yet cheap.",
        "Cafe\u0301 was nice. But the cre\u0300me was sour 🇫🇷 though, however fine",
        "  spaces   around.   But why?  ",
        "🙂",
        "x",
    ],
)
def test_offsets_slice_back_to_the_part_exactly(predictor, text: str) -> None:
    record = predictor.score([text], parts=True)[0]
    assert record["parts"], record
    for part in record["parts"]:
        assert text[part["start"] : part["end"]] == part["text"]
        assert part["text"] == part["text"].strip() and part["text"]
    # in order, no overlap, nothing but white space between them
    ends = [0] + [p["end"] for p in record["parts"]]
    starts = [p["start"] for p in record["parts"]] + [len(text)]
    assert all(text[e:s].strip() == "" for e, s in zip(ends, starts))


def test_great_but_painfully_slow_is_mixed(predictor) -> None:
    record = predictor.score([GREAT_BUT_SLOW], parts=True)[0]
    assert record["mixed"] is True
    assert [p["sentiment"] for p in record["parts"]] == ["positive", "negative"]
    assert record["sentiment"] in {"positive", "negative", "neutral"}  # the three-way label stays


@pytest.mark.parametrize(
    "text",
    ["The food was great and the service was fast", "Terrible food. Awful service.", "I love it"],
)
def test_one_feeling_is_not_mixed(predictor, text: str) -> None:
    assert predictor.score([text])[0]["mixed"] is False


def test_parts_are_opt_in_and_errors_stay_rows(predictor) -> None:
    plain = predictor.score([GREAT_BUT_SLOW, ""])
    assert "parts" not in plain[0] and plain[1]["error"] and plain[1]["mixed"] is None
    with_parts = predictor.score([GREAT_BUT_SLOW, ""], parts=True)
    assert with_parts[1]["parts"] is None and len(with_parts[0]["parts"]) == 2
    # parts change nothing else
    assert {k: v for k, v in with_parts[0].items() if k != "parts"} == plain[0]


def test_long_texts_are_scored_by_length_weighted_parts(predictor) -> None:
    review = (
        "We stayed four nights in the hotel and the location could not have been better for the old town. "
        "The staff at the front desk were friendly, helpful and quick to answer every question we had. "
        "However, the room was dirty, the shower was broken and the noise from the street kept us awake "
        "every single night. Breakfast was fine."
    )
    assert len(review) > parts.LONG_TEXT_CHARS
    record = predictor.score([review], parts=True)[0]
    spans = [parts.Span(p["start"], p["end"]) for p in record["parts"]]
    probas = np.array([[p["scores"][label] for label in predictor.labels] for p in record["parts"]])
    expected = parts.length_weighted(spans, probas)
    assert [record["scores"][label] for label in predictor.labels] == pytest.approx(expected.tolist())
    # a tweet-length text keeps its whole-text probabilities
    short = predictor.score([GREAT_BUT_SLOW])[0]
    assert [short["scores"][label] for label in predictor.labels] == pytest.approx(
        predictor.predict_proba(GREAT_BUT_SLOW).tolist()
    )


def test_is_mixed_needs_two_confident_opposite_parts() -> None:
    labels = ("negative", "neutral", "positive")
    confident = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    weak = np.array([[0.1, 0.1, 0.8], [0.45, 0.35, 0.2]])
    assert parts.is_mixed(["positive", "negative"], confident, labels)
    assert not parts.is_mixed(["positive", "negative"], weak, labels)
    assert parts.MIXED_CONFIDENCE == 0.5


def test_targets_count_the_parts_that_mention_them(predictor) -> None:
    from sentimentkit.insights.targets import parse_targets, target_sentiment

    assert parse_targets(" @united, food ,,food") == ["@united", "food"]
    texts = [
        "The food was great but the service at @united was awful",
        "@United lost my bag again, terrible",
        "I love seafood",  # not "food"
        None,  # a row left out (error, other language)
    ]
    found = {t["target"]: t for t in target_sentiment(texts, ["@united", "food"], predictor)}
    assert found["@united"]["texts"] == 2 and found["@united"]["mentions"] == 2
    assert found["@united"]["counts"]["negative"] == 2 and found["@united"]["net"] == -1.0
    assert (
        found["food"]["texts"] == 1
        and found["food"]["counts"]["positive"] == 1
        and found["food"]["net"] == 1.0
    )


def test_report_targets_in_json_and_html(tmp_path) -> None:
    import json

    import pandas as pd

    from .conftest import COMMITTED_MODEL
    from .test_cli import run

    src = tmp_path / "tweets.csv"
    pd.DataFrame(
        {"text": [GREAT_BUT_SLOW, "The food here is lovely", "Der Flug war eine Katastrophe"]}
    ).to_csv(src, index=False)
    out, summary = tmp_path / "report.html", tmp_path / "report.json"
    result = run("report", "--model", str(COMMITTED_MODEL), "--input", str(src), "--output", str(out),
                 "--json", str(summary), "--targets", "food,service")  # fmt: skip
    assert result.returncode == 0, result.stderr
    targets = {t["target"]: t for t in json.loads(summary.read_text())["targets"]}
    assert targets["food"]["texts"] == 2 and targets["food"]["net"] == 1.0
    assert targets["service"]["counts"]["negative"] == 1
    assert "<h2>Targets</h2>" in out.read_text()
    assert json.loads(summary.read_text())["n_scored"] == 2  # the German row is left out


def test_mixed_can_be_switched_off_for_bulk_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """SENTIMENTKIT_MIXED=off: `mixed` is null (not computed), short texts' parts are not scored, and
    the rest of every record is what it is with the switch on; parts asked for still come, with
    `mixed`; texts longer than a tweet are still scored by parts."""
    long_review = " ".join(["The room was lovely and the staff were kind."] * 6 + ["The food was awful."] * 4)
    texts = ["The food was great but the service was painfully slow", "I love it", long_review]
    on = load_predictor(COMMITTED_MODEL).score(texts)
    monkeypatch.setenv("SENTIMENTKIT_MIXED", "off")
    predictor = load_predictor(COMMITTED_MODEL)
    calls: list[int] = []
    real = predictor.predict_proba
    monkeypatch.setattr(predictor, "predict_proba", lambda t: calls.append(len(t)) or real(t))
    off = predictor.score(texts)
    assert [r["mixed"] for r in on] == [True, False, True]
    assert [r["mixed"] for r in off] == [None, None, None]
    for a, b in zip(on, off):
        assert {k: v for k, v in a.items() if k != "mixed"} == {k: v for k, v in b.items() if k != "mixed"}
    assert len(long_review) > parts.LONG_TEXT_CHARS
    assert calls[0] == len(parts.split_parts(long_review))  # only the long text's parts were scored
    assert predictor.score(texts[:1], parts=True)[0]["mixed"] is True
    monkeypatch.setenv("SENTIMENTKIT_MIXED", "maybe")
    with pytest.raises(ConfigError, match="SENTIMENTKIT_MIXED must be true or false"):
        Settings.from_env()


def test_shortcuts_equal_the_full_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """The two shortcuts (one search decides one-part texts; without a contrast word the sentences
    are the parts) give what the full rules give, on every test text and some edge cases."""
    texts = pd.read_csv(Path(__file__).parent / "data" / "mixed.csv")["text"].astype(str).tolist()
    texts += ["", "   ", "no cut here at all", "end.", "a.b", "wait...what", "x\ny", "Butter is good", "yet",
              "Good. But bad.", "Fine!!! 😀 Really.", "Though tired, happy", "A. B. C.\n\nD"]  # fmt: skip
    fast = [parts.split_parts(t) for t in texts]
    monkeypatch.setattr(parts, "_FAST", False)
    assert [parts.split_parts(t) for t in texts] == fast
