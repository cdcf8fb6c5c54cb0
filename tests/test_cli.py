"""The CLI as users run it: `python -m sentimentkit ...` in a subprocess."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.pipeline import card_path

from .conftest import TINY_TEXTS, write_tiny_splits


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "sentimentkit", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


@pytest.fixture
def tiny_data(tmp_path):
    return write_tiny_splits(tmp_path)


def test_train_writes_model_and_card_then_evaluate_json(tiny_data, tmp_path):
    out = tmp_path / "m" / "model.pkl"
    result = run("train", "--data", str(tiny_data), "--out", str(out), "--C", "10")
    assert result.returncode == 0, result.stderr
    card = json.loads(card_path(out).read_text())
    assert card["training_data"]["train"]["rows"] == len(TINY_TEXTS)
    assert len(card["training_data"]["train"]["sha256"]) == 64
    assert card["hyperparameters"]["C"] == 10
    assert {"python", "scikit-learn", "nltk"} <= set(card["libraries"])
    assert {"validation", "test"} <= set(card["metrics"])
    result = run("evaluate", "--model", str(out), "--data", str(tiny_data / "test.csv"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("avg_recall", "f1_pn", "macro_f1", "accuracy"):
        assert 0 <= report[key] <= 1
    assert report["n"] == len(TINY_TEXTS)
    assert report["labels"] == ["negative", "neutral", "positive"]
    assert len(report["confusion_matrix"]) == 3
    text = run("evaluate", "--model", str(out), "--data", str(tiny_data / "test.csv"))
    assert "recall" in text.stdout and "confusion matrix" in text.stdout


def test_predict_one_text(tiny_model_path):
    result = run("predict", "--model", str(tiny_model_path), "--text", "I love it, so great")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sentiment"] == "positive"


def test_predict_csv_keeps_every_row_in_order_and_flags_bad_ones(tiny_model_path, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        'id,text,extra\n1,I love it,a\n2,,b\n3,"multi\nline hate it",c\n4,   ,d\n5,NA,e\n', encoding="utf-8"
    )
    out = tmp_path / "out.csv"
    result = run("predict", "--model", str(tiny_model_path), "--input", str(src), "--output", str(out),
                 "--chunk-rows", "2")  # fmt: skip
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["id"].tolist() == ["1", "2", "3", "4", "5"]
    assert scored["extra"].tolist() == ["a", "b", "c", "d", "e"]
    assert scored["text"][2] == "multi\nline hate it"
    assert scored["error"].tolist() == ["", "empty text", "", "empty text", ""]
    assert scored["sentiment"][0] == "positive"
    for column in ("confidence", "p_negative", "p_neutral", "p_positive", "uncertain"):
        assert column in scored.columns


def test_user_errors_are_one_line_without_traceback(tiny_model_path, tmp_path):
    cases = [
        ("predict", "--model", str(tmp_path / "missing.pkl"), "--text", "hi"),
        ("predict", "--model", str(tiny_model_path), "--text", "   "),
        ("predict", "--model", str(tiny_model_path)),
        ("evaluate", "--model", str(tiny_model_path), "--data", str(tmp_path / "none.csv")),
    ]
    for args in cases:
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr


def test_predict_csv_missing_column(tiny_model_path, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("tweet\nhello\n")
    result = run(
        "predict", "--model", str(tiny_model_path), "--input", str(src), "--output", str(tmp_path / "o.csv")
    )
    assert result.returncode == 2
    assert "Column 'text' not found" in result.stderr and "['tweet']" in result.stderr


def test_validate_data_reports_each_split(tiny_data):
    result = run("validate-data", "--data", str(tiny_data))
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["name"] for r in reports] == ["train", "validation", "test"]
    assert reports[0]["overlap"]["test"] == 9  # identical tiny splits: leakage is reported


def test_predict_csv_keeps_input_columns_named_like_outputs(tiny_model_path, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("text,sentiment\nI love it,gold-positive\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    result = run("predict", "--model", str(tiny_model_path), "--input", str(src), "--output", str(out))
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["sentiment_input"].tolist() == ["gold-positive"]
    assert scored["sentiment"].tolist() == ["positive"]


def test_train_recency_override_reaches_the_card_and_search_refuses_overrides(tiny_data, tmp_path):
    out = tmp_path / "m" / "model.pkl"
    result = run("train", "--data", str(tiny_data), "--out", str(out), "--C", "10", "--recency-beta", "0")
    assert result.returncode == 0, result.stderr
    card = json.loads(card_path(out).read_text())
    assert card["hyperparameters"]["recency_beta"] == 0.0  # 0 is kept, not dropped for the default (2)
    assert {"holdout", "validation", "clean_validation", "test"} <= set(card["metrics"])
    assert "temporal-holdout AvgRec" in result.stdout
    clash = run("train", "--data", str(tiny_data), "--out", str(out), "--search", "--C", "1")
    assert clash.returncode == 2 and "drop --C" in clash.stderr and "Traceback" not in clash.stderr
