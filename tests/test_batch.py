"""Batch reading, scoring and writing with tiny inline tables (real model, no mocks)."""

from __future__ import annotations

import codecs
import io

import openpyxl
import pandas as pd
import pytest

from sentimentkit.io.tables import FIELD_LIMIT
from sentimentkit.scale.multiproc import score_file
from sentimentkit.serving.base import OUTPUT_COLUMNS, UNSAVED_FORMULA
from sentimentkit.serving.batch import (
    BatchError,
    check_column,
    check_upload,
    detect_delimiter,
    detect_encoding,
    guess_text_column,
    neutralise_formulas,
    read_table,
    result_csv_bytes,
    score_chunk,
    score_chunks,
    score_table,
)
from sentimentkit.serving.batch import csv_text as scored_csv_text
from sentimentkit.ui import NOT_SCORED, apply_threshold, confidence_histogram, filter_results, label_summary
from tests.workbooks import xlsx_bytes

ROWS = [("1", "I love this, great day"), ("2", "café crème, so sad :("), ("3", "the train leaves at two")]


def values(scored: pd.DataFrame, column: str = "error") -> list[object]:
    """A column's values with missing ones as None (pandas may store them as NaN)."""
    return [None if pd.isna(v) else v for v in scored[column]]


def csv_text(sep: str = ",") -> str:
    """The ROWS as a delimited table (quoted when the delimiter is a comma, which the texts contain)."""
    quote = '"' if sep == "," else ""
    return f"id{sep}text\n" + "".join(f"{i}{sep}{quote}{t}{quote}\n" for i, t in ROWS)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "latin-1"])
def test_read_table_decodes_every_supported_encoding(encoding: str) -> None:
    frame = read_table(csv_text().encode(encoding), "in.csv").frame
    assert list(frame.columns) == ["id", "text"]  # a BOM must not leak into the first header
    assert frame["text"].tolist() == [t for _, t in ROWS]


def test_utf16_without_bom_is_detected() -> None:
    data = csv_text().encode("utf-16-le")
    assert detect_encoding(data) == "utf-16-le"
    assert read_table(data, "in.csv").frame["text"].tolist()[1] == "café crème, so sad :("


def test_detect_encoding_prefers_utf8_then_cp1252_then_latin1() -> None:
    assert detect_encoding("naïve".encode()) == "utf-8"
    assert detect_encoding(codecs.BOM_UTF8 + b"a") == "utf-8-sig"
    assert detect_encoding("naïve".encode("latin-1")) == "cp1252"  # the same characters, and more
    every_byte = b"text\n" + bytes(range(0x80, 0x100)).replace(b"\n", b"") + b"\n"
    assert len(read_table(every_byte, "in.csv").frame) == 1  # some single-byte encoding always fits


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_table_sniffs_the_delimiter(sep: str) -> None:
    frame = read_table(csv_text(sep).encode(), "in.csv").frame
    assert frame["text"].tolist() == [t for _, t in ROWS]


def test_tsv_extension_means_tab() -> None:
    assert detect_delimiter("a,b\tc", "x.tsv") == "\t"
    assert read_table(csv_text("\t").encode(), "in.tsv").frame["id"].tolist() == ["1", "2", "3"]


def test_quoted_newlines_and_empty_cells_stay_in_their_rows() -> None:
    data = b'id,text,note\n1,"line one\nline two",x\n2,,y\n3,"say ""hi""",\n'
    frame = read_table(data, "in.csv").frame
    assert frame["text"].tolist() == ["line one\nline two", "", 'say "hi"']
    assert frame["note"].tolist() == ["x", "y", ""]


def test_values_are_kept_exactly_not_guessed() -> None:
    frame = read_table(b"id,text\n007,NA\n1e3,null\n", "in.csv").frame
    assert frame["id"].tolist() == ["007", "1e3"]
    assert frame["text"].tolist() == ["NA", "null"]


def test_xlsx_round_trip_keeps_rows_and_flags_non_text(tiny_predictor) -> None:
    data = xlsx_bytes([["n", "text"], [1, "I love it"], [2, 12345], [3, None], [4, "@SUM(1)"]])
    frame = read_table(data, "book.xlsx").frame
    assert frame["n"].tolist() == [1, 2, 3, 4]
    scored = score_table(tiny_predictor, frame, "text")
    errors = scored["error"].tolist()
    assert pd.isna(errors[0]) and errors[1:3] == ["not text (got int)", "empty text"]
    back = pd.read_csv(
        io.BytesIO(result_csv_bytes(scored)), encoding="utf-8-sig", dtype=str, keep_default_na=False
    )
    assert back["n"].tolist() == ["1", "2", "3", "4"]
    # openpyxl would store "=1+1" as a formula, so a formula-like text cell starts with @ here.
    assert back["text"].tolist() == ["I love it", "12345", "", "'@SUM(1)"]


