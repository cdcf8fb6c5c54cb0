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


# --- issue 10 §1: nothing lost, shifted, clobbered or silently changed ------------------------------
def predict_file(model, src, out, *extra: str) -> subprocess.CompletedProcess:
    return run("predict", "--model", str(model), "--input", str(src), "--output", str(out), *extra)


def read_scored(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def score_bytes(model, tmp_path, data: bytes) -> tuple[subprocess.CompletedProcess, pd.DataFrame]:
    """Run `predict` on `data` as in.csv; the run (which must succeed) and the scored rows."""
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(data)
    result = predict_file(model, src, out)
    assert result.returncode == 0, result.stderr
    return result, read_scored(out)


def test_predict_keeps_blank_lines_as_flagged_rows(tiny_model_path, tmp_path):
    result, scored = score_bytes(tiny_model_path, tmp_path, b"text\nhello\n\nworld\n\n\nbye\n")
    assert "wrote 6 rows" in result.stdout and "3 flagged" in result.stdout
    assert scored["text"].tolist() == ["hello", "", "world", "", "", "bye"]
    assert scored["error"].tolist() == ["", "empty text", "", "empty text", "empty text", ""]


def test_predict_one_column_file_with_unquoted_commas(tiny_model_path, tmp_path):
    _, scored = score_bytes(tiny_model_path, tmp_path, b"text\nhello, world\nbye\nsee you\n")
    assert scored["text"].tolist() == ["hello, world", "bye", "see you"]
    assert scored["error"].tolist() == ["", "", ""] and all(scored["sentiment"])


def test_predict_flags_ragged_rows_with_their_line_and_warns(tiny_model_path, tmp_path):
    result, scored = score_bytes(
        tiny_model_path, tmp_path, b"id,text\n1,I love it\n2,hello, world\n3,I hate it\n"
    )
    assert scored["id"].tolist() == ["1", "2", "3"] and scored["text"][1] == "hello, world"
    assert scored["error"].tolist() == ["", "line 3: 3 fields, the header has 2", ""]
    assert "warning: 1 rows have more or fewer fields than the header (lines 3)" in result.stderr


def test_predict_refuses_output_equal_to_input(tiny_model_path, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"text\nI love it\n")
    result = predict_file(tiny_model_path, src, tmp_path / "." / "in.csv")
    assert result.returncode == 2 and "is the input file" in result.stderr
    assert src.read_bytes() == b"text\nI love it\n"  # was truncated to 0 bytes


def test_a_failed_predict_leaves_an_existing_output_untouched(tiny_model_path, tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes(b"tweet\nI love it\n")
    out.write_bytes(b"yesterday's results\n")
    result = predict_file(tiny_model_path, src, out)  # wrong column: the run fails
    assert result.returncode == 2 and "Column 'text' not found" in result.stderr
    assert out.read_bytes() == b"yesterday's results\n"  # was emptied
    src.write_bytes(b"text\n" + b"I love it\n" * 30 + b'"never closed\nx\n')
    result = predict_file(tiny_model_path, src, out, "--chunk-rows", "5")  # fails after 6 chunks
    assert result.returncode == 2 and "line 32" in result.stderr
    assert out.read_bytes() == b"yesterday's results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]  # no partial file


def test_predict_reads_cp1252_and_late_latin1_bytes(tiny_model_path, tmp_path):
    text = "\u201cGreat\u201d, only 5 \u20ac"
    data = ("text\n" + "plain row\n" * 8000 + f'"{text}"\ncaf\u00e9\n').encode("cp1252")
    _, scored = score_bytes(
        tiny_model_path, tmp_path, data
    )  # was: "not valid utf-8 (at byte 3)", partial output
    assert scored["text"].tolist()[-2:] == [text, "caf\u00e9"]


def test_predict_reads_xlsx_and_reports_renamed_columns(tiny_model_path, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    for row in [["text", "text", "sentiment"], ["I love it", "x", "gold"], ["I hate it", "y", "gold"]]:
        book.active.append(row)
    src, out = tmp_path / "in.xlsx", tmp_path / "out.csv"
    book.save(src)
    result = predict_file(tiny_model_path, src, out)
    assert result.returncode == 0, result.stderr  # was: "use an Excel workbook with the .xlsx extension"
    scored = read_scored(out)
    assert list(scored.columns)[:3] == ["text", "text.1", "sentiment_input"]
    assert scored["sentiment"].tolist() == ["positive", "negative"]
    assert "warning: column 2 is another 'text'; it is called 'text.1'" in result.stderr
    assert "warning: the input column 'sentiment' is written as 'sentiment_input'" in result.stderr


def test_predict_flags_xlsx_formulas_without_a_saved_value_and_counts_them(tiny_model_path, tmp_path):
    # Was: such a cell read as empty, so the row was flagged "empty text" and nothing said why.
    from sentimentkit.serving.base import UNSAVED_FORMULA
    from tests.workbooks import xlsx_bytes

    rows = [["text"], ["I love it"], ['=A2&" so much"'], ["=A2"], ["I hate it"]]
    src, out = tmp_path / "in.xlsx", tmp_path / "out.csv"
    src.write_bytes(xlsx_bytes(rows, saved={"A4": "I love it"}))
    for jobs in ("1", "2"):  # in this process, and in worker processes (the cells travel pickled)
        result = predict_file(tiny_model_path, src, out, "--jobs", jobs)
        assert result.returncode == 0, result.stderr
        scored = read_scored(out)
        assert scored["text"].tolist() == ["I love it", '\'=A2&" so much"', "I love it", "I hate it"]
        assert scored["error"].tolist() == ["", UNSAVED_FORMULA, "", ""]
        assert scored["sentiment"].tolist() == ["positive", "", "positive", "negative"]
        assert "(1 flagged in the 'error' column)" in result.stdout
        assert "warning: 1 cell holds a formula with no saved value (column 'text': row 3)" in result.stderr


def test_predict_neutralises_formulas_in_the_cli_output(tiny_model_path, tmp_path):
    data = b'text,note\nI love it,=HYPERLINK("http://x")\n@user I hate it,-5\n'
    _, scored = score_bytes(tiny_model_path, tmp_path, data)
    assert scored["note"].tolist() == ['\'=HYPERLINK("http://x")', "-5"]
    assert scored["text"].tolist() == ["I love it", "@user I hate it"]  # a reply, not a formula


def test_predict_formula_guard_flag_env_and_worker_processes(tiny_model_path, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(
        b"text,note\n@united thanks for nothing,-A1\nI love it,+1 great service\nI hate it,=1+1\n"
    )
    runs = {
        "all": predict_file(tiny_model_path, src, tmp_path / "all.csv", "--formula-guard", "all",
                            "--jobs", "2", "--chunk-rows", "1"),  # the worker processes apply it too
        "off": run("predict", "--model", str(tiny_model_path), "--input", str(src), "--output",
                   str(tmp_path / "off.csv"), env={"SENTIMENTKIT_FORMULA_GUARD": "off"}),
    }  # fmt: skip
    assert all(r.returncode == 0 for r in runs.values()), [r.stderr for r in runs.values()]
    out = read_scored(tmp_path / "all.csv")
    assert out["text"].tolist() == ["'@united thanks for nothing", "I love it", "I hate it"]
    assert out["note"].tolist() == ["'-A1", "'+1 great service", "'=1+1"]
    out = read_scored(tmp_path / "off.csv")
    assert out["note"].tolist() == ["-A1", "+1 great service", "=1+1"]
    wrong = predict_file(tiny_model_path, src, tmp_path / "x.csv", "--formula-guard", "some")
    assert wrong.returncode == 2 and "argument --formula-guard: invalid choice: 'some'" in wrong.stderr
    bad_env = run("predict", "--text", "hi", env={"SENTIMENTKIT_FORMULA_GUARD": "some"})
    assert bad_env.returncode == 2
    assert bad_env.stderr.strip().startswith("error: SENTIMENTKIT_FORMULA_GUARD must be auto")
    assert "Traceback" not in bad_env.stderr and not (tmp_path / "x.csv").exists()


def test_predict_hostile_inputs_get_rows_or_one_line(tiny_model_path, tmp_path):
    # Old Mac line ends and a 1 MB cell were refused whole; folders gave an OS error naming a temp file.
    big = b"a" * 1_000_000
    result, scored = score_bytes(tiny_model_path, tmp_path, b"text\rI love it\r" + big + b"\rbye\r")
    assert scored["text"].tolist() == ["I love it", big.decode(), "bye"]
    assert scored["error"][1].startswith("text too long") and "1 flagged" in result.stdout
    for args, message in (
        (("--input", str(tmp_path), "--output", str(tmp_path / "o.csv")), "is a folder; give the CSV"),
        (("--input", str(tmp_path / "in.csv"), "--output", str(tmp_path)), "is a folder. Give a file name"),
        (("--text", "hi", "--threshold", "5"), "The threshold (--threshold, SENTIMENTKIT_THRESHOLD) must be"),
        (("--text", "\u200d"), "cannot score this text: empty text"),
    ):
        result = run("predict", "--model", str(tiny_model_path), *args)
        assert result.returncode == 2 and result.stderr.startswith("error: ") and message in result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
