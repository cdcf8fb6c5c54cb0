"""sentimentkit: three-class tweet sentiment (negative / neutral / positive) on the command line.

What it does for whom:
  end users        the Streamlit app (streamlit run app.py): paste a text or upload a file
  analysts         predict (one text, or a CSV/TSV/XLSX/Parquet file: every row scored, in order)
                   and report (an HTML + JSON report of a file: over time, by group, drivers)
  engineers        serve (the REST API), spark-predict (files too big for one machine),
                   predict --jobs N (worker processes)
  data scientists  fetch-data, validate-data, train, evaluate, train-transformer, export-onnx,
                   ensemble; notebook.ipynb (jupyter) for the analysis behind the model
  operators        models (the MLflow registry: register, list, promote, rollback), monitor
                   (drift of the prediction log), retrain and watch (new labelled batches),
                   sign (sign a model's card)
  labellers        review (the logged predictions most worth a label), feedback add (import
                   corrections: CSV/XLSX/Parquet, Label Studio, Argilla) for retrain to learn from

`-` reads standard input (predict --input, report --input, evaluate --data) or writes standard output
(predict/evaluate --output, report --output/--json). `sentimentkit COMMAND -h` tells each command's
options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from sentimentkit import __version__
from sentimentkit.config import SEED, SPLITS, TWEETEVAL_BASE_URL, Settings
from sentimentkit.errors import UsageError, UserError  # noqa: F401  (UsageError: re-exported)
from sentimentkit.feedback.commands import COMMANDS as FEEDBACK_COMMANDS
from sentimentkit.feedback.commands import add_parsers as add_feedback_parsers
from sentimentkit.io.storage import join, local_dir, local_input
from sentimentkit.mlops import CHAMPION, MODEL_NAMES, TFIDF_MODEL
from sentimentkit.mlops.gate import CLASS_METRICS, DOMAIN_RULES, JUDGES, Gate
from sentimentkit.redact import install_log_redaction, redact, redact_exception

EPILOG = """examples:
  sentimentkit predict --text "I love it"
  sentimentkit predict --input tweets.csv --output scored.csv --jobs 4
  cat tweets.csv | sentimentkit predict --input - --output - > scored.csv
  sentimentkit report --input tweets.xlsx --output report.html --json summary.json
  sentimentkit evaluate --data test.csv --json
  sentimentkit train --data data/ --out model.pkl --search
  sentimentkit serve --port 8000
  sentimentkit monitor --log az://logs/predictions --since 7d --fail-on alert
  sentimentkit models list