def test_xlsx_formulas_without_a_saved_value_are_flagged_and_counted(tiny_predictor) -> None:
    # Was: read as None (openpyxl's data_only), so such a row was flagged "empty text", wrongly.
    rows = [["id", "text", "note"], [1, "I love it", "=A2*2"], [2, '=B2&" so much"', "x"], [3, "=A1", None],
            [4, '=B2&"!"', None]]  # fmt: skip
    table = read_table(xlsx_bytes(rows, saved={"B5": "I love it!"}), "book.xlsx")
    assert table.frame["id"].tolist() == [1, 2, 3, 4]
    # A formula without a value shows as its formula; one with a saved value as that value, as before.
    assert table.frame["text"].tolist() == ["I love it", '=B2&" so much"', "=A1", "I love it!"]
    scored = score_table(tiny_predictor, table, "text")
    assert values(scored) == [None, UNSAVED_FORMULA, UNSAVED_FORMULA, None]
    assert values(scored, "sentiment")[3] == "positive"
    assert UNSAVED_FORMULA.startswith("formula with no saved value") and "Excel" in UNSAVED_FORMULA
    [note] = [n for n in table.notes if "no saved value" in n]
    assert note.startswith(
        "3 cells hold a formula with no saved value (column 'text': rows 3, 4; column 'note': row 2)"
    )
    back = pd.read_csv(
        io.BytesIO(result_csv_bytes(scored)), encoding="utf-8-sig", dtype=str, keep_default_na=False
    )
    assert back["text"].tolist()[1:3] == ['\'=B2&" so much"', "'=A1"]  # neutralised like any formula text
    assert back["note"][0] == "'=A2*2"


def test_xlsx_reader_gives_what_openpyxl_gives_for_cells_with_values() -> None:
    # The one-pass reader parses the sheet itself; it must agree with openpyxl's own read-only rows.
    import datetime as dt

    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"], sheet["B1"], sheet["C1"], sheet["D1"] = "id", "text", "when", "ok"
    sheet["B2"], sheet["C2"], sheet["D2"] = "I love it", dt.datetime(2024, 5, 1, 12, 30), True
    sheet["A4"], sheet["C4"], sheet["F4"] = 3.5, dt.date(2024, 1, 2), "stray"  # row 3 has no cell
    sheet["B5"] = "=A4*2"  # no saved value: the one difference
    buffer = io.BytesIO()
    book.save(buffer)
    expected = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()), read_only=True, data_only=True)
    rows = [list(r) for r in expected.active.iter_rows(values_only=True)]
    table = read_table(buffer.getvalue(), "book.xlsx")
    assert (
        table.columns == ["id", "text", "when", "ok", "column_5", "column_6"]
        and rows[0][:4] == table.columns[:4]
    )
    assert table.frame.values.tolist()[:3] == rows[1:4]
    assert table.frame.values.tolist()[3] == [None, "=A4*2", None, None, None, None] and rows[4][1] is None


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "in.csv", "empty"),
        (b"   \n", "in.csv", "empty"),
        (b"id,text\n", "in.csv", "header but no rows"),
        (b"x", "in.pdf", "not a CSV, TSV or Excel"),
        (b"x", "old.xls", "Save it as .xlsx"),
        (b"not a zip", "book.xlsx", "could not be read"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image.csv", "not text"),
    ],
)
def test_read_table_errors_say_what_to_do(data: bytes, name: str, message: str) -> None:
    with pytest.raises(BatchError, match=message):
        read_table(data, name)


def test_read_table_rejects_too_many_rows_and_points_to_the_cli() -> None:
    data = ("text\n" + "hello\n" * 11).encode()
    with pytest.raises(BatchError, match="python -m sentimentkit predict --input FILE.csv --output OUT.csv"):
        read_table(data, "in.csv", max_rows=10)
    assert len(read_table(data, "in.csv", max_rows=11).frame) == 11


