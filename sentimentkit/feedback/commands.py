"""The command-line front of feedback: `sentimentkit feedback add` and `sentimentkit review`.

`feedback add --input FILE --incoming URI` imports a labelled file (CSV/TSV/XLSX/Parquet, a Label
Studio JSON export, Argilla 2.x records JSON or a `Dataset.to_disk` folder; sentimentkit/feedback/
formats.py) into the feedback store as one new batch. `review --log LOG --n N --output FILE` writes the
logged predictions most worth a human label (sentimentkit/feedback/queue.py), which `feedback add`
takes back once labelled. Errors a user can cause are one line (ValueError/OSError/DataError).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from sentimentkit.feedback import DEFAULT_STRATEGY, FORMATS, QUEUE_STRATEGIES
from sentimentkit.io import storage


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`feedback add` and `review`."""

    p = sub.add_parser(
        "feedback", help="people's corrections: import a labelled file into the feedback store"
    )
    actions = p.add_subparsers(dest="feedback_command", required=True, metavar="ACTION",
                              help="add: import a labelled file into the store")  # fmt: skip
    q = actions.add_parser(
        "add", help="import labelled texts (CSV/XLSX/Parquet, Label Studio JSON, Argilla 2.x)"
    )
    q.add_argument("--input", required=True, help="the labelled file (or an Argilla Dataset.to_disk folder)")
    q.add_argument(
        "--incoming", required=True, help="the feedback store: retrain's --incoming folder or az:// URI"
    )
    q.add_argument(
        "--text-column", default="text", help="text column (Label Studio: data key; Argilla: field)"
    )
    q.add_argument(
        "--label-column", default="label", help="label column (Argilla: the label question's name)"
    )
    q.add_argument(
        "--source", default=None, help="recorded as the rows' source (default: cli, label-studio or argilla)"
    )
    q.add_argument("--user", default="", help="recorded as the rows' user where the file names none")

    p = sub.add_parser(
        "review", help="write the logged predictions most worth a human label, to label and add back"
    )
    p.add_argument(
        "--log", required=True, help="the prediction log (kept with SENTIMENTKIT_PREDICTION_LOG_TEXT=true)"
    )
    p.add_argument("--n", type=int, required=True, help="how many texts")
    p.add_argument("--strategy", choices=QUEUE_STRATEGIES, default=DEFAULT_STRATEGY,
                   help="balanced (default: texts that stand for the rest, leaning to those the model is unsure "
                        "of, one per re-posted text), representative (texts that stand for the rest), "
                        "diverse (least sure, spread over wordings), uncertain (least sure), disagree (fast vs "
                        "accurate model), random, frequent (logged most often: what the performance estimate needs)")  # fmt: skip
    p.add_argument("--output", required=True, help="the file to write (never one of the inputs)")
    p.add_argument(
        "--format", choices=FORMATS, default="csv", help="csv (Excel), label-studio or argilla JSON"
    )
    p.add_argument(
        "--incoming", default=None, help="the feedback store: leave out texts already labelled there"
    )
    p.add_argument("--seed", type=int, default=0, help="for --strategy balanced, representative and random")


@contextlib.contextmanager
def _local(uri: str) -> Iterator[Path]:
    if storage.is_remote(uri):
        with storage.local_input(uri) as local:
            yield local
        return
    path = Path(uri)
    if not path.exists():
        raise FileNotFoundError(
            f"{uri} not found: give the labelled file exported from Excel, Label Studio or Argilla"
        )
    yield path


def cmd_feedback(args: argparse.Namespace) -> int:
    """Import a labelled file into the feedback store; one line says what was stored."""
    # lazy: pandas stays out of --help (the CLI imports this module to build its parser)
    from sentimentkit.feedback.formats import detect_format, read_labelled_file
    from sentimentkit.feedback.store import write_corrections

    with _local(args.input) as local:
        kind = detect_format(local)
        frame, skipped = read_labelled_file(local, args.text_column, args.label_column)
    source = args.source or {"table": "cli"}.get(kind, kind)
    rows = frame.to_dict("records")
    for row in rows:
        row["source"] = source
        row["user"] = row.get("user") or args.user
    target, stored = write_corrections(args.incoming, rows)
    note = f"; {skipped} row(s) not labelled yet were skipped" if skipped else ""
    if not stored:
        print(f"nothing to store: {args.input} holds no labelled rows{note}")
        return 0
    print(f"stored {stored} correction(s) from {args.input} in {target}{note}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    """Write the review queue; one line says how many and where."""
    # lazy: pandas and scikit-learn stay out of --help (the CLI imports this module to build its parser)
    from sentimentkit.feedback.formats import review_bytes
    from sentimentkit.feedback.queue import review_queue
    from sentimentkit.feedback.store import read_feedback
    from sentimentkit.io.write import write_output

    inputs = [(args.log, "the prediction log"), (args.incoming, "the feedback store")]
    done = read_feedback(args.incoming)["text"].tolist() if args.incoming else []
    queue = review_queue(args.log, args.n, args.strategy, seed=args.seed, exclude=done)
    write_output(args.output, review_bytes(queue, args.format), inputs=inputs)
    left = f" ({len(done)} already labelled left out)" if done else ""
    print(f"wrote {len(queue)} text(s) to review ({args.strategy}) to {args.output}{left}; label them, then "
          f"`sentimentkit feedback add --input {args.output} --incoming STORE`", file=sys.stderr)  # fmt: skip
    return 0


COMMANDS = {"feedback": cmd_feedback, "review": cmd_review}
