"""Batch reading, scoring and writing with tiny inline tables (real model, no mocks)."""

from __future__ import annotations

import codecs
import io

import openpyxl
import pandas as pd
import pytest

from sentimentkit.serving.base import OUTPUT_COLUMNS
from sentimentkit.serving.batch import (
    NOT_SCORED,
    BatchError,
    apply_threshold,
    check_column,
    check_upload,
    confidence_histogram,
    detect_delimiter,
    detect_encoding,
    filter_results,
    guess_text_column,
    label_summary,
    neutralise_formulas,
    read_table,
    result_csv_bytes,
    score_csv_file,
    score_table,
)

ROWS = [("1", "I love this, great day"), ("2", "café crème, so sad :("), ("3", "the train leaves at two")]


def csv_text(sep: str = ",") -> str:
    """The ROWS as a delimited table (quoted when the delimiter is a comma, which the texts contain)."""
    quote = '"' if sep == "," else ""
    return f"id{sep}text\n" + "".join(f"{i}{sep}{quote}{t}{quote}\n" for i, t in ROWS)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "latin-1"])
def test_read_table_decodes_every_supported_encoding(encoding: str) -> None:
    frame = read_table(csv_text().encode(encoding), "in.csv")
    assert list(frame.columns) == ["id", "text"]  # a BOM must not leak into the first header
    assert frame["text"].tolist() == [t for _, t in ROWS]


def test_utf16_without_bom_is_detected() -> None:
    data = csv_text().encode("utf-16-le")
    assert detect_encoding(data) == "utf-16-le"
    assert read_table(data, "in.csv")["text"].tolist()[1] == "café crème, so sad :("


def test_detect_encoding_prefers_utf8_and_falls_back_to_latin1() -> None:
    assert detect_encoding("naïve".encode()) == "utf-8"
    assert detect_encoding(codecs.BOM_UTF8 + b"a") == "utf-8-sig"
    assert detect_encoding("naïve".encode("latin-1")) == "latin-1"


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_read_table_sniffs_the_delimiter(sep: str) -> None:
    frame = read_table(csv_text(sep).encode(), "in.csv")
    assert frame["text"].tolist() == [t for _, t in ROWS]


def test_tsv_extension_means_tab() -> None:
    assert detect_delimiter("a,b\tc", "x.tsv") == "\t"
    assert read_table(csv_text("\t").encode(), "in.tsv")["id"].tolist() == ["1", "2", "3"]


def test_quoted_newlines_and_empty_cells_stay_in_their_rows() -> None:
    data = b'id,text,note\n1,"line one\nline two",x\n2,,y\n3,"say ""hi""",\n'
    frame = read_table(data, "in.csv")
    assert frame["text"].tolist() == ["line one\nline two", "", 'say "hi"']
    assert frame["note"].tolist() == ["x", "y", ""]


def test_values_are_kept_exactly_not_guessed() -> None:
    frame = read_table(b"id,text\n007,NA\n1e3,null\n", "in.csv")
    assert frame["id"].tolist() == ["007", "1e3"]
    assert frame["text"].tolist() == ["NA", "null"]


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_round_trip_keeps_rows_and_flags_non_text(tiny_predictor) -> None:
    data = xlsx_bytes([["n", "text"], [1, "I love it"], [2, 12345], [3, None], [4, "@SUM(1)"]])
    frame = read_table(data, "book.xlsx")
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
    assert len(read_table(data, "in.csv", max_rows=11)) == 11


def test_undecodable_bytes_after_the_sample_give_a_clear_error() -> None:
    # UTF-8 in the first 64 KiB, then a stray Latin-1 byte: the sniffed encoding no longer fits.
    data = b"text\n" + b"plain ascii row\n" * 6000 + "caf\xe9\n".encode("latin-1")
    with pytest.raises(BatchError, match="not valid utf-8.*Re-save it as UTF-8"):
        read_table(data, "in.csv")


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
    assert neutralise_formulas(frame)["a"].tolist()[:8] == [
        "'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "-12.5", "+3", "plain",
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
    frame = read_table(b'id,text\n1,"multi\nline, love it"\n2,\n3,=1+1\n4,-5\n', "in.csv")
    data = result_csv_bytes(score_table(tiny_predictor, frame, "text"))
    assert data.startswith(codecs.BOM_UTF8)
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert list(back.columns) == ["id", "text", *OUTPUT_COLUMNS]
    assert back["id"].tolist() == ["1", "2", "3", "4"]
    assert back["text"].tolist() == ["multi\nline, love it", "", "'=1+1", "-5"]
    assert back["error"].tolist() == ["", "empty text", "", ""]


def test_score_csv_file_still_streams_for_the_cli(tiny_predictor, tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes("text\nI love it\n\ncafé\n=1+1\n".encode("latin-1"))
    rows, flagged = score_csv_file(tiny_predictor, source, tmp_path / "out.csv", escape_formulas=True)
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert (rows, flagged) == (3, 0)  # pandas skips the blank line, as before
    assert out["text"].tolist() == ["I love it", "café", "'=1+1"]