def test_a_latin1_byte_after_the_first_64kb_decides_the_encoding() -> None:
    # Was: UTF-8 sniffed from the first 64 KiB, then a failed run "at byte 3" for a later byte.
    data = b"text\n" + b"plain ascii row\n" * 6000 + "caf\xe9\n".encode("latin-1")
    assert detect_encoding(data) == "cp1252"
    assert read_table(data, "in.csv").frame["text"].tolist()[-1] == "caf\u00e9"


def test_cp1252_curly_quotes_and_euro_survive() -> None:
    # Was: read as Latin-1, so \x93 \x94 \x80 became invisible control characters.
    text = "\u201cGreat\u201d deal, only 5 \u20ac \u2013 caf\u00e9"
    data = f"id,text\n1,{text!r}\n".replace("'", '"').encode("cp1252")
    assert detect_encoding(data) == "cp1252"
    assert read_table(data, "in.csv").frame["text"].tolist() == [text]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [("\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430?", "cp1251"),
     ("Za\u017c\u00f3\u0142\u0107 g\u0119\u015bl\u0105 ja\u017a\u0144, to jest \u017ale", "cp1250")],
)  # fmt: skip
def test_other_legacy_encodings_are_recognised(text: str, encoding: str) -> None:
    data = f'text\n"{text}"\n'.encode(encoding)
    assert read_table(data, "in.csv").frame["text"].tolist() == [text]


def test_blank_lines_are_kept_as_empty_rows_in_order(tiny_predictor) -> None:
    # Was: pandas' skip_blank_lines dropped them (3 rows out of 6, "0 flagged").
    table = read_table(b"text\nhello\n\nworld\n\n\nbye\n", "in.csv")
    assert table.frame["text"].tolist() == ["hello", "", "world", "", "", "bye"]
    scored = score_table(tiny_predictor, table, "text")
    assert values(scored) == [None, "empty text", None, "empty text", "empty text", None]


def test_an_unquoted_comma_in_a_one_column_file_stays_in_the_text(tiny_predictor) -> None:
    # Was: pandas used the first column as the index and every text came out "empty text".
    table = read_table(b"text\nhello, world\nbye\nsee you\n", "in.csv")
    assert table.frame["text"].tolist() == ["hello, world", "bye", "see you"]
    assert score_table(tiny_predictor, table, "text")["error"].isna().all()


def test_ragged_rows_keep_every_field_and_are_flagged_with_their_line(tiny_predictor) -> None:
    data = b'id,text\n1,I love it\n2,hello, world\n3\n"4","multi\nline"\n5,I hate it\n'
    table = read_table(data, "in.csv")
    assert table.frame["id"].tolist() == ["1", "2", "3", "4", "5"]
    assert table.frame["text"].tolist() == ["I love it", "hello, world", "", "multi\nline", "I hate it"]
    scored = score_table(tiny_predictor, table, "text", chunk_rows=2)
    assert values(scored) == [
        None, "line 3: 3 fields, the header has 2", "line 4: 1 field, the header has 2", None, None,
    ]  # fmt: skip
    assert values(scored, "sentiment")[1:3] == [None, None]
    assert any("lines 3, 4" in note and "Quote texts" in note for note in table.notes)


def test_a_quote_that_is_never_closed_refuses_the_file_naming_the_line() -> None:
    with pytest.raises(BatchError, match="^line 3: a quote opened here is never closed"):
        read_table(b'id,text\n1,fine\n2,"unterminated\n3,ok\n4,ok\n', "in.csv")


def test_renamed_columns_are_reported() -> None:
    table = read_table(b"text,text,,sentiment\na,b,c,d\n", "in.csv")
    assert table.columns == ["text", "text.1", "column_3", "sentiment"]
    assert table.frame.iloc[0].tolist() == ["a", "b", "c", "d"]
    assert len(table.notes) == 3
    assert "called 'text.1'" in table.notes[0] and "'column_3'" in table.notes[1]
    assert "'sentiment' is written as 'sentiment_input'" in table.notes[2]


def test_xlsx_duplicate_headers_blank_rows_and_extra_sheets_are_reported() -> None:
    book = openpyxl.Workbook()
    for row in [["text", "text"], ["I love it", "a"], [None, None], ["I hate it", None, "stray"], [None]]:
        book.active.append(row)
    book.create_sheet("second")
    buffer = io.BytesIO()
    book.save(buffer)
    table = read_table(buffer.getvalue(), "book.xlsx")
    assert table.columns == ["text", "text.1", "column_3"]
    assert table.frame["text"].tolist() == ["I love it", None, "I hate it"]  # inner blank row kept
    assert table.frame["column_3"].tolist() == [None, None, "stray"]  # a value without header kept
    assert "only the first, 'Sheet'" in table.notes[0] and len(table.notes) == 3


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [(b"PK\x03\x04rest", "book.csv", "give it the .xlsx extension"),
     (b"\xd0\xcf\x11\xe0rest", "book.csv", "old Excel")],
)  # fmt: skip
def test_workbooks_under_a_text_name_get_a_correct_message(data: bytes, name: str, message: str) -> None:
    with pytest.raises(BatchError, match=message):
        read_table(data, name)


