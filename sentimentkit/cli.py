"""`python -m sentimentkit <command>`: fetch-data, validate-data, train, evaluate, predict, serve."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sentimentkit.config import Settings


class UsageError(Exception):
    """A mistake in the command line or its inputs; printed without a traceback."""


def _add_model(p: argparse.ArgumentParser, settings: Settings) -> None:
    p.add_argument("--model", type=Path, default=settings.model_path,
                   help="model.pkl (its model.json card must sit beside it); default %(default)s")  # fmt: skip


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentimentkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch-data", help="download TweetEval sentiment into the data directory")
    p.add_argument("--data", type=Path, default=settings.data_dir, help="data directory; default %(default)s")
    p.add_argument("--base-url", default=None, help="where the TweetEval files live (mirror or local server)")
    p.add_argument("--force", action="store_true", help="download again even if cached")

    p = sub.add_parser("validate-data", help="row counts, label balance, empty/duplicate texts, leakage")
    p.add_argument("--data", type=Path, default=settings.data_dir)

    p = sub.add_parser("train", help="train on train, choose on validation, write model.pkl + model.json")
    p.add_argument("--data", type=Path, default=settings.data_dir)
    p.add_argument("--out", type=Path, default=Path("model.pkl"))
    p.add_argument("--search", action="store_true", help="grid-search on validation (slower)")
    p.add_argument("--C", type=float, default=None, help="override the regularisation strength")

    p = sub.add_parser("evaluate", help="metrics of a model on a labelled CSV")
    _add_model(p, settings)
    p.add_argument("--data", type=Path, required=True, help="labelled CSV file")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default="label")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("predict", help="score one text (--text) or a CSV file (--input/--output)")
    _add_model(p, settings)
    p.add_argument("--text", default=None)
    p.add_argument("--input", type=Path, default=None)
    p.add_argument("--output", type=Path, default=None)
    p.add_argument("--text-column", default="text")
    p.add_argument("--chunk-rows", type=int, default=settings.csv_chunk_rows)
    p.add_argument("--threshold", type=float, default=None, help="confidence below which a row is uncertain")

    p = sub.add_parser("serve", help="run the REST API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    _add_model(p, settings)
    return parser


def cmd_fetch_data(args: argparse.Namespace) -> int:
    from sentimentkit.config import TWEETEVAL_BASE_URL
    from sentimentkit.data import fetch_tweeteval

    written = fetch_tweeteval(args.data, base_url=args.base_url or TWEETEVAL_BASE_URL, force=args.force)
    for split, path in written.items():
        print(f"{split}: {path}")
    return 0


def cmd_validate_data(args: argparse.Namespace) -> int:
    from sentimentkit.data import validate_splits
    from sentimentkit.train import load_splits

    for report in validate_splits(load_splits(args.data)):
        print(json.dumps(report.as_dict()))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from sentimentkit.train import train

    params = {"C": args.C} if args.C is not None else None
    card = train(
        args.data, args.out, params=params, search=args.search, log=lambda m: print(m, file=sys.stderr)
    )
    m = card["metrics"]
    print(f"wrote {args.out} and its card; validation AvgRec {m['validation']['avg_recall']:.4f}, "
          f"test AvgRec {m['test']['avg_recall']:.4f}")  # fmt: skip
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sentimentkit.data import load_labelled_csv
    from sentimentkit.evaluate import format_report, metrics
    from sentimentkit.predict import Predictor

    predictor = Predictor.load(args.model)
    frame = load_labelled_csv(args.data, args.text_column, args.label_column)
    result = metrics(frame["label"], predictor.predict(frame["text"].tolist()))
    result["model_version"] = predictor.version
    print(json.dumps(result) if args.json else format_report(result))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from sentimentkit.predict import Predictor

    if (args.text is None) == (args.input is None):
        raise UsageError('give either --text "..." or --input FILE.csv (with --output FILE.csv)')
    predictor = Predictor.load(args.model, threshold=args.threshold)
    if args.text is not None:
        record = predictor.score([args.text])[0]
        if record["error"]:
            raise UsageError(f"cannot score this text: {record['error']}")
        print(json.dumps(record))
        return 0
    if args.output is None:
        raise UsageError("--input needs --output FILE.csv for the scored rows")
    from sentimentkit.batch import score_csv_file

    rows, errors = score_csv_file(predictor, args.input, args.output, args.text_column, args.chunk_rows)
    print(f"wrote {rows} rows to {args.output} ({errors} flagged in the 'error' column)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    os.environ["SENTIMENTKIT_MODEL"] = str(args.model)
    uvicorn.run("sentimentkit.api:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, access_log=False)  # fmt: skip
    return 0


COMMANDS = {
    "fetch-data": cmd_fetch_data, "validate-data": cmd_validate_data, "train": cmd_train,
    "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve,
}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sentimentkit` console script."""
    try:
        settings = Settings.from_env()
        args = build_parser(settings).parse_args(argv)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # user-facing errors: one clear line, no traceback
        from sentimentkit.batch import BatchError
        from sentimentkit.data import DataError
        from sentimentkit.model import ModelError

        if isinstance(exc, (UsageError, DataError, ModelError, BatchError, ValueError, OSError)):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
