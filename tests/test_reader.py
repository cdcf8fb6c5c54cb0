"""The one table reader (`sentimentkit.io.tables`): defects found by testers, each pinned here.

Encodings decided for the whole file however short, every BOM, spreadsheets read by the cells they
hold (MAX_COLUMNS), Excel error values flagged, Parquet through the same reader (renamed columns
noted), Excel to Parquet output keeping values, one-column files byte for byte, a long cell told
apart from an unclosed quote, and `evaluate` reading what `predict` reads.
"""

from __future__ import annotations

import codecs
import datetime as dt
import json
import subprocess
import sys

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from openpyxl.styles import Font

from sentimentkit.config import REPO_ROOT
from sentimentkit.data import load_labelled_csv
from sentimentkit.io.tables import (
    FIELD_LIMIT,
    MAX_COLUMNS,
    BatchError,
    detect_encoding,
    open_table,
    read_table,
)
from sentimentkit.scale.multiproc import score_file
from sentimentkit.serving.batch import score_table

from .workbooks import with_cells, xlsx_bytes

EURO = "\u201cgreat\u201d deal, only \u20ac5"


# --- 1. encodings ---------------------------------------------------------------------------------
def test_a_one_row_cp1252_file_is_cp1252_not_cp437() -> None:
    # Was: charset-normalizer's pick for so few bytes, cp437: "ôgreatö deal, only Ç5".
    data = f"text\n{EURO}\n".encode("cp1252")
    assert detect_encoding(data) == "cp1252"
    assert read_table(data, "in.csv").frame["text"].tolist() == [EURO]


@pytest.mark.parametrize(
    "text",
    [
        "na\u00efve caf\u00e9 \u2013 \u00bfqu\u00e9 tal?",
        "Gr\u00f6\u00dfe Stra\u00dfe",
        "\u00e9t\u00e9",
        "don\u2019t \u2026 \u00a33",
    ],
)
def test_short_western_texts_in_cp1252_stay_cp1252(text: str) -> None:
    assert read_table(f"text\n{text}\n".encode("cp1252"), "in.csv").frame["text"].tolist() == [text]


def test_japanese_shift_jis_is_still_recognised() -> None:
    text = "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3001\u5143\u6c17\u3067\u3059\u304b"
    assert read_table(f"text\n{text}\n".encode("shift_jis"), "in.csv").frame["text"].tolist() == [text]