def test_check_upload_limits_size_and_type() -> None:
    check_upload("in.csv", 10, max_upload_mb=1)
    with pytest.raises(BatchError, match="at most 1 MB.*python -m sentimentkit predict"):
        check_upload("in.csv", 2 * 1024 * 1024, max_upload_mb=1)
    with pytest.raises(BatchError, match="not a CSV"):
        check_upload("notes.docx", 10, max_upload_mb=1)
    with pytest.raises(BatchError, match="empty"):
        check_upload("in.csv", 0, max_upload_mb=1)


def test_guess_and_check_column() -> None:
    assert guess_text_column(["id", "Tweet", "date"]) == "Tweet"
    assert guess_text_column(["a", "b"]) == "a"
    with pytest.raises(BatchError, match="Column 'txt' not found.*Choose the column"):
        check_column(pd.DataFrame({"text": ["x"]}), "txt")


def test_neutralise_formulas_follows_owasp() -> None:
    frame = pd.DataFrame({"a": ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "-12.5", "+3", "plain", None]})
    assert neutralise_formulas(frame, "all")["a"].tolist()[:8] == [
        "'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "-12.5", "+3", "plain",
    ]  # fmt: skip
    # auto (the default): "@cmd" is a word, not a formula (tests/test_formula.py has the full rule)
    assert neutralise_formulas(frame)["a"].tolist()[:8] == [
        "'=1+1", "'+SUM(A1)", "'-2+3", "@cmd", "'\tx", "-12.5", "+3", "plain",
    ]  # fmt: skip
    assert pd.isna(neutralise_formulas(frame)["a"].iloc[8])
    assert frame["a"].iloc[0] == "=1+1"  # the input is not modified


def test_score_table_keeps_every_row_in_order_with_progress(tiny_predictor) -> None:
    texts = [f"I love this {i}" if i % 3 else "" for i in range(23)]
    frame = pd.DataFrame({"id": [str(i) for i in range(23)], "text": texts, "z": "keep"})
    calls: list[tuple[int, int]] = []
    scored = score_table(tiny_predictor, frame, "text", progress_callback=lambda d, t: calls.append((d, t)),
                         chunk_rows=5)  # fmt: skip
    assert list(scored.columns) == ["id", "text", "z", *OUTPUT_COLUMNS]
    assert scored["id"].tolist() == [str(i) for i in range(23)]
    assert calls == [(5, 23), (10, 23), (15, 23), (20, 23), (23, 23)]
    empty = scored["text"] == ""
    assert (scored.loc[empty, "error"] == "empty text").all()
    assert scored.loc[empty, "sentiment"].isna().all()
    assert scored.loc[~empty, "error"].isna().all()
    assert scored.loc[~empty, "sentiment"].eq("positive").all()


def test_score_table_never_overwrites_an_input_column(tiny_predictor) -> None:
    frame = pd.DataFrame({"sentiment": ["gold"], "text": ["I love it"], "sentiment_input": ["x"]})
    scored = score_table(tiny_predictor, frame, "text")
    assert list(scored.columns)[:3] == ["sentiment_input_", "text", "sentiment_input"]
    assert scored["sentiment_input_"].tolist() == ["gold"]
    assert scored["sentiment"].tolist() == ["positive"]


def test_score_table_missing_column(tiny_predictor) -> None:
    with pytest.raises(BatchError, match="not found"):
        score_table(tiny_predictor, pd.DataFrame({"a": ["x"]}), "text")