"""

STDIN = "-"


# --- shared options and helpers --------------------------------------------------------------------
def _add_model(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--model", type=Path, default=settings.model_path,
                   help="model.pkl (card model.json beside it) or a transformer folder; default %(default)s")  # fmt: skip


def _add_formula_guard(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--formula-guard", choices=("auto", "all", "off"), default=settings.formula_guard,
                   help="CSV cells that get a ' so spreadsheets do not run them: auto = only real formulas "
                        "(=..., +A1, -2+3, @SUM(..)), all = every cell starting with = + - @, off = none; "
                        "default %(default)s (SENTIMENTKIT_FORMULA_GUARD)")  # fmt: skip


def _add_text_column(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text-column", default="text", help="the column holding the texts; default %(default)s")


def _stdin_suffix(head: bytes) -> str:
    """The file kind of spooled standard input, from its first bytes: Parquet, XLSX, else CSV."""
    if head.startswith(b"PAR1"):
        return ".parquet"
    if head.startswith(b"PK\x03\x04"):
        return ".xlsx"
    return ".csv"


@contextlib.contextmanager
def stdin_or_path(location: str | Path, option: str) -> Iterator[str | Path]:
    """`location` itself, or for `-` standard input spooled to a temporary file (removed afterwards),
    so the one reader (`sentimentkit.io.tables`) reads it by its usual rules (encoding, delimiter,
    quoted line breaks). Standard input that is a terminal or empty is a UsageError."""
    if os.fspath(location) != STDIN:
        yield location
        return
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    if stdin is None or sys.stdin.isatty():
        raise UsageError(f"{option} - reads standard input: pipe a file in, e.g. ... {option} - < tweets.csv")
    with tempfile.TemporaryDirectory(prefix="sentimentkit-stdin-") as tmp:
        spool = Path(tmp) / "stdin"
        with open(spool, "wb") as fh:
            shutil.copyfileobj(stdin, fh, 1 << 20)
        with open(spool, "rb") as fh:
            head = fh.read(4)
        if not head:
            raise UsageError(f"{option} - read nothing from standard input: pipe a file in")
        path = spool.rename(spool.with_name(f"stdin{_stdin_suffix(head)}"))
        yield path


def _card_version(model: Path) -> str | None:
    """The version in the default model's card, read as plain JSON (no model loading); None if none."""
    card = model / "card.json" if model.is_dir() else model.with_suffix(".json")
    try:
        version = json.loads(card.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return str(version) if version else None


def _version(settings: Settings) -> str:
    """`sentimentkit X.Y.Z`, plus the default model's card version when its card is readable."""
    card = _card_version(Path(settings.model_path))
    return f"sentimentkit {__version__}" + (f" (model {settings.model_path}: {card})" if card else "")


# --- data: fetch-data, validate-data -----------------------------------------------------------------
def add_data_parsers(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`fetch-data` and `validate-data`."""
    p = sub.add_parser("fetch-data", help="download TweetEval sentiment into the data directory")
    p.add_argument("--data", type=Path, default=settings.data_dir, help="data directory; default %(default)s")
    p.add_argument("--base-url", default=None, help="where the TweetEval files live (mirror or local server)")
    p.add_argument("--force", action="store_true", help="download again even if cached")

    p = sub.add_parser("validate-data", help="row counts, label balance, empty/duplicate texts, leakage")
    p.add_argument(
        "--data",
        type=Path,
        default=settings.data_dir,
        help="data directory (train/validation/test.csv); default %(default)s",
    )


def cmd_fetch_data(args: argparse.Namespace) -> int:
    # lazy: pandas stays out of --help
    from sentimentkit.data import fetch_tweeteval

    written = fetch_tweeteval(args.data, base_url=args.base_url or TWEETEVAL_BASE_URL, force=args.force)
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


def cmd_validate_data(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.data import validate_splits
    from sentimentkit.training.train import load_splits

    for report in validate_splits(load_splits(args.data)):
        print(json.dumps(report.as_dict()))
    return 0


# --- train -------------------------------------------------------------------------------------------
def add_train_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`train`: the TF-IDF model."""
    p = sub.add_parser("train", help="train on train (newer tweets weigh more), write model.pkl + model.json")
    p.add_argument(
        "--data", type=str, default=str(settings.data_dir), help="data folder or az://container/folder"
    )
    p.add_argument("--out", type=Path, default=Path("model.pkl"),
                   help="the model to write (its card model.json beside it); default %(default)s")  # fmt: skip
    p.add_argument("--search", action="store_true",
                   help="grid-search C and recency weighting on the temporal holdout of train (slower)")  # fmt: skip
    p.add_argument("--C", type=float, default=None, help="override the regularisation strength")
    p.add_argument("--recency-beta", type=float, default=None,
                   help="override the recency weighting: row weight exp(beta * position / rows), which assumes "
                        "train.csv is in time order (oldest first); 0 = equal weights")  # fmt: skip
    p.add_argument("--register", action="store_true",
                   help="log the run to MLflow and register a new sentimentkit-tfidf version (mlops extra)")  # fmt: skip
    p.add_argument("--reason", default="", help="why (recorded with the registration)")


def cmd_train(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.io.write import refuse_inputs
    from sentimentkit.models.card import card_file
    from sentimentkit.training.train import train

    overrides = {"C": args.C, "recency_beta": args.recency_beta}
    params = {k: v for k, v in overrides.items() if v is not None} or None
    if args.search and params:
        raise UsageError("--search chooses C and the recency weighting itself; drop --C / --recency-beta")
    data_files = [(join(args.data, f"{split}.csv"), f"the data file {split}.csv") for split in SPLITS]
    for target in (args.out, card_file(args.out)):  # before minutes of training
        refuse_inputs(target, inputs=data_files)
    with local_dir(args.data, [f"{split}.csv" for split in SPLITS]) as data_dir:
        card = train(
            data_dir, args.out, params=params, search=args.search, log=lambda m: print(m, file=sys.stderr)
        )
        m = card["metrics"]
        print(f"wrote {args.out} and its card; temporal-holdout AvgRec {m['holdout']['avg_recall']:.4f}, "
              f"validation AvgRec {m['validation']['avg_recall']:.4f}, test AvgRec {m['test']['avg_recall']:.4f}")  # fmt: skip
        if args.register:
            # lazy: pandas and scikit-learn stay out of --help; MLflow (the mlops extra) loads when a registry opens
            from sentimentkit.mlops import registry, tracking

            row = tracking.register_trained(args.out, card, data_dir, args.data, reason=args.reason)
            print(registry.registered_message(row))
    return 0


# --- evaluate ----------------------------------------------------------------------------------------
def add_evaluate_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`evaluate`: metrics of a model on a labelled table."""
    p = sub.add_parser("evaluate", help="metrics of a model on a labelled table (CSV/TSV/XLSX/Parquet)")
    _add_model(p, settings)
    p.add_argument(
        "--data",
        type=str,
        required=True,
        help="labelled CSV/TSV/XLSX/Parquet file (path, az://container/file.csv, or '-' for stdin)",
    )
    _add_text_column(p)
    p.add_argument(
        "--label-column", default="label", help="the column holding the labels; default %(default)s"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--output", default=None, help="also write the JSON object to this file ('-': stdout)")


def cmd_evaluate(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.data import load_labelled_csv
    from sentimentkit.io.write import check_target, is_stdout, write_output
    from sentimentkit.serving.loader import load_predictor
    from sentimentkit.training.evaluate import format_report, metrics

    inputs = ((args.data, "the data file"), (args.model, "the model"))
    if args.output is not None:
        check_target(args.output, inputs=inputs)
    predictor = load_predictor(args.model)
    with stdin_or_path(args.data, "--data") as data:
        frame = load_labelled_csv(data, args.text_column, args.label_column)  # CSV/TSV/XLSX/Parquet, az://
    result = metrics(frame["label"], predictor.predict(frame["text"].tolist()))
    result["model_version"] = predictor.version
    if args.output is not None:
        write_output(args.output, json.dumps(result) + "\n", inputs=inputs)
    if not is_stdout(args.output):
        print(json.dumps(result) if args.json else format_report(result))
    return 0


# --- predict -----------------------------------------------------------------------------------------
def add_predict_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`predict`: one text, or every row of a file."""
    p = sub.add_parser("predict", help="score one text (--text) or a CSV/TSV/XLSX file (--input/--output)")
    _add_model(p, settings)
    p.add_argument("--text", default=None, help="one text to score; prints one JSON object")
    p.add_argument("--input", type=str, default=None,
                   help="CSV/TSV/XLSX/Parquet file (path, az://container/file, or '-' for stdin)")  # fmt: skip
    p.add_argument("--output", type=str, default=None,
                   help="CSV or .parquet file (path, az://container/file.csv, or '-' for stdout)")  # fmt: skip
    _add_text_column(p)
    p.add_argument("--chunk-rows", type=int, default=settings.csv_chunk_rows,
                   help="rows read and scored at a time; default %(default)s")  # fmt: skip
    p.add_argument("--threshold", type=float, default=None, help="confidence below which a row is uncertain")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes for --input (default: the cores; 1 = this process only)")  # fmt: skip
    p.add_argument("--parts", action="store_true",
                   help="add each text's scored parts (sentences, clauses; JSON with offsets)")  # fmt: skip
    _add_formula_guard(p, settings)


def cmd_predict(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help
    import pandas as pd

    from sentimentkit.mlops.predlog import batch_logger
    from sentimentkit.serving.base import records_to_frame
    from sentimentkit.serving.loader import load_predictor
    from sentimentkit.text.language import MODEL_LANGUAGE

    if (args.text is None) == (args.input is None):
        raise UsageError('give either --text "..." or --input FILE.csv (with --output FILE.csv)')
    if args.input is not None:
        return _predict_file(args)
    predictor = load_predictor(args.model, threshold=args.threshold)
    record = predictor.score([args.text], parts=args.parts)[0]
    if record["error"]:
        raise UsageError(f"cannot score this text: {record['error']}")
    with batch_logger(predictor, "text", "cli") as log:
        if log is not None:
            log(records_to_frame(pd.DataFrame({"text": [args.text]}), [record], predictor.labels))
    print(json.dumps(record))
    if record["language"] not in (None, MODEL_LANGUAGE):
        print(f"warning: this text looks like language '{record['language']}', not English: the model reads "
              "English only, so do not trust its label", file=sys.stderr)  # fmt: skip
    return 0


def _predict_file(args: argparse.Namespace) -> int:
    """A table in, CSV/Parquet out, with `--jobs` worker processes (each loads the model itself)."""
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.io.write import check_target, describe_target, is_stdout
    from sentimentkit.mlops.predlog import batch_logger
    from sentimentkit.scale.multiproc import score_file
    from sentimentkit.serving.loader import load_predictor

    if args.output is None:
        raise UsageError("--input needs --output FILE.csv (or .parquet) for the scored rows")
    if args.chunk_rows < 1:
        raise UsageError("--chunk-rows must be at least 1")
    settings = Settings.from_env()
    # Checked on the names as given: a remote input is scored from a local copy, which differs.
    if args.input != STDIN and not Path(args.input).is_dir():  # a folder is the reader's to explain
        check_target(args.output, inputs=((args.input, "the input file"), (args.model, "the model"),
                                          (settings.prediction_log, "the prediction log folder")))  # fmt: skip
    elif args.input == STDIN:
        check_target(args.output, inputs=((args.model, "the model"),
                                          (settings.prediction_log, "the prediction log folder")))  # fmt: skip
    # The workers load the model themselves; this process needs it only to describe logged rows.
    predictor = load_predictor(args.model, threshold=args.threshold) if settings.prediction_log else None
    logger = batch_logger(predictor, args.text_column, "cli", settings)
    with stdin_or_path(args.input, "--input") as given, local_input(given) as source, logger as log:
        result = score_file(args.model, source, args.output, args.text_column, jobs=args.jobs,
                            chunk_rows=args.chunk_rows, threshold=args.threshold, on_scored=log,
                            formula_guard=args.formula_guard, parts=args.parts)  # fmt: skip
    for note in result.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"wrote {result.rows} rows to {describe_target(args.output)} ({result.flagged} flagged in the 'error' column)",
          file=sys.stderr if is_stdout(args.output) else sys.stdout)  # fmt: skip
    return 0


# --- spark-predict -----------------------------------------------------------------------------------
def add_spark_predict_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`spark-predict`: a file or folder scored by Spark."""
    p = sub.add_parser("spark-predict", help="score a CSV/Parquet file or folder with Spark (mapInPandas)")
    _add_model(p, settings)
    p.add_argument("--input", required=True, help="CSV or Parquet: local path, abfss:// or wasbs:// URI")
    p.add_argument(
        "--output", required=True, help="output folder (part files); .parquet name: Parquet, else CSV"
    )
    _add_text_column(p)
    p.add_argument("--master", default=None, help="Spark master, e.g. local[2] (default: spark-submit's)")
    p.add_argument("--threshold", type=float, default=None, help="confidence below which a row is uncertain")
    _add_formula_guard(p, settings)


def cmd_spark_predict(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help; pyspark (the spark extra) loads when a session starts
    from sentimentkit.io.write import refuse_inputs
    from sentimentkit.scale.spark import describe_spark_error, predict_spark, spark_session

    # The output is a folder Spark fills with part files; it must be neither the input nor inside it.
    refuse_inputs(args.output, inputs=((args.input, "the input"),))
    if "://" not in args.output and Path(args.output).exists():  # checked before Spark takes ~20 s to start
        raise UsageError(
            f"{args.output} already exists; Spark writes a new folder: remove it or choose another"
        )
    spark = spark_session(args.master)
    try:
        predict_spark(spark, str(args.input), str(args.output), args.model, args.text_column, args.threshold,
                      args.formula_guard)  # fmt: skip
    except Exception as exc:  # Spark wraps user mistakes (missing input, existing output) in its own types
        message = describe_spark_error(exc)
        if message is None:
            raise
        raise UsageError(message) from None
    finally:
        spark.stop()
    print(f"wrote {args.output} (Spark part files; bad rows flagged in the 'error' column)")
    return 0


# --- report ------------------------------------------------------------------------------------------
def add_report_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`report`: the insights of a file as HTML and JSON."""
    p = sub.add_parser(
        "report", help="insights of a CSV/Excel file: over time, by group, drivers (HTML + JSON)"
    )
    _add_model(p, settings)
    p.add_argument("--input", type=Path, required=True,
                   help="CSV/TSV/XLSX, raw or already scored by `predict` ('-': stdin)")  # fmt: skip
    p.add_argument("--output", type=Path, required=True, help="the HTML report to write ('-': stdout)")
    p.add_argument("--json", type=Path, default=None, help="also write the JSON summary here ('-': stdout)")
    _add_text_column(p)
    p.add_argument(
        "--date-column", default="auto", help="column with dates; 'auto' detects one, 'none' skips"
    )
    p.add_argument(
        "--group-column", default="auto", help="categorical column; 'auto' detects one, 'none' skips"
    )
    p.add_argument("--targets", default="",
                   help='comma-separated targets, e.g. "@united,food": mentions, net sentiment, interval and trend of '
                        "each; left out: the most frequent @mentions, #hashtags and content words; 'none': no targets")  # fmt: skip
    p.add_argument("--date-order", default="auto", choices=["auto", "DMY", "MDY", "YMD"],
                   help="day/month order of numeric dates; auto decides from the values or says why it cannot")  # fmt: skip


def _report_targets(raw: str) -> list[str] | str:
    """--targets: the given ones; blank: AUTO (chosen from the texts); 'none': none."""
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.insights.build import AUTO
    from sentimentkit.insights.targets import parse_targets

    if raw.strip().lower() == "none":
        return []
    return parse_targets(raw) or AUTO


def cmd_report(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.insights.build import AUTO, build_insights, ensure_scored, has_scores
    from sentimentkit.insights.render import render_html, summary_json
    from sentimentkit.io.write import check_target, describe_target, is_stdout, same_target, write_output
    from sentimentkit.serving.batch import read_table
    from sentimentkit.serving.loader import load_predictor

    from_stdin = os.fspath(args.input) == STDIN
    if not from_stdin and not args.input.is_file():
        raise UsageError(f"{args.input} not found")
    inputs = (
        ((args.model, "the model"),)
        if from_stdin
        else ((args.input, "the input file"), (args.model, "the model"))
    )
    if args.json is not None and same_target(args.output, args.json):
        raise UsageError("--output and --json name the same file; give each its own")
    for target in (args.output, args.json):  # before scoring
        if target is not None:
            check_target(target, inputs=inputs)
    with stdin_or_path(args.input, "--input") as source:
        table = read_table(Path(source).read_bytes(), Path(source).name)
    title = "standard input" if from_stdin else args.input.name
    predictor = load_predictor(args.model)
    scored, source = ensure_scored(table, args.text_column, None if has_scores(table.frame) else predictor)
    pick = {"auto": AUTO, "none": None}
    ins = build_insights(scored, args.text_column, predictor, pick.get(args.date_column, args.date_column),
                         pick.get(args.group_column, args.group_column), args.date_order, source,
                         targets=_report_targets(args.targets))  # fmt: skip
    ins.notes[:0] = table.notes  # e.g. renamed duplicate columns: said in the report too
    write_output(args.output, render_html(ins, f"Sentiment report: {title}").encode("utf-8"), inputs=inputs)
    if args.json:
        write_output(args.json, summary_json(ins).encode("utf-8"), inputs=inputs)
    for line in (*table.notes, *ins.warnings):
        print(f"warning: {line}", file=sys.stderr)
    to_stdout = is_stdout(args.output) or is_stdout(args.json)
    print(f"wrote {describe_target(args.output)}" + (f" and {describe_target(args.json)}" if args.json else "")
          + f" ({ins.n_rows:,} rows)", file=sys.stderr if to_stdout else sys.stdout)  # fmt: skip
    return 0


# --- transformers: train-transformer, export-onnx ----------------------------------------------------
TRAINING_EXTRA_HINT = "needs the training extra: pip install torch==2.13.0 (CPU build) then pip install -r requirements-transformer.txt"


def _require_training_extra() -> None:
    import importlib.util

    missing = [
        m
        for m in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers")
        if not importlib.util.find_spec(m)
    ]
    if missing:
        raise UsageError(f"missing {', '.join(missing)}: this command {TRAINING_EXTRA_HINT}")


def add_transformer_parsers(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`train-transformer` and `export-onnx` (the training extra)."""
    p = sub.add_parser("train-transformer", help="fine-tune a Hugging Face encoder; write a model folder")
    p.add_argument(
        "--base-model", required=True, help="local model folder or hub id (e.g. distilbert-base-uncased)"
    )
    p.add_argument("--base-sha256", default=None, help="refuse base weights whose SHA-256 differs")
    p.add_argument("--data", type=Path, default=settings.data_dir,
                   help="data directory (train/validation/test.csv); default %(default)s")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("artifacts/transformer"),
                   help="the model folder to write; default %(default)s")  # fmt: skip
    p.add_argument("--epochs", type=int, default=1, help="epochs; the best one on validation is kept")
    p.add_argument(
        "--lr",
        type=float,
        nargs="+",
        default=[1e-4],
        help="learning rate(s); several are compared on a --search-rows subset, on validation",
    )
    p.add_argument(
        "--class-weight",
        nargs="+",
        default=["balanced"],
        choices=["none", "balanced", "sqrt"],
        help="loss class weighting(s); several are compared like --lr",
    )
    p.add_argument("--search-rows", type=int, default=8000, help="training rows per selection run")
    p.add_argument("--selection-record", type=Path, default=None,
                   help="JSON table of an earlier --lr/--class-weight comparison, copied into the card")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="texts per training step; default %(default)s")
    p.add_argument("--max-length", type=int, default=64, help="tokens per text (longer texts are truncated)")
    p.add_argument("--seed", type=int, default=None, help=f"random seed; default {SEED}")
    p.add_argument("--max-train-rows", type=int, default=None, help="stratified subset of train (quick runs)")
    p.add_argument(
        "--bf16", action="store_true", help="bfloat16 autocast (fast on CPUs with AVX512-BF16/AMX)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--tune-bias", action="store_true",
                   help="after training, choose per-class logit offsets on validation macro recall")  # fmt: skip
    p.add_argument("--select-on", choices=["validation", "clean_validation"], default="validation",
                   help="split that picks the epoch and lr/class weight; clean_validation drops validation "
                        "tweets that are near-duplicates of train tweets")  # fmt: skip

    p = sub.add_parser("export-onnx", help="export a transformer folder to ONNX and quantise it to int8")
    p.add_argument("--model", type=Path, required=True, help="folder written by train-transformer")
    p.add_argument("--out", type=Path, default=Path("models/transformer-int8"),
                   help="the ONNX model folder to write; default %(default)s")  # fmt: skip
    p.add_argument(
        "--data",
        type=Path,
        default=settings.data_dir,
        help="data directory; validation and test measure the accuracy lost to quantisation",
    )
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version; default %(default)s")


def cmd_train_transformer(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help; torch (the training extra) loads when training starts
    from sentimentkit.training.transformer import TrainConfig, train_transformer

    _require_training_extra()

    selection = json.loads(args.selection_record.read_text()) if args.selection_record else None
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr[0], batch_size=args.batch_size, max_length=args.max_length,
                      class_weight=args.class_weight[0], seed=SEED if args.seed is None else args.seed,
                      max_train_rows=args.max_train_rows, bf16=args.bf16, threads=args.threads, tune_bias=args.tune_bias,
                      select_on=args.select_on)  # fmt: skip
    card = train_transformer(args.base_model, args.data, args.out, cfg, lrs=args.lr, class_modes=args.class_weight,
                             search_rows=args.search_rows, base_sha256=args.base_sha256,
                             log=lambda m: print(m, file=sys.stderr), selection=selection)  # fmt: skip
    m = card["metrics"]
    print(f"wrote {args.out}; validation AvgRec {m['validation']['avg_recall']:.4f}, "
          f"test AvgRec {m['test']['avg_recall']:.4f}, training {card['train_seconds']:.0f}s")  # fmt: skip
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help; torch and onnx (the training extra) load on export
    from sentimentkit.training.onnx_export import export_onnx

    _require_training_extra()

    card = export_onnx(args.model, args.out, data_dir=args.data, opset=args.opset,
                       log=lambda m: print(m, file=sys.stderr))  # fmt: skip
    q = card.get("quantisation", {})
    loss = q.get("avg_recall_lost", {})
    print(f"wrote {args.out} ({card['size_bytes'] / 1e6:.1f} MB); macro recall lost to int8: "
          + ", ".join(f"{k} {v * 100:+.2f} points" for k, v in loss.items()))  # fmt: skip
    return 0


# --- ensemble ----------------------------------------------------------------------------------------
def add_ensemble_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`ensemble`: a folder of pinned member models."""
    p = sub.add_parser("ensemble", help="write an ensemble folder (e.g. the accurate mode, models/accurate)")
    p.add_argument("members", nargs="+", type=Path, help="two or more model locations (model.pkl, folders)")
    p.add_argument("--out", type=Path, default=Path("models/accurate"),
                   help="the ensemble folder to write; default %(default)s")  # fmt: skip
    p.add_argument("--weights", type=float, nargs="+", default=None, help="one per member (default: equal)")
    p.add_argument("--record", type=Path, default=None,
                   help="benchmarks/accurate_mode.json: its ensemble metrics go into the card")  # fmt: skip


def cmd_ensemble(args: argparse.Namespace) -> int:
    """Write an ensemble folder whose members load and are pinned by their SHA-256s."""
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.io.write import check_target
    from sentimentkit.models.card import CARD_FILE, card_file
    from sentimentkit.serving.ensemble import ENSEMBLE_FILE, write_ensemble
    from sentimentkit.serving.loader import load_predictor

    metrics = None
    if args.record:
        record = json.loads(args.record.read_text())
        try:
            metrics = {
                split: record[split]["ensemble"] for split in ("clean_validation", "test") if split in record
            }
        except (TypeError, KeyError):
            raise UsageError(
                f"{args.record} holds no ensemble metrics (expected benchmarks/accurate_mode.json)"
            ) from None
    members = [(m, f"the member {m}") for m in args.members]
    members += [(card_file(m), f"the card of the member {m}") for m in args.members]
    if args.out.is_dir():  # the two files the folder gets must not be a member's (its own folder, its card)
        for name in (ENSEMBLE_FILE, CARD_FILE):
            check_target(args.out / name, inputs=members)
    elif args.out.exists():
        check_target(args.out, inputs=members)
        raise UsageError(f"{args.out} is a file; --out names the ensemble folder to write")
    card = write_ensemble(args.out, args.members, load_predictor, args.weights, metrics)
    print(f"wrote {args.out} ({card['version']}): {len(args.members)} members")
    return 0


# --- sign --------------------------------------------------------------------------------------------
def add_sign_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`sign`: sign a model's card."""
    p = sub.add_parser("sign", help="sign a model's card with SENTIMENTKIT_SIGNING_KEY(_FILE) (HMAC-SHA256)")
    p.add_argument(
        "--model", type=Path, required=True, help="model.pkl (card beside it) or a transformer folder"
    )


def cmd_sign(args: argparse.Namespace) -> int:
    """Sign a model that loads (hashes match, the allow-list accepts it) without a signature check."""
    from dataclasses import replace

    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.models.card import NO_KEY_MESSAGE, card_file, configured_key, sign_model
    from sentimentkit.models.signing import key_id  # lazy: ~4 ms (hmac) off --help
    from sentimentkit.serving.loader import load_predictor

    settings = Settings.from_env()
    key = configured_key(settings)
    if key is None:
        raise UsageError(NO_KEY_MESSAGE)
    # Only a model that loads (hashes match, the allow-list accepts it, right shape) gets signed.
    load_predictor(args.model, settings=replace(settings, signing_key=None, signing_key_file=None))
    sign_model(args.model, settings)
    print(f"signed {card_file(args.model)} (key id {key_id(key)})")
    return 0


# --- serve -------------------------------------------------------------------------------------------
def add_serve_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`serve`: the REST API."""
    p = sub.add_parser("serve", help="run the REST API with uvicorn")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; default %(default)s")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; default %(default)s")
    p.add_argument("--workers", type=int, default=1,
                   help="uvicorn worker processes, each with its own model; default %(default)s")  # fmt: skip
    _add_model(p, settings)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the API with uvicorn; each worker loads the model once in the app's lifespan.

    With several workers, /metrics aggregates all of them through a PROMETHEUS_MULTIPROC_DIR
    (a fresh temporary one, removed on exit, unless the variable is already set).
    """
    import uvicorn  # the API's server: loaded only to serve

    os.environ["SENTIMENTKIT_MODEL"] = str(args.model)
    metrics_dir = None
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="sentimentkit-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("sentimentkit.api:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, access_log=False)  # fmt: skip
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


# --- models (the registry) ---------------------------------------------------------------------------
def add_models_parser(sub: argparse._SubParsersAction) -> None:
    """`models list | promote | rollback`: the MLflow model registry (mlops extra)."""
    p = sub.add_parser("models", help="the model registry: list versions, promote, roll back")
    models = p.add_subparsers(dest="models_command", required=True, metavar="ACTION",
                              help="register, list, promote or rollback")  # fmt: skip
    q = models.add_parser("register", help="register a model on disk (model.pkl or transformer folder)")
    q.add_argument(
        "path", help="model.pkl (card beside it) or a transformer folder such as models/transformer-int8"
    )
    q.add_argument(
        "--name",
        choices=MODEL_NAMES,
        default=None,
        help="default: by kind (file: tfidf, folder: transformer)",
    )
    q.add_argument("--reason", default="", help="why (recorded with who and when)")
    q = models.add_parser("list", help="registered versions: aliases, sha256, metrics, created")
    q.add_argument("--name", choices=MODEL_NAMES, default=None, help="one model (default: both)")
    q.add_argument("--json", action="store_true", help="print one JSON array")
    for action, text in (("promote", "point an alias (default champion) at VERSION"),
                         ("rollback", "move the alias back to the version before its latest promotion")):  # fmt: skip
        q = models.add_parser(action, help=text)
        if action == "promote":
            q.add_argument("version", help="version number (see `models list`)")
        q.add_argument(
            "--name", choices=MODEL_NAMES, default=TFIDF_MODEL, help="registered model; default %(default)s"
        )
        q.add_argument("--alias", default=CHAMPION, help="the alias to move; default %(default)s")
        q.add_argument("--reason", default="", help="why (recorded with who and when)")


def cmd_models(args: argparse.Namespace) -> int:
    # lazy: pandas stays out of --help; MLflow (the mlops extra) loads when the registry opens
    from sentimentkit.mlops import registry

    if args.models_command == "list":
        rows = registry.list_versions(args.name)
        if args.json:
            print(redact(json.dumps(rows)))
            return 0
        for r in rows or [{"name": "(no registered versions)"}]:
            test = r.get("metrics", {}).get("test.avg_recall")
            print(f"{r['name']:<26}{r.get('version', ''):>4}  {','.join(r.get('aliases', [])):<22}"
                  f"{(r.get('sha256') or '')[:12]:<14}{'' if test is None else f'test AvgRec {test:.4f}  '}{r.get('created', '')}")  # fmt: skip
        return 0
    if args.models_command == "register":
        # lazy: pandas and scikit-learn stay out of --help; MLflow (the mlops extra) loads when the registry opens
        from sentimentkit.mlops import tracking

        row = tracking.register_existing(args.path, name=args.name, reason=args.reason)
        print(registry.registered_message(row))
        return 0
    if args.models_command == "promote":
        event = registry.promote(args.version, name=args.name, alias=args.alias, reason=args.reason)
    else:
        event = registry.rollback(name=args.name, alias=args.alias, reason=args.reason)
    print(f"{args.name}@{event['alias']}: version {event['previous']} -> {event['version']} "
          f"({event['action']} by {event['who']} at {event['when']})")  # fmt: skip
    return 0


# --- monitor -----------------------------------------------------------------------------------------
def add_monitor_parser(sub: argparse._SubParsersAction, settings: Settings) -> None:
    """`monitor`: the prediction log against the serving model's reference profile."""
    p = sub.add_parser("monitor", help="compare the prediction log with the model's reference: OK/WARN/ALERT")
    p.add_argument(
        "--log", default=settings.prediction_log, help="log URI (default: SENTIMENTKIT_PREDICTION_LOG)"
    )
    p.add_argument("--since", default="7d", help="how far back the trends go (30m, 12h, 7d, 2w)")
    p.add_argument("--window", default="1d", help="the latest window the signals judge")
    p.add_argument("--thresholds", default=None, help="JSON file overriding thresholds (see README)")
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument("--html", default=None, help="write the HTML report here (path or az:// URI)")
    p.add_argument("--labels", default=None, help="labelled CSV/XLSX/Parquet file or folder (text, label), e.g. "
                   "the feedback store: realized AvgRec beside the estimate, and the estimate then counts "
                   "labelled predictions with their label (label each window's most repeated texts: "
                   "docs/performance_estimate.md)")  # fmt: skip
    p.add_argument("--fail-on", choices=("never", "warn", "alert"), default="never",
                   help="exit 3 when the status is at least this (for cron and CI)")  # fmt: skip
    _add_model(p, settings)


def cmd_monitor(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help
    from sentimentkit.io.write import check_target, write_output
    from sentimentkit.mlops import monitor
    from sentimentkit.mlops.monitor_report import render_html  # lazy: ~4 ms (html) off --help
    from sentimentkit.mlops.predlog import parse_age

    if not args.log:
        raise UsageError("give --log URI (or set SENTIMENTKIT_PREDICTION_LOG)")
    inputs = ((args.log, "the prediction log folder"), (args.model, "the model"),
              (args.thresholds, "the thresholds file"), (args.labels, "the labels"))  # fmt: skip
    if args.html:
        check_target(args.html, inputs=inputs)
    thresholds = monitor.Thresholds.load(args.thresholds)
    since, window = parse_age(args.since, "--since"), parse_age(args.window, "--window")
    report, reference = monitor.run(args.log, since, window, args.model, thresholds=thresholds,
                                    labels=args.labels)  # fmt: skip
    if args.html:
        write_output(args.html, render_html(report, reference).encode("utf-8"), inputs=inputs)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(report["summary"])
        for name, sig in report["signals"].items():
            print(f"  {sig['status']:5} {name}: {sig['reason']}")
    failing = {"never": 3, "warn": 1, "alert": 2}[args.fail_on]
    return 3 if monitor.ORDER[report["status"]] >= failing else 0


# --- retrain, watch ----------------------------------------------------------------------------------
# retrain/watch options that set a field of the gate (mlops.gate.Gate, whose defaults they show)
GATE_OPTIONS: tuple[tuple[tuple[str, ...], str, type, str], ...] = (
    (("--margin",), "margin", float, "with --judge holdout or --learner refit: how much better the challenger must be"),
    (("--max-class-drop", "--max-recall-drop"), "max_class_drop", float,
     "with --judge holdout or --learner refit: largest allowed drop of one class's --class-metric"),
    (("--holdout-share",), "holdout_share", float,
     "share of each batch held out for scoring with --judge holdout or --learner refit"),
    (("--folds",), "folds", int, "folds of --judge cv"),
    (("--domain-tolerance",), "domain_tolerance", float,
     "with --judge cv, the domain learner and --domain-rule tolerance: the most cross-validated AvgRec "
     "the challenger may lose"),
    (("--class-tolerance",), "class_tolerance", float,
     "with --judge cv and the domain learner: the most one class's --class-metric may fall (with "
     "--domain-rule interval: refused only when the whole 95%% interval of the drop is above it)"),
    (("--guard-tolerance",), "guard_tolerance", float,
     "most AvgRec the challenger may lose on SemEval validation, the guard"),
)  # fmt: skip


def add_retrain_parsers(sub: argparse._SubParsersAction) -> None:
    """`retrain` (new labelled batches -> challenger -> promotion gate) and `watch` (poll and retrain)."""
    for name, text in (("retrain", "train a challenger on new labelled batches; promote it only past the gate"),
                       ("watch", "poll --incoming and run retrain when new labelled batches land")):  # fmt: skip
        p = sub.add_parser(name, help=text)
        p.add_argument("--incoming", required=True, help="folder or az:// URI of text,label CSV batches")
        p.add_argument(
            "--state", default=None, help="manifest/batches/reports (default: INCOMING/_sentimentkit)"
        )
        p.add_argument("--name", default=TFIDF_MODEL, help="registered model (its champion is the baseline)")
        for flags, field, kind, text in GATE_OPTIONS:
            p.add_argument(*flags, dest=field, type=kind, default=getattr(Gate, field),
                           help=f"{text} (default %(default)s)")  # fmt: skip
        p.add_argument("--class-metric", choices=CLASS_METRICS, default=Gate.class_metric,
                       help="what the class rule limits (default f1: a class the challenger stops "
                       "over-predicting may lose some recall)")  # fmt: skip
        p.add_argument("--domain-rule", choices=DOMAIN_RULES, default=Gate.domain_rule,
                       help="with --judge cv and the domain learner: interval (default) keeps the champion only "
                       "when the corrections show the challenger worse (the whole 95%% interval of its gain below "
                       "0); tolerance: when its gain is below -(--domain-tolerance)")  # fmt: skip
        p.add_argument("--judge", choices=JUDGES, default=Gate.judge,
                       help="cv: the domain learner judged out of fold on every correction the champion was "
                       "not fitted on, then fitted on all (default); holdout: judged on the held-out share only")  # fmt: skip
        p.add_argument("--learner", choices=("domain", "refit"), default="domain",
                       help="domain: a head over the champion fitted on the corrections (default); "
                       "refit: the champion's recipe on train.csv plus the corrections")  # fmt: skip
        p.add_argument("--data", default=None, help="data directory (train/validation/test.csv)")
        p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                       help="while another retrain holds the state folder: wait this long (default: exit 5 at once)")  # fmt: skip
    p.add_argument("--every", default="5m", help="polling interval (30s, 5m, 1h)")
    p.add_argument("--min-rows", type=int, default=1, help="retrain once this many new rows wait")
    p.add_argument("--log", default=None, help="prediction log: an ALERT there retrains on any new rows")
    p.add_argument("--cycles", type=int, default=None, help="stop after this many polls (default: never)")


def cmd_retrain(args: argparse.Namespace) -> int:
    # lazy: pandas and scikit-learn stay out of --help; MLflow (the mlops extra) loads when the registry opens
    from sentimentkit.mlops import retrain

    fields = [field for _, field, _, _ in GATE_OPTIONS] + ["class_metric", "judge", "domain_rule"]
    gate = retrain.Gate(**{field: getattr(args, field) for field in fields})
    common = {
        "data_dir": args.data,
        "state": args.state,
        "name": args.name,
        "gate": gate,
        "log": lambda line: print(redact(line), file=sys.stderr, flush=True),
        "lock_wait_s": args.wait,
        "learner": args.learner,
    }  # stdout: the JSON report only
    if args.command == "watch":
        from sentimentkit.mlops.predlog import parse_age  # lazy: pandas and scikit-learn stay out of --help

        retrain.watch(args.incoming, parse_age(args.every, "--every").total_seconds(), cycles=args.cycles,
                      min_rows=args.min_rows, monitor_log=args.log, **common)  # fmt: skip
        return 0
    report = retrain.retrain(args.incoming, **common)
    print(redact(json.dumps({k: v for k, v in report.items() if k != "batches"}, indent=2)))
    return 0


# --- the parser --------------------------------------------------------------------------------------
def build_parser(settings: Settings) -> argparse.ArgumentParser:
    """The `sentimentkit` parser: every command's options, defaults from `settings`."""
    parser = argparse.ArgumentParser(prog="sentimentkit", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--version", action="version", version=_version(settings),
                        help="print the version of sentimentkit (and of the default model's card) and exit")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below (COMMAND -h: its options)")  # fmt: skip
    add_data_parsers(sub, settings)
    add_train_parser(sub, settings)
    add_evaluate_parser(sub, settings)
    add_predict_parser(sub, settings)
    add_spark_predict_parser(sub, settings)
    add_report_parser(sub, settings)
    add_transformer_parsers(sub, settings)
    add_sign_parser(sub, settings)
    add_ensemble_parser(sub, settings)
    add_serve_parser(sub, settings)
    add_models_parser(sub)
    add_monitor_parser(sub, settings)
    add_retrain_parsers(sub)
    add_feedback_parsers(sub)
    return parser


COMMANDS = {
    "fetch-data": cmd_fetch_data, "validate-data": cmd_validate_data, "train": cmd_train,
    "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve,
    "train-transformer": cmd_train_transformer, "export-onnx": cmd_export_onnx, "sign": cmd_sign,
    "ensemble": cmd_ensemble,
    "report": cmd_report,
    "models": cmd_models, "monitor": cmd_monitor, "retrain": cmd_retrain, "watch": cmd_retrain,
}  # fmt: skip
COMMANDS["spark-predict"] = cmd_spark_predict
COMMANDS.update(FEEDBACK_COMMANDS)


# Exit codes: the table in `sentimentkit.errors` (each user error carries its own `exit_code`).


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sentimentkit` console script. Nothing it prints holds a secret: errors, log
    records and the traceback of an unexpected error are redacted (`sentimentkit.redact`)."""
    install_log_redaction()
    try:
        settings = Settings.from_env()
        args = build_parser(settings).parse_args(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:  # the one family of errors users cause (sentimentkit.errors): one line
        print(f"error: {redact(str(exc))}", file=sys.stderr)  # redacted when made; again for safety
        return exc.exit_code
    except OSError as exc:  # from the OS itself (permission denied, disk full...): also one line
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else is a bug: the (redacted) traceback
        print(redact_exception(exc), file=sys.stderr, end="")
        return 1
