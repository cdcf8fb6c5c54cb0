"""Score a text column of a Spark DataFrame with `mapInPandas`: same output columns as the CLI.

The model file (and its card) is shipped to every executor once with `SparkContext.addFile`; on the
executor its SHA-256 is checked against the hash the driver computed before `load_predictor` (which
checks it against the card again) opens it, and each Python worker loads it once and keeps it for
every later partition. Rows that cannot be scored are flagged in `error`, never dropped.

Needs pyspark (`pip install -r requirements-spark.txt`); importing this module does not start Spark.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from sentimentkit.data import file_sha256
from sentimentkit.io.formula import check_formula_guard, neutralise_formulas
from sentimentkit.io.tables import BatchError, check_column
from sentimentkit.models.pipeline import ModelError
from sentimentkit.serving.base import OUTPUT_COLUMNS, PROBA_COLUMNS, BasePredictor, keep_input_columns
from sentimentkit.serving.batch import score_chunk
from sentimentkit.serving.loader import load_predictor

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

SPARK_HINT = "needs pyspark: pip install -r requirements-spark.txt"
ROW_ID = "__sentimentkit_row"
_executor_models: dict[tuple[str, str, float | None], BasePredictor] = {}

__all__ = [
    "SPARK_HINT",
    "model_files",
    "output_schema",
    "predict_spark",
    "score_spark_frame",
    "spark_session",
]


def model_files(model_path: str | Path) -> list[Path]:
    """The files that make up a model: `model.pkl` and its card `model.json` (a folder: itself)."""
    path = Path(model_path)
    if path.is_dir():
        return [path]
    card = path.with_suffix(".json")
    if not path.is_file() or not card.is_file():
        raise ModelError(
            f"{path} (with its card {card.name} beside it) not found; train or point --model at it."
        )
    return [path, card]


def output_schema(input_schema: StructType) -> StructType:
    """The input fields (renamed like the CLI renames them) followed by the output columns."""
    from pyspark.sql.types import BooleanType, DoubleType, StringType, StructField, StructType

    renamed = keep_input_columns(pd.DataFrame(columns=input_schema.fieldNames())).columns
    fields = [StructField(name, f.dataType, True) for name, f in zip(renamed, input_schema.fields)]
    types = {
        "sentiment": StringType(),
        "confidence": DoubleType(),
        "uncertain": BooleanType(),
        "error": StringType(),
        "language": StringType(),
        "mixed": BooleanType(),
    }
    types.update({column: DoubleType() for column in PROBA_COLUMNS})
    return StructType([*fields, *(StructField(c, types[c], True) for c in OUTPUT_COLUMNS)])


def _executor_predictor(name: str, sha256: str, threshold: float | None) -> BasePredictor:
    """The model shipped under `name`, loaded once per Python worker after its hash is checked."""
    key = (name, sha256, threshold)
    if key not in _executor_models:
        from pyspark import SparkFiles

        local = SparkFiles.get(name)
        if file_sha256(local) != sha256:
            raise ModelError(
                f"the copy of {name} on this executor does not match the driver's (SHA-256); refusing it."
            )
        _executor_models[key] = load_predictor(local, threshold=threshold)
    return _executor_models[key]


def score_spark_frame(
    frame: DataFrame,
    model_path: str | Path,
    text_column: str = "text",
    threshold: float | None = None,
    escape_formulas: bool = False,
    formula_guard: str = "auto",
) -> DataFrame:
    """`frame` with the CLI's output columns appended, every row kept (bad ones flagged in `error`).

    `escape_formulas`: neutralise cells a spreadsheet would run, as every CSV the CLI writes does,
    with the guard `formula_guard` (auto, all, off; `sentimentkit.io.formula`).
    """
    formula_guard = check_formula_guard(formula_guard)  # on the driver, before any executor starts
    try:
        check_column(frame.columns, text_column)  # the one reader's rule and message
    except BatchError as exc:
        raise ModelError(str(exc)) from None
    files = model_files(model_path)
    context = frame.sparkSession.sparkContext
    for item in files:
        context.addFile(str(item), recursive=item.is_dir())
    name, sha256 = files[0].name, file_sha256(files[0])

    def score_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        predictor = _executor_predictor(name, sha256, threshold)
        for batch in batches:
            scored = score_chunk(predictor, batch, text_column)
            yield neutralise_formulas(scored, formula_guard) if escape_formulas else scored

    return frame.mapInPandas(score_batches, output_schema(frame.schema))


def spark_session(master: str | None = None, app_name: str = "sentimentkit") -> SparkSession:
    """A SparkSession (the one spark-submit configured when `master` is None).

    When Spark runs on this machine (a `local` master, or no master outside spark-submit), its Python
    workers get this interpreter unless PYSPARK_PYTHON / PYSPARK_DRIVER_PYTHON already say otherwise.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ModelError(f"spark-predict {SPARK_HINT}") from None
    launched_by_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if (master or "").startswith("local") or (master is None and not launched_by_spark_submit):
        # Local Python workers must run this interpreter (the one with sentimentkit's packages), not
        # whichever `python3` PATH finds: from a virtualenv that is not activated that is the system
        # one, without pandas. With no --master and no spark-submit, Spark runs locally too.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    return (builder.master(master) if master else builder).getOrCreate()


