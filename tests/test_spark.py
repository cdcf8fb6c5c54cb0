"""Spark scoring with a real pyspark in local[2] (`sentimentkit.scale.spark`, `spark-predict`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sentimentkit.config import REPO_ROOT
from sentimentkit.models.pipeline import ModelError
from sentimentkit.scale.multiproc import score_file

pytest.importorskip("pyspark", reason="pyspark not installed: pip install -r requirements-spark.txt")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("Spark needs Java 17+ (no java on PATH, no JAVA_HOME)", allow_module_level=True)

from sentimentkit.scale.spark import _executor_predictor, predict_spark, score_spark_frame  # noqa: E402

# pyspark 4.3 warns about pandas 3 (its own calls), not about ours.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]
MODEL = REPO_ROOT / "model.pkl"
SPARK_ENV = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
ROWS = [
    "I don't love this phone",
    "what a great game!!! #win",
    "",
    "   ",
    "good " * 2000,  # over the 5,120-character limit
    'she said "hi", then left\nfor work',
    "worst. service. ever.",
    "@user the meeting is at noon http://t.co/x",
]


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    os.environ.update(SPARK_ENV)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("sentimentkit-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture
def rows_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    texts = ROWS * 5
    pd.DataFrame({"id": range(len(texts)), "text": texts, "sentiment": "old"}).to_csv(path, index=False)
    return path


def read_spark_csv(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.csv"))
    return pd.concat([pd.read_csv(p, dtype=str, keep_default_na=False) for p in parts], ignore_index=True)


def test_spark_labels_equal_the_cli_on_the_same_rows_bad_ones_included(spark, rows_csv, tmp_path):
    cli_out, spark_out = tmp_path / "cli.csv", tmp_path / "spark_out"
    score_file(MODEL, rows_csv, cli_out, jobs=1)
    predict_spark(spark, str(rows_csv), str(spark_out), MODEL)
    expected = pd.read_csv(cli_out, dtype=str, keep_default_na=False)
    got = read_spark_csv(spark_out)
    assert list(got.columns) == list(expected.columns)  # same columns, `sentiment` input kept as _input
    assert got["id"].tolist() == expected["id"].tolist()  # every row, in input order
    for column in ("text", "sentiment", "uncertain", "error", "sentiment_input"):
        assert got[column].tolist() == expected[column].tolist(), column
    for column in ("confidence", "p_negative", "p_neutral", "p_positive"):
        a, b = pd.to_numeric(got[column]), pd.to_numeric(expected[column])
        assert ((a - b).abs().fillna(0) < 1e-9).all(), column
    assert (got["error"] != "").sum() == 3 * 5  # empty, blank, too long: flagged, not dropped


def test_parquet_through_spark_keeps_types_and_flags_nulls(spark, tmp_path):
    frame = pd.DataFrame({"id": list(range(len(ROWS) + 1)), "text": [*ROWS, None]})
    source = tmp_path / "in.parquet"
    frame.to_parquet(source)
    out = tmp_path / "out.parquet"
    predict_spark(spark, str(source), str(out), MODEL)
    scored = spark.read.parquet(str(out)).toPandas().sort_values("id").reset_index(drop=True)
    assert len(scored) == len(ROWS) + 1 and str(scored["id"].dtype) == "int64"
    assert scored["error"].iloc[-1] == "empty text" and pd.isna(scored["sentiment"].iloc[-1])
    assert scored["sentiment"].iloc[0] == "negative"


def test_spark_csv_takes_the_formula_guard(spark, tmp_path):
    source = tmp_path / "in.csv"
    pd.DataFrame({"text": ["@user I love it", "=1+1", "-A1 is bad", "+A1"]}).to_csv(source, index=False)
    for mode, expected in (
        ("auto", ["@user I love it", "'=1+1", "-A1 is bad", "'+A1"]),
        ("all", ["'@user I love it", "'=1+1", "'-A1 is bad", "'+A1"]),
        ("off", ["@user I love it", "=1+1", "-A1 is bad", "+A1"]),
    ):
        predict_spark(spark, str(source), str(tmp_path / mode), MODEL, formula_guard=mode)
        assert read_spark_csv(tmp_path / mode)["text"].tolist() == expected, mode
    with pytest.raises(ValueError, match="formula guard must be one of auto, all, off"):
        score_spark_frame(spark.createDataFrame(pd.DataFrame({"text": ["hi"]})), MODEL, formula_guard="x")


def test_the_executor_refuses_a_model_copy_whose_hash_differs(spark):
    spark.sparkContext.addFile(str(MODEL))
    with pytest.raises(ModelError, match="does not match"):
        _executor_predictor(MODEL.name, "0" * 64, None)


def test_a_missing_text_column_is_a_clear_error(spark):
    with pytest.raises(ModelError, match="Column 'tweet' not found"):
        score_spark_frame(spark.createDataFrame(pd.DataFrame({"text": ["hi"]})), MODEL, "tweet")


def test_spark_predict_command_end_to_end(rows_csv, tmp_path):
    out = tmp_path / "scored"
    command = [sys.executable, "-m", "sentimentkit", "spark-predict", "--input", str(rows_csv), "--output", str(out),
               "--master", "local[2]"]  # fmt: skip
    env = {**os.environ, **SPARK_ENV}
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(read_spark_csv(out)) == len(ROWS) * 5
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert again.returncode == 2 and "error: " in again.stderr and "Traceback" not in again.stderr


def test_spark_predict_without_master_from_a_virtualenv_that_is_not_activated(rows_csv, tmp_path):
    """`/path/.venv/bin/python -m sentimentkit spark-predict` with the venv off PATH: Spark's Python
    workers must run that interpreter, not the first `python3` on PATH (no pandas there)."""
    out = tmp_path / "scored"
    venv_bin = str(Path(sys.executable).parent)
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d != venv_bin]
    path = [d for d in path if ".venv" not in d and "pyenv" not in d] + ["/usr/bin", "/bin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "VIRTUAL_ENV"))}
    # No --master anywhere: Spark's own default (local[*]); the UI off, as in the other tests.
    env.update(PATH=os.pathsep.join(path), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_SUBMIT_ARGS="--conf spark.ui.enabled=false pyspark-shell")  # fmt: skip
    command = [sys.executable, "-m", "sentimentkit", "spark-predict", "--input", str(rows_csv), "--output", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(read_spark_csv(out)) == len(ROWS) * 5