@pytest.mark.parametrize(
    ("bom", "codec"),
    [(codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
     (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")],
)  # fmt: skip
def test_every_bom_is_honoured(bom: bytes, codec: str) -> None:
    # Was: UTF-32-LE's BOM (FF FE 00 00) taken for UTF-16-LE's; UTF-32-BE's not known at all.
    data = bom + f"id,text\n1,{EURO}\n2,\U0001f600 ok\n".encode(codec)
    assert read_table(data, "in.csv").frame["text"].tolist() == [EURO, "\U0001f600 ok"]


# --- 2. spreadsheets by the cells they hold --------------------------------------------------------
def _stray_cell_workbook(path, value: object) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["text", "label"])
    for i in range(2000):
        sheet.append([f"tweet {i}", "neutral"])
    if value is None:
        sheet["XFD5"].font = Font(bold=True)  # a formatted cell with no value: `<c r="XFD5" s="1"/>`
    else:
        sheet["XFD5"] = value
    book.save(path)


def _columns_in_a_subprocess(path) -> list[str]:
    """The columns read_table gives, within a liveness timeout (the process is ended if it hangs)."""
    code = (
        "import json, sys; from sentimentkit.io.tables import read_table; t = read_table(open(sys.argv[1], 'rb')"
        ".read(), 'book.xlsx'); print(json.dumps([t.columns, len(t.frame)]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_stray_formatted_cell_in_column_xfd_adds_no_columns(tmp_path) -> None:
    # Was: every row padded to 16,384 cells (2,000 rows: over 120 s and 1.6 GB).
    path = tmp_path / "book.xlsx"
    _stray_cell_workbook(path, None)
    assert _columns_in_a_subprocess(path) == [["text", "label"], 2000]


def test_a_stray_value_in_column_xfd_is_one_more_column(tmp_path) -> None:
    path = tmp_path / "book.xlsx"
    _stray_cell_workbook(path, "stray")
    assert _columns_in_a_subprocess(path) == [["text", "label", "column_16384"], 2000]
    table = read_table(path.read_bytes(), "book.xlsx")
    assert table.frame["column_16384"].tolist()[3] == "stray"  # Excel row 5 is data row 4
    assert table.frame["column_16384"].notna().sum() == 1


def test_more_columns_than_the_limit_is_one_line() -> None:
    data = xlsx_bytes([[f"c{i}" for i in range(MAX_COLUMNS + 1)], ["x"] * (MAX_COLUMNS + 1)])
    with pytest.raises(BatchError, match=f"^The first sheet has 1,001 columns; at most {MAX_COLUMNS:,}"):
        read_table(data, "wide.xlsx")
    header = ",".join(f"c{i}" for i in range(MAX_COLUMNS + 1)).encode()
    with pytest.raises(BatchError, match="MAX_COLUMNS"):
        read_table(header + b"\n" + b"x," * MAX_COLUMNS + b"x\n", "wide.csv")


# --- 3. Excel error values --------------------------------------------------------------------------
ERRORS = [
    "#DIV/0!",
    "#N/A",
    "#VALUE!",
    "#REF!",
    "#NAME?",
    "#NUM!",
    "#NULL!",
    "#SPILL!",
    "#CALC!",
    "#GETTING_DATA",
]


def test_excel_error_cells_are_flagged_not_scored_but_text_that_reads_like_one_is_text(
    tiny_predictor,
) -> None:
    # Was: "#DIV/0!" read as a string and scored like a tweet.
    rows = [
        ["id", "text"],
        *([i, f"placeholder {i}"] for i in range(len(ERRORS))),
        [99, "text #N/A"],
        [100, "x"],
    ]
    cells = {f"B{i + 2}": f"e:{error}" for i, error in enumerate(ERRORS)}
    cells[f"B{len(ERRORS) + 2}"] = "s:#N/A"  # a text cell whose text is "#N/A"
    table = read_table(with_cells(xlsx_bytes(rows), cells), "book.xlsx")
    assert table.frame["text"].tolist()[: len(ERRORS)] == ERRORS
    assert any(f"{len(ERRORS)} cells hold a spreadsheet error value" in note for note in table.notes)
    scored = score_table(tiny_predictor, table, "text")
    errors = scored["error"].tolist()
    assert errors[: len(ERRORS)] == [f"spreadsheet error value {e}" for e in ERRORS]
    assert scored["sentiment"].isna().tolist() == [True] * len(ERRORS) + [False, False]
    assert table.frame["text"].tolist()[len(ERRORS)] == "#N/A" and pd.isna(errors[len(ERRORS)])


# --- 4. Parquet through the one reader -------------------------------------------------------------------
def _parquet(path, names: list[str]) -> None:
    arrays = [pa.array(["I love it", "awful day"]), pa.array(["b", "c"]), pa.array([1, 2])][: len(names)]
    pq.write_table(pa.Table.from_arrays(arrays, names=names), path)


def test_parquet_with_duplicate_and_reserved_names_is_read_with_notes(tiny_model_path, tmp_path) -> None:
    # Was: a traceback for the duplicate; `sentiment` renamed without a word.
    source, out = tmp_path / "in.parquet", tmp_path / "out.csv"
    _parquet(source, ["text", "text", "sentiment"])
    with open_table(source) as table:
        assert table.columns == ["text", "text.1", "sentiment"]
    result = score_file(tiny_model_path, source, out, jobs=1)
    assert any("column 2 is another 'text'" in note for note in result.notes)
    assert any("'sentiment' is written as 'sentiment_input'" in note for note in result.notes)
    back = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(back.columns[:3]) == ["text", "text.1", "sentiment_input"]
    assert back["text.1"].tolist() == ["b", "c"] and back["sentiment_input"].tolist() == ["1", "2"]
    assert back["error"].tolist() == ["", ""]


def test_open_table_reads_parquet_and_an_upload_of_it(tmp_path) -> None:
    source = tmp_path / "in.parquet"
    _parquet(source, ["text", "n"])
    with open_table(source) as table:
        frames = [chunk.frame for chunk in table.chunks(1)]
    assert [f.index.tolist() for f in frames] == [[0], [1]]
    assert read_table(source.read_bytes(), "in.parquet").frame["text"].tolist() == ["I love it", "awful day"]


# --- 5. Excel to Parquet ----------------------------------------------------------------------------------
def test_excel_with_numbers_and_dates_writes_parquet_keeping_values(tiny_model_path, tmp_path) -> None:
    # Was: a traceback (pyarrow refuses object columns of mixed types).
    when = dt.datetime(2024, 5, 1, 12, 30)
    rows = [["id", "text", "when", "score", "varied"],  # varied: a column of mixed types
            [1, "I love it", when, 1.5, 3],
            [2, "awful day", when + dt.timedelta(days=1), 2, "three"],
            [3, 42, None, None, when]]  # fmt: skip
    source, out = tmp_path / "in.xlsx", tmp_path / "out.parquet"
    source.write_bytes(xlsx_bytes(rows))
    score_file(tiny_model_path, source, out, jobs=1)
    table = pq.read_table(out)
    types = dict(zip(table.schema.names, table.schema.types))
    assert types["id"] == pa.int64() and types["score"] == pa.float64()
    assert (
        types["when"] == pa.timestamp("us")
        and types["varied"] == pa.string()
        and types["text"] == pa.string()
    )
    back = table.to_pylist()
    assert [r["id"] for r in back] == [1, 2, 3] and [r["score"] for r in back] == [1.5, 2.0, None]
    assert [r["when"] for r in back] == [when, when + dt.timedelta(days=1), None]
    assert [r["varied"] for r in back] == ["3", "three", str(when)]
    assert [r["text"] for r in back] == ["I love it", "awful day", "42"]
    assert back[2]["error"] == "not text (got int)" and back[2]["sentiment"] is None


# --- 6. one-column files byte for byte -----------------------------------------------------------------------
def test_a_unit_separator_in_a_one_column_file_is_kept(tiny_model_path, tmp_path) -> None:
    # Was: the reader split one-column lines on \x1f and joined them back without it.
    texts = ["I love\x1fit", "a, b; c | d", "\x1f", 'say "hi"', "multi\nline, quoted"]
    data = b'text\nI love\x1fit\na, b; c | d\n\x1f\nsay "hi"\n"multi\nline, quoted"\n'
    assert read_table(data, "in.csv").frame["text"].tolist() == texts
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(data)
    score_file(tiny_model_path, source, out, jobs=1)
    assert pd.read_csv(out, dtype=str, keep_default_na=False)["text"].tolist() == texts


# --- 7. a long cell is not an unclosed quote --------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [b"id,text\n1,ok\n2," + b"x" * (10 << 20) + b"\n3,fine\n",
     b"id,text\n1,ok\n2,\"" + b"y" * (10 << 20) + b"\"\n3,fine\n",
     b"text\nok\n" + b"z" * (10 << 20) + b"\nfine\n",
     b"text\nok\n\"" + b"line\n" * (2 << 20) + b"\"\nfine\n"],
    ids=["unquoted", "quoted", "one-column", "one-column-quoted-lines"],
)  # fmt: skip
def test_a_10_mb_cell_is_called_a_long_cell(data: bytes) -> None:
    # Was: "a cell longer than 8,388,608 characters, most likely a quote that is never closed".
    with pytest.raises(
        BatchError, match=r"^a cell longer than the 8 MiB limit \(8,388,608 characters\) at line 3"
    ):
        read_table(data, "in.csv")


@pytest.mark.parametrize("header", [b"id,text\n1,ok\n2,", b"text\nok\n"], ids=["csv", "one-column"])
def test_an_unclosed_quote_past_the_limit_is_still_called_one(header: bytes) -> None:
    data = header + b'"never closed\n' + b"more text, swallowed\n" * (FIELD_LIMIT // 20)
    with pytest.raises(BatchError, match="^line 3: a quote opened here is never closed"):
        read_table(data, "in.csv")


# --- 8. evaluate, train and retrain read what predict reads --------------------------------------------------------
LABELLED = [("I love it", "positive"), ("awful day", "negative"), ("it is a table", "neutral"),
            ("great \u201cfun\u201d \u20ac5", "positive"), ("caf\u00e9 was bad", "negative")]  # fmt: skip


def _labelled_files(folder) -> dict[str, object]:
    frame = pd.DataFrame(LABELLED, columns=["tweet", "gold"])
    files = {"csv": folder / "d.csv", "cp1252": folder / "d1252.csv", "xlsx": folder / "d.xlsx",
             "parquet": folder / "d.parquet", "tsv": folder / "d.tsv"}  # fmt: skip
    frame.to_csv(files["csv"], index=False, encoding="utf-8")
    files["cp1252"].write_bytes(frame.to_csv(index=False).encode("cp1252"))
    files["xlsx"].write_bytes(xlsx_bytes([["tweet", "gold"], *map(list, LABELLED)]))
    frame.to_parquet(files["parquet"], index=False)
    frame.to_csv(files["tsv"], index=False, sep="\t")
    return files


def test_load_labelled_reads_every_format_the_same(tmp_path) -> None:
    # Was: pandas' own CSV reader: UTF-8 CSV only ("not UTF-8", "not a readable CSV file").
    files = _labelled_files(tmp_path)
    expected = [t for t, _ in LABELLED]
    for kind, path in files.items():
        frame = load_labelled_csv(path, "tweet", "gold")
        assert frame["text"].tolist() == expected, kind
        assert frame["label"].tolist() == [label for _, label in LABELLED], kind


def test_evaluate_accepts_xlsx_cp1252_and_parquet_with_the_csv_metrics(tiny_model_path, tmp_path) -> None:
    files = _labelled_files(tmp_path)
    results = {}
    for kind in ("csv", "cp1252", "xlsx", "parquet"):
        result = subprocess.run(
            [sys.executable, "-m", "sentimentkit", "evaluate", "--model", str(tiny_model_path), "--data",
             str(files[kind]), "--text-column", "tweet", "--label-column", "gold", "--json"],
            capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, (kind, result.stderr)
        results[kind] = {k: v for k, v in json.loads(result.stdout).items() if k != "model_version"}
    assert results["csv"]["n"] == len(LABELLED)
    assert results["cp1252"] == results["csv"] == results["xlsx"] == results["parquet"]


def test_labelled_files_skip_blank_lines_and_refuse_ragged_rows_and_error_cells(tmp_path) -> None:
    blank = tmp_path / "blank.csv"
    blank.write_bytes(b"text,label\nhello,neutral\n\nbye,positive\n")
    assert load_labelled_csv(blank)["text"].tolist() == ["hello", "bye"]
    ragged = tmp_path / "ragged.csv"
    ragged.write_bytes(b"text,label\nhello,neutral\nhi, there,positive\n")
    with pytest.raises(Exception, match="data row 2: line 3: 3 fields, the header has 2"):
        load_labelled_csv(ragged)
    book = tmp_path / "book.xlsx"
    book.write_bytes(with_cells(xlsx_bytes([["text", "label"], ["x", "neutral"]]), {"A2": "e:#DIV/0!"}))
    with pytest.raises(Exception, match=r"data row 1 of column 'text' holds an error value \(#DIV/0!\)"):
        load_labelled_csv(book)
