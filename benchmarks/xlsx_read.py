"""Cost of flagging Excel formulas that have no saved value: the one-pass reader vs openpyxl's own read.

The batch reader (`sentimentkit.io.tables.read_excel`) used to read a sheet with openpyxl's
read-only `iter_rows(values_only=True)` over the saved values (data_only), which gives None for a
formula cell that has no saved value. It now parses the sheet once with openpyxl's parser, keeping
the saved values and turning a formula without one into an `UnsavedFormula` (`tables._sheet_cells`).
This measures both parses side by side, taking turns, on the same workbooks:

- plain: id (number), text, source; no formula;
- saved formulas: plus a column of formulas whose values are saved (as Excel stores them);
- unsaved formulas: plus a column of formulas without saved values (as openpyxl and scripts write
  them); here the new reader does the extra work of reading the formulas;
- unsaved text formulas: every text cell is a formula without a saved value.

The texts are distinct tweets from `../shared/data/unlabeled/tweets.csv` (a parse has no cache, but
no figure here comes from a text read twice within one workbook). Each figure is the median of
`--repeats` reads; the load average is recorded.

Usage: python benchmarks/xlsx_read.py [--rows 30000] [--repeats 3] -> benchmarks/xlsx_read.md
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import statistics
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import openpyxl
import pandas as pd

from sentimentkit.config import REPO_ROOT
from sentimentkit.io import tables

SHARED = REPO_ROOT.parent / "shared" / "data"
SHEET = "xl/worksheets/sheet1.xml"


def tweets(n: int) -> list[str]:
    """The first `n` distinct non-blank unlabeled tweets."""
    frame = pd.read_csv(SHARED / "unlabeled" / "tweets.csv", dtype=str, keep_default_na=False)
    return list(dict.fromkeys(t for t in frame["text"] if t.strip()))[:n]


def workbook(texts: list[str], extra: str | None, saved: bool, text_formulas: bool = False) -> bytes:
    """A write-only openpyxl workbook of the texts; `extra`, a formula for a fourth column (row
    number substituted for {r}); `saved`, whether every formula gets a saved value."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(["id", "text", "source", "extra"] if extra else ["id", "text", "source"])
    for r, text in enumerate(texts, start=2):
        row: list[object] = [r - 1, f'=C{r}&"!"' if text_formulas else text, "unlabeled"]
        sheet.append([*row, extra.format(r=r)] if extra else row)
    buffer = io.BytesIO()
    book.save(buffer)
    return save_all_values(buffer.getvalue()) if saved else buffer.getvalue()


def save_all_values(data: bytes) -> bytes:
    """Give every formula cell a saved value (a number), as Excel does when it saves."""
    source = zipfile.ZipFile(io.BytesIO(data))
    xml = re.sub(r"(<f>[^<]*</f>)<v ?/>", r"\1<v>42</v>", source.read(SHEET).decode())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            target.writestr(item, xml if item.filename == SHEET else source.read(item.filename))
    return out.getvalue()


def openpyxl_rows(data: bytes) -> list[list[object]]:
    """The old reader's parse: openpyxl's read-only rows of saved values."""
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    rows = [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    book.close()
    return rows


def one_pass_rows(data: bytes) -> list[dict[int, object]]:
    """The new reader's parse: saved values (each row a dict of the cells it holds), and formulas
    without one as UnsavedFormula."""
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    rows, _, _ = tables._sheet_cells(book, book.worksheets[0])
    book.close()
    return rows


def timed(read: Callable[[bytes], object], data: bytes) -> float:
    began = time.perf_counter()
    read(data)
    return time.perf_counter() - began


def measure(data: bytes, repeats: int) -> tuple[float, float, float]:
    """Median seconds of the old parse, the new parse and the whole new `read_excel`, taking turns."""
    spent: list[list[float]] = [[], [], []]
    for _ in range(repeats):
        for k, read in enumerate((openpyxl_rows, one_pass_rows, tables.read_excel)):
            spent[k].append(timed(read, data))
    old, new, whole = (statistics.median(s) for s in spent)
    return old, new, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".md"))
    args = parser.parse_args()
    texts = tweets(args.rows)
    cases = {
        "plain (no formula)": workbook(texts, None, saved=False),
        "saved formulas (=LEN(B{r}), values saved)": workbook(texts, "=LEN(B{r})", saved=True),
        "unsaved formulas (=LEN(B{r}), no values)": workbook(texts, "=LEN(B{r})", saved=False),
        'unsaved text formulas (every text =C{r}&"!")': workbook(
            texts, None, saved=False, text_formulas=True
        ),
    }
    lines = [
        "# Reading .xlsx: the one-pass reader (flags formulas without a saved value) vs openpyxl's read",
        "",
        f"Generated by `python benchmarks/xlsx_read.py --rows {args.rows} --repeats {args.repeats}`. "
        f"{len(texts):,} data rows per workbook (distinct unlabeled tweets), median of {args.repeats} "
        "reads each after a warm-up read, the two parses taking turns on the same bytes. *openpyxl* is the old reader's parse "
        "(`iter_rows(values_only=True)` over saved values); *one pass* is `tables._sheet_cells`, which also "
        "reads the formulas that have no saved value; *read_excel* is the whole new reader (parse, "
        "trimming, DataFrame, notes).",
        "",
        "| workbook | size | openpyxl parse | one-pass parse | ratio (one pass / openpyxl) | read_excel, whole |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    measure(workbook(texts[:500], "=LEN(B{r})", saved=False), 1)  # warm-up: imports, parser class
    for name, data in cases.items():
        old, new, whole = measure(data, args.repeats)
        n = len(texts)
        lines.append(
            f"| {name} | {len(data) / 1e6:.2f} MB | {old:.2f} s ({n / old:,.0f} rows/s) | "
            f"{new:.2f} s ({n / new:,.0f} rows/s) | {new / old:.3f} | {whole:.2f} s |"
        )
        print(lines[-1], flush=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared with other "
        f"work; load average at the end {load}), Python {platform.python_version()}, openpyxl "
        f"{openpyxl.__version__}.",
        "",
    ]
    args.out.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