def _read(spark: SparkSession, uri: str) -> DataFrame:
    if uri.lower().endswith((".parquet", ".pq")) or uri.rstrip("/").lower().endswith("parquet"):
        return spark.read.parquet(uri)
    # Every cell as a string, RFC 4180 quoting (a doubled quote escapes), quoted line breaks kept
    # inside their row; an empty cell is an empty text, flagged like the CLI flags it.
    return spark.read.csv(uri, header=True, multiLine=True, escape='"', inferSchema=False)


def _spread(frame: DataFrame) -> DataFrame:
    """Spread a frame read as fewer partitions than cores (one CSV file, multiLine) over all of
    them, keeping row order: range partitions of a row id, sorted within each."""
    from pyspark.sql.functions import monotonically_increasing_id

    parallelism = frame.sparkSession.sparkContext.defaultParallelism
    if frame.rdd.getNumPartitions() >= parallelism:
        return frame
    numbered = frame.withColumn(ROW_ID, monotonically_increasing_id())
    return numbered.repartitionByRange(parallelism, ROW_ID).sortWithinPartitions(ROW_ID).drop(ROW_ID)


def predict_spark(
    spark: SparkSession,
    input_uri: str,
    output_uri: str,
    model_path: str | Path,
    text_column: str = "text",
    threshold: float | None = None,
    formula_guard: str = "auto",
) -> None:
    """Read CSV/Parquet at `input_uri`, score it, write the same format to the folder `output_uri`
    (CSV cells neutralised by the guard `formula_guard`: auto, all, off)."""
    from pyspark.sql.functions import col, when

    as_csv = not output_uri.lower().rstrip("/").endswith((".parquet", ".pq"))
    scored = score_spark_frame(
        _spread(_read(spark, input_uri)), model_path, text_column, threshold, as_csv, formula_guard
    )
    if not as_csv:
        scored.write.mode("errorifexists").parquet(output_uri)
        return
    flag = col("uncertain")  # True/False as the CLI writes them (Spark would write true/false)
    scored = scored.withColumn("uncertain", when(flag, "True").when(~flag, "False"))
    # Spark's CSV writer trims cells by default; a text's spaces are part of the row.
    options = {
        "header": True,
        "escape": '"',
        "ignoreLeadingWhiteSpace": False,
        "ignoreTrailingWhiteSpace": False,
    }
    scored.write.mode("errorifexists").csv(output_uri, **options)


def describe_spark_error(exc: BaseException) -> str | None:
    """One line for a Spark error a user can cause (missing input, existing output), else None."""
    name: Any = type(exc).__name__
    text = str(exc).split("\n", 1)[0]
    if name in ("AnalysisException", "IllegalArgumentException", "PySparkException") or "PATH_" in text:
        return text
    return None
