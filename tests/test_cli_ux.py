"""The CLI as users expect it: help on every option, a description naming every command, --version,
`-` for standard input, a progress bar that ends at 100% on any terminal, and a light `--help`."""

from __future__ import annotations

import argparse
import io
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import sentimentkit
from sentimentkit.cli import build_parser
from sentimentkit.config import REPO_ROOT, Settings

from .conftest import TINY_LABELS, TINY_TEXTS

TEXTS = ["I love it, so great", 'multi\nline "hate" it', "=1+2 formula-looking", "", "ok  then\ttab"]


def run(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sentimentkit", *args],
        input=stdin, capture_output=True, cwd=REPO_ROOT, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def _parsers(
    parser: argparse.ArgumentParser, path: str = "sentimentkit"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def _top_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser(Settings.from_env())
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_of_every_command_has_help():
    parser = build_parser(Settings.from_env())
    missing = []
    for path, p in _parsers(parser):
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
            if isinstance(action, argparse._SubParsersAction):  # each command's one-line summary
                missing += [f"{path} {c.dest}" for c in action._choices_actions if not (c.help or "").strip()]
    assert missing == []


def test_description_names_every_command_and_the_epilog_shows_examples():
    result = run("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    description = text.split("positional arguments:")[0]
    commands = _top_commands()
    assert len(commands) >= 16
    for name in commands:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", description), name
    for user in ("end users", "analysts", "engineers", "data scientists", "operators"):
        assert user in description
    examples = text.split("examples:")[1]
    assert "sentimentkit predict --input - --output -" in examples


def test_version_prints_the_package_version_without_a_command():
    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith(f"sentimentkit {sentimentkit.__version__}")


def test_help_does_not_import_the_optional_extras_or_pandas():
    code = (
        "import sys\n"
        "from sentimentkit.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('mlflow', 'torch', 'pyspark', 'streamlit', 'azure', 'uvicorn', 'fastapi', 'pandas', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=60
    )
    assert result.stderr.strip().splitlines()[-1] == "[]"


# --- '-': standard input -----------------------------------------------------------------------------
@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    pd.DataFrame({"id": range(1, len(TEXTS) + 1), "text": TEXTS}).to_csv(path, index=False)
    return path


def test_predict_reads_stdin_and_writes_stdout_every_row_in_order(tiny_model_path, table_csv):
    result = run("predict", "--model", str(tiny_model_path), "--input", "-", "--output", "-",
                 "--jobs", "1", stdin=table_csv.read_bytes())  # fmt: skip
    assert result.returncode == 0, result.stderr
    scored = pd.read_csv(io.BytesIO(result.stdout), dtype=str, keep_default_na=False)
    assert scored["id"].tolist() == [str(i) for i in range(1, len(TEXTS) + 1)]
    assert scored["text"].tolist()[:2] == TEXTS[:2] and scored["text"][4] == TEXTS[4]  # text as given
    assert scored["error"].tolist() == ["", "", "", "empty text", ""]
    assert b"wrote 5 rows to standard output" in result.stderr


def test_predict_reads_parquet_from_stdin_into_a_file(tiny_model_path, tmp_path):
    source = tmp_path / "in.parquet"
    pd.DataFrame({"text": TEXTS}).to_parquet(source)
    out = tmp_path / "out.csv"
    result = run("predict", "--model", str(tiny_model_path), "--input", "-", "--output", str(out), "--jobs", "1",
                 stdin=source.read_bytes())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pd.read_csv(out, keep_default_na=False)["text"].tolist()[:2] == TEXTS[:2]


def test_empty_stdin_is_one_clear_line(tiny_model_path, tmp_path):
    result = run("predict", "--model", str(tiny_model_path), "--input", "-", "--output", str(tmp_path / "o.csv"),
                 stdin=b"")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines() == [
        "error: --input - read nothing from standard input: pipe a file in"
    ]
    assert not (tmp_path / "o.csv").exists()


def test_report_reads_stdin(tiny_model_path, table_csv, tmp_path):
    html = tmp_path / "report.html"
    result = run("report", "--model", str(tiny_model_path), "--input", "-", "--output", str(html), "--json", "-",
                 stdin=table_csv.read_bytes())  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_rows"] == len(TEXTS)
    assert "Sentiment report: standard input" in html.read_text(encoding="utf-8")


def test_evaluate_reads_stdin(tiny_model_path, tmp_path):
    labelled = tmp_path / "test.csv"
    pd.DataFrame({"text": TINY_TEXTS, "label": TINY_LABELS}).to_csv(labelled, index=False)
    result = run(
        "evaluate", "--model", str(tiny_model_path), "--data", "-", "--json", stdin=labelled.read_bytes()
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == len(TINY_TEXTS)


# --- the progress bar --------------------------------------------------------------------------------
def _run_on_pty(args: list[str]) -> str:
    """Run `sentimentkit ARGS` with stderr on a pty that reports no size (0 x 0, COLUMNS unset)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen([sys.executable, "-m", "sentimentkit", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, cwd=REPO_ROOT, env=env)  # fmt: skip
    os.close(slave)
    out = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the pty
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(timeout=300) == 0, out.decode(errors="replace")
    return out.decode("utf-8", errors="replace")


@pytest.mark.parametrize(
    "content",
    [
        # quoted line breaks and trailing blank lines: more lines than rows (the bar stopped at 75%)
        "id,text\n"
        + "".join(f'{i},"good\nday {i}"\n' if i % 2 else f"{i},bad {i}\n" for i in range(40))
        + "\n\n",
        # no newline after the last row: fewer lines than rows
        "id,text\n" + "\n".join(f"{i},fine {i}" for i in range(40)),
    ],
    ids=["more-lines-than-rows", "no-final-newline"],
)
def test_progress_bar_ends_at_100_percent_on_a_terminal_without_a_size(tiny_model_path, tmp_path, content):
    source = tmp_path / "in.csv"
    source.write_text(content, encoding="utf-8")
    screen = _run_on_pty(["predict", "--model", str(tiny_model_path), "--input", str(source),
                          "--output", str(tmp_path / "out.csv"), "--jobs", "1", "--chunk-rows", "7"])  # fmt: skip
    frames = [f for f in re.split(r"[\r\n]+", screen) if "rows/s" in f]
    assert frames, screen  # the bar is drawn although the terminal reports 0 x 0
    assert frames[-1].lstrip().startswith("100%|"), frames[-1]
    done, total = re.search(r"\| *([\d.]+)/([\d.]+) \[", frames[-1]).groups()
    written = len(
        pd.read_csv(tmp_path / "out.csv", skip_blank_lines=False)
    )  # every input row, flagged or not
    assert float(done) == float(total) == written >= 40, frames[-1]


def test_progress_total_becomes_the_rows_written(tiny_model_path, tmp_path, capsys):
    """Quoted line breaks make the line count (the bar's estimated total) exceed the rows: the bar
    still ends at rows/rows, 100%."""
    from sentimentkit.scale.multiproc import count_rows, score_file

    source = tmp_path / "in.csv"
    source.write_text("text\n" + "".join(f'"line one\nline two {i}"\n' for i in range(30)), encoding="utf-8")
    assert count_rows(source) == 60  # the estimate the bar starts from
    result = score_file(tiny_model_path, source, tmp_path / "out.csv", jobs=1, chunk_rows=8, progress=True)
    last = re.split(r"[\r\n]+", capsys.readouterr().err.strip())[-1]
    assert result.rows == 30
    assert last.lstrip().startswith("100%|") and "| 30.0/30.0 [" in last, last
