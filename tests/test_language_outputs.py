"""Issue 24 output contract: `language`, `mixed` (and opt-in `parts`) in every front end's output."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from sentimentkit.api.app import create_app
from sentimentkit.config import Settings
from sentimentkit.io.columns import OUTPUT_COLUMNS, input_column_renames
from sentimentkit.scale.multiproc import output_schema

from .conftest import COMMITTED_MODEL
from .test_cli import run

GERMAN = "Der Flug war eine Katastrophe"
MIXED = "The food was great but the service was painfully slow"


def test_output_columns_end_with_language_and_mixed_and_are_reserved() -> None:
    assert OUTPUT_COLUMNS[-3:] == ("error", "language", "mixed")
    assert input_column_renames(["text", "language", "mixed", "parts"]) == {
        "language": "language_input", "mixed": "mixed_input", "parts": "parts_input",
    }  # fmt: skip


def test_predict_text_json_has_language_and_mixed_and_parts_on_request() -> None:
    result = run("predict", "--model", str(COMMITTED_MODEL), "--text", GERMAN)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["language"] == "de" and record["mixed"] is False and "parts" not in record
    assert "this text looks like language 'de', not English" in result.stderr  # and a note
    result = run("predict", "--model", str(COMMITTED_MODEL), "--text", MIXED, "--parts")
    record = json.loads(result.stdout)
    assert record["language"] == "en" and record["mixed"] is True
    assert [MIXED[p["start"] : p["end"]] for p in record["parts"]] == [p["text"] for p in record["parts"]]


def test_predict_file_csv_and_parquet_carry_language_mixed_and_parts(tmp_path) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": [GERMAN, MIXED, ""], "language": ["x", "y", "z"]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    result = run(
        "predict", "--model", str(COMMITTED_MODEL), "--input", str(src), "--output", str(out), "--jobs", "1"
    )
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(scored.columns) == ["text", "language_input", *OUTPUT_COLUMNS]
    assert scored["language"].tolist() == ["de", "en", ""]
    assert scored["mixed"].tolist() == ["False", "True", ""]
    assert scored["language_input"].tolist() == ["x", "y", "z"]  # the input's own column is kept
    assert "1 row looks like a language the model does not read (de 1)" in result.stderr  # and a note
    parquet = tmp_path / "out.parquet"
    result = run("predict", "--model", str(COMMITTED_MODEL), "--input", str(src), "--output", str(parquet),
                 "--jobs", "1", "--parts")  # fmt: skip
    assert result.returncode == 0, result.stderr
    table = pq.read_table(parquet).to_pandas()
    assert list(table.columns) == ["text", "language_input", *OUTPUT_COLUMNS, "parts"]
    assert table["mixed"].tolist() == [False, True, None]
    parts = json.loads(table["parts"][1])
    assert [p["sentiment"] for p in parts] == ["positive", "negative"]
    assert pd.isna(table["parts"][2])


def test_api_records_have_language_mixed_and_parts_on_request(predictor) -> None:
    with TestClient(create_app(Settings(), predictor=predictor)) as client:
        one = client.post("/v1/predict", json={"text": GERMAN}).json()
        assert one["language"] == "de" and one["language_confidence"] > 0.5 and one["mixed"] is False
        assert "parts" not in one
        with_parts = client.post("/v1/predict?parts=true", json={"text": MIXED}).json()
        assert with_parts["mixed"] is True and len(with_parts["parts"]) == 2
        assert with_parts["parts"][1]["text"] == "but the service was painfully slow"
        batch = client.post("/v1/predict/batch?parts=true", json={"texts": [MIXED, "", 3]}).json()["results"]
        assert batch[0]["mixed"] is True and batch[0]["parts"][0]["start"] == 0
        assert (
            batch[1]["error"] == "empty text" and batch[1]["parts"] is None and batch[1]["language"] is None
        )
        assert batch[2]["parts"] is None
        plain = client.post("/v1/predict/batch", json={"texts": [GERMAN]}).json()["results"][0]
        assert plain["language"] == "de" and "parts" not in plain
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert {"language", "language_confidence", "mixed", "parts"} <= set(
            schema["Prediction"]["properties"]
        )


def test_parquet_schema_has_language_and_mixed() -> None:
    import pyarrow as pa

    schema = output_schema(pa.schema([("text", pa.string())]))
    assert schema.field("language").type == pa.string() and schema.field("mixed").type == pa.bool_()
    assert "parts" in output_schema(pa.schema([("text", pa.string())]), parts=True).names


def test_spark_schema_has_language_and_mixed() -> None:
    from pyspark.sql.types import BooleanType, StringType, StructField, StructType

    from sentimentkit.scale.spark import output_schema as spark_schema

    schema = spark_schema(StructType([StructField("text", StringType())]))
    assert schema["language"].dataType == StringType() and schema["mixed"].dataType == BooleanType()
    assert schema.fieldNames()[-3:] == ["error", "language", "mixed"]


def test_language_note_counts_rows_by_language() -> None:
    from sentimentkit.serving.batch import language_note

    assert language_note({"en": 5}) is None
    assert language_note({}) is None
    note = language_note(pd.Series(["en", "de", "zh", "de", None, "en"]).value_counts())
    assert note is not None and note.startswith(
        "3 rows look like languages the model does not read (de 2, zh 1)"
    )


def test_mixed_off_leaves_the_column_empty(tmp_path, monkeypatch) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({"text": [GERMAN, MIXED]}).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    monkeypatch.setenv("SENTIMENTKIT_MIXED", "off")
    result = run(
        "predict", "--model", str(COMMITTED_MODEL), "--input", str(src), "--output", str(out), "--jobs", "1"
    )
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert scored["mixed"].tolist() == ["", ""] and scored["language"].tolist() == ["de", "en"]