def test_threshold_summary_histogram_and_filters(tiny_predictor) -> None:
    frame = pd.DataFrame({"text": ["I love this great day", "", "I hate this awful day", "meeting at noon"]})
    scored = score_table(tiny_predictor, frame, "text")
    everything_uncertain = apply_threshold(scored, 1.01)
    assert everything_uncertain["uncertain"].tolist() == [True, None, True, True]
    nothing_uncertain = apply_threshold(scored, 0.0)
    assert nothing_uncertain["uncertain"].tolist() == [False, None, False, False]

    summary = label_summary(scored, tiny_predictor.labels)
    assert summary["label"].tolist() == ["negative", "neutral", "positive", NOT_SCORED]
    assert summary["rows"].tolist() == [1, 1, 1, 1]
    assert summary["share"].sum() == pytest.approx(1.0)
    assert NOT_SCORED not in label_summary(scored.iloc[[0]], tiny_predictor.labels)["label"].tolist()

    histogram = confidence_histogram(scored, bins=4)
    assert histogram["rows"].sum() == 3 and len(histogram) == 4

    assert filter_results(scored, ["positive", NOT_SCORED]).index.tolist() == [0, 1]
    assert filter_results(everything_uncertain, None, True).index.tolist() == [0, 2, 3]
    assert filter_results(everything_uncertain, None, False).empty


def test_result_csv_bytes_round_trip_is_lossless_and_safe(tiny_predictor) -> None:
    frame = read_table(b'id,text\n1,"multi\nline, love it"\n2,\n3,=1+1\n4,-5\n', "in.csv").frame
    data = result_csv_bytes(score_table(tiny_predictor, frame, "text"))
    assert data.startswith(codecs.BOM_UTF8)
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(back.columns) == ["id", "text", *OUTPUT_COLUMNS]
    assert back["id"].tolist() == ["1", "2", "3", "4"]
    assert back["text"].tolist() == ["multi\nline, love it", "", "'=1+1", "-5"]
    assert back["error"].tolist() == ["", "empty text", "", ""]


def test_score_file_streams_keeps_blank_lines_and_neutralises(tiny_model_path, tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("text\nI love it\n\ncaf\u00e9\n=1+1\n".encode("latin-1"))
    result = score_file(tiny_model_path, source, tmp_path / "out.csv", chunk_rows=2, jobs=1)
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert (result.rows, result.flagged) == (4, 1)  # was (3, 0): the blank line was dropped
    assert out["text"].tolist() == ["I love it", "", "caf\u00e9", "'=1+1"]  # the CLI neutralises too


def test_score_file_refuses_to_write_over_its_input(tiny_model_path, tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("text\nI love it\n")
    link = tmp_path / "link.csv"
    link.symlink_to(source)
    for output in (source, tmp_path / "." / "in.csv", link):
        with pytest.raises(BatchError, match="is the input file"):
            score_file(tiny_model_path, source, output, jobs=1)
    assert source.read_text() == "text\nI love it\n"


def test_a_failed_run_leaves_an_existing_output_untouched_and_no_partial_file(
    tiny_model_path, tmp_path
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"text\n" + b"I love it\n" * 50 + b'"never closed\nmore\n')
    output = tmp_path / "out.csv"
    output.write_text("previous results\n")
    with pytest.raises(BatchError, match="line 52"):
        score_file(
            tiny_model_path, source, output, chunk_rows=10, jobs=1
        )  # fails after 5 chunks were written
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_score_file_reads_xlsx(tiny_model_path, tmp_path) -> None:
    source = tmp_path / "book.xlsx"
    source.write_bytes(xlsx_bytes([["id", "text"], [1, "I love it"], [2, "@user I hate it"]]))
    result = score_file(tiny_model_path, source, tmp_path / "out.csv", jobs=1)
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert result.rows == 2 and out["sentiment"].tolist() == ["positive", "negative"]
    assert out["text"].tolist() == ["I love it", "@user I hate it"]  # a reply, not a formula
    score_file(tiny_model_path, source, tmp_path / "all.csv", formula_guard="all", jobs=1)
    assert pd.read_csv(tmp_path / "all.csv", dtype=str)["text"].tolist() == ["I love it", "'@user I hate it"]


def test_score_chunk_is_pure_and_flags_row_errors(tiny_predictor) -> None:
    frame = pd.DataFrame({"text": ["I love it", "I hate it", ""]}, index=[7, 8, 9])
    scored = score_chunk(tiny_predictor, frame, "text", row_errors={1: "line 9: 3 fields"})
    assert scored.index.tolist() == [7, 8, 9] and list(frame.columns) == ["text"]
    assert values(scored) == [None, "line 9: 3 fields", "empty text"]
    assert values(scored, "sentiment") == ["positive", None, None]
    parts = list(score_chunks(tiny_predictor, [frame.iloc[:2], frame.iloc[2:]], "text"))
    assert [len(p) for p in parts] == [2, 1]


def test_csv_text_neutralises_column_names_too() -> None:
    assert scored_csv_text(pd.DataFrame({"=cmd": ["-1", "-x", "-A1"]})) == "'=cmd\n-1\n-x\n'-A1\n"
    assert scored_csv_text(pd.DataFrame({"=cmd": ["-x"]}), formula_guard="all") == "'=cmd\n'-x\n"
    assert scored_csv_text(pd.DataFrame({"=cmd": ["-A1"]}), formula_guard="off") == "=cmd\n-A1\n"


def test_a_mostly_utf8_file_with_a_stray_byte_is_refused_naming_the_line() -> None:
    data = b"text\n" + "caf\u00e9\n".encode() * 5 + b"bad \xff byte\n" + b"fine\n"
    with pytest.raises(BatchError, match="^line 7: bytes that are not valid UTF-8.*mixes encodings"):
        read_table(data, "in.csv")


def test_a_closed_multiline_last_record_is_fine_and_a_runaway_quote_names_its_line() -> None:
    table = read_table(b'id,text\n1,ok\n2,"two\nlines"', "in.csv")
    assert table.frame["text"].tolist() == ["ok", "two\nlines"]
    runaway = b'id,text\n1,"never closed\n' + b"2,more text that the quote swallows\n" * 5000
    with pytest.raises(BatchError, match="^line 2: a quote opened here is never closed"):
        read_table(runaway, "in.csv")
    runaway += b"2,more text that the quote swallows\n" * (FIELD_LIMIT // 36)  # fails before the end
    with pytest.raises(BatchError, match="^line 2: a quote opened here is never closed"):
        read_table(runaway, "in.csv")


# --- adversarial review ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [b"text\rhello\rworld\rbye\r", b"text\r\nhello\rworld\nbye\r\n", b"text\rhello\r\rworld\rbye"],
    ids=["cr-only", "mixed", "cr-blank-line"],
)
def test_old_mac_and_mixed_line_ends_are_rows(data: bytes) -> None:
    # Was: refused ("new-line character seen in unquoted field ... a quote that is never closed").
    table = read_table(data, "in.csv")
    expected = ["hello", "world", "bye"] if b"\r\r" not in data else ["hello", "", "world", "bye"]
    assert table.frame["text"].tolist() == expected and not table.row_errors


def test_a_cr_line_end_split_across_read_blocks_is_one_line_end() -> None:
    first = b"text\r\n" + b"x" * ((1 << 20) - 7) + b"\r"  # the \r ends the first 1 MiB block
    table = read_table(first + b"\nnext\r\n", "in.csv")
    assert [len(t) for t in table.frame["text"]] == [(1 << 20) - 7, 4]


def test_a_one_megabyte_cell_is_a_row_flagged_too_long(tiny_predictor) -> None:
    # Was: the whole file refused ("field larger than field limit (131072)").
    table = read_table(b"id,text\n1," + b"a" * 1_000_000 + b"\n2,I love it\n", "in.csv")
    scored = score_table(tiny_predictor, table, "text")
    assert values(scored)[0].startswith("text too long: 1000000 characters") and values(scored)[1] is None


def test_a_carriage_return_inside_a_text_is_quoted_in_the_output(tiny_predictor) -> None:
    # Was: written bare, so every reader split the row in two at the \r.
    scored = score_table(tiny_predictor, read_table(b'text,id\r"multi\rline",1\rbye,2\r', "in.csv"), "text")
    back = pd.read_csv(io.StringIO(scored_csv_text(scored), newline=""), dtype=str, keep_default_na=False)
    assert back["text"].tolist() == ["multi\rline", "bye"] and back["id"].tolist() == ["1", "2"]
    assert scored_csv_text(scored.iloc[1:]).endswith("\n") and "\r" not in scored_csv_text(scored.iloc[1:])


def test_folders_as_input_or_output_are_one_clear_error(tiny_model_path, tmp_path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"text\nI love it\n")
    with pytest.raises(BatchError, match="is a folder; give the CSV"):
        score_file(tiny_model_path, tmp_path, tmp_path / "out.csv", jobs=1)
    with pytest.raises(BatchError, match=r"is a folder\. Give a file name"):
        score_file(
            tiny_model_path, src, tmp_path, jobs=1
        )  # was: "[Errno 21] ... '.out.csv.x1y2.part' -> ..."
    with pytest.raises(BatchError, match="does not exist"):
        score_file(tiny_model_path, tmp_path / "missing.csv", tmp_path / "out.csv", jobs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]
